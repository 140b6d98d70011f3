"""``train_fusion(cfg)``: learn the attention fusion on top of frozen stream checkpoints.

The streams are frozen, so each clip's logits are computed once (``train_views`` augmented
clips per training video, every test clip of every validation video) and the fusion is
trained on those cached logits: a few seconds even for UCF101-sized sets. As at test time
(REFERENCE section 4), validation fuses each stream's video-averaged logits. The learned
per-stream weights are logged every epoch (they can saturate at 1).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from flowless.checkpoint import load_checkpoint, save_checkpoint
from flowless.config import FusionConfig, save_yaml, to_dict, validate
from flowless.engine import data as rundata
from flowless.engine.distributed import DistEnv, resolve_device
from flowless.engine.metrics import MetricsLog
from flowless.engine.state import BEST, LAST, epoch_seed, seed_everything
from flowless.errors import CheckpointError, ConfigError
from flowless.io import writable_dir
from flowless.progress import progress

CLIP_KEYS = ("clip_len", "size", "stride", "short_side")


@dataclasses.dataclass
class Stream:
    path: Path
    net: torch.nn.Module
    input: str
    name: str
    classes: list[str]
    data: dict[str, Any]


def load_streams(paths: list[str], device: torch.device) -> list[Stream]:
    """Frozen stream networks with their input kind; classes and clip settings must agree."""
    from flowless.models import model_from_checkpoint

    streams = []
    for p in paths:
        ckpt = load_checkpoint(p)
        if ckpt.get("format") != "flowless" or ckpt.get("kind", "stream") != "stream":
            raise CheckpointError(f"{p}: not a flowless stream checkpoint; pass the best.pt of "
                                  "`flowless train` runs")
        net = model_from_checkpoint(ckpt, source=p).to(device).eval()
        for q in net.parameters():
            q.requires_grad_(False)
        streams.append(Stream(Path(os.path.abspath(p)), net, str(ckpt.get("input", "rgb")),
                              str(ckpt.get("stream", ckpt.get("input", "?"))),
                              list(ckpt.get("classes", [])), dict(ckpt.get("data") or {})))
    first = streams[0]
    for s in streams[1:]:
        if s.classes != first.classes:
            raise ConfigError(f"{s.path}: its classes differ from {first.path}'s; fuse streams "
                              "trained on the same dataset")
        diff = [k for k in CLIP_KEYS if s.data.get(k) != first.data.get(k)]
        if diff:
            raise ConfigError(f"{s.path}: clip settings {', '.join(diff)} differ from "
                              f"{first.path}'s ({', '.join(f'{k}={first.data.get(k)}' for k in diff)});"
                              " fuse streams trained on the same clips")
    return streams


@torch.no_grad()
def stream_logits(streams: list[Stream], loader: Any, device: torch.device, desc: str,
                  quiet: bool | None, total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits (N, S, K), labels (N,), video ids (N,)) of every item of ``loader``."""
    out, labels, videos = [], [], []
    keys = {"rgb": "clip", "flow": "flow"} if any(s.input == "rgb" for s in streams) and any(
        s.input == "flow" for s in streams) else {"rgb": "clip", "flow": "clip"}
    bar = progress(total=total, desc=desc, unit="clip", quiet=quiet)
    for batch in loader:
        per = [s.net(batch[keys[s.input]].to(device)).float().cpu() for s in streams]
        out.append(torch.stack(per, dim=1))
        labels.append(batch["label"])
        videos.append(batch["video"])
        bar.update(len(batch["label"]))
    bar.close()
    return torch.cat(out), torch.cat(labels).long(), torch.cat(videos).long()


def video_average(logits: torch.Tensor, videos: torch.Tensor, labels: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video mean of clip logits (V, S, K) and the video labels (V,)."""
    ids, inverse = torch.unique(videos, return_inverse=True)
    sums = torch.zeros(len(ids), *logits.shape[1:]).index_add_(0, inverse, logits)
    counts = torch.zeros(len(ids)).index_add_(0, inverse, torch.ones(len(videos)))
    vlabels = torch.full((len(ids),), -1, dtype=torch.long)
    vlabels[inverse] = labels
    return sums / counts[:, None, None], vlabels


def _evaluate(fusion: torch.nn.Module, val: tuple[torch.Tensor, ...] | None) -> dict[str, Any]:
    if val is None:
        return {}
    logits, labels, videos = val
    fusion.eval()
    with torch.no_grad():
        clip_scores = fusion(logits)
        vlogits, vlabels = video_average(logits, videos, labels)
        vscores, weights = fusion.forward_with_weights(vlogits)
    ok, vok = labels >= 0, vlabels >= 0
    return {
        "val_loss": float(F.cross_entropy(clip_scores[ok], labels[ok])) if ok.any() else None,
        "val_acc": float((clip_scores[ok].argmax(1) == labels[ok]).float().mean())
        if ok.any() else None,
        "val_video_acc": float((vscores[vok].argmax(1) == vlabels[vok]).float().mean())
        if vok.any() else None,
        "weights": [float(w) for w in weights.mean(0)],
    }


def train_fusion(cfg: FusionConfig, *, quiet: bool | None = None) -> Path:
    """Train an AttentionFusion over ``cfg.streams``; returns the run folder (best.pt, last.pt).

    The checkpoints store ``streams`` as absolute paths and ``streams_relative`` relative to
    the run folder, so a moved tree still resolves. ``quiet=True`` prints nothing.
    """
    from flowless.models import AttentionFusion

    validate(cfg)
    device = resolve_device(cfg.device)
    echo = None if quiet else (lambda msg: print(msg, flush=True))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    seed_everything(cfg.seed)
    run_dir = writable_dir(cfg.out)  # fail before any work when the folder is unwritable
    streams = load_streams(cfg.streams, device)
    data = dataclasses.replace(cfg.data, **{k: streams[0].data[k] for k in CLIP_KEYS
                                            if streams[0].data.get(k) is not None})
    classes, train_recs, val_recs, _ = rundata.load_records(data)
    if classes != streams[0].classes:
        raise ConfigError(f"{cfg.data.root}: its classes differ from those of {streams[0].path}; "
                          "fuse streams on the dataset they were trained on")
    inputs = {s.input for s in streams}
    ds_stream = "rgbflow" if inputs == {"rgb", "flow"} else inputs.pop()
    env = DistEnv(device=device)

    train_parts = []
    for view in range(cfg.train_views):
        ds = rundata.clip_dataset(train_recs, data, ds_stream, "train", cfg.seed)
        ds.set_epoch(view)
        loader = rundata.make_loader(ds, cfg.batch_size, env, train=False, seed=cfg.seed,
                                     workers=data.workers)
        train_parts.append(stream_logits(streams, loader, device, f"train logits {view + 1}",
                                         quiet, len(ds)))
    x_train = torch.cat([p[0] for p in train_parts])
    y_train = torch.cat([p[1] for p in train_parts])
    val = None
    if val_recs:
        ds = rundata.clip_dataset(val_recs, data, ds_stream, "test", cfg.seed)
        loader = rundata.make_loader(ds, cfg.batch_size, env, train=False, seed=cfg.seed,
                                     workers=data.workers)
        val = stream_logits(streams, loader, device, "val logits", quiet, len(ds))

    torch.manual_seed(cfg.seed)
    fusion = AttentionFusion(len(classes), len(streams))
    optimizer = torch.optim.SGD(fusion.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    save_yaml(cfg, run_dir / "config.yaml")
    log = MetricsLog(run_dir, tensorboard=False, echo=echo)
    base = {
        "kind": "fusion", "model_config": fusion.config,
        "streams": [str(s.path) for s in streams],
        "streams_relative": [os.path.relpath(s.path, os.path.abspath(run_dir)) for s in streams],
        "inputs": [s.input for s in streams], "stream_names": [s.name for s in streams],
        "classes": classes, "data": streams[0].data, "config": to_dict(cfg),
    }
    best = -1.0
    keep = y_train >= 0
    x_train, y_train = x_train[keep], y_train[keep]
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            fusion.train()
            g = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
            order = torch.randperm(len(y_train), generator=g)
            loss_sum, correct = 0.0, 0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                scores = fusion(x_train[idx])
                loss = F.cross_entropy(scores, y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((scores.argmax(1) == y_train[idx]).sum())
            n = max(1, len(order))
            record: dict[str, Any] = {"epoch": epoch, "epochs": cfg.epochs,
                                      "train_loss": loss_sum / n, "train_acc": correct / n,
                                      "train_clips_per_s": n / max(1e-9, time.perf_counter() - t0),
                                      "lr": cfg.lr}
            record.update(_evaluate(fusion, val))
            if val is None:
                fusion.eval()
                with torch.no_grad():
                    record["weights"] = [float(w) for w in
                                         fusion.stream_weights(x_train).mean(0)]
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
