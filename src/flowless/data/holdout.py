"""The validation part of a dataset that has none (a plain class folder, one list file).

Each class gives ``round(fraction x its videos)`` videos (at least one when it has two or
more, never all of them), chosen by a hash of the video key: the split depends only on the
keys and the fraction, not on the file order, the seed or the machine, and adding a video
moves few others. ``flowless train``, ``train-fusion``, ``evaluate`` and ``dataset summary``
all ask this one function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flowless.errors import ConfigError

if TYPE_CHECKING:
    from flowless.data.annotations import VideoRecord

DEFAULT_VAL_FRACTION = 0.2  # data.val_fraction: 1 video in 5 per class, as a 80/20 split
SPLIT_DIR = "split"  # the run-folder sub-folder the hold-out is written to


def hold_out(records: Sequence[VideoRecord], fraction: float,
             ) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """(train, validation) records, stratified by label, each in the input order."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"data.val_fraction: {fraction} is not in [0, 1); e.g. 0.2 holds out "
                          "a fifth of each class for validation")
    by_label: dict[int, list[VideoRecord]] = {}
    for rec in records:
        by_label.setdefault(rec.label, []).append(rec)
    val: set[str] = set()
    for recs in by_label.values():
        n = len(recs)
        take = min(n - 1, max(1, int(n * fraction + 0.5))) if fraction > 0 and n > 1 else 0
        ranked = sorted(recs, key=lambda r: hashlib.sha1(r.key.encode()).hexdigest())
        val.update(r.key for r in ranked[:take])
    return [r for r in records if r.key not in val], [r for r in records if r.key in val]


def write_split(folder: str | Path, root: Path, classes: Sequence[str],
                train: Sequence[VideoRecord], val: Sequence[VideoRecord]) -> Path:
    """Write the split as list-format files (``train.txt``, ``val.txt``, ``classes.txt``)
    under ``folder/split``; ``--format list --annotations`` that folder reads it back."""
    from flowless.io import write_text

    out = Path(folder) / SPLIT_DIR
    for name, recs in (("train.txt", train), ("val.txt", val)):
        lines = [f"{Path(r.path).relative_to(root).as_posix()} {r.label}\n" for r in recs]
        write_text(out / name, "".join(lines))
    write_text(out / "classes.txt", "".join(f"{c}\n" for c in classes))
    return out


def parse_fold(text: str) -> tuple[int, int]:
    """``"k/K"`` -> (k, K) with 0 <= k < K and K >= 2; a one-line error otherwise."""
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        k, n = -1, 0
    if n < 2 or not 0 <= k < n:
        raise ConfigError(f"data.fold: {text!r} is not k/K with 0 <= k < K and K >= 2; e.g. "
                          "0/2 trains on the second half of each class and holds out the first")
    return k, n


def fold_split(records: Sequence[VideoRecord], fold: int, folds: int,
               ) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """(the other folds, fold ``fold``) of ``folds`` folds, stratified by label: each class's
    videos, ranked by a hash of their key as in :func:`hold_out`, are dealt to the folds in
    turn, so folds differ in size by at most one video per class. Cross-fitting
    (``train-fusion --fit-on crossfit``) trains on the first part and predicts the second."""
    by_label: dict[int, list[VideoRecord]] = {}
    for rec in records:
        by_label.setdefault(rec.label, []).append(rec)
    held: set[str] = set()
    for recs in by_label.values():
        ranked = sorted(recs, key=lambda r: hashlib.sha1(r.key.encode()).hexdigest())
        held.update(r.key for i, r in enumerate(ranked) if i % folds == fold)
    return [r for r in records if r.key not in held], [r for r in records if r.key in held]
