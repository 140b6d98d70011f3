"""Checkpoint files: saved atomically, loaded without executing code.

A flowless checkpoint is a plain dict saved with ``torch.save`` and read with
``torch.load(weights_only=True)`` (tensors, numbers, strings, lists, dicts only), so a
file from a stranger cannot run code. Layout (``format == "flowless"``)::

    {"format": "flowless", "version": 1,
     "kind": "stream" | "fusion",
     "model": state_dict,
     "model_config": {...},      # create_model(**model_config) / AttentionFusion(**...)
     "stream": "rgb" | "flow" | "mars" | "ds" | ...,   # what the network was trained as
     "input": "rgb" | "flow",    # what it consumes at test time
     "classes": [class names],
     "data": {...},              # clip_len, size, stride, short_side, flow settings
     ... training state (epoch, optimizer, scheduler, rng, config, metrics, versions)}
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import platform
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import torch

from flowless.errors import CheckpointError
from flowless.io import atomic_path

FORMAT = "flowless"
VERSION = 1


def versions() -> dict[str, str]:
    """Library versions recorded with every run for reproducibility."""
    import numpy as np

    from flowless import __version__

    out = {
        "flowless": __version__,
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "platform": platform.platform(),
    }
    try:
        import cv2

        out["opencv"] = str(cv2.__version__)
    except ImportError:  # pragma: no cover
        pass
    try:
        import av

        out["av"] = str(av.__version__)
    except ImportError:  # pragma: no cover
        pass
    return out


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> Path:
    """Atomically save a checkpoint dict (adds format/version/versions if absent)."""
    ckpt = dict(ckpt)
    ckpt.setdefault("format", FORMAT)
    ckpt.setdefault("version", VERSION)
    ckpt.setdefault("versions", versions())
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp:
        try:
            torch.save(ckpt, tmp)
        except RuntimeError as exc:
            full = _full_disk(exc, tmp)
            if full is None:
                raise
            # atomic_path removes the temporary file and reports the full disk in one line
            raise OSError(full, os.strerror(full)) from exc
    return path


# how torch.save's C++ writer reports a failed write (it carries no errno)
_WRITE_FAILED = re.compile(r"unexpected pos|write failed|failed writing|No space left|"
                           r"Disk quota exceeded", re.IGNORECASE)
_PROBE_BYTES = 1 << 20


def _full_disk(exc: RuntimeError, tmp: Path) -> int | None:
    """ENOSPC or EDQUOT when ``exc`` is torch.save failing on a full disk (or quota), else None.

    torch's message has no errno, so the file is probed: appending 1 MiB to the partial
    temporary file fails with the real errno when the disk (or quota) is full.
    """
    text = str(exc)
    if not _WRITE_FAILED.search(text):
        return None
    if "No space left" in text:
        return errno.ENOSPC
    if "Disk quota exceeded" in text:
        return errno.EDQUOT
    try:
        with open(tmp, "ab") as fh:
            fh.write(bytes(_PROBE_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as probe:
        if probe.errno in (errno.ENOSPC, errno.EDQUOT):
            return probe.errno
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); bad files raise CheckpointError.

    Accepts flowless checkpoints and foreign formats (e.g. Hara/MARS ``{'state_dict': ...}``
    or a bare state dict); the caller decides what to do with foreign ones.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found; check the path")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass a checkpoint file (e.g. best.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty; it was not written completely")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if code is None:  # not a pickle at all (text, random bytes)
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a file written by "
                                  "torch.save); check the path") from exc
        raise CheckpointError(
            f"{path}: refused to load: the file calls {code.group(1)}, not only tensors and "
            "plain data (it could execute code); only load checkpoints you trust, re-saved as "
            "a plain state dict"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, io.UnsupportedOperation) as exc:
        first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {first}); it may "
            "be truncated or of another format: download or save it again"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    return obj


def is_flowless(ckpt: dict[str, Any]) -> bool:
    """True when ``ckpt`` is in the flowless layout (as opposed to a foreign state dict)."""
    return ckpt.get("format") == FORMAT
