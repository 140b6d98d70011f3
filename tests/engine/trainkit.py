"""Helpers for training tests: a tiny flip-invariant dataset and a tiny CPU recipe.

Classes are up/down motion: training augmentation flips horizontally, which would swap
left/right motion classes and make their labels noise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _root_conftest():
    """tests/conftest.py loaded under its own name (both files are called conftest)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("flowless_tests_root_conftest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_tiny_ucf = _root_conftest().write_tiny_ucf

UPDOWN = (("MoveUp", 0, -2), ("MoveDown", 0, 2))


def base_overrides(root: Path, flow: Path, out: Path, **extra: object) -> list[str]:
    """A tiny CPU recipe: ResNet-10 at 1/4 width, 8 frames of 32 px, AdamW, 10 epochs."""
    items = {
        "data.root": root, "data.flow_root": flow, "data.clip_len": 8, "data.size": 32,
        "model.arch": "resnet10", "model.width": 0.25, "epochs": 10, "batch_size": 4,
        "optim.name": "adamw", "optim.lr": 0.002, "optim.weight_decay": 0.0,
        "optim.schedule": "none", "tensorboard": False, "threads": 1, "out": out,
    }
    items.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in items.items()]
