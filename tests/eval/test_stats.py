"""Paired bootstrap intervals, verdicts and across-seed intervals, checked independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowless.eval.stats import across_seeds, paired_difference, paired_ratio_of_medians, verdict


def test_paired_interval_matches_the_normal_approximation_on_many_videos():
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.8).astype(float)
    b = (rng.random(2000) < 0.7).astype(float)
    res = paired_difference(a, b, resamples=2000)
    d = a - b
    half = 1.959964 * d.std(ddof=1) / math.sqrt(len(d)) * 100
    assert res["diff"] == pytest.approx(100 * d.mean())
    assert res["low"] == pytest.approx(res["diff"] - half, abs=0.6)
    assert res["high"] == pytest.approx(res["diff"] + half, abs=0.6)
    assert res["n"] == 2000


def test_pairing_narrows_the_interval_when_methods_agree_on_most_videos():
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.75).astype(float)
    b = a.copy()
    flip = rng.choice(400, 20, replace=False)  # b differs from a on 20 videos only
    b[flip] = 1 - b[flip]
    paired = paired_difference(a, b)
    # An unpaired interval (independent samples) would be about +-6 points wide here.
    unpaired_half = 1.96 * math.sqrt(a.var() / 400 + b.var() / 400) * 100
    assert paired["high"] - paired["low"] < unpaired_half


def test_identical_results_give_a_zero_width_interval():
    a = np.array([1, 0, 1, 1, 0], float)
    assert paired_difference(a, a) == {"diff": 0.0, "low": 0.0, "high": 0.0, "n": 5}


def test_unequal_lengths_are_refused():
    with pytest.raises(ValueError):
        paired_difference([1, 0, 1], [1, 0])


def test_ratio_of_medians_and_its_interval():
    rng = np.random.default_rng(2)
    slow = 100 + rng.normal(0, 5, 30)
    fast = 10 + rng.normal(0, 0.5, 30)
    res = paired_ratio_of_medians(slow, fast)
    assert res["ratio"] == pytest.approx(np.median(slow) / np.median(fast))
    assert res["low"] < res["ratio"] < res["high"]
    assert 8 < res["low"] and res["high"] < 12


@pytest.mark.parametrize("low,high,threshold,strict,expected", [
    (0.5, 3.0, 0.0, True, "held"),
    (-3.0, -0.5, 0.0, True, "not held"),
    (-1.0, 2.0, 0.0, True, "inconclusive"),
    (0.0, 0.0, 0.0, True, "not held"),  # equal is not "beats"
    (10.0, 12.0, 10.0, False, "held"),  # "at least 10"
    (7.0, 9.9, 10.0, False, "not held"),
])
def test_verdicts(low, high, threshold, strict, expected):
    assert verdict(low, high, threshold, strict=strict) == expected


def test_across_seeds_uses_the_student_t_interval():
    res = across_seeds([1.0, 2.0, 3.0, 4.0, 5.0])
    sd = math.sqrt(2.5)
    t975_4 = 2.776445105  # Student t, 4 degrees of freedom, 97.5 % quantile
    assert res["mean"] == 3.0 and res["sd"] == pytest.approx(sd)
    assert res["low"] == pytest.approx(3.0 - t975_4 * sd / math.sqrt(5))
    assert res["high"] == pytest.approx(3.0 + t975_4 * sd / math.sqrt(5))
    assert across_seeds([4.0])["low"] is None
