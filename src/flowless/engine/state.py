"""Run state: seeding, RNG snapshots, checkpoint contents, and finding what to resume."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowless.checkpoint import is_flowless, load_checkpoint
from flowless.errors import CheckpointError

LAST, BEST = "last.pt", "best.pt"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A per-epoch seed: the data order is a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch * 7_919) % 2**63


def rng_state() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch as plain data/tensors (weights_only safe)."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def resume_path(path: str | Path) -> Path:
    """The checkpoint to resume from: a file, or ``last.pt`` inside a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / LAST
        if not p.exists():
            raise CheckpointError(f"{path}: no {LAST} in this folder; it is not a run folder or "
                                  "no epoch finished yet (start it again without --resume)")
    elif not p.exists():
        raise CheckpointError(f"{path}: not found; pass a run folder or its last.pt")
    return p


def load_resume(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint that holds everything needed to continue."""
    p = resume_path(path)
    ckpt = load_checkpoint(p)
    needed = ("model", "optimizer", "scheduler", "epoch", "rng", "config")
    if not is_flowless(ckpt) or any(k not in ckpt for k in needed):
        raise CheckpointError(f"{p}: not a resumable flowless training checkpoint (needs "
                              f"{', '.join(needed)}); pass the run's last.pt")
    return ckpt


def weights_only(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without optimiser/scheduler/RNG state (for best.pt)."""
    drop = ("optimizer", "scheduler", "scaler", "rng")
    return {k: v for k, v in ckpt.items() if k not in drop}
