"""Videos named by one input path: a dataset root (with a format), a folder of videos, a
list file of video paths or one video file, as ``(key, path)`` pairs.

The key is the video's path without extension, relative to the folder (or, for a list,
to the list's folder, or to the common parent when some paths lie outside it).
"""

from __future__ import annotations

import os
from pathlib import Path

from flowless.data.annotations import load_index, read_lines
from flowless.data.video import VIDEO_EXTENSIONS
from flowless.errors import AnnotationError, FlowError


def discover_videos(input_path: Path, fmt: str | None = None, split: int = 1,
                    annotations: Path | None = None) -> list[tuple[str, Path]]:
    """(key, path) of every video named by ``input_path``; ``fmt`` reads it as a dataset
    root of that format (:func:`flowless.data.annotations.load_index`)."""
    if fmt:
        index = load_index(input_path, fmt, split=split, annotations=annotations)
        return [(r.key, Path(r.path)) for r in index.records]
    if input_path.is_dir():
        return folder_videos(input_path)
    if input_path.is_file() and input_path.suffix.lower() in VIDEO_EXTENSIONS:
        return [(input_path.stem, input_path)]  # one video (a readable one or not)
    if input_path.is_file():
        return list_videos(input_path)
    raise FlowError(f"{input_path}: not found; pass a folder of videos, a dataset root or a "
                    ".txt list of video paths")


def folder_videos(folder: Path) -> list[tuple[str, Path]]:
    """Video files under ``folder`` (recursively, hidden names skipped), sorted by path."""
    videos = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            videos.append((rel.with_suffix("").as_posix(), path))
    if not videos:
        raise FlowError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)}) "
                        "found; pass a dataset root with --format or a list file")
    return videos


def list_videos(list_file: Path) -> list[tuple[str, Path]]:
    """Paths one per line, absolute or relative to the list's folder; '#' lines are
    comments and a trailing integer label (``<path> <label>``, as in UCF101) is ignored."""
    base = list_file.resolve().parent
    paths = []
    for _, text in read_lines(list_file):
        if text.startswith("#"):
            continue
        path = Path(text)
        head, _, tail = text.rpartition(" ")
        if not (base / path).exists() and head and tail.lstrip("-").isdigit():
            path = Path(head.strip())
        paths.append(path if path.is_absolute() else base / path)
    if not paths:
        raise AnnotationError(list_file, None, "lists no videos; write one video path per line")
    absolute = [Path(os.path.abspath(p)) for p in paths]
    inside = all(p.is_relative_to(base) for p in absolute)
    root = base if inside else Path(os.path.commonpath([p.parent for p in absolute]))
    return [(p.relative_to(root).with_suffix("").as_posix(), p) for p in absolute]
