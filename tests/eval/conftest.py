"""Fixtures for evaluation tests (helpers in evalkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit import save_fusion, save_stream


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """rgb, rgb2 (another seed), flow stream checkpoints and an rgb+flow fusion checkpoint."""
    root = tmp_path_factory.mktemp("ckpts")
    out = {
        "rgb": save_stream(root / "rgb.pt", seed=0),
        "rgb2": save_stream(root / "rgb2.pt", seed=1, stream="ds"),
        "flow": save_stream(root / "flow.pt", input="flow", seed=2),
    }
    out["fusion"] = save_fusion(root / "fusion.pt", [out["rgb"], out["flow"]])
    return out
