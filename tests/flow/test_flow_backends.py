"""Backends recover known motion; parameters reach OpenCV; shapes follow the contract."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowless.errors import ConfigError, FlowError
from flowless.flow import FlowBackend, compute_flow, resolve_params, video_flow
from flowless.flow.backends import TVL1_DEFAULTS, parse_param_args
from flowless.flow.synthetic import rotation_field, translation_field, warp_pair

CASES = [("tvl1", "default"), ("tvl1", "fast"), ("dis", "ultrafast"), ("dis", "fast"),
         ("dis", "medium"), ("farneback", "default")]


def epe(pred: np.ndarray, truth: np.ndarray, border: int = 8) -> float:
    d = (pred - truth)[border:-border, border:-border]
    return float(np.hypot(d[..., 0], d[..., 1]).mean())


@pytest.mark.parametrize("backend, preset", CASES)
def test_translation_is_recovered(backend, preset, textured):
    truth = translation_field(64, 64, 2.5, -1.5)
    first, second = warp_pair(textured, truth)
    flow = FlowBackend(backend, preset=preset)(first, second)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    # Bound: 0.1 px (zero flow would score 2.9 px); measured 0.007-0.05 px.
    assert epe(flow, truth) < 0.1
    assert epe(np.zeros_like(truth), truth) > 2.5


@pytest.mark.parametrize("backend, preset", CASES)
def test_rotation_is_recovered(backend, preset, textured):
    truth = rotation_field(64, 64, degrees=4.0)  # up to ~2.2 px at the corners
    first, second = warp_pair(textured, truth)
    flow = FlowBackend(backend, preset=preset)(first, second)
    # Bound: 0.25 px (zero flow scores ~1 px); measured 0.02 (tvl1) to 0.13 (farneback).
    assert epe(flow, truth) < 0.25 < epe(np.zeros_like(truth), truth) / 3


def test_tvl1_defaults_are_opencv_defaults():
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    getters = {"tau": "Tau", "lambda": "Lambda", "theta": "Theta", "nscales": "ScalesNumber",
               "warps": "WarpingsNumber", "epsilon": "Epsilon",
               "inner_iterations": "InnerIterations", "outer_iterations": "OuterIterations",
               "scale_step": "ScaleStep", "gamma": "Gamma", "median_filtering": "MedianFiltering"}
    assert set(getters) == set(TVL1_DEFAULTS)
    for key, name in getters.items():
        assert getattr(tvl1, "get" + name)() == pytest.approx(TVL1_DEFAULTS[key]), key


def test_parameters_reach_opencv():
    tvl1 = FlowBackend("tvl1", {"warps": "3", "inner_iterations": 7, "lambda": 0.2})
    assert tvl1._impl.getWarpingsNumber() == 3
    assert tvl1._impl.getInnerIterations() == 7
    assert tvl1._impl.getLambda() == pytest.approx(0.2)
    dis = FlowBackend("dis", {"preset": "ultrafast", "finest_scale": 0, "patch_size": 12})
    assert dis._impl.getFinestScale() == 0 and dis._impl.getPatchSize() == 12
    fast = resolve_params("tvl1", preset="fast")
    assert fast["epsilon"] == 0.05 and fast["tau"] == TVL1_DEFAULTS["tau"]


def test_farneback_parameters_change_the_result(textured):
    first, second = warp_pair(textured, translation_field(64, 64, 2.0, 0.0))
    a = compute_flow(first, second, "farneback")
    b = compute_flow(first, second, "farneback", winsize=5, levels=1)
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "backend, params, message",
    [("tvl1", {"nope": 1}, "unknown parameter 'nope' for flow backend tvl1; known: tau"),
     ("tvl1", {"warps": "many"}, "warps='many' for backend tvl1: expected int"),
     ("tvl1", {"warps": "2.5"}, "expected int"),
     ("dis", {"preset": "slow"}, "unknown DIS preset 'slow'"),
     ("dis", {"use_spatial_propagation": "maybe"}, "expected bool"),
     ("raft", {}, "unknown flow backend 'raft'")],
)
def test_bad_parameters_are_config_errors(backend, params, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_params(backend, params)


def test_param_args_parse_key_value():
    assert parse_param_args(["warps=3", " inner-iterations = 5 "]) == {
        "warps": "3", "inner_iterations": "5"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_param_args(["warps"])


def test_video_flow_shapes_and_alignment(textured):
    truth = translation_field(64, 64, 2.0, 1.0)
    first, second = warp_pair(textured, truth)
    frames = np.stack([np.repeat(f[..., None], 3, axis=2) for f in (first, second, first)])
    flow = video_flow(frames, "farneback")
    assert flow.shape == (2, 2, 64, 64) and flow.dtype == np.float32
    # Field t is frame t -> t+1: forward motion, then back.
    assert flow[0, 0, 16:-16, 16:-16].mean() == pytest.approx(2.0, abs=0.1)
    assert flow[1, 0, 16:-16, 16:-16].mean() == pytest.approx(-2.0, abs=0.15)
    np.testing.assert_array_equal(flow[0].transpose(1, 2, 0),
                                  compute_flow(frames[0], frames[1], "farneback"))
    small = video_flow(np.zeros((3, 48, 64, 3), np.uint8), "dis", short_side=24)
    assert small.shape == (2, 2, 24, 32)


def test_video_flow_needs_two_frames():
    with pytest.raises(FlowError, match="at least 2 frames"):
        video_flow(np.zeros((1, 32, 32, 3), np.uint8), "farneback")


@pytest.mark.parametrize("backend, params, message", [
    ("dis", {"patch_size": 1}, "patch_size=1 for backend dis: must be >= 2"),
    ("dis", {"patch_size": 4, "patch_stride": 6}, "patch_stride 6 is larger than patch_size 4"),
    ("tvl1", {"median_filtering": 4}, "0, 1 (off) or an odd number"),
    ("tvl1", {"scale_step": 1.5}, "between 0 and 1"),
    ("tvl1", {"nscales": 0}, "nscales=0 for backend tvl1: must be >= 1"),
    ("farneback", {"poly_n": 2}, "must be 5 or 7"),
])
def test_out_of_range_parameters_are_refused_before_opencv_sees_them(backend, params, message):
    # Some of these crash the process inside OpenCV (DIS patch_size 1: double free).
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FlowBackend(backend, params)
