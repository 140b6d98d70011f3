"""Distillation losses: MARS feature MSE, the paper's internal-relationship loss, logit KD.

Each function works on plain tensors (or dicts of named taps) so it can be used alone.
Teacher inputs are detached here: the teacher is frozen and never receives gradients.
Losses are computed in float32 even under autocast (Gram matrices overflow in fp16).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from flowless.models.resnet3d import TAPS


def _as_maps(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) or (B, C) -> (B, C, N) with N = T*H*W (N = 1 for a pooled vector)."""
    if x.dim() < 2:
        raise ValueError(f"expected a (B, C, ...) tensor, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], x.shape[1], -1).float()


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """Per-sample Gram matrix G = F F^T / (C*T*H*W) with F = reshape(B, C, T*H*W): (B, C, C)."""
    f = _as_maps(x)
    c, n = f.shape[1], f.shape[2]
    return torch.bmm(f, f.transpose(1, 2)) / (c * n)


def _check_pair(name: str, s: torch.Tensor, t: torch.Tensor) -> None:
    if s.shape != t.shape:
        raise ValueError(
            f"tap {name!r}: student shape {tuple(s.shape)} != teacher shape {tuple(t.shape)}; "
            "relation distillation needs the same architecture/width and clip size"
        )


def relation_terms(
    student_taps: Mapping[str, torch.Tensor],
    teacher_taps: Mapping[str, torch.Tensor],
    taps: Sequence[str] = TAPS,
    *,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_gram, L_feat): tap means of mean|G_s - G_t| and mean|F_s - F_t| (docs/method.md §3).

    ``normalize`` divides each tap's two terms by the teacher's own mean |G_t| and |F_t|
    (detached), so every tap contributes a relative error of order one whatever its depth,
    width or activation scale, and one weight means the same on any architecture
    (docs/method.md §11)."""
    if not taps:
        raise ValueError("relation loss needs at least one tap")
    grams, feats = [], []
    for name in taps:
        s = student_taps[name]
        t = teacher_taps[name].detach()
        _check_pair(name, s, t)
        gs, gt = gram_matrix(s), gram_matrix(t)
        gram = (gs - gt).abs().mean()
        feat = (s.float() - t.float()).abs().mean()
        if normalize:
            gram = gram / gt.abs().mean().clamp(min=1e-8)
            feat = feat / t.float().abs().mean().clamp(min=1e-8)
        grams.append(gram)
        feats.append(feat)
    return torch.stack(grams).mean(), torch.stack(feats).mean()


def relation_loss(
    student_taps: Mapping[str, torch.Tensor],
    teacher_taps: Mapping[str, torch.Tensor],
    taps: Sequence[str] = TAPS,
) -> torch.Tensor:
    """The paper's internal-relationship loss L_gram + L_feat over ``taps``."""
    gram, feat = relation_terms(student_taps, teacher_taps, taps)
    return gram + feat


def mars_loss(student_pool: torch.Tensor, teacher_pool: torch.Tensor) -> torch.Tensor:
    """MARS feature loss: MSE between pooled features, mean over batch x channels."""
    s = student_pool.reshape(student_pool.shape[0], -1).float()
    t = teacher_pool.detach().reshape(teacher_pool.shape[0], -1).float()
    _check_pair("pool", s, t)
    return F.mse_loss(s, t)


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """Hinton logit distillation: T^2 * KL(softmax(t/T) || softmax(s/T)), mean over the batch."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"kd: student logits {tuple(student_logits.shape)} != teacher logits "
            f"{tuple(teacher_logits.shape)}; teacher and student need the same classes"
        )
    t = temperature
    log_p = F.log_softmax(student_logits.float() / t, dim=1)
    q = F.softmax(teacher_logits.detach().float() / t, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * (t * t)


def distill_loss(
    mode: str,
    student: Mapping[str, torch.Tensor],
    teacher: Mapping[str, torch.Tensor],
    *,
    taps: Sequence[str] = TAPS,
    temperature: float = 4.0,
    normalize: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The distillation term of ``mode`` from student/teacher feature dicts, plus its detached parts.

    mode: mars (pool MSE) | relation (Gram + feature L1 over taps) | relation+mars (their sum)
    | kd (logits). The total training loss is CE + alpha * this term. ``normalize``: the
    relation terms per tap relative to the teacher's magnitude (:func:`relation_terms`).
    """
    parts: dict[str, torch.Tensor] = {}
    if mode in ("relation", "relation+mars"):
        parts["gram"], parts["feat"] = relation_terms(student, teacher, taps,
                                                      normalize=normalize)
    if mode in ("mars", "relation+mars"):
        parts["mse"] = mars_loss(student["pool"], teacher["pool"])
    if mode == "kd":
        parts["kd"] = kd_loss(student["logits"], teacher["logits"], temperature)
    if not parts:
        raise ValueError(f"unknown distillation mode {mode!r}")
    total = torch.stack(list(parts.values())).sum()
    return total, {k: v.detach() for k, v in parts.items()}
