"""Transforms against hand computations: normalisation, flip, crop boxes, alignment."""

from __future__ import annotations

import numpy as np
import pytest

from flowless.data.transforms import (
    POSITIONS,
    RGB_MEAN,
    SCALES,
    Crop,
    crop_resize,
    flow_to_hwc,
    hflip,
    normalize,
    random_crop,
    square_crop,
    three_crops,
    transform_clip,
)


def test_constants_match_mars():
    assert RGB_MEAN == (114.7748, 107.7354, 99.4750)
    assert np.allclose(SCALES, [1, 0.840896, 0.707107, 0.594604, 0.5], atol=1e-6)


def test_normalisation_values():
    rgb = np.array([[[[0, 128, 255]]]], np.uint8)  # (1, 1, 1, 3)
    assert normalize(rgb, "rgb").ravel().tolist() == pytest.approx(
        [0 - 114.7748, 128 - 107.7354, 255 - 99.4750], abs=1e-4)
    flow = np.array([[[[0, 255]]], [[[127, 128]]]], np.uint8)  # (2, 1, 1, 2)
    assert normalize(flow, "flow").ravel().tolist() == [-127.5, 127.5, -0.5, 0.5]
    with pytest.raises(ValueError, match="kind"):
        normalize(rgb, "depth")


def test_flip_negates_flow_x_exactly_and_mirrors():
    rng = np.random.default_rng(0)
    flow = rng.integers(0, 256, (3, 8, 10, 2), dtype=np.uint8)
    plain = transform_clip(flow, "flow", Crop(0, 0, 1, 1), 8).numpy()
    flipped = transform_clip(flow, "flow", Crop(0, 0, 1, 1), 8, flip=True).numpy()
    assert np.array_equal(flipped[0], -plain[0][:, :, ::-1])  # x: mirrored and negated
    assert np.array_equal(flipped[1], plain[1][:, :, ::-1])   # y: mirrored only
    u8 = hflip(flow, "flow")
    assert np.array_equal(u8[..., 0], 255 - flow[:, :, ::-1, 0])
    rgb = rng.integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    assert np.array_equal(hflip(rgb, "rgb"), rgb[:, :, ::-1])


@pytest.mark.parametrize("position, box", [
    ("center", (60, 100, 120, 120)),
    ("top_left", (0, 0, 120, 120)),
    ("top_right", (0, 200, 120, 120)),
    ("bottom_left", (120, 0, 120, 120)),
    ("bottom_right", (120, 200, 120, 120)),
])
def test_corner_crop_boxes_by_hand(position, box):
    # 240x320 frame, scale 1/2 -> 120 px square
    crop = square_crop(240, 320, 0.5, position)
    assert crop.pixels(240, 320) == box
    # the same fractional crop on a 2x larger frame covers the same region
    assert crop.pixels(480, 640) == tuple(2 * v for v in box)


def test_full_scale_crop_is_short_side_square():
    assert square_crop(240, 320, 1.0, "center").pixels(240, 320) == (0, 40, 240, 240)
    assert square_crop(240, 320, 2**-0.25, "top_left").pixels(240, 320) == (0, 0, 202, 202)


def test_three_crops_landscape_and_portrait():
    assert [c.pixels(240, 320) for c in three_crops(240, 320)] == [
        (0, 0, 240, 240), (0, 40, 240, 240), (0, 80, 240, 240)]
    assert [c.pixels(320, 240) for c in three_crops(320, 240)] == [
        (0, 0, 240, 240), (40, 0, 240, 240), (80, 0, 240, 240)]


def test_random_crop_draws_every_scale_and_position():
    rng = np.random.default_rng(0)
    drawn = {random_crop(240, 320, rng) for _ in range(500)}
    expected = {square_crop(240, 320, s, p) for s in SCALES for p in POSITIONS}
    # at scale 1 the square spans the full height: top/bottom corners coincide (23 boxes)
    assert drawn == expected and len(expected) == 23


def test_crop_resize_cuts_the_right_pixels():
    frames = np.arange(2 * 6 * 8, dtype=np.uint8).reshape(2, 6, 8, 1)
    out = crop_resize(frames, Crop(1 / 6, 2 / 8, 3 / 6, 3 / 8), 3)  # no resize needed
    assert np.array_equal(out[..., 0], frames[:, 1:4, 2:5, 0].astype(np.float32))
    assert out.dtype == np.float32


def test_same_crop_on_two_resolutions_sees_the_same_scene():
    # value = horizontal position in [0, 250]: identical after crop+resize at any resolution
    def ramp(h, w):
        x = (np.arange(w) + 0.5) / w * 250
        return np.broadcast_to(x[None, None, :, None], (1, h, w, 1)).astype(np.uint8)

    crop = square_crop(48, 64, 2**-0.5, "top_right")
    small = crop_resize(ramp(48, 64), crop, 16)
    large = crop_resize(ramp(96, 128), crop, 16)
    assert np.abs(small - large).max() <= 3.0
    # and it is the right part: the top-right crop covers x in [1 - w, 1]
    assert small[0, 0, 0, 0] > 250 * (1 - crop.width) - 4 and small[0, 0, -1, 0] > 240


def test_transform_clip_layout():
    rgb = np.full((4, 24, 32, 3), 200, np.uint8)
    out = transform_clip(rgb, "rgb", square_crop(24, 32), 16)
    assert tuple(out.shape) == (3, 4, 16, 16)
    assert np.allclose(out[:, 0, 0, 0].numpy(), [200 - m for m in RGB_MEAN], atol=1e-4)
    assert flow_to_hwc(np.zeros((5, 2, 7, 9), np.uint8)).shape == (5, 7, 9, 2)
