"""Shared fixtures: tiny generated videos (a moving textured square) for fast tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FLOWLESS_QUIET", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def make_video(tmp_path: Path):
    """Factory: ``make_video(name, **moving_square_kwargs) -> Path`` of a real mp4
    (:func:`flowless.data.synth_render.moving_square_frames`)."""
    from flowless.data.synth_render import moving_square_frames
    from flowless.data.video import write_video

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, moving_square_frames(**kwargs))
        return path

    return _make


def write_tiny_ucf(
    root: Path,
    classes: tuple[tuple[str, int, int], ...] = (("MoveLeft", -2, 0), ("MoveRight", 2, 0)),
    train_per_class: int = 3,
    test_per_class: int = 2,
    num_frames: int = 10,
    height: int = 48,
    width: int = 64,
) -> Path:
    """A tiny UCF101-layout dataset of moving squares; class = motion direction."""
    from flowless.data.synth_render import moving_square_frames
    from flowless.data.video import write_video

    root.mkdir(parents=True, exist_ok=True)
    (root / "classInd.txt").write_text(
        "".join(f"{i + 1} {name}\n" for i, (name, _, _) in enumerate(classes))
    )
    train, test = [], []
    for ci, (name, dx, dy) in enumerate(classes):
        for g in range(train_per_class + test_per_class):
            rel = f"{name}/v_{name}_g{g + 1:02d}_c01.mp4"
            frames = moving_square_frames(num_frames, height, width, dx, dy, seed=100 * ci + g)
            write_video(root / rel, frames)
            if g < train_per_class:
                train.append(f"{rel} {ci + 1}\n")
            else:
                test.append(f"{rel}\n")
    (root / "trainlist01.txt").write_text("".join(train))
    (root / "testlist01.txt").write_text("".join(test))
    return root


@pytest.fixture(scope="session")
def tiny_ucf(tmp_path_factory) -> Path:
    """Session-wide tiny UCF101-layout dataset (read-only: copy it before modifying)."""
    return write_tiny_ucf(tmp_path_factory.mktemp("tiny_ucf") / "ucf")
