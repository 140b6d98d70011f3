"""``train_fusion(cfg)``: learn a fusion on top of frozen stream checkpoints.

Two modules (``cfg.kind``): the paper's attention fusion (docs/method.md §4) and flowless
fusion, a weighted logit mean (docs/method.md §11). Two inputs to fit them on
(``cfg.fit_on``): ``train``, the streams' logits of ``train_views`` augmented clips per
training video, as the paper; ``crossfit``, out-of-fold video logits from fold copies of
the streams (:mod:`flowless.engine.crossfit`). The streams are frozen, so logits are
computed once and the fusion is fitted on them: seconds even for UCF101-sized sets. As at
test time, validation fuses each stream's video-averaged logits. The learned per-stream
weights are logged (the attention module's can saturate at 1).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from flowless.checkpoint import save_checkpoint
from flowless.config import (
    FUSION_CLIP_KEYS,
    DataConfig,
    FusionConfig,
    save_yaml,
    to_dict,
    validate,
)
from flowless.engine import data as rundata
from flowless.engine.distributed import DistEnv, resolve_device
from flowless.engine.metrics import MetricsLog
from flowless.engine.state import BEST, LAST, epoch_seed, seed_everything
from flowless.errors import ConfigError
from flowless.eval.scoring import video_mean
from flowless.eval.streams import TorchStream, load_streams
from flowless.io import writable_dir
from flowless.progress import progress

CLIP_KEYS = tuple(k.removeprefix("data.") for k in FUSION_CLIP_KEYS)  # DataConfig fields
Logits = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (N, S, K), labels (N,), videos (N,)


def frozen_streams(paths: list[str], device: torch.device) -> list[TorchStream]:
    """Frozen stream networks on ``device``; classes and clip settings must agree."""
    streams, _ = load_streams(paths, device=device)
    first = streams[0]
    for s in streams:
        if not isinstance(s, TorchStream):
            raise ConfigError(f"{s.source}: train-fusion takes stream checkpoints, not ONNX "
                              "models; pass the best.pt of `flowless train` runs")
    for s in streams[1:]:
        diff = [k for k in CLIP_KEYS if getattr(s.data, k) != getattr(first.data, k)]
        if diff:
            shown = ", ".join(f"{k}={getattr(first.data, k)}" for k in diff)
            raise ConfigError(f"{s.source}: clip settings {', '.join(diff)} differ from "
                              f"{first.source}'s ({shown}); fuse streams trained on the same "
                              "clips")
    return streams  # type: ignore[return-value]


def clip_data(cfg: FusionConfig, stream: TorchStream) -> DataConfig:
    """The data config of a fusion run: the dataset of ``cfg``, the clips of the streams.

    Clip settings come from the stream checkpoints; one set to another value in ``cfg``
    is refused rather than silently replaced."""
    default = DataConfig()
    for k in CLIP_KEYS:
        mine, theirs = getattr(cfg.data, k), getattr(stream.data, k)
        if mine != getattr(default, k) and mine != theirs:
            raise ConfigError(f"data.{k}: train-fusion takes clip settings from the stream "
                              f"checkpoints ({k}={theirs} in {stream.source}); drop data.{k}")
    return dataclasses.replace(cfg.data, **{k: getattr(stream.data, k) for k in CLIP_KEYS
                                            if getattr(stream.data, k) is not None})


@torch.no_grad()
def stream_logits(streams: list[TorchStream], loader: Any, desc: str, quiet: bool | None,
                  total: int) -> Logits:
    """(logits (N, S, K), labels (N,), video ids (N,)) of every item of ``loader``."""
    out, labels, videos = [], [], []
    both = {s.input for s in streams} == {"rgb", "flow"}
    keys = {"rgb": "clip", "flow": "flow" if both else "clip"}
    bar = progress(total=total, desc=desc, unit="clip", quiet=quiet)
    for batch in loader:
        per = [s.forward(batch[keys[s.input]]).float().cpu() for s in streams]
        out.append(torch.stack(per, dim=1))
        labels.append(batch["label"])
        videos.append(batch["video"])
        bar.update(len(batch["label"]))
    bar.close()
    return torch.cat(out), torch.cat(labels).long(), torch.cat(videos).long()


def _evaluate(fusion: torch.nn.Module, val: Logits | None) -> dict[str, Any]:
    if val is None:
        return {}
    logits, labels, videos = val
    fusion.eval()
    with torch.no_grad():
        clip_scores = fusion(logits)
        vlogits, vlabels = video_mean(logits, videos, labels)
        vscores, weights = fusion.forward_with_weights(vlogits.float())
    ok, vok = labels >= 0, vlabels >= 0
    return {
        "val_loss": float(F.cross_entropy(clip_scores[ok], labels[ok])) if ok.any() else None,
        "val_acc": float((clip_scores[ok].argmax(1) == labels[ok]).float().mean())
        if ok.any() else None,
        "val_video_acc": float((vscores[vok].argmax(1) == vlabels[vok]).float().mean())
        if vok.any() else None,
        "weights": [float(w) for w in weights.mean(0)],
    }


def _cached_logits(cfg: FusionConfig, data: DataConfig, streams: list[TorchStream],
                   train_recs: list[Any], val_recs: list[Any], device: torch.device,
                   quiet: bool | None, *, train: bool = True) -> tuple[Logits | None, Logits | None]:
    """The streams' logits of ``train_views`` augmented clips per training video (unless
    ``train`` is False) and of every test clip of every validation video (the clips of
    training's validation)."""
    inputs = {s.input for s in streams}
    ds_stream = "rgbflow" if inputs == {"rgb", "flow"} else inputs.pop()
    env = DistEnv(device=device)
    parts = []
    for view in range(cfg.train_views if train else 0):
        ds = rundata.clip_dataset(train_recs, data, ds_stream, "train", cfg.seed)
        ds.set_epoch(view)
        loader = rundata.make_loader(ds, cfg.batch_size, env, train=False, seed=cfg.seed,
                                     workers=data.workers)
        parts.append(stream_logits(streams, loader, f"train logits {view + 1}", quiet, len(ds)))
    cached = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]),
              torch.cat([p[2] for p in parts])) if parts else None
    val = None
    if val_recs:
        ds = rundata.clip_dataset(val_recs, data, ds_stream, "test", cfg.seed)
        loader = rundata.make_loader(ds, cfg.batch_size, env, train=False, seed=cfg.seed,
                                     workers=data.workers)
        val = stream_logits(streams, loader, "val logits", quiet, len(ds))
    return cached, val


def _fit_epoch(fusion: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, batch_size: int, seed: int) -> tuple[float, int]:
    """One epoch over the cached logits in a (seed, epoch) order: (loss sum, correct)."""
    fusion.train()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    loss_sum, correct = 0.0, 0
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        scores = fusion(x[idx])
        loss = F.cross_entropy(scores, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(idx)
        correct += int((scores.argmax(1) == y[idx]).sum())
    return loss_sum, correct


def _fit_weighted(fusion: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  l2: float) -> tuple[float, int]:
    """Fit a WeightedFusion by full-batch L-BFGS on (N, S, K) logits: (loss sum, correct).
    The objective is convex in the biases and smooth, and deterministic."""
    fusion.train()
    opt = torch.optim.LBFGS(fusion.parameters(), lr=1.0, max_iter=500,
                            line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(fusion(x), y) + l2 * (fusion.logit_w.square().sum()
                                                      + fusion.bias.square().sum())
        loss.backward()
        return loss

    opt.step(objective)
    with torch.no_grad():
        scores = fusion(x)
        return float(F.cross_entropy(scores, y)) * len(y), int((scores.argmax(1) == y).sum())


def fit_on(cfg: FusionConfig) -> str:
    """What the fusion is fitted on: ``cfg.fit_on``, else crossfit for weighted, train for
    attention (the paper's way)."""
    return cfg.fit_on or ("crossfit" if cfg.kind == "weighted" else "train")


def train_fusion(cfg: FusionConfig, *, quiet: bool | None = None) -> Path:
    """Train the fusion ``cfg.kind`` over ``cfg.streams``; returns the run folder (best.pt,
    last.pt).

    The checkpoints store ``streams`` as absolute paths and ``streams_relative`` relative to
    the run folder, so a moved tree still resolves. ``quiet=True`` prints nothing.
    """
    from flowless.engine.crossfit import out_of_fold_logits
    from flowless.models import AttentionFusion, WeightedFusion

    validate(cfg)
    device = resolve_device(cfg.device)
    echo = None if quiet else (lambda msg: print(msg, flush=True))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    seed_everything(cfg.seed)
    run_dir = writable_dir(cfg.out)  # fail before any work when the folder is unwritable
    streams = frozen_streams(cfg.streams, device)
    data = clip_data(cfg, streams[0])
    classes, train_recs, val_recs, _ = rundata.load_records(data, run_dir, echo)
    if classes != streams[0].classes:
        raise ConfigError(f"{cfg.data.root}: its classes differ from those of "
                          f"{streams[0].source}; fuse streams on the dataset they were "
                          "trained on")
    source = fit_on(cfg)
    train_logits, val = _cached_logits(cfg, data, streams, train_recs, val_recs, device, quiet,
                                       train=source == "train")
    if source == "crossfit":
        folder = Path(cfg.crossfit_dir) if cfg.crossfit_dir else run_dir / "crossfit"
        x_train, y_train = out_of_fold_logits(streams, data, train_recs, cfg.folds, folder,
                                              batch_size=cfg.batch_size, device=device,
                                              quiet=quiet, echo=echo)
    else:
        x_train, y_train, _ = train_logits

    torch.manual_seed(cfg.seed)
    fusion = AttentionFusion(len(classes), len(streams)) if cfg.kind == "attention" else \
        WeightedFusion(len(classes), len(streams), per_class=cfg.per_class)
    optimizer = torch.optim.SGD(fusion.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    save_yaml(cfg, run_dir / "config.yaml")
    log = MetricsLog(run_dir, tensorboard=False, echo=echo)
    paths = [os.path.abspath(s.source) for s in streams]
    base = {
        "kind": "fusion", "fusion": cfg.kind, "fit_on": source,
        "model_config": fusion.config, "streams": paths,
        "streams_relative": [os.path.relpath(p, os.path.abspath(run_dir)) for p in paths],
        "inputs": [s.input for s in streams], "stream_names": [s.name for s in streams],
        "classes": classes, "data": streams[0].data.as_dict(), "config": to_dict(cfg),
    }
    best = -1.0
    keep = y_train >= 0
    x_train, y_train = x_train[keep], y_train[keep]
    epochs = cfg.epochs if cfg.kind == "attention" else 1  # L-BFGS fits in one go
    try:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            if cfg.kind == "attention":
                loss_sum, correct = _fit_epoch(fusion, optimizer, x_train, y_train,
                                               cfg.batch_size, epoch_seed(cfg.seed, epoch))
            else:
                loss_sum, correct = _fit_weighted(fusion, x_train.float(), y_train, cfg.l2)
            n = max(1, len(y_train))
            record: dict[str, Any] = {"epoch": epoch, "epochs": epochs,
                                      "train_loss": loss_sum / n, "train_acc": correct / n,
                                      "train_clips_per_s": n / max(1e-9, time.perf_counter() - t0),
                                      "lr": cfg.lr}
            record.update(_evaluate(fusion, val))
            if val is None:
                fusion.eval()
                with torch.no_grad():
                    record["weights"] = [float(w) for w in
                                         fusion.stream_weights(x_train).mean(0)]
            if cfg.kind == "weighted":
                record["temperature"] = float(fusion.log_t.detach().exp())
                record["class_weights"] = fusion.weights().detach().tolist()
            record["time_s"] = time.perf_counter() - t0
            metric = record.get("val_video_acc")
            metric = record["train_acc"] if metric is None else metric
            ckpt = {**base, "model": {k: v.detach().clone() for k, v in
                                      fusion.state_dict().items()},
                    "epoch": epoch, "metrics": record}
            save_checkpoint(run_dir / LAST, ckpt)
            if metric > best:
                best = metric
                save_checkpoint(run_dir / BEST, ckpt)
            log.log(record)
    finally:
        log.close()
    return run_dir
