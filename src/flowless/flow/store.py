"""The on-disk flow store: one compact file per video plus a manifest.

Layout (see docs/flow.md)::

    OUT/flowless-flow.json          manifest: backend, params, short side, quantisation, versions
    OUT/flowless-flow-report.json   failures of the last run (per shard: ...report.shard-I-of-N.json)
    OUT/<key>.npz                   one video: a zip (np.load-compatible) of members
                                    flow_00000.npy ... uint8 (2, H, W) each, x then y

One member per field lets a reader decompress only the fields of a clip, and lets the
extractor stream a long video to disk in constant memory. Members carry a fixed
timestamp so the same flow always gives the same bytes. Files are written under a
temporary name and renamed when complete, so a file with the final name is complete.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from flowless.errors import FlowError
from flowless.flow.quantize import dequantize
from flowless.io import atomic_path, write_json

SUFFIX = ".npz"
MANIFEST_NAME = "flowless-flow.json"
STORE_FORMAT = "flowless-flow/1"
_MEMBER = "flow_{:05d}.npy"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: identical flow -> identical bytes
_COMPRESSLEVEL = 6


def check_key(key: str) -> str:
    """Validate a video key (relative POSIX path without extension); return it."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key or "\0" in key:
        raise FlowError(f"invalid video key {key!r}: must be a relative POSIX path")
    parts = PurePosixPath(key).parts
    if any(p in ("", ".", "..") for p in parts) or len(parts) != len(key.split("/")):
        raise FlowError(f"invalid video key {key!r}: no '.', '..' or empty path parts allowed")
    return key


def flow_path(store_root: str | Path, key: str) -> Path:
    """Where the flow of video ``key`` lives in a store: ``store_root/<key>.npz``."""
    return Path(store_root) / (check_key(key) + SUFFIX)


def remove_partial(path: Path) -> int:
    """Delete temporary files a killed writer left for ``path``; return how many."""
    count = 0
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                count += 1
    return count


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


class FlowWriter:
    """Append uint8 (2, H, W) fields to an open zip; use via :func:`open_flow_writer`."""

    def __init__(self, zf: zipfile.ZipFile, path: Path):
        self._zf = zf
        self._path = path
        self.count = 0
        self.shape: tuple[int, ...] | None = None

    def add(self, field_u8: np.ndarray) -> None:
        field_u8 = np.asarray(field_u8)
        if field_u8.dtype != np.uint8 or field_u8.ndim != 3 or field_u8.shape[0] != 2:
            raise ValueError(f"flow field must be uint8 (2, H, W), got {field_u8.dtype} "
                             f"{field_u8.shape}")
        if self.shape is None:
            self.shape = field_u8.shape
        elif field_u8.shape != self.shape:
            raise ValueError(f"field shape {field_u8.shape} differs from {self.shape}")
        info = zipfile.ZipInfo(_MEMBER.format(self.count), date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self._zf.writestr(info, _npy_bytes(field_u8), compresslevel=_COMPRESSLEVEL)
        self.count += 1


@contextlib.contextmanager
def open_flow_writer(path: str | Path) -> Iterator[FlowWriter]:
    """Write a flow file field by field; it appears at ``path`` only when complete."""
    path = Path(path)
    with atomic_path(path, suffix=SUFFIX) as tmp:
        with zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
            writer = FlowWriter(zf, path)
            yield writer
        if writer.count == 0:
            raise FlowError(f"{path}: no flow fields to write (video needs at least 2 frames)")


def save_flow_u8(path: str | Path, arr_u8: np.ndarray) -> None:
    """Atomically write uint8 flow (N-1, 2, H, W) to ``path``."""
    arr_u8 = np.asarray(arr_u8)
    if arr_u8.dtype != np.uint8 or arr_u8.ndim != 4 or arr_u8.shape[1] != 2:
        raise ValueError(f"flow must be uint8 (N, 2, H, W), got {arr_u8.dtype} {arr_u8.shape}")
    with open_flow_writer(path) as writer:
        for field in arr_u8:
            writer.add(field)


def _bad(path: Path, problem: str) -> FlowError:
    return FlowError(f"{path}: {problem}; delete it and rerun `flowless flow` for this video")


def count_fields(path: str | Path) -> int:
    """Number of flow fields in a file (reads the zip directory only)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _count(zf, path)
    except FileNotFoundError as exc:
        raise FlowError(f"{path}: flow file not found; run `flowless flow` first") from exc
    except (zipfile.BadZipFile, OSError) as exc:
        raise _bad(path, f"not a readable flow file ({type(exc).__name__}: {exc})") from exc


def _count(zf: zipfile.ZipFile, path: Path) -> int:
    names = set(zf.namelist())
    n = sum(1 for name in names if name.startswith("flow_") and name.endswith(".npy"))
    if n == 0 or any(_MEMBER.format(i) not in names for i in range(n)):
        raise _bad(path, "not a flowless flow file (members flow_00000.npy ... missing)")
    return n


def load_flow_u8(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Read quantised flow: uint8 (N-1, 2, H, W); ``start:stop`` reads only those fields."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            n = _count(zf, path)
            indices = range(n)[slice(start, stop)]
            out: np.ndarray | None = None
            for j, i in enumerate(indices):
                with zf.open(_MEMBER.format(i)) as fh:
                    field = np.lib.format.read_array(fh, allow_pickle=False)
                if out is None:
                    out = np.empty((len(indices), *field.shape), dtype=np.uint8)
                if field.dtype != np.uint8 or field.shape != out.shape[1:]:
                    raise _bad(path, f"field {i} is {field.dtype} {field.shape}, expected "
                               f"uint8 {out.shape[1:]}")
                out[j] = field
    except FileNotFoundError as exc:
        raise FlowError(f"{path}: flow file not found; run `flowless flow` first") from exc
    except FlowError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad(path, f"corrupt flow file ({type(exc).__name__}: {exc})") from exc
    if out is None:  # empty range: keep the field shape
        return load_flow_u8(path, 0, 1)[:0]
    return out


def load_flow(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Read flow as float32 pixels (N-1, 2, H, W), channel 0 = x, 1 = y."""
    return dequantize(load_flow_u8(path, start, stop))


def store_keys(store_root: str | Path) -> list[str]:
    """Sorted keys of the complete flow files in a store (temporary files excluded)."""
    root = Path(store_root)
    keys = []
    for path in root.rglob("*" + SUFFIX):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        keys.append(rel.as_posix()[: -len(SUFFIX)])
    return sorted(keys)


# --- manifest ---------------------------------------------------------------------------

_IDENTITY = ("backend", "params", "short_side", "quantization")


def make_manifest(backend: str, params: dict[str, Any], short_side: int | None,
                  **extra: Any) -> dict[str, Any]:
    """The manifest of a store (no timestamps: concurrent shards write identical files)."""
    import cv2

    from flowless import __version__
    from flowless.flow.quantize import BOUND, LEVELS

    manifest = {
        "format": STORE_FORMAT,
        "backend": backend,
        "params": params,
        "short_side": short_side,
        "quantization": {"bound": BOUND, "levels": LEVELS,
                         "formula": "u8 = round((clip(f, -20, 20) + 20) / 40 * 255)"},
        "layout": "<key>.npz: zip of flow_NNNNN.npy, uint8 (2, H, W) each, x then y",
        "versions": {"flowless": __version__, "opencv": cv2.__version__,
                     "numpy": np.__version__},
    }
    manifest.update(extra)
    return manifest


def read_manifest(store_root: str | Path) -> dict[str, Any] | None:
    """The store's manifest, or None when there is none."""
    path = Path(store_root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowError(f"{path}: unreadable store manifest ({exc}); fix or delete it") from exc


def _describe(m: dict[str, Any]) -> str:
    params = {k: v for k, v in (m.get("params") or {}).items() if v is not None}
    return f"backend={m.get('backend')} short_side={m.get('short_side')} params={params}"


def ensure_manifest(store_root: str | Path, manifest: dict[str, Any],
                    overwrite: bool = False) -> str:
    """Write the manifest, refusing to mix settings with an existing store unless overwrite.

    Returns "same" (store made with these settings), "new" (no manifest before) or
    "replaced" (``overwrite`` with other settings: the files of the old settings are deleted,
    since the manifest must describe every file).
    """
    root = Path(store_root)
    path = root / MANIFEST_NAME
    old = read_manifest(root)
    same = old is not None and all(
        _jsonable(old.get(k)) == _jsonable(manifest.get(k)) for k in _IDENTITY)
    if same:
        return "same"  # keep the first run's manifest (versions included)
    if not overwrite:
        if old is not None:
            raise FlowError(
                f"{path}: this store was made with {_describe(old)}, not "
                f"{_describe(manifest)}; use the same options, another output folder, "
                "or --overwrite to recompute"
            )
        if root.is_dir() and store_keys(root):
            raise FlowError(
                f"{root}: contains flow files but no {MANIFEST_NAME}; choose an empty output "
                "folder or pass --overwrite"
            )
    stale = store_keys(root) if root.is_dir() else []
    for key in stale:
        flow_path(root, key).unlink(missing_ok=True)
    write_json(path, manifest)
    return "replaced" if old is not None or stale else "new"


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
