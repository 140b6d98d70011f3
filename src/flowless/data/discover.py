"""Videos named by one input path: a dataset root (with a format), a folder of videos, a
list file of video paths or one video file, as ``(key, path)`` pairs. A folder of frames
(:mod:`flowless.data.frames`) counts as a video wherever a video file does.

The key is the video's path without extension, relative to the folder (or, for a list,
to the list's folder, or to the common parent when some paths lie outside it).
"""

from __future__ import annotations

import os
from pathlib import Path

from flowless.data.annotations import load_index, read_lines
from flowless.data.frames import has_frames
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
        if has_frames(os.listdir(input_path)) and not any(
                p.is_dir() for p in input_path.iterdir()):
            return [(input_path.name, input_path)]  # one video's frames
        return folder_videos(input_path)
    if input_path.is_file() and input_path.suffix.lower() in VIDEO_EXTENSIONS:
        return [(input_path.stem, input_path)]  # one video (a readable one or not)
    if input_path.is_file():
        return list_videos(input_path)
    raise FlowError(f"{input_path}: not found; pass a folder of videos, a dataset root or a "
                    ".txt list of video paths")


def folder_videos(folder: Path) -> list[tuple[str, Path]]:
    """Video files and frame folders under ``folder`` (recursively, hidden names skipped),
    sorted by path; a frame folder's key keeps its whole name."""
    videos = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        here = Path(dirpath)
        if here != folder and has_frames(filenames):
            videos.append((here.relative_to(folder).as_posix(), here))
            dirnames[:] = []
            continue
        for name in filenames:
            path = here / name
            if (not name.startswith(".") and path.suffix.lower() in VIDEO_EXTENSIONS
                    and path.is_file()):
                videos.append((path.relative_to(folder).with_suffix("").as_posix(), path))
    if not videos:
        raise FlowError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)}) "
                        "or frame folders found; pass a dataset root with --format or a list "
                        "file")
    return sorted(videos, key=lambda kv: kv[1])


def list_videos(list_file: Path) -> list[tuple[str, Path]]:
    """Paths one per line, absolute or relative to the list's folder; '#' lines are
    comments and trailing integer columns (``<path> <label>`` as in UCF101, mmaction2's
    ``<frame_dir> <total_frames> <label>``) are ignored."""
    base = list_file.resolve().parent
    paths = []
    for _, text in read_lines(list_file):
        if text.startswith("#"):
            continue
        path = Path(text)
        for _ in range(3):
            head, _, tail = str(path).rpartition(" ")
            if (base / path).exists() or not head or not tail.lstrip("-").isdigit():
                break
            path = Path(head.strip())
        paths.append(path if path.is_absolute() else base / path)
    if not paths:
        raise AnnotationError(list_file, None, "lists no videos; write one video path per line")
    absolute = [Path(os.path.abspath(p)) for p in paths]
    inside = all(p.is_relative_to(base) for p in absolute)
    root = base if inside else Path(os.path.commonpath([p.parent for p in absolute]))
    return [((p.relative_to(root) if p.is_dir() else p.relative_to(root).with_suffix(""))
             .as_posix(), p) for p in absolute]
