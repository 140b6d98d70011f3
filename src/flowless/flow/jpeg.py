"""Export to and import from the JPEG flow layouts of MARS and mmaction2/denseflow.

Both tools store each quantised field (the same MARS formula as ours) as two grayscale
JPEGs per frame pair, numbered from 1, in one folder per video:

    mars:      <key>/TVL1jpg_x_00001.jpg, <key>/TVL1jpg_y_00001.jpg, ...
    mmaction2: <key>/flow_x_00001.jpg,    <key>/flow_y_00001.jpg, ...

JPEG is lossy: at quality 95 a round trip changes a level by about one on average (see
tests/flow/test_jpeg.py for the bound we check).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowless.errors import ConfigError, FlowError
from flowless.flow.backends import resolve_params
from flowless.flow.extract import ExtractSummary, report_path
from flowless.flow.store import (
    MANIFEST_NAME,
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

LAYOUTS: dict[str, tuple[str, str]] = {
    "mars": ("TVL1jpg_x_{:05d}.jpg", "TVL1jpg_y_{:05d}.jpg"),
    "mmaction2": ("flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"),
}
LAYOUTS["denseflow"] = LAYOUTS["mmaction2"]


def _layout(name: str) -> tuple[str, str]:
    if name not in LAYOUTS:
        raise ConfigError(f"unknown JPEG layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def export_jpg(store: str | Path, out: str | Path, layout: str = "mars", *, quality: int = 95,
               keys: list[str] | None = None, quiet: bool | None = None) -> ExtractSummary:
    """Write every video of a store as a folder of x/y JPEGs; complete folders are skipped.

    Each folder is written under a temporary name and renamed when complete.
    """
    started = time.perf_counter()
    store, out = Path(store), Path(out)
    x_name, y_name = _layout(layout)
    if not 1 <= quality <= 100:
        raise ConfigError(f"JPEG quality {quality}: expected 1..100")
    keys = store_keys(store) if keys is None else keys
    if not keys:
        raise FlowError(f"{store}: no flow files (*.npz) found; is this a flow store?")
    summary = ExtractSummary(0, 0, [], out / "flowless-export-report.json", 0.0, total=len(keys))
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    for key in progress(keys, desc=f"export {layout}", unit="video", quiet=quiet):
        dest = out / key
        if dest.is_dir():
            summary.skipped += 1
            continue
        try:
            flow = load_flow_u8(flow_path(store, key))
        except FlowError as exc:
            summary.failures.append({"key": key, "video": str(flow_path(store, key)),
                                     "error": str(exc)})
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        for stale in dest.parent.glob(f".{dest.name}.*.tmpdir"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmpdir", dir=dest.parent))
        try:
            for t, field in enumerate(flow, start=1):
                for channel, name in ((0, x_name), (1, y_name)):
                    if not cv2.imwrite(str(tmp / name.format(t)), field[channel], params):
                        raise FlowError(f"{tmp / name.format(t)}: cannot write JPEG")
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        summary.done += 1
    summary.seconds = time.perf_counter() - started
    if summary.failures:
        write_json(summary.report, {"store": str(store), "failures": summary.failures})
    return summary


def _read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FlowError(f"{path}: not a readable JPEG image")
    return img


def _import_folder(folder: Path, target: Path, x_name: str, y_name: str) -> int:
    names = {p.name for p in folder.iterdir()}
    n = 0
    while x_name.format(n + 1) in names:
        n += 1
    if y_name.format(n) not in names or y_name.format(n + 1) in names:
        raise FlowError(f"{folder}: {n} x images but a different number of y images; "
                        "re-export this video")
    shape = None
    with open_flow_writer(target) as writer:
        for t in range(1, n + 1):
            fx, fy = _read_gray(folder / x_name.format(t)), _read_gray(folder / y_name.format(t))
            if shape is None:
                shape = fx.shape
            if fx.shape != shape or fy.shape != shape:
                raise FlowError(f"{folder}: image {t} is {fx.shape}/{fy.shape}, not {shape}")
            writer.add(np.stack([fx, fy]))
    return n


def import_jpg(src: str | Path, store: str | Path, layout: str = "mars", *,
               backend: str | None = None, params: dict[str, Any] | None = None,
               preset: str | None = None, short_side: int | None = None, overwrite: bool = False,
               quiet: bool | None = None) -> ExtractSummary:
    """Convert folders of x/y flow JPEGs under ``src`` into a store (key = folder path).

    ``backend``/``params``/``short_side`` describe how the JPEGs were made (recorded in the
    manifest, so the store can later be extended by ``flowless flow`` with those settings);
    unknown when omitted.
    """
    started = time.perf_counter()
    src, store = Path(src), Path(store)
    x_name, y_name = _layout(layout)
    if not src.is_dir():
        raise FlowError(f"{src}: not a folder of {layout} flow JPEGs")
    folders = sorted({p.parent for p in src.rglob(x_name.format(1))})
    if not folders:
        raise FlowError(f"{src}: no {x_name.format(1)} found; check the folder and --layout")
    full = resolve_params(backend, params, preset) if backend else {}
    manifest = make_manifest(backend or "unknown", full, short_side or None,
                             imported_from={"layout": layout})
    ensure_manifest(store, manifest, overwrite=overwrite)
    summary = ExtractSummary(0, 0, [], report_path(store), 0.0, total=len(folders))
    for folder in progress(folders, desc=f"import {layout}", unit="video", quiet=quiet):
        key = folder.relative_to(src).as_posix() if folder != src else src.name
        target = flow_path(store, key)
        if target.is_file() and not overwrite:
            summary.skipped += 1
            continue
        try:
            remove_partial(target)
            _import_folder(folder, target, x_name, y_name)
            summary.done += 1
            summary.done_keys.append(key)
        except FlowError as exc:
            summary.failures.append({"key": key, "video": str(folder), "error": str(exc)})
    summary.seconds = time.perf_counter() - started
    write_json(summary.report, {"store": str(store), "manifest": str(store / MANIFEST_NAME),
                                "finished": True, "done": summary.done,
                                "skipped": summary.skipped, "failed": summary.failed,
                                "failures": summary.failures})
    return summary
