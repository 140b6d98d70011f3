"""Fixtures for flow tests: small folders of generated videos (some broken on purpose)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowless.data.synth_render import moving_square_frames
from flowless.data.video import write_video


def write_videos(root: Path, count: int = 4, num_frames: int = 8, height: int = 48,
                 width: int = 64) -> list[tuple[str, Path]]:
    """``count`` moving-square mp4s under root/a/ and root/b/ (keys with subfolders)."""
    videos = []
    for i in range(count):
        key = f"{'ab'[i % 2]}/clip {i:02d}"  # a space in the name on purpose
        path = root / f"{key}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = moving_square_frames(num_frames, height, width, dx=1 + i % 3, dy=i % 2, seed=i)
        write_video(path, frames)
        videos.append((key, path))
    return videos


def write_bad_videos(root: Path, template: Path) -> dict[str, Path]:
    """Broken inputs: text named .mp4, empty file, truncated mp4, one-frame video."""
    bad = {"bad/text": root / "bad/text.mp4", "bad/empty": root / "bad/empty.mp4",
           "bad/truncated": root / "bad/truncated.mp4", "bad/one_frame": root / "bad/one_frame.mp4"}
    bad["bad/text"].parent.mkdir(parents=True, exist_ok=True)
    bad["bad/text"].write_text("this is not a video\n" * 20)
    bad["bad/empty"].write_bytes(b"")
    bad["bad/truncated"].write_bytes(template.read_bytes()[:200])
    write_video(bad["bad/one_frame"], moving_square_frames(1, 48, 64))
    return bad


@pytest.fixture
def video_dir(tmp_path: Path) -> Path:
    root = tmp_path / "videos"
    write_videos(root)
    return root


@pytest.fixture
def textured() -> np.ndarray:
    from flowless.flow.synthetic import textured_image

    return textured_image(64, 64, seed=3)


@pytest.fixture
def make_videos():
    """Factory fixture: ``make_videos(root, count=4, num_frames=8, ...) -> [(key, path)]``."""
    return write_videos


@pytest.fixture
def make_bad_videos():
    """Factory fixture: ``make_bad_videos(root, template_mp4) -> {key: path}``."""
    return write_bad_videos
