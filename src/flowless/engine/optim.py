"""Optimisers (SGD as MARS, AdamW), learning-rate schedules, and stage freezing."""

from __future__ import annotations

import math

import torch
from torch import nn

from flowless.config import OptimConfig
from flowless.errors import ConfigError
from flowless.models.resnet3d import MODEL_STAGES


def stage_of(param_name: str) -> str:
    """Stage of a parameter by its name: layer1..layer4, fc, else stem (conv1, bn1)."""
    head = param_name.split(".", 1)[0]
    return head if head in MODEL_STAGES else "stem"


def freeze_until(model: nn.Module, stage: str | None) -> list[str]:
    """Freeze (requires_grad False) every parameter of the stages before ``stage``.

    MARS's ``ft_begin_index 4`` is ``stage="layer4"``: only layer4 and fc learn. BatchNorm
    layers stay in train mode (as in MARS, where frozen layers get lr 0). Returns the names
    of the frozen parameters.
    """
    if stage is None:
        return []
    if stage not in MODEL_STAGES[1:]:
        raise ConfigError(f"model.freeze_until: {stage!r} is not one of: {', '.join(MODEL_STAGES[1:])}")
    cut = MODEL_STAGES.index(stage)
    frozen = []
    for name, p in model.named_parameters():
        if MODEL_STAGES.index(stage_of(name)) < cut:
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD (momentum/dampening as MARS) or AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("model.freeze_until: every parameter is frozen; nothing to train")
    if cfg.name == "sgd":
        if cfg.nesterov and (cfg.momentum <= 0 or cfg.dampening != 0):
            raise ConfigError("optim.nesterov: needs momentum > 0 and dampening 0")
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               dampening=cfg.dampening, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"optim.name: {cfg.name!r} is not one of: sgd, adamw")


class Schedule:
    """One interface for both kinds of schedule.

    ``step_batch()`` after every optimiser step (warm-up / cosine, per iteration);
    ``step_epoch(val_loss)`` after every epoch (ReduceLROnPlateau on validation loss).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int,
                 steps_per_epoch: int):
        self.kind = cfg.schedule
        self.optimizer = optimizer
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.lambda_lr: torch.optim.lr_scheduler.LambdaLR | None = None
        if self.kind == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.factor, patience=cfg.patience)
        elif self.kind in ("cosine", "none"):
            total = max(1, epochs * steps_per_epoch)
            warm = int(round(cfg.warmup_epochs * steps_per_epoch))
            floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
            cosine = self.kind == "cosine"

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                if not cosine:
                    return 1.0
                progress = min(1.0, (step - warm) / max(1, total - warm))
                return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

            self.lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        else:
            raise ConfigError(f"optim.schedule: {self.kind!r} is not one of: plateau, cosine, none")

    def step_batch(self) -> None:
        if self.lambda_lr is not None:
            self.lambda_lr.step()

    def step_epoch(self, val_loss: float | None) -> None:
        if self.plateau is not None and val_loss is not None and math.isfinite(val_loss):
            self.plateau.step(val_loss)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        sched = self.plateau if self.plateau is not None else self.lambda_lr
        return {"kind": self.kind, "state": sched.state_dict() if sched is not None else {}}

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.kind:
            raise ConfigError(f"optim.schedule: the checkpoint used {state.get('kind')!r}, the "
                              f"config says {self.kind!r}; resume with the same schedule")
        sched = self.plateau if self.plateau is not None else self.lambda_lr
        if sched is not None:
            sched.load_state_dict(state["state"])
