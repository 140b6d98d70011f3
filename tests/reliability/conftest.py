"""Fixtures for the reliability suite: tiny checkpoints, a tiny dataset, bad and odd videos."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from relkit import BAD_VIDEOS, ODD_VIDEOS, encode, rgb_ramp, save_stream


def _root_conftest():
    """tests/conftest.py loaded under its own name (every folder's file is called conftest)."""
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("flowless_tests_root_conftest_rel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_tiny_ucf = _root_conftest().write_tiny_ucf


@pytest.fixture(scope="session")
def rel_ckpts(tmp_path_factory) -> dict[str, Path]:
    """rgb and flow stream checkpoints (ResNet-10 at 1/8 width, 2 classes)."""
    root = tmp_path_factory.mktemp("rel ckpts")
    return {"rgb": save_stream(root / "rgb.pt"), "flow": save_stream(root / "flow.pt",
                                                                      input="flow", seed=1)}


@pytest.fixture(scope="session")
def rel_ucf(tmp_path_factory) -> Path:
    """A tiny UCF101-layout dataset (2 classes x (1 train + 1 test), 8 frames of 32x32) in a
    folder whose name has spaces and non-ASCII letters. Read-only: copy it to modify it."""
    return write_tiny_ucf(tmp_path_factory.mktemp("rel") / "données vidéo", train_per_class=1,
                          test_per_class=1, num_frames=8, height=32, width=32)


@pytest.fixture
def ucf_copy(rel_ucf, tmp_path) -> Path:
    """A private, modifiable copy of ``rel_ucf``."""
    return Path(shutil.copytree(rel_ucf, tmp_path / "copie du jeu"))


@pytest.fixture(scope="session")
def good_video(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("rel good") / "bon clip.mp4", rgb_ramp(10, 32, 48))


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory, good_video) -> dict[str, Path]:
    """Every kind of unreadable video, by name (see relkit.BAD_VIDEOS)."""
    folder = tmp_path_factory.mktemp("rel bad") / "vidéos cassées"
    folder.mkdir()
    return {name: make(folder / f"{name.replace(' ', '_')} é.mp4", good_video)
            for name, (make, _) in BAD_VIDEOS.items()}


@pytest.fixture(scope="session")
def odd_videos(tmp_path_factory) -> dict[str, Path]:
    """Valid but unusual videos, by name (see relkit.ODD_VIDEOS), in a unicode folder."""
    folder = tmp_path_factory.mktemp("rel odd") / "vidéos bizarres"
    folder.mkdir()
    return {name: make(folder / f"clip {name}.mp4") for name, (make, _, _) in ODD_VIDEOS.items()}
