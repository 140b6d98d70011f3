"""Dataset annotation formats -> one list of :class:`VideoRecord`.

Formats: ``ucf101``, ``hmdb51``, ``kinetics``, ``ssv2``, ``list``, ``rawframes`` and
``folder`` (docs/datasets.md describes each; the readers are in :mod:`flowless.data.formats`).
A record's path is a video file or a folder of frames (:mod:`flowless.data.frames`).
Annotation files may live outside the dataset root (``annotations=``), but every video path
must stay inside the root. A malformed file is an :class:`AnnotationError` naming the file
and 1-based line; a listed video that does not exist is not an error here (see
:meth:`DatasetIndex.missing`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flowless.data.holdout import DEFAULT_VAL_FRACTION, hold_out
from flowless.data.video import VIDEO_EXTENSIONS
from flowless.errors import AnnotationError

FORMATS = ("ucf101", "hmdb51", "kinetics", "ssv2", "list", "rawframes", "folder")
# Split names are canonical: "val"/"validate" in Kinetics CSVs become "validation".
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "validate": "validation"}


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video: absolute path, 0-based label (-1 unknown), class, split, key."""

    path: Path  # a video file or a folder of frames
    label: int
    class_name: str
    split: str
    key: str  # root-relative POSIX path without extension (flow store / prediction id)


@dataclass
class DatasetIndex:
    """All records of a dataset (every split) and its class list (index = label).

    A dataset whose only split is ``all`` (a plain class folder, one list file) has a
    hold-out: ``split("train")`` and ``split("validation")`` (and ``"test"``) give its parts,
    ``val_fraction`` of each class held out for validation (:mod:`flowless.data.holdout`)."""

    root: Path
    format: str
    classes: list[str]
    records: list[VideoRecord] = field(default_factory=list)
    val_fraction: float = DEFAULT_VAL_FRACTION

    @property
    def splits(self) -> list[str]:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(r.split for r in self.records))

    def holdout(self) -> tuple[list[VideoRecord], list[VideoRecord]] | None:
        """(train, validation) held out of split ``all``; None when the dataset has splits."""
        if self.splits != ["all"]:
            return None
        return hold_out(self.records, self.val_fraction)

    def split(self, name: str) -> list[VideoRecord]:
        """Records of split ``name`` ("val" means "validation"; "test" falls back to
        "validation" when the dataset has no test split, as for Kinetics/SSv2 evaluation;
        "train" and "validation" of a dataset with only ``all`` are its hold-out)."""
        name = SPLIT_ALIASES.get(name, name)
        out = [r for r in self.records if r.split == name]
        if not out and name in ("train", "validation", "test"):
            parts = self.holdout()
            if parts is not None:
                return parts[0] if name == "train" else parts[1]
        if not out and name == "test":
            out = [r for r in self.records if r.split == "validation"]
        return out

    def missing(self, split: str | None = None) -> list[VideoRecord]:
        """Records whose video file (or frame folder) does not exist."""
        recs = self.records if split is None else self.split(split)
        return [r for r in recs if not r.path.exists()]

    def summary(self) -> dict:
        """``{"classes": N, "splits": {name: {"videos": n, "missing": [relative paths]}}}``,
        plus ``"holdout": {"val_fraction", "train", "validation"}`` (counts) when there is one."""
        splits = {}
        for name in self.splits:
            recs = [r for r in self.records if r.split == name]
            missing = [r.path.relative_to(self.root).as_posix()
                       for r in recs if not r.path.exists()]
            splits[name] = {"videos": len(recs), "missing": missing}
        out: dict = {"classes": len(self.classes), "splits": splits}
        parts = self.holdout()
        if parts is not None:
            out["holdout"] = {"val_fraction": self.val_fraction, "train": len(parts[0]),
                              "validation": len(parts[1])}
        return out


def load_index(
    root: str | Path, fmt: str, split: int = 1, annotations: str | Path | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> DatasetIndex:
    """Read a dataset's annotations into a :class:`DatasetIndex`.

    ``split`` picks the UCF101/HMDB51 (1-3) or list-format split; ``annotations`` is the
    folder (or, for ``list``/``rawframes``, the file) holding the annotation files when not
    under ``root``; ``val_fraction`` sizes the hold-out of a dataset without splits.
    """
    from flowless.data.formats import LOADERS

    if fmt not in FORMATS:
        raise AnnotationError(root, None,
                              f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    root = Path(os.path.abspath(Path(root).expanduser()))
    if not root.is_dir():
        raise AnnotationError(root, None, "dataset root is not a folder; check the path")
    ann = Path(os.path.abspath(Path(annotations).expanduser())) if annotations else root
    if not ann.exists():
        raise AnnotationError(ann, None, "annotation path not found; check --annotations")
    if int(split) < 1:
        raise AnnotationError(ann, None, f"split must be 1 or more, got {split}")
    hold_out([], val_fraction)  # a bad fraction fails here, not at the first split() call
    builder = _Builder(root)
    LOADERS[fmt](builder, ann, int(split))
    return DatasetIndex(root=root, format=fmt, classes=builder.classes, records=builder.records,
                        val_fraction=val_fraction)


class _Builder:
    """Collects records; resolves paths safely and remembers where each key came from.

    Paths are handled as POSIX strings relative to the root (pathlib is too slow for the
    240k rows of Kinetics)."""

    def __init__(self, root: Path):
        self.root = root
        self._root = str(root)
        self.classes: list[str] = []
        self.records: list[VideoRecord] = []
        self._seen: dict[str, str] = {}
        self._listing: dict[str, set[str]] = {}

    def rel(self, name: str, src: Path, line: int | None) -> str:
        """Root-relative normalised POSIX path of ``name``; an error if it leaves the root."""
        text = name.strip().replace("\\", "/")
        if not text:
            raise AnnotationError(src, line, "empty video path")
        if text.startswith("/"):
            norm = os.path.normpath(text)
            if os.path.commonpath([norm, self._root]) != self._root or norm == self._root:
                raise AnnotationError(
                    src, line, f"absolute path {text!r} is outside the dataset root {self.root}; "
                    "use paths relative to the root")
            text = norm[len(self._root):].lstrip("/")
        norm = posixpath.normpath(text)
        if norm in (".", "..") or norm.startswith("../"):
            raise AnnotationError(
                src, line, f"path {text!r} escapes the dataset root {self.root}; "
                "fix the line or choose the right ROOT")
        return norm

    def find(self, candidates: Iterable[str]) -> str:
        """First candidate that exists, else one with the same stem and another video
        extension (e.g. a UCF101 ``.avi`` converted to ``.mp4``), else a folder named like
        the stem (the video's frames), else the first candidate."""
        cands = [c.rpartition("/") for c in candidates]
        for folder, _, name in cands:
            if name in self._names(folder):
                return f"{folder}/{name}" if folder else name
        for folder, _, name in cands:
            names = self._names(folder)
            stem, ext = posixpath.splitext(name)
            stem = stem if ext.lower() in VIDEO_EXTENSIONS else name
            for ext in (*VIDEO_EXTENSIONS, ""):  # "": the frame folder
                if stem + ext in names:
                    return f"{folder}/{stem}{ext}" if folder else stem + ext
        folder, _, name = cands[0]
        return f"{folder}/{name}" if folder else name

    def _names(self, folder: str) -> set[str]:
        listing = self._listing.get(folder)
        if listing is None:  # one listdir per folder: fast for 100k+ videos
            try:
                listing = set(os.listdir(os.path.join(self._root, folder)))
            except OSError:
                listing = set()
            self._listing[folder] = listing
        return listing

    def add(self, rel: str, label: int, split: str, src: Path, line: int | None) -> None:
        """Append a record; duplicates and labels outside the class list are errors."""
        if not -1 <= label < len(self.classes):
            raise AnnotationError(src, line, f"label {label} is out of range (the dataset has "
                                  f"{len(self.classes)} classes); fix the label")
        key, ext = posixpath.splitext(rel)
        if not key or (ext and ext.lower() not in VIDEO_EXTENSIONS
                       and os.path.isdir(f"{self._root}/{rel}")):
            key = rel  # a frame folder keeps a dot in its name
        if key in self._seen:
            raise AnnotationError(src, line, f"video {rel!r} is listed twice (first at "
                                  f"{self._seen[key]}); remove one of the lines")
        self._seen[key] = f"{src}:{line}" if line is not None else str(src)
        name = self.classes[label] if label >= 0 else ""
        self.records.append(VideoRecord(Path(f"{self._root}/{rel}"), label, name, split, key))


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty stripped lines of a UTF-8 text file with their 1-based line numbers."""
    text = read_text(path)
    return [(i, s.strip()) for i, s in enumerate(text.splitlines(), 1) if s.strip()]


def read_text(path: Path) -> str:
    """Read a UTF-8 (optionally BOM-prefixed) file; bad bytes are an error naming the line."""
    if not path.is_file():
        raise AnnotationError(path, None, "annotation file not found; check ROOT, --annotations "
                              "and --split")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AnnotationError(path, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                              "re-save the file as UTF-8") from None
