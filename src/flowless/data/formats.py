"""One reader per annotation format, each filling a :class:`_Builder` (docs/datasets.md).

Helpers of :mod:`flowless.data.annotations`; call :func:`~flowless.data.annotations.load_index`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from flowless.data.annotations import SPLIT_ALIASES, _Builder, read_lines, read_text
from flowless.data.frames import has_frames
from flowless.data.video import VIDEO_EXTENSIONS
from flowless.errors import AnnotationError


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
            # ROOT/<Class>/<video>, else ROOT/<video> (the shared jpegs_256 frame folders)
            b.add(b.find([rel, rel.rpartition("/")[2]]), label, kind, src, n)


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
            b.add(b.find([rel, rel.rpartition("/")[2]]), ci, kinds[parts[1]], src, n)


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


# ---------------------------------------------------------------- list / rawframes / folder
def _list(b: _Builder, ann: Path, split: int) -> None:
    if ann.is_file():
        files = [(ann, _split_from_name(ann.stem))]
    else:
        files = []
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
    _add_listed(b, ann if ann.is_dir() else ann.parent, parsed)


def _add_listed(b: _Builder, folder: Path, parsed: list[tuple[Path, int, str, int, str]]) -> None:
    """Class names (``classInd.txt`` or ``classes.txt`` by the lists, else in ROOT, else
    ``class_<i>``), then the records of ``(src, line, path, label, split)`` rows."""
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


RAWFRAMES_LINE = "'<frame_dir> <total_frames> <label>' or '<frame_dir> <start> <total_frames> <label>'"


def _rawframes(b: _Builder, ann: Path, split: int) -> None:
    """mmaction2 rawframe lists (``ucf101_train_split_1_rawframes.txt``); flowless counts
    the frames itself, so ``total_frames`` is only checked to be a number."""
    if ann.is_file():
        files = [(ann, _split_from_name(ann.stem))]
    else:
        lists = sorted(p for p in ann.glob("*rawframes*.txt") if p.is_file())
        picked = [p for p in lists if f"split_{split}" in p.name or f"split{split}" in p.name]
        files = [(p, _split_from_name(p.stem)) for p in (picked or lists)]
        if not files:
            raise AnnotationError(ann, None, "no '*rawframes*.txt' list found (e.g. "
                                  f"ucf101_train_split_{split}_rawframes.txt); pass the list "
                                  "file with --annotations FILE")
    parsed = []
    for src, kind in files:
        for n, line in read_lines(src):
            parts = line.split()
            if len(parts) not in (3, 4):
                raise AnnotationError(src, n, f"expected {RAWFRAMES_LINE} (one label), "
                                      f"got {line!r}")
            bad = next((t for t in parts[1:] if not t.lstrip("-").isdigit()), None)
            if bad is not None:
                raise AnnotationError(src, n, f"{bad!r} is not an integer; expected "
                                      f"{RAWFRAMES_LINE}")
            numbers = [int(t) for t in parts[1:]]
            if len(parts) == 4 and numbers[0] not in (0, 1):
                raise AnnotationError(src, n, f"start {numbers[0]}: clips cut from the middle "
                                      "of a frame folder are not supported; list whole "
                                      "folders (start 0 or 1)")
            parsed.append((src, n, parts[0], numbers[-1], kind))
    _add_listed(b, ann if ann.is_dir() else ann.parent, parsed)


def _folder(b: _Builder, ann: Path, split: int) -> None:
    subsplits = [d for d in ("train", "val", "validation", "test") if (b.root / d).is_dir()]
    bases = [(b.root / d, SPLIT_ALIASES.get(d, d)) for d in subsplits] or [(b.root, "all")]
    found: list[tuple[str, Path, str]] = []
    for base, kind in bases:
        for cdir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for dirpath, dirnames, filenames in os.walk(cdir):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if dirpath != str(cdir) and has_frames(filenames):  # a frame folder
                    found.append((cdir.name, Path(dirpath), kind))
                    dirnames[:] = []
                    continue
                found += [(cdir.name, Path(dirpath) / f, kind) for f in sorted(filenames)
                          if Path(f).suffix.lower() in VIDEO_EXTENSIONS and not f.startswith(".")]
    if not found:
        raise AnnotationError(b.root, None, "no videos found in class folders "
                              "(ROOT/<class>/<video>, a video file or a folder of frames); "
                              "check ROOT or choose another --format")
    b.classes = sorted({c for c, _, _ in found})
    index = {c: i for i, c in enumerate(b.classes)}
    for cname, path, kind in found:
        b.add(path.relative_to(b.root).as_posix(), index[cname], kind, b.root, None)


LOADERS: dict[str, Callable[[_Builder, Path, int], None]] = {
    "ucf101": _ucf101,
    "hmdb51": _hmdb51,
    "kinetics": _kinetics,
    "ssv2": _ssv2,
    "list": _list,
    "rawframes": _rawframes,
    "folder": _folder,
}
