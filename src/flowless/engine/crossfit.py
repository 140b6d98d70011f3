"""Cross-fitting: out-of-fold video logits of the streams, to fit a fusion on held-out data.

A stream fits its training videos far better than unseen ones, so a fusion fitted on its
training logits learns to trust (and scale up) whatever fits best there. Cross-fitting gives
every training video logits from a network that never saw it: for fold k of K, a copy of
each stream is trained with the stream's own recorded config on the training split minus
fold k (``data.fold`` "k/K") and predicts fold k with the test protocol (every
non-overlapping clip, centre crop, clip logits averaged per video; docs/method.md §5), the
input a fusion meets at test time. Fold runs live in ``<folder>/<stream>_<id>_fold<k>/`` (id:
a hash of the stream checkpoint's path, so fusions of the same streams share them): a
finished one is reused, a killed one resumed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from flowless.config import DataConfig, TrainConfig, from_dict
from flowless.errors import CheckpointError


def fold_config(stream: Any, data: DataConfig, fold: int, folds: int, out: Path,
                device: str) -> TrainConfig:
    """The training config of ``stream``'s copy for fold ``fold``: its recorded recipe on
    ``data``'s dataset, holding out that fold."""
    from flowless.checkpoint import load_checkpoint

    saved = load_checkpoint(stream.source).get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{stream.source}: the checkpoint does not record its training "
                              "config, so it cannot be retrained per fold; use --fit-on train")
    cfg = from_dict(TrainConfig, saved)
    same = ("root", "format", "split", "annotations", "flow_root", "val_split", "val_fraction")
    cfg.data = dataclasses.replace(cfg.data, **{k: getattr(data, k) for k in same},
                                   fold=f"{fold}/{folds}")
    cfg.out, cfg.resume, cfg.tensorboard, cfg.device = str(out), None, False, device
    return cfg


@torch.no_grad()
def _video_logits(ckpt: Path, records: list[Any], data: DataConfig, batch_size: int,
                  device: torch.device, quiet: bool | None) -> torch.Tensor:
    """Video-level logits (len(records), K) of one stream checkpoint, in record order."""
    from flowless.engine import data as rundata
    from flowless.engine.distributed import DistEnv
    from flowless.engine.fusion import stream_logits
    from flowless.eval.scoring import video_mean
    from flowless.eval.streams import load_stream

    stream = load_stream(ckpt, device)
    ds = rundata.clip_dataset(records, data, stream.input, "test", 0)
    loader = rundata.make_loader(ds, batch_size, DistEnv(device=device), train=False, seed=0,
                                 workers=data.workers)
    logits, labels, videos = stream_logits([stream], loader, "fold logits", quiet, len(ds))
    means, _ = video_mean(logits[:, 0], videos, labels)
    if len(means) != len(records):
        raise CheckpointError(f"{ckpt}: {len(records) - len(means)} held-out videos gave no "
                              "clips; check that they decode")
    return means.float()


def fold_dir(folder: Path, stream: Any, fold: int, folds: int) -> Path:
    """The run folder of ``stream``'s copy for fold ``fold`` of ``folds`` (plans with other
    numbers of folds hold out other videos, so they never share a copy)."""
    tag = hashlib.sha1(os.path.abspath(stream.source).encode()).hexdigest()[:8]
    return folder / f"{stream.name}_{tag}_fold{fold}of{folds}"


def out_of_fold_logits(streams: list[Any], data: DataConfig, train_recs: list[Any],
                       folds: int, folder: Path, *, batch_size: int, device: torch.device,
                       quiet: bool | None, echo: Callable[[str], None] | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(out-of-fold video logits (V, S, K), labels (V,)) of the training videos ``train_recs``
    (V = all of them), each row from fold copies of the streams that never saw the video."""
    from flowless.data.holdout import fold_split
    from flowless.engine.trainer import train_once

    keys = {r.key: i for i, r in enumerate(train_recs)}
    x = torch.zeros(len(train_recs), len(streams), len(streams[0].classes))
    for k in range(folds):
        _, held = fold_split(train_recs, k, folds)
        rows = torch.tensor([keys[r.key] for r in held])
        for i, s in enumerate(streams):
            out = fold_dir(folder, s, k, folds)
            if echo:
                echo(f"crossfit: {s.name} on fold {k + 1}/{folds} ({len(held)} of "
                     f"{len(train_recs)} videos held out) -> {out}")
            cfg = fold_config(s, data, k, folds, out, str(device))
            ckpt = train_once(cfg, quiet=True if quiet else None) / "last.pt"
            x[rows, i] = _video_logits(ckpt, held, data, batch_size, device, quiet)
    y = torch.tensor([r.label for r in train_recs], dtype=torch.long)
    return x, y
