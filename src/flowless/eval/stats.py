"""Is a difference between two methods real? Paired bootstrap intervals and verdicts.

Two methods evaluated on the same test videos are compared video by video: the bootstrap
resamples videos, and each resample keeps both methods' results on the chosen videos
(a paired bootstrap), so the interval reflects which videos happened to be in the test
split, not only the overall accuracies. Across seeds, a claim's per-seed values get a
Student-t interval. Computed with :func:`scipy.stats.bootstrap` (BCa) and
:mod:`scipy.stats`; nothing is approximated by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

LEVEL = 0.95
RESAMPLES = 4000
VERDICTS = ("held", "not held", "inconclusive")


def paired_difference(a: Sequence[float], b: Sequence[float], *, scale: float = 100.0,
                      level: float = LEVEL, resamples: int = RESAMPLES,
                      seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the same items (e.g. 1/0 correct per test video), times
    ``scale`` (points), with its paired-bootstrap BCa interval: {diff, low, high, n}."""
    from scipy import stats

    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("paired_difference needs two equal-length, non-empty 1-D sequences")
    diff = float(x.mean()) * scale
    if np.all(x == x[0]) or len(x) < 3:  # no spread: the bootstrap is degenerate
        return {"diff": diff, "low": diff, "high": diff, "n": len(x)}
    res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=resamples,
                          method="BCa", random_state=np.random.default_rng(seed),
                          vectorized=True, axis=-1)
    low, high = res.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa undefined: use percentiles
        res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=resamples,
                              method="percentile", random_state=np.random.default_rng(seed))
        low, high = res.confidence_interval
    return {"diff": diff, "low": float(low) * scale, "high": float(high) * scale, "n": len(x)}


def paired_ratio_of_medians(num: Sequence[float], den: Sequence[float], *,
                            level: float = LEVEL, resamples: int = RESAMPLES,
                            seed: int = 0) -> dict[str, float]:
    """median(num) / median(den) over the same items (e.g. per-video times of two methods),
    with a paired percentile-bootstrap interval: {ratio, low, high, n}."""
    from scipy import stats

    n, d = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ratio = float(np.median(n) / np.median(d))
    if len(n) < 3:
        return {"ratio": ratio, "low": ratio, "high": ratio, "n": len(n)}

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    res = stats.bootstrap((n, d), statistic, paired=True, confidence_level=level,
                          n_resamples=resamples, method="percentile", vectorized=True,
                          random_state=np.random.default_rng(seed))
    low, high = res.confidence_interval
    return {"ratio": ratio, "low": float(low), "high": float(high), "n": len(n)}


def verdict(low: float, high: float, threshold: float, *, strict: bool = True) -> str:
    """``held`` when the whole interval clears ``threshold`` (``>``; ``>=`` when not
    strict), ``not held`` when the whole interval falls short, else ``inconclusive``."""
    clears = low > threshold if strict else low >= threshold
    short = high <= threshold if strict else high < threshold
    return "held" if clears else "not held" if short else "inconclusive"


def across_seeds(values: Sequence[float], *, level: float = LEVEL) -> dict[str, Any]:
    """Mean, sample sd, and the Student-t interval of the mean of per-seed values."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "sd": None, "low": None, "high": None, "n": len(x)}
    sd = float(x.std(ddof=1))
    if sd == 0:
        return {"mean": mean, "sd": 0.0, "low": mean, "high": mean, "n": len(x)}
    low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=sd / math.sqrt(len(x)))
    return {"mean": mean, "sd": sd, "low": float(low), "high": float(high), "n": len(x)}
