"""Cross-fitting folds: stratified by class, disjoint, covering, independent of order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from flowless.errors import ConfigError


@dataclass
class Rec:
    key: str
    label: int


def test_folds_are_stratified_disjoint_and_cover_the_split():
    from flowless.data.holdout import fold_split, parse_fold

    recs = [Rec(f"c{label}/v{i}", label) for label in range(3) for i in range(7)]
    held = [fold_split(recs, k, 3)[1] for k in range(3)]
    keys = [{r.key for r in h} for h in held]
    assert set().union(*keys) == {r.key for r in recs} and sum(map(len, keys)) == len(recs)
    for k in range(3):
        rest, part = fold_split(recs, k, 3)
        assert len(rest) + len(part) == len(recs)
        assert sorted(sum(r.label == c for r in part) for c in range(3)) in ([2, 2, 2], [3, 3, 3])
    # the same keys in another order give the same folds
    assert {r.key for r in fold_split(recs[::-1], 1, 3)[1]} == keys[1]
    assert parse_fold("1/4") == (1, 4)
    for bad in ("4/4", "0/1", "x", "1-2"):
        with pytest.raises(ConfigError, match="data.fold: .* is not k/K"):
            parse_fold(bad)
