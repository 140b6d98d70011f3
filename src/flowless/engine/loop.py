"""One training epoch and one validation pass, independent of how the parts were built.

The network is called through :class:`Taps` so that ``forward`` returns the feature dict
(``forward_features``): DistributedDataParallel only synchronises gradients for calls to
``forward``, and the distillation losses need the taps.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowless.distill import distill_loss
from flowless.engine.distributed import DistEnv, all_reduce_sum
from flowless.eval.scoring import VideoLogits
from flowless.models.resnet3d import TAPS
from flowless.progress import progress


class Taps(nn.Module):
    """Wraps a network so that ``forward`` returns ``net.forward_features(x)`` (a dict)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.forward_features(x)


@dataclass
class Distiller:
    """Frozen teachers and the distillation term added to the student's CE.

    Paper modes (mars, relation, relation+mars, kd): ``alpha * term(mode)``. ``student``:
    ``kd_weight * KD(student, mean of the teachers' logits) + alpha * relation`` (the relation
    term from ``teacher``'s taps, skipped when alpha is 0). ``ensemble`` holds more frozen
    streams and their batch keys; their logits join the teacher's in the KD target (kd,
    student). ``ramp`` (set each epoch by the trainer) scales the whole term for a warm-up.
    """

    teacher: nn.Module
    mode: str
    alpha: float = 50.0
    taps: Sequence[str] = TAPS
    temperature: float = 4.0
    input_key: str = "flow"  # batch key of the teacher's input
    ensemble: Sequence[tuple[nn.Module, str]] = ()  # (frozen stream, batch key of its input)
    kd_weight: float = 1.0
    normalize: bool = False
    ramp: float = 1.0

    def __post_init__(self) -> None:
        for net in [self.teacher] + [m for m, _ in self.ensemble]:
            net.eval()
            for p in net.parameters():
                p.requires_grad_(False)

    def _target_logits(self, teacher: dict[str, torch.Tensor], batch: dict[str, Any],
                       opts: StepOptions) -> dict[str, torch.Tensor]:
        """The teacher's features with ``logits`` replaced by the ensemble's mean logits."""
        if not self.ensemble:
            return teacher
        logits = [teacher["logits"].float()]
        with torch.no_grad(), opts.autocast():
            for net, key in self.ensemble:
                logits.append(net(opts.to_device(batch[key])).float())
        return {**teacher, "logits": torch.stack(logits).mean(0)}

    def term(self, student: dict[str, torch.Tensor], batch: dict[str, Any],
             opts: StepOptions) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss added to CE, its detached parts; ``distill`` is the term before the
        paper modes' alpha and the ramp)."""
        x = opts.to_device(batch[self.input_key])
        with torch.no_grad(), opts.autocast():
            teacher = self.teacher.forward_features(x)
        if self.mode in ("kd", "student"):
            teacher = self._target_logits(teacher, batch, opts)
        if self.mode != "student":
            term, parts = distill_loss(self.mode, student, teacher, taps=self.taps,
                                       temperature=self.temperature, normalize=self.normalize)
            parts["distill"] = term.detach()
            return self.ramp * self.alpha * term, parts
        kd, parts = distill_loss("kd", student, teacher, temperature=self.temperature)
        term = self.kd_weight * kd
        if self.alpha > 0:
            rel, rel_parts = distill_loss("relation", student, teacher, taps=self.taps,
                                          normalize=self.normalize)
            term = term + self.alpha * rel
            parts.update(rel_parts)
        parts["distill"] = term.detach()
        return self.ramp * term, parts


@dataclass
class StepOptions:
    """How one optimisation step runs."""

    device: torch.device
    input_key: str = "clip"
    amp_dtype: torch.dtype | None = None  # autocast dtype (CUDA only), None: full precision
    channels_last: bool = False  # inputs in channels_last_3d (the model must be converted too)
    grad_clip: float | None = None
    quiet: bool | None = None
    desc: str = "train"

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch tensor on the device (asynchronously from pinned memory), in the layout."""
        fmt = torch.channels_last_3d if self.channels_last and x.dim() == 5 \
            else torch.preserve_format
        return x.to(self.device, non_blocking=True, memory_format=fmt)


def train_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    opts: StepOptions,
    env: DistEnv,
    *,
    schedule: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    distiller: Distiller | None = None,
    total: int | None = None,
) -> dict[str, float]:
    """Train one epoch; returns mean loss (and its parts), clip accuracy, clips/s and
    ``train_data_wait``, the share of the epoch spent waiting for batches (all ranks)."""
    model.train()
    dev = opts.device
    sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss*n, ce*n, correct
    part_sums: dict[str, torch.Tensor] = {}
    count = 0
    wait = 0.0  # seconds blocked on the loader (the host; a GPU step runs on meanwhile)
    bar = progress(total=total, desc=opts.desc, unit="clip",
                   quiet=True if not env.is_main else opts.quiet)
    start = asked = time.perf_counter()
    for step, batch in enumerate(loader):
        wait += time.perf_counter() - asked
        x = opts.to_device(batch[opts.input_key])
        y = batch["label"].to(dev, non_blocking=True)
        with opts.autocast():
            feats = model(x)
        ce = F.cross_entropy(feats["logits"].float(), y)
        loss = ce
        parts: dict[str, torch.Tensor] = {}
        if distiller is not None:
            term, parts = distiller.term(feats, batch, opts)
            loss = ce + term
        optimizer.zero_grad(set_to_none=True)
        stepped = True
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            if opts.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            stepped = scaler.get_scale() >= scale  # fp16 overflow: the step was skipped
        else:
            loss.backward()
            if opts.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
            optimizer.step()
        if schedule is not None and stepped:
            schedule.step_batch()
        n = y.shape[0]
        count += n
        with torch.no_grad():
            sums[0] += loss.detach().double() * n
            sums[1] += ce.detach().double() * n
            sums[2] += (feats["logits"].argmax(1) == y).sum()
            for k, v in parts.items():
                part_sums[k] = part_sums.get(k, torch.zeros((), dtype=torch.float64, device=dev))
                part_sums[k] += v.double() * n
        bar.update(n * env.world_size)
        if step % 10 == 0 and not bar.disable:
            share = wait / max(1e-9, time.perf_counter() - start)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", data=f"{100 * share:.0f}%")
        asked = time.perf_counter()
    bar.close()
    elapsed = time.perf_counter() - start
    keys = sorted(part_sums)
    flat = torch.cat([sums, torch.stack([part_sums[k] for k in keys]) if keys else sums[:0],
                      torch.tensor([wait, count, elapsed], dtype=torch.float64, device=dev)])
    all_reduce_sum(env, flat)
    total_n = max(1.0, float(flat[-2]))
    out = {"train_loss": float(flat[0]) / total_n, "train_ce": float(flat[1]) / total_n,
           "train_acc": float(flat[2]) / total_n, "train_clips": int(flat[-2])}
    for i, k in enumerate(keys):
        out[f"train_{k}"] = float(flat[3 + i]) / total_n
    # clips/s over the whole job: all clips / mean per-rank wall time
    out["train_clips_per_s"] = total_n / max(1e-9, float(flat[-1]) / env.world_size)
    out["train_data_wait"] = float(flat[-3]) / max(1e-9, float(flat[-1]))
    if not math.isfinite(out["train_loss"]):
        raise FloatingPointError(
            f"training loss became {out['train_loss']}; lower optim.lr (or distill.alpha)"
        )
    return out


@torch.no_grad()
def val_epoch(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    opts: StepOptions,
    env: DistEnv,
    *,
    num_videos: int,
    num_classes: int,
    total: int | None = None,
) -> dict[str, float]:
    """Clip accuracy and CE loss, plus video accuracy from clip logits averaged per video."""
    model.eval()
    dev = opts.device
    sums = torch.zeros(3, dtype=torch.float64, device=dev)  # loss*n, correct, n
    videos = VideoLogits(num_videos, num_classes, dev)
    bar = progress(total=total, desc="val", unit="clip",
                   quiet=True if not env.is_main else opts.quiet)
    for batch in loader:
        x = opts.to_device(batch[opts.input_key])
        y = batch["label"].to(dev, non_blocking=True)
        with opts.autocast():
            logits = model(x)["logits"].float()
        valid = y >= 0
        if valid.any():
            sums[0] += F.cross_entropy(logits[valid], y[valid], reduction="sum").double()
            sums[1] += (logits[valid].argmax(1) == y[valid]).sum()
            sums[2] += valid.sum()
        videos.add(logits, batch["video"], y)
        bar.update(x.shape[0] * env.world_size)
    bar.close()
    all_reduce_sum(env, sums)
    all_reduce_sum(env, videos.sums)
    all_reduce_sum(env, videos.counts)
    if env.distributed:  # every rank saw some videos; take the label from whoever had it
        torch.distributed.all_reduce(videos.labels, op=torch.distributed.ReduceOp.MAX)
    n = float(sums[2])
    return {
        "val_loss": float(sums[0]) / n if n else None,
        "val_acc": float(sums[1]) / n if n else None,
        "val_video_acc": videos.accuracy(),
        "val_clips": int(n),
    }
