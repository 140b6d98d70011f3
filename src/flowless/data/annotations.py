"""Dataset annotation formats -> one list of :class:`VideoRecord`.

Formats: ``ucf101``, ``hmdb51``, ``kinetics``, ``ssv2``, ``list`` and ``folder``
(docs/datasets.md describes each). Annotation files may live outside the dataset root
(``annotations=``), but every video path must stay inside the root. A malformed file is an
:class:`AnnotationError` naming the file and 1-based line; a listed video that does not exist
is not an error here (see :meth:`DatasetIndex.missing`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from flowless.data.video import VIDEO_EXTENSIONS
from flowless.errors import AnnotationError

FORMATS = ("ucf101", "hmdb51", "kinetics", "ssv2", "list", "folder")
# Split names are canonical: "val"/"validate" in Kinetics CSVs become "validation".
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "validate": "validation"}


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video: absolute path, 0-based label (-1 unknown), class, split, key."""

    path: Path
    label: int
    class_name: str
    split: str
    key: str  # root-relative POSIX path without extension (flow store / prediction id)


@dataclass
class DatasetIndex:
    """All records of a dataset (every split) and its class list (index = label)."""

    root: Path
    format: str
    classes: list[str]
    records: list[VideoRecord] = field(default_factory=list)

    @property
    def splits(self) -> list[str]:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(r.split for r in self.records))

    def split(self, name: str) -> list[VideoRecord]:
        """Records of split ``name`` ("val" means "validation"; "test" falls back to
        "validation" when the dataset has no test split, as for Kinetics/SSv2 evaluation)."""
        name = SPLIT_ALIASES.get(name, name)
        out = [r for r in self.records if r.split == name]
        if not out and name == "test":
            out = [r for r in self.records if r.split == "validation"]
        return out

    def missing(self, split: str | None = None) -> list[VideoRecord]:
        """Records whose video file does not exist."""
        recs = self.records if split is None else self.split(split)
        return [r for r in recs if not r.path.is_file()]

    def summary(self) -> dict:
        """``{"classes": N, "splits": {name: {"videos": n, "missing": [relative paths]}}}``."""
        splits = {}
        for name in self.splits:
            recs = [r for r in self.records if r.split == name]
            missing = [r.path.relative_to(self.root).as_posix()
                       for r in recs if not r.path.is_file()]
            splits[name] = {"videos": len(recs), "missing": missing}
        return {"classes": len(self.classes), "splits": splits}


def load_index(
    root: str | Path, fmt: str, split: int = 1, annotations: str | Path | None = None
) -> DatasetIndex:
    """Read a dataset's annotations into a :class:`DatasetIndex`.

    ``split`` picks the UCF101/HMDB51 (1-3) or list-format split; ``annotations`` is the
    folder (or, for ``list``, the file) holding the annotation files when not under ``root``.
    """
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
    loader: Callable[[_Builder, Path, int], None] = _LOADERS[fmt]
    builder = _Builder(root)
    loader(builder, ann, int(split))
    return DatasetIndex(root=root, format=fmt, classes=builder.classes, records=builder.records)


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
        extension (e.g. a UCF101 ``.avi`` converted to ``.mp4``), else the first candidate."""
        cands = [c.rpartition("/") for c in candidates]
        for folder, _, name in cands:
            if name in self._names(folder):
                return f"{folder}/{name}" if folder else name
        for folder, _, name in cands:
            names = self._names(folder)
            stem, ext = posixpath.splitext(name)
            stem = stem if ext.lower() in VIDEO_EXTENSIONS else name
            for ext in VIDEO_EXTENSIONS:
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
        key = posixpath.splitext(rel)[0] or rel
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


def _first_file(folders: Iterable[Path], names: Iterable[str]) -> Path | None:
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def _parse_int(token: str, src: Path, line: int, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise AnnotationError(src, line, f"{what} {token!r} is not an integer; expected "
                              "'<path> <label>'") from None


def _read_class_ind(path: Path, base: int) -> list[str]:
    """``<index> <name>`` lines with indices ``base..base+N-1`` (each once)."""
    names: dict[int, str] = {}
    for n, line in read_lines(path):
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise AnnotationError(path, n, f"expected '<index> <class name>', got {line!r}")
        idx = _parse_int(parts[0], path, n, "class index")
        if idx in names or parts[1] in names.values():
            raise AnnotationError(path, n, f"class {line!r} is listed twice; remove the duplicate")
        names[idx] = parts[1]
    if not names:
        raise AnnotationError(path, None, "lists no classes; write one '<index> <class name>' "
                              "line per class")
    if sorted(names) != list(range(base, base + len(names))):
        raise AnnotationError(path, None, f"class indices must be {base}..{base + len(names) - 1} "
                              "without gaps; renumber the classes")
    return [names[i] for i in sorted(names)]


# ---------------------------------------------------------------- UCF101
def _ucf101(b: _Builder, ann: Path, split: int) -> None:
    dirs = [ann, ann / "ucfTrainTestlist"]
    class_ind = _first_file(dirs, ["classInd.txt"]) or ann / "classInd.txt"
    b.classes = _read_class_ind(class_ind, base=1)
    exact = {c: i for i, c in enumerate(b.classes)}
    lower = {c.lower(): i for i, c in enumerate(b.classes)}  # folder case may differ
    for name, kind in ((f"trainlist{split:02d}.txt", "train"),
                       (f"testlist{split:02d}.txt", "test")):
        src = _first_file(dirs, [name]) or ann / name
        for n, line in read_lines(src):
            parts = line.rsplit(None, 1)
            label = None
            if len(parts) == 2 and re.fullmatch(r"[+-]?\d+", parts[1]):
                path_text, label = parts[0], int(parts[1]) - 1
                if not 0 <= label < len(b.classes):
                    raise AnnotationError(src, n, f"label {parts[1]} is not in {class_ind.name} "
                                          f"(1..{len(b.classes)}); fix the label")
            elif kind == "train":
                raise AnnotationError(src, n, f"expected '<path> <label>', got {line!r}")
            else:
                path_text = line
            rel = b.rel(path_text, src, n)
            top, sep, _ = rel.partition("/")
            folder = exact.get(top, lower.get(top.lower())) if sep else None
            if label is None:
                if folder is None:
                    raise AnnotationError(src, n, f"class folder {top!r} is not in "
                                          f"{class_ind.name}; use '<Class>/<video>' paths")
                label = folder
            elif folder is not None and folder != label:
                raise AnnotationError(src, n, f"label {label + 1} ({b.classes[label]}) disagrees "
                                      f"with the folder {top!r}; fix the label")
            b.add(b.find([rel]), label, kind, src, n)


# ---------------------------------------------------------------- HMDB51
def _hmdb51(b: _Builder, ann: Path, split: int) -> None:
    folder = next((d for d in (ann, ann / "testTrainMulti_7030_splits")
                   if d.is_dir() and any(d.glob("*_test_split*.txt"))), None)
    if folder is None:
        raise AnnotationError(ann, None, "no '<class>_test_split<K>.txt' files found; "
                              "point --annotations at the HMDB51 split folder")
    pattern = re.compile(r"(.+)_test_split(\d+)\.txt")
    found = [m for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    b.classes = sorted({m.group(1) for m in found})
    kinds = {"1": "train", "2": "test"}
    for ci, name in enumerate(b.classes):
        src = folder / f"{name}_test_split{split}.txt"
        for n, line in read_lines(src):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(src, n, f"expected '<video> <0|1|2>' (0 unused, 1 train, "
                                      f"2 test), got {line!r}")
            if parts[1] == "0":
                continue
            rel = b.rel(f"{name}/{parts[0]}", src, n)
            if not rel.startswith(f"{name}/"):
                raise AnnotationError(src, n, f"video name {parts[0]!r} leaves its class folder")
            b.add(b.find([rel]), ci, kinds[parts[1]], src, n)


# ---------------------------------------------------------------- Kinetics
KINETICS_HEADER = "label,youtube_id,time_start,time_end,split"


def _kinetics(b: _Builder, ann: Path, split: int) -> None:
    rows: list[tuple[Path, int, dict[str, str]]] = []
    for src in sorted(ann.glob("*.csv")) if ann.is_dir() else [ann]:
        reader = csv.DictReader(io.StringIO(read_text(src), newline=""))
        if "youtube_id" not in (reader.fieldnames or []):
            if ann.is_dir():
                continue  # some other CSV in the folder
            raise AnnotationError(src, 1, f"header must be '{KINETICS_HEADER}'; fix the header")
        for row in reader:
            n = reader.line_num
            if None in row or None in row.values():
                raise AnnotationError(src, n, "wrong number of fields; expected "
                                      f"'{KINETICS_HEADER}'")
            rows.append((src, n, row))
    if not rows:
        raise AnnotationError(ann, None, f"no Kinetics CSV rows (header '{KINETICS_HEADER}') "
                              "found; point --annotations at the CSV folder")
    b.classes = sorted({lab for _, _, r in rows if (lab := (r.get("label") or "").strip())})
    index = {c: i for i, c in enumerate(b.classes)}
    split_dirs: dict[str, list[str]] = {}
    for src, n, row in rows:
        yid, label = row["youtube_id"].strip(), (row.get("label") or "").strip()
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (KeyError, ValueError, TypeError):
            raise AnnotationError(src, n, "time_start and time_end must be numbers") from None
        if not re.fullmatch(r"[\w-]+", yid):
            raise AnnotationError(src, n, f"invalid youtube_id {yid!r}")
        kind = (row.get("split") or "").strip() or _split_from_name(src.stem)
        kind = SPLIT_ALIASES.get(kind, kind)
        fname = f"{yid}_{start:06d}_{end:06d}.mp4"
        # <split>/<label>/<file> or <label>/<file>; test clips may have no label folder.
        if kind not in split_dirs:
            split_dirs[kind] = [d for d in (kind, *(a for a, c in SPLIT_ALIASES.items()
                                                    if c == kind)) if (b.root / d).is_dir()]
        label_dirs = [label, label.replace(" ", "_")] if label else [""]
        rels = ["/".join(p for p in (s, lab, fname) if p)
                for s in (*split_dirs[kind], "") for lab in label_dirs]
        b.add(b.find(b.rel(r, src, n) for r in rels), index[label] if label else -1, kind, src, n)


def _split_from_name(stem: str) -> str:
    """Canonical split named in a file name ("kinetics_val" -> "validation"), else "all"."""
    for word in ("train", "val", "test"):
        if word in stem.lower():
            return SPLIT_ALIASES.get(word, word)
    return "all"


# ---------------------------------------------------------------- Something-Something v2
def _ssv2(b: _Builder, ann: Path, split: int) -> None:
    def find(suffix: str) -> Path | None:
        hits = sorted(ann.glob(f"*{suffix}"))
        return hits[0] if hits else None

    labels_file = find("labels.json") or ann / "labels.json"
    mapping = _load_json(labels_file)
    if not isinstance(mapping, dict):
        raise AnnotationError(labels_file, 1, "expected an object {template: index}")
    by_index: dict[int, str] = {}
    for template, idx in mapping.items():
        if not str(idx).strip().isdigit():
            raise AnnotationError(labels_file, _json_line(labels_file, template),
                                  f"index {idx!r} of {template!r} is not an integer")
        if int(idx) in by_index:
            raise AnnotationError(labels_file, _json_line(labels_file, template),
                                  f"index {idx} is used twice; renumber the labels")
        by_index[int(idx)] = template
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(labels_file, None, "indices must be 0..N-1 without gaps")
    b.classes = [by_index[i] for i in range(len(by_index))]
    lookup = {c: i for i, c in enumerate(b.classes)}
    files = [(f, k) for f, k in ((find("train.json"), "train"),
                                 (find("validation.json"), "validation"),
                                 (find("test.json"), "test")) if f is not None]
    if not files:
        raise AnnotationError(ann, None, "no train.json / validation.json found; point "
                              "--annotations at the Something-Something v2 label folder")
    # videos are <root>/<id>.webm or inside e.g. <root>/20bn-something-something-v2/
    subdirs = [d.name for d in sorted(b.root.iterdir()) if d.is_dir() and "something" in d.name]
    seen: dict[str, int] = {}
    for src, kind in files:
        entries = _load_json(src)
        if not isinstance(entries, list):
            raise AnnotationError(src, 1, 'expected a list of {"id", "template", ...} entries')
        for entry in entries:
            vid = str(entry.get("id", "")).strip() if isinstance(entry, dict) else ""
            if not re.fullmatch(r"[\w-]+", vid):
                raise AnnotationError(src, _json_line(src, vid) if vid else None,
                                      f"entry {str(entry)[:80]} has no valid 'id'")
            seen[vid] = seen.get(vid, 0) + 1
            if seen[vid] > 1:
                raise AnnotationError(src, _json_line(src, vid, seen[vid]),
                                      f"video id {vid} is listed twice; remove one entry")
            label = -1
            if kind != "test" or "template" in entry:
                template = str(entry.get("template", "")).replace("[", "").replace("]", "")
                if template not in lookup:
                    raise AnnotationError(src, _json_line(src, vid), f"template {template!r} "
                                          f"of video {vid} is not in {labels_file.name}")
                label = lookup[template]
            rels = [f"{d}/{vid}.webm" if d else f"{vid}.webm" for d in ("", *subdirs)]
            b.add(b.find(rels), label, kind, src, None)


def _load_json(path: Path) -> object:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise AnnotationError(path, exc.lineno, f"invalid JSON ({exc.msg}); fix the file") from None


def _json_line(path: Path, value: str, occurrence: int = 1) -> int | None:
    """1-based line of the ``occurrence``-th ``"value"`` string (points errors at entries)."""
    text, pos = read_text(path), -1
    for _ in range(occurrence):
        pos = text.find(json.dumps(value), pos + 1)
        if pos < 0:
            return None
    return text.count("\n", 0, pos) + 1


# ---------------------------------------------------------------- list / folder
def _list(b: _Builder, ann: Path, split: int) -> None:
    if ann.is_file():
        files = [(ann, _split_from_name(ann.stem))]
        folder = ann.parent
    else:
        folder, files = ann, []
        for kind, names in (("train", ["train"]), ("validation", ["val", "validation"]),
                            ("test", ["test"])):
            candidates = [f"{n}{suffix}.txt" for suffix in (f"_split{split}", f"{split:02d}", "")
                          for n in names]
            src = _first_file([ann], candidates)
            if src is not None:
                files.append((src, kind))
        if not files:
            raise AnnotationError(ann, None, "no list file found (train.txt, val.txt, test.txt); "
                                  "pass the list file with --annotations FILE")
    parsed = []
    for src, kind in files:
        for n, line in read_lines(src):
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise AnnotationError(src, n, f"expected '<relative path> <label>', got {line!r}")
            parsed.append((src, n, parts[0], _parse_int(parts[1], src, n, "label"), kind))
    names_file = _first_file([folder, b.root], ["classInd.txt", "classes.txt"])
    if names_file is None:
        b.classes = [f"class_{i}" for i in range(max((p[3] for p in parsed), default=-1) + 1)]
    elif names_file.name == "classInd.txt":
        b.classes = _read_class_ind(names_file, base=1)
    else:
        b.classes = [line for _, line in read_lines(names_file)]
    for src, n, path_text, label, kind in parsed:
        if label < 0:
            raise AnnotationError(src, n, f"label {label} is negative; labels are 0-based")
        b.add(b.find([b.rel(path_text, src, n)]), label, kind, src, n)


def _folder(b: _Builder, ann: Path, split: int) -> None:
    subsplits = [d for d in ("train", "val", "validation", "test") if (b.root / d).is_dir()]
    bases = [(b.root / d, SPLIT_ALIASES.get(d, d)) for d in subsplits] or [(b.root, "all")]
    found: list[tuple[str, Path, str]] = []
    for base, kind in bases:
        for cdir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for dirpath, dirnames, filenames in os.walk(cdir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found += [(cdir.name, Path(dirpath) / f, kind) for f in sorted(filenames)
                          if Path(f).suffix.lower() in VIDEO_EXTENSIONS and not f.startswith(".")]
    if not found:
        raise AnnotationError(b.root, None, "no videos found in class folders "
                              "(ROOT/<class>/<video>); check ROOT or choose another --format")
    b.classes = sorted({c for c, _, _ in found})
    index = {c: i for i, c in enumerate(b.classes)}
    for cname, path, kind in found:
        b.add(path.relative_to(b.root).as_posix(), index[cname], kind, b.root, None)


_LOADERS: dict[str, Callable[[_Builder, Path, int], None]] = {
    "ucf101": _ucf101,
    "hmdb51": _hmdb51,
    "kinetics": _kinetics,
    "ssv2": _ssv2,
    "list": _list,
    "folder": _folder,
}
