"""Scoring: clip logits -> per-video logits -> fused class probabilities.

Every caller scores a video the same way (docs/method.md §5): each stream's clip logits are
averaged over the video (:class:`VideoLogits`), then the streams are fused by a rule. The
training loop's validation, fusion training, ``flowless evaluate``, ``predict`` and the
benchmark scripts all use this module.

Fusion rules (the rule matters, docs/method.md §8: a flow stream that is confidently wrong
drowns in a softmax mean but is outvoted in a sum of log-probabilities):

- ``softmax-mean``: mean of the streams' softmax (the mmaction2 convention).
- ``logit-mean``: softmax of the mean of logits (the MARS two-stream baseline).
- ``logprob-sum``: ranks classes by the sum of log-probabilities (product of experts); the
  probabilities reported are the normalised geometric mean, so fusing a stream with itself
  changes nothing.
- attention: a trained :class:`AttentionRule` (the paper's fusion module).

Every rule returns probabilities (rows sum to 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


class VideoLogits:
    """Running per-video sums of clip logits (float64), their clip counts and labels.

    ``add`` takes a batch of clip logits with the video index of each clip; ``mean`` gives
    the video-level logits. The tensors are plain sums, so a distributed run all-reduces
    ``sums`` and ``counts`` (and the labels with MAX) to combine its ranks.
    """

    def __init__(self, num_videos: int, num_classes: int, device: torch.device | str = "cpu"):
        self.sums = torch.zeros(num_videos, num_classes, dtype=torch.float64, device=device)
        self.counts = torch.zeros(num_videos, dtype=torch.float64, device=device)
        self.labels = torch.full((num_videos,), -1.0, dtype=torch.float64, device=device)

    def add(self, logits: Any, videos: Any, labels: Any = None) -> None:
        """Add clip logits (N, K) of videos (N,) (with their labels (N,), -1 = unknown)."""
        z = torch.as_tensor(logits).to(self.sums.device, torch.float64)
        v = torch.as_tensor(videos).to(self.sums.device, torch.long)
        self.sums.index_add_(0, v, z)
        self.counts.index_add_(0, v, torch.ones_like(v, dtype=torch.float64))
        if labels is not None:
            self.labels[v] = torch.as_tensor(labels).to(self.sums.device, torch.float64)

    @property
    def seen(self) -> torch.Tensor:
        """Videos with at least one clip and a known label."""
        return (self.counts > 0) & (self.labels >= 0)

    def mean(self) -> torch.Tensor:
        """Video-level logits (V, K): the mean of each video's clip logits (0 without clips)."""
        return self.sums / self.counts.clamp(min=1)[:, None]

    def accuracy(self) -> float | None:
        """Top-1 accuracy of the video-level logits over the labelled videos (None: none)."""
        seen = self.seen
        if not seen.any():
            return None
        pred = self.sums[seen].argmax(1)  # the mean's argmax: counts are positive
        return float((pred == self.labels[seen].long()).double().mean())


def video_mean(logits: torch.Tensor, videos: torch.Tensor, labels: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video mean of clip logits (N, ..., K) over ``videos`` (N,), in order of video id,
    and each video's label: ((V, ..., K) float64, (V,) long)."""
    ids, inverse = torch.unique(videos, return_inverse=True)
    flat = logits.reshape(len(logits), -1)
    acc = VideoLogits(len(ids), flat.shape[1])
    acc.add(flat, inverse, labels)
    return acc.mean().reshape(len(ids), *logits.shape[1:]), acc.labels.long()


FUSION_RULES = ("softmax-mean", "logit-mean", "logprob-sum")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float64)."""
    return np.exp(log_softmax(logits))


def fuse(logits: Sequence[np.ndarray], rule: str) -> np.ndarray:
    """Fuse a list of same-shape (..., K) logit arrays (one per stream) into probabilities."""
    if not logits:
        raise ValueError("fuse needs at least one stream")
    stack = np.stack([np.asarray(z, dtype=np.float64) for z in logits])
    if rule == "softmax-mean":
        return softmax(stack).mean(axis=0)
    if rule == "logit-mean":
        return softmax(stack.mean(axis=0))
    if rule == "logprob-sum":
        # Same ranking as the sum; the mean keeps one stream fused with itself unchanged.
        return softmax(log_softmax(stack).mean(axis=0))
    raise ValueError(f"unknown fusion rule {rule!r}; choose one of {', '.join(FUSION_RULES)}")


class AttentionRule:
    """A trained attention fusion module applied to video-level stream logits.

    ``module`` maps a list of (N, K) logit tensors (streams in training order) to fused
    (N, K) scores; the reported probabilities are their softmax, as trained with CE.
    ``weights_of`` (optional) returns the per-stream attention weights (N, S) for logging.
    """

    def __init__(self, module: Any, name: str = "attention",
                 weights_of: Callable[[Any, list[Any]], Any] | None = None):
        self.module = module.eval()
        self.name = name
        self.weights_of = weights_of
        self.last_weights: np.ndarray | None = None

    def __call__(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        tensors = [torch.as_tensor(np.atleast_2d(z), dtype=torch.float32) for z in logits]
        with torch.inference_mode():
            scores = self.module(tensors)
            if isinstance(scores, (tuple, list)):
                scores = scores[0]
            if self.weights_of is not None:
                self.last_weights = np.asarray(self.weights_of(self.module, tensors), dtype=np.float64)
        out = softmax(scores.double().numpy())
        return out if np.ndim(logits[0]) > 1 else out[0]


def fusion_probs(logits: Sequence[np.ndarray], rule: str | AttentionRule) -> np.ndarray:
    """Apply a named rule or an :class:`AttentionRule`."""
    return rule(logits) if callable(rule) else fuse(logits, rule)
