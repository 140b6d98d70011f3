"""Fixtures for training tests: a tiny flip-invariant dataset, its flow, a trained flow teacher
(helpers in trainkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from trainkit import UPDOWN, base_overrides, write_tiny_ucf


@pytest.fixture(scope="session")
def updown(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root, farneback flow store) of 8 train + 4 test videos, 10 frames, 40x32."""
    from flowless.data.annotations import load_index
    from flowless.flow import extract_flow

    base = tmp_path_factory.mktemp("updown")
    root = write_tiny_ucf(base / "ucf", classes=UPDOWN, train_per_class=4, test_per_class=2,
                          num_frames=10, height=40, width=32)
    index = load_index(root, "ucf101")
    extract_flow([(r.key, r.path) for r in index.records], base / "flow", backend="farneback",
                 short_side=None, workers=1, quiet=True)
    return root, base / "flow"


@pytest.fixture(scope="session")
def flow_teacher(updown, tmp_path_factory) -> Path:
    """best.pt of a flow stream trained on ``updown`` (the distillation teacher)."""
    from flowless.config import load_config
    from flowless.engine import train

    root, flow = updown
    out = tmp_path_factory.mktemp("teacher") / "flow"
    train(load_config(None, base_overrides(root, flow, out, stream="flow")), quiet=True)
    return out / "best.pt"
