"""Rules that fuse several streams' video-level logits into one class distribution.

Each stream's clip logits are averaged over the video first (REFERENCE sections 4-5), then
fused here. The rule matters (REFERENCE section 8): a flow stream that is confidently
wrong drowns in a softmax mean but is outvoted in a sum of log-probabilities.

- ``softmax-mean``: mean of the streams' softmax (MARS / mmaction2 two-stream baseline).
- ``logit-mean``: softmax of the mean of logits.
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
        import torch

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
