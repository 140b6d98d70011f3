"""The clip plan: starts, indices, crops and store windows, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from flowless.data.plan import ClipPlan
from flowless.errors import ConfigError


def test_span_step_and_offsets():
    plan = ClipPlan(4, stride=3)
    assert plan.span == 10  # frames 0, 3, 6, 9
    assert plan.step == 12
    assert list(plan.offsets) == [0, 3, 6, 9]


def test_mars_starts_are_every_non_overlapping_clip():
    assert ClipPlan(8).starts(8) == [0]
    assert ClipPlan(8).starts(23) == [0, 8]  # a third clip would need frame 23
    assert ClipPlan(8).starts(24) == [0, 8, 16]
    assert ClipPlan(4, stride=3).starts(33) == [0, 12]  # the clip at 24 would end at 33
    assert ClipPlan(4, stride=3).starts(34) == [0, 12, 24]
    assert ClipPlan(8).starts(3) == [0]  # shorter than a clip: one looped clip


def test_ten_clips_spread_evenly():
    starts = ClipPlan(8, protocol="10x3").starts(48)
    room = 48 - 8 + 1
    assert starts == [int(room * (i + 0.5) / 10) for i in range(10)]
    assert len(set(starts)) == 10 and starts == sorted(starts)
    assert ClipPlan(8, protocol="10x3").num_crops == 3 and ClipPlan(8).num_crops == 1


def test_start_of_a_clip_counted_on_a_longer_stated_length_wraps():
    plan = ClipPlan(8)
    # The container said 24 frames (3 clips); only 20 decode: clip 2 keeps its start and loops.
    assert plan.start(2, 20) == 16
    assert list(plan.indices(20, 16)) == [16, 17, 18, 19, 0, 1, 2, 3]
    tens = ClipPlan(8, protocol="10x3")
    assert [tens.start(c, 48) for c in range(10)] == tens.starts(48)


def test_train_start_keeps_the_clip_inside_the_video():
    plan = ClipPlan(8, stride=2)
    rng = np.random.default_rng(0)
    starts = {plan.train_start(30, rng) for _ in range(500)}
    assert starts == set(range(0, 30 - 15 + 1))
    assert plan.train_start(10, rng) == 0  # no clip fits: start at 0 and loop


def test_store_windows_cover_exactly_each_clip():
    assert ClipPlan(8).windows(20) == [(0, 8), (8, 16)]
    assert ClipPlan(4, stride=2).windows(16) == [(0, 7), (8, 15)]
    assert ClipPlan(8).windows(5) == [(0, None)]  # looped: the whole video
    assert ClipPlan(8, protocol="10x3").windows(100) == [(0, None)]


def test_clips_follow_the_starts_and_crops():
    frames = np.zeros((20, 6, 10, 3), np.uint8)
    frames[:] = np.arange(20, dtype=np.uint8)[:, None, None, None] * 10  # frame t has value 10t
    clips = ClipPlan(4, stride=2).clips(frames, "rgb", 4)
    assert clips.shape == (2, 3, 4, 4, 4)  # starts 0 and 8 (a third would end at 22)
    from flowless.data.transforms import RGB_MEAN

    firsts = clips[:, 0, :, 0, 0].numpy() + RGB_MEAN[0]
    np.testing.assert_allclose(firsts, [[0, 20, 40, 60], [80, 100, 120, 140]], atol=1e-4)
    tens = ClipPlan(4, protocol="10x3").clips(frames, "rgb", 4, length=12)
    assert tens.shape == (30, 3, 4, 4, 4)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown test protocol 'five'"):
        ClipPlan(8, protocol="five")
    with pytest.raises(ConfigError, match="must be positive"):
        ClipPlan(0)
