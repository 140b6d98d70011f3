"""Frame folders read like videos: names detected or set, exact pixels, one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowless.data.frames import PATTERN_ENV
from flowless.data.synth_render import moving_square_frames
from flowless.data.video import (
    count_frames,
    iter_frames,
    probe,
    read_frames,
    read_video,
    resize_short_side,
)
from flowless.errors import ConfigError, VideoError

FRAMES = moving_square_frames(6, 32, 48, 2, 1, seed=3)


def write_frames(folder: Path, template: str = "img_{:05d}.png", frames: np.ndarray = FRAMES,
                 first: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(frames, first):
        assert cv2.imwrite(str(folder / template.format(i)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return folder


@pytest.mark.parametrize("template", ["image_{:05d}.png", "img_{:05d}.png", "frame{:06d}.png",
                                      "{:05d}.png", "frame_{:05d}.PNG"])
def test_a_frame_folder_reads_exactly_like_a_video(tmp_path, template):
    folder = write_frames(tmp_path / "v", template)
    assert count_frames(folder) == 6
    info = probe(folder)
    assert (info.width, info.height, info.num_frames, info.rotation) == (48, 32, 6, 0)
    whole = read_video(folder)
    assert whole.dtype == np.uint8 and np.array_equal(whole, FRAMES)
    assert np.array_equal(np.stack(list(iter_frames(folder))), FRAMES)
    # any order, repeats, and indices past the end wrap around as for videos
    assert np.array_equal(read_frames(folder, [7, 0, 3, 3]), FRAMES[[1, 0, 3, 3]])
    small = read_frames(folder, [2], short_side=16)
    assert np.array_equal(small[0], resize_short_side(FRAMES[2], 16))


def test_jpeg_frames_and_numbering_from_zero(tmp_path):
    folder = write_frames(tmp_path / "v", "image_{:05d}.jpg", first=0)
    frames = read_video(folder)
    for img, original in zip(frames, FRAMES):  # the JPEG's pixels, as RGB
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(original, cv2.COLOR_RGB2BGR))
        assert np.array_equal(img, cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR),
                                                cv2.COLOR_BGR2RGB))


def test_rgb_frames_are_found_beside_flow_images(tmp_path):
    folder = write_frames(tmp_path / "mm", "img_{:05d}.jpg")  # an mmaction2 rawframes folder
    for t in range(1, 6):
        for name in (f"flow_x_{t:05d}.jpg", f"flow_y_{t:05d}.jpg", f"x_{t:05d}.jpg"):
            cv2.imwrite(str(folder / name), FRAMES[0, :, :, 0])
    (folder / "notes.txt").write_text("extracted with denseflow")
    assert count_frames(folder) == 6


def test_the_pattern_option_picks_one_kind_of_names(tmp_path, monkeypatch):
    folder = write_frames(tmp_path / "two", "img_{:05d}.png")
    write_frames(folder, "image_{:05d}.png", FRAMES[:3])
    monkeypatch.delenv(PATTERN_ENV, raising=False)
    with pytest.raises(VideoError, match=r"several kinds of numbered images \(image_N.png \(3\), "
                       r"img_N.png \(6\)\); set FLOWLESS_FRAME_PATTERN"):
        count_frames(folder)
    monkeypatch.setenv(PATTERN_ENV, "image_%05d.png")
    assert count_frames(folder) == 3
    monkeypatch.setenv(PATTERN_ENV, "img_{:05d}.png")
    assert np.array_equal(read_video(folder), FRAMES)
    monkeypatch.setenv(PATTERN_ENV, "../img_%05d.png")
    with pytest.raises(ConfigError, match="FLOWLESS_FRAME_PATTERN='../img_%05d.png': expected"):
        count_frames(folder)


def _gap(f: Path) -> None:
    (f / "img_00003.jpg").unlink()


def _corrupt(f: Path) -> None:
    (f / "img_00002.jpg").write_bytes(b"\xff\xd8 this is not a JPEG \xff\xd9")


def _truncated(f: Path) -> None:
    data = (f / "img_00004.jpg").read_bytes()
    (f / "img_00004.jpg").write_bytes(data[: len(data) // 2])


def _empty_image(f: Path) -> None:
    (f / "img_00005.jpg").write_bytes(b"")


def _mixed(f: Path) -> None:
    cv2.imwrite(str(f / "img_00003.jpg"), np.zeros((30, 40, 3), np.uint8))


def _no_images(f: Path) -> None:
    for p in f.iterdir():
        p.unlink()


def _only_flow(f: Path) -> None:
    for p in f.iterdir():
        p.rename(f / p.name.replace("img_", "flow_x_"))


@pytest.mark.parametrize("damage, message", [
    (_gap, "a gap in the frame numbering: no image numbered 3 (frames 1..6); re-extract"),
    (_corrupt, "image img_00002.jpg is not a readable image (corrupt)"),
    (_truncated, "image img_00004.jpg is truncated"),
    (_empty_image, "image img_00005.jpg is empty (0 bytes)"),
    (_mixed, "mixed image sizes: img_00003.jpg is 40x30 but img_00001.jpg is 48x32"),
    (_no_images, "holds no frame images; looked for image_00001.jpg, img_00001.jpg, "
                 "frame000001.jpg"),
    (_only_flow, "holds only flow images (flow_x_00001.jpg); looked for image_00001.jpg"),
])
def test_a_bad_frame_folder_is_a_one_line_error_naming_it(tmp_path, damage, message):
    folder = write_frames(tmp_path / "vidéo 1", "img_{:05d}.jpg")
    damage(folder)
    with pytest.raises(VideoError) as info:
        read_video(folder)  # counting, then reading every frame
    text = str(info.value)
    assert text.startswith(f"{folder}: ") and message in text and "\n" not in text
    assert info.value.path == folder
