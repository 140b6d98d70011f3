"""Shared fixtures: tiny generated videos (a moving textured square) for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("FLOWLESS_QUIET", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def moving_square_frames(
    num_frames: int = 8,
    height: int = 48,
    width: int = 64,
    dx: int = 2,
    dy: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Frames of a textured square moving by (dx, dy) px per frame on a grey background."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)
    frames = np.full((num_frames, height, width, 3), 96, dtype=np.uint8)
    for t in range(num_frames):
        y = (height // 2 - 8 + dy * t) % (height - 16)
        x = (width // 2 - 8 + dx * t) % (width - 16)
        frames[t, y : y + 16, x : x + 16] = texture
    return frames


@pytest.fixture
def make_video(tmp_path: Path):
    """Factory: ``make_video(name, **moving_square_kwargs) -> Path`` of a real mp4."""
    from flowless.data.video import write_video

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, moving_square_frames(**kwargs))
        return path

    return _make
