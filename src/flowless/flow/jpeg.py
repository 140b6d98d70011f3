"""Export to and import from the JPEG flow layouts of MARS, mmaction2/denseflow and the
shared UCF101 ``tvl1_flow`` tree.

Each tool stores each quantised field (the same MARS formula as ours) as two grayscale
JPEGs per frame pair, numbered from 1:

    mars:       <key>/TVL1jpg_x_00001.jpg, <key>/TVL1jpg_y_00001.jpg, ...
    denseflow:  <key>/flow_x_00001.jpg,    <key>/flow_y_00001.jpg, ...
    xy:         <key>/x_00001.jpg,         <key>/y_00001.jpg, ...  (mmaction2's flow configs)
    mmaction2:  either of the two above (export writes flow_x_)
    uv:         u/<key>/frame000001.jpg,   v/<key>/frame000001.jpg, ...

Import detects the layout (``auto``) or takes its name. JPEG is lossy: at quality 95 a round
trip changes a level by about one on average (see tests/flow/test_flow_jpeg.py for the
bound we check).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowless.errors import ConfigError, FlowError
from flowless.flow.backends import resolve_params
from flowless.flow.extract import ExtractSummary, report_path
from flowless.flow.store import (
    MANIFEST_NAME,
    count_fields,
    ensure_manifest,
    flow_path,
    load_flow_u8,
    make_manifest,
    open_flow_writer,
    remove_partial,
    store_keys,
)
from flowless.io import write_json
from flowless.progress import progress


@dataclass(frozen=True)
class Naming:
    """The x and y image names of field t (``{:05d}``-style templates) and the sub-trees that
    hold them ("" when x and y share one folder per video)."""

    x: str
    y: str
    trees: tuple[str, str] = ("", "")

    def first(self) -> str:
        """How the first x image looks, for messages."""
        name = self.x.format(1)
        return f"{self.trees[0]}/<video>/{name}" if self.trees[0] else name

    def count(self, names: set[str], first: int) -> int:
        """Consecutive x images from number ``first``."""
        n = 0
        while self.x.format(first + n) in names:
            n += 1
        return n


MARS = Naming("TVL1jpg_x_{:05d}.jpg", "TVL1jpg_y_{:05d}.jpg")
FLOW_XY = Naming("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
PLAIN_XY = Naming("x_{:05d}.jpg", "y_{:05d}.jpg")
UV = Naming("frame{:06d}.jpg", "frame{:06d}.jpg", ("u", "v"))
# Layout name -> the namings it reads (export writes the first). Detection tries them in
# this order: the first layout whose namings cover every folder found.
LAYOUTS: dict[str, tuple[Naming, ...]] = {
    "mars": (MARS,),
    "mmaction2": (FLOW_XY, PLAIN_XY),
    "uv": (UV,),
    "denseflow": (FLOW_XY,),
    "xy": (PLAIN_XY,),
}
IMPORT_LAYOUTS = ("auto", *LAYOUTS)


def _layout(name: str, allow_auto: bool = False) -> tuple[Naming, ...]:
    if allow_auto and name == "auto":
        return tuple(dict.fromkeys(n for namings in LAYOUTS.values() for n in namings))
    if name not in LAYOUTS:
        choices = IMPORT_LAYOUTS if allow_auto else tuple(LAYOUTS)
        raise ConfigError(f"unknown JPEG layout {name!r}; choose one of {', '.join(choices)}")
    return LAYOUTS[name]


def layouts_help() -> str:
    """Each layout and its first x image, for messages and --help."""
    return "; ".join(f"{name} ({' or '.join(n.first() for n in namings)})"
                     for name, namings in LAYOUTS.items())


def export_jpg(store: str | Path, out: str | Path, layout: str = "mars", *, quality: int = 95,
               keys: list[str] | None = None, quiet: bool | None = None) -> ExtractSummary:
    """Write every video of a store as x/y JPEG folders; complete videos are skipped.

    A new folder is written under a temporary name and renamed when complete; into a folder
    that exists (e.g. mmaction2 RGB frames) the images are moved one by one, the last y
    image last: a video is complete when its last y image exists.
    """
    started = time.perf_counter()
    store, out = Path(store), Path(out)
    naming = _layout(layout)[0]
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality {quality}: expected 1..100")
    keys = store_keys(store) if keys is None else keys
    if not keys:
        raise FlowError(f"{store}: no flow files (*.npz) found; is this a flow store?")
    summary = ExtractSummary(0, 0, [], out / "flowless-export-report.json", 0.0, total=len(keys))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for key in progress(keys, desc=f"export {layout}", unit="video", quiet=quiet):
        dests = [out / tree / key for tree in dict.fromkeys(naming.trees)]
        try:
            last = (dests[-1] / naming.y.format(count_fields(flow_path(store, key))))
            if last.is_file():
                summary.skipped += 1
                continue
            flow = load_flow_u8(flow_path(store, key))
        except FlowError as exc:
            summary.failures.append({"key": key, "video": str(flow_path(store, key)),
                                     "error": str(exc)})
            continue
        _write_folders(flow, dests, naming, params)
        summary.done += 1
    summary.seconds = time.perf_counter() - started
    if summary.failures:
        write_json(summary.report, {"store": str(store), "failures": summary.failures})
    return summary


def _write_folders(flow: np.ndarray, dests: list[Path], naming: Naming, params: list) -> None:
    tmps = []
    try:
        for dest in dests:
            dest.parent.mkdir(parents=True, exist_ok=True)
            for stale in dest.parent.glob(f".{dest.name}.*.tmpdir"):
                shutil.rmtree(stale, ignore_errors=True)
            tmps.append(Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmpdir",
                                              dir=dest.parent)))
        for t, field in enumerate(flow, start=1):
            for channel, name in ((0, naming.x), (1, naming.y)):
                path = tmps[channel if len(tmps) == 2 else 0] / name.format(t)
                if not cv2.imwrite(str(path), field[channel], params):
                    raise FlowError(f"{path}: cannot write JPEG")
        for tmp, dest in zip(tmps, dests):
            if not dest.is_dir():
                tmp.rename(dest)
                continue
            last = naming.y.format(len(flow))
            for name in sorted(os.listdir(tmp), key=lambda n: n == last):  # the last y last
                os.replace(tmp / name, dest / name)
            tmp.rmdir()
    except BaseException:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FlowError(f"{path}: not a readable JPEG image")
    return img


def _import_folder(x_dir: Path, y_dir: Path, target: Path, naming: Naming) -> int:
    x_names = set(os.listdir(x_dir))
    y_names = x_names if y_dir == x_dir else set(os.listdir(y_dir)) if y_dir.is_dir() else set()
    first = 0 if naming.x.format(0) in x_names else 1
    n = naming.count(x_names, first)
    prefix, suffix = naming.x.split("{")[0], naming.x.rsplit("}", 1)[1]
    numbered = [m for m in x_names if m.startswith(prefix) and m.endswith(suffix)
                and m[len(prefix):len(m) - len(suffix)].isdigit()]
    if len(numbered) != n:
        raise FlowError(f"{x_dir}: a gap in the x image numbering after "
                        f"{naming.x.format(first + n - 1)}; re-export this video")
    last_y, next_y = naming.y.format(first + n - 1), naming.y.format(first + n)
    if last_y not in y_names or next_y in y_names:
        raise FlowError(f"{x_dir}: {n} x images but a different number of y images"
                        f"{f' in {y_dir}' if y_dir != x_dir else ''}; re-export this video")
    shape = None
    with open_flow_writer(target) as writer:
        for t in range(first, first + n):
            fx = _read_gray(x_dir / naming.x.format(t))
            fy = _read_gray(y_dir / naming.y.format(t))
            if shape is None:
                shape = fx.shape
            if fx.shape != shape or fy.shape != shape:
                raise FlowError(f"{x_dir}: image {t} is {fx.shape}/{fy.shape}, not {shape}")
            writer.add(np.stack([fx, fy]))
    return n


def find_flow_folders(src: Path, namings: tuple[Naming, ...],
                      ) -> list[tuple[str, Path, Path, Naming]]:
    """(key, x folder, y folder, naming) of every video folder under ``src`` (one walk)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        here = Path(dirpath)
        rel = here.relative_to(src).as_posix()
        names = set(filenames)
        for naming in namings:
            if naming.x.format(1) not in names and naming.x.format(0) not in names:
                continue
            x_tree, y_tree = naming.trees
            if x_tree:  # u/<key>: the key is the path under u/
                if not rel.startswith(f"{x_tree}/"):
                    continue
                key = rel[len(x_tree) + 1:]
                found.append((key, here, src / y_tree / key, naming))
            else:
                found.append((rel if here != src else src.name, here, here, naming))
            break
    return found


def _detect(src: Path, layout: str) -> tuple[str, list[tuple[str, Path, Path, Naming]]]:
    """The layout name and its video folders; errors name the layouts and what was looked for."""
    namings = _layout(layout, allow_auto=True)
    found = find_flow_folders(src, namings)
    if not found:
        looked = " or ".join(n.first() for n in namings)
        raise FlowError(f"{src}: no {looked} found; JPEG flow layouts: {layouts_help()}; "
                        "name one with --import-jpg LAYOUT (default auto: detect)")
    if layout != "auto":
        return layout, found
    kinds = {n for *_, n in found}
    for name, namings in LAYOUTS.items():
        if kinds <= set(namings):
            return name, found
    counts = ", ".join(f"{n.first()} ({sum(1 for *_, m in found if m == n)} folders)"
                       for n in sorted(kinds, key=lambda k: k.x))
    raise FlowError(f"{src}: holds several JPEG flow layouts ({counts}); import each tree "
                    "separately or name the layout with --import-jpg LAYOUT")


def import_jpg(src: str | Path, store: str | Path, layout: str = "auto", *,
               backend: str | None = None, params: dict[str, Any] | None = None,
               preset: str | None = None, short_side: int | None = None, overwrite: bool = False,
               quiet: bool | None = None) -> ExtractSummary:
    """Convert the x/y flow JPEG folders under ``src`` into a store (key = folder path, under
    ``u/`` for the uv layout); ``layout="auto"`` detects the layout.

    ``backend``/``params``/``short_side`` describe how the JPEGs were made (recorded in the
    manifest, so the store can later be extended by ``flowless flow`` with those settings);
    unknown when omitted.
    """
    started = time.perf_counter()
    src, store = Path(src), Path(store)
    if not src.is_dir():
        raise FlowError(f"{src}: not a folder of JPEG flow ({layout} layout)")
    layout, found = _detect(src, layout)
    full = resolve_params(backend, params, preset) if backend else {}
    manifest = make_manifest(backend or "unknown", full, short_side or None,
                             imported_from={"layout": layout})
    ensure_manifest(store, manifest, overwrite=overwrite)
    summary = ExtractSummary(0, 0, [], report_path(store), 0.0, total=len(found))
    for key, x_dir, y_dir, naming in progress(found, desc=f"import {layout}", unit="video",
                                              quiet=quiet):
        target = flow_path(store, key)
        if target.is_file() and not overwrite:
            summary.skipped += 1
            continue
        try:
            remove_partial(target)
            _import_folder(x_dir, y_dir, target, naming)
            summary.done += 1
            summary.done_keys.append(key)
        except FlowError as exc:
            summary.failures.append({"key": key, "video": str(x_dir), "error": str(exc)})
    summary.seconds = time.perf_counter() - started
    write_json(summary.report, {"store": str(store), "manifest": str(store / MANIFEST_NAME),
                                "finished": True, "done": summary.done,
                                "skipped": summary.skipped, "failed": summary.failed,
                                "failures": summary.failures})
    return summary
