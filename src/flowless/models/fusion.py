"""Trainable late fusions: the paper's attention module (docs/method.md §4) and flowless
fusion, a weighted logit mean with normalised weights (docs/method.md §11).

Each takes the streams' logits as a list of (B, K) tensors or one (B, S, K) tensor and returns
fused (B, K) scores; the same module is used for training and testing (the authors' scripts
used two incompatible modules). The parameter-free rules are in :mod:`flowless.eval.scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowless.errors import CheckpointError, ConfigError

Streams = torch.Tensor | Sequence[torch.Tensor]


def stack_streams(streams: Streams, num_streams: int | None = None) -> torch.Tensor:
    """(B, S, K) tensor from a list of S (B, K) tensors or a (B, S, K) tensor."""
    x = streams if isinstance(streams, torch.Tensor) else torch.stack(list(streams), dim=1)
    if x.dim() != 3:
        raise ValueError(f"expected stream logits (B, S, K) or a list of (B, K), got {tuple(x.shape)}")
    if num_streams is not None and x.shape[1] != num_streams:
        raise ValueError(f"expected {num_streams} streams, got {x.shape[1]}")
    return x


class AttentionFusion(nn.Module):
    """Lightweight attention fusion (docs/method.md §4), for any number of streams S.

    x_i = L2-normalise(logits_i); w = sigmoid(W2 W1 concat(x_1..x_S)) with W1: S*K -> K//2
    and W2: K//2 -> S (biases, no non-linearity between, as in the paper); Y = sum_i w_i x_i.
    10,252 parameters for K = 101, S = 2. Log the weights (:meth:`forward_with_weights`):
    in a trial they saturated at 1, i.e. the module acted as a sum of normalised logits.
    """

    def __init__(self, num_classes: int, num_streams: int = 2):
        super().__init__()
        if num_classes < 1 or num_streams < 1:
            raise ConfigError(f"AttentionFusion(num_classes={num_classes}, num_streams="
                              f"{num_streams}): both must be positive")
        self.num_classes, self.num_streams = int(num_classes), int(num_streams)
        hidden = max(1, num_classes // 2)
        self.fc1 = nn.Linear(num_streams * num_classes, hidden)
        self.fc2 = nn.Linear(hidden, num_streams)

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this module: ``AttentionFusion(**fusion.config)``."""
        return {"num_classes": self.num_classes, "num_streams": self.num_streams}

    def forward_with_weights(self, streams: Streams) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused scores (B, K) and the per-stream weights (B, S), in one pass."""
        x = F.normalize(stack_streams(streams, self.num_streams), dim=-1)
        if x.shape[-1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {x.shape[-1]}")
        w = torch.sigmoid(self.fc2(self.fc1(x.flatten(1))))
        return (w.unsqueeze(-1) * x).sum(dim=1), w

    def stream_weights(self, streams: Streams) -> torch.Tensor:
        """Per-stream weights (B, S) in (0, 1), e.g. for logging."""
        return self.forward_with_weights(streams)[1]

    def forward(self, streams: Streams) -> torch.Tensor:
        return self.forward_with_weights(streams)[0]


class WeightedFusion(nn.Module):
    """flowless fusion: scores_k = (sum_s w_sk z_sk) / T + b_k over the streams' logits z.

    The weights of each class are a softmax over the streams (``per_class``; otherwise one
    weight per stream), so they sum to one: the module can only weigh the streams, never
    scale their sum up, the failure of the attention module trained on training logits.
    T = exp(log_t) calibrates the fused probabilities; b (``per_class`` only) is a class
    bias. At initialisation it is exactly the logit mean (equal weights, T = 1, b = 0).
    Fit it on held-out logits (``train-fusion --fit-on crossfit``).
    """

    def __init__(self, num_classes: int, num_streams: int = 2, per_class: bool = True):
        super().__init__()
        if num_classes < 1 or num_streams < 1:
            raise ConfigError(f"WeightedFusion(num_classes={num_classes}, num_streams="
                              f"{num_streams}): both must be positive")
        self.num_classes, self.num_streams = int(num_classes), int(num_streams)
        self.per_class = bool(per_class)
        self.logit_w = nn.Parameter(torch.zeros(num_streams, num_classes if per_class else 1))
        self.log_t = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(num_classes if per_class else 0))

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this module: ``WeightedFusion(**fusion.config)``."""
        return {"num_classes": self.num_classes, "num_streams": self.num_streams,
                "per_class": self.per_class}

    def weights(self) -> torch.Tensor:
        """Normalised weights (S, K) (or (S, 1)): each column sums to one."""
        return torch.softmax(self.logit_w, dim=0)

    def forward_with_weights(self, streams: Streams) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused scores (B, K) and the per-stream weights (B, S) (the class mean per stream)."""
        x = stack_streams(streams, self.num_streams)
        if x.shape[-1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {x.shape[-1]}")
        w = self.weights()
        scores = (w.unsqueeze(0) * x).sum(dim=1) / self.log_t.exp()
        if self.per_class:
            scores = scores + self.bias
        return scores, w.mean(dim=1).expand(x.shape[0], -1)

    def stream_weights(self, streams: Streams) -> torch.Tensor:
        return self.forward_with_weights(streams)[1]

    def forward(self, streams: Streams) -> torch.Tensor:
        return self.forward_with_weights(streams)[0]


FUSION_KINDS = {"attention": AttentionFusion, "weighted": WeightedFusion}


def fusion_from_checkpoint(ckpt_or_path: str | Path | dict[str, Any],
                           source: str | Path | None = None) -> nn.Module:
    """Rebuild the fusion module (:class:`AttentionFusion`, or :class:`WeightedFusion` when
    the checkpoint's ``fusion`` is "weighted") from a flowless fusion checkpoint (eval mode);
    ``source`` names the file a loaded dict came from in error messages."""
    from flowless.checkpoint import is_flowless, load_checkpoint

    if isinstance(ckpt_or_path, (str, Path)):
        source, ckpt = str(ckpt_or_path), load_checkpoint(ckpt_or_path)
    else:
        source, ckpt = str(source or "<checkpoint>"), ckpt_or_path
    if not is_flowless(ckpt) or ckpt.get("kind") != "fusion":
        raise CheckpointError(f"{source}: not a flowless fusion checkpoint (kind "
                              f"{ckpt.get('kind')!r}); pass the best.pt of a train-fusion run")
    config, state = ckpt.get("model_config"), ckpt.get("model")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise CheckpointError(f"{source}: fusion checkpoint lacks model_config or model; "
                              "it is damaged")
    kind = ckpt.get("fusion", "attention")
    if kind not in FUSION_KINDS:
        raise CheckpointError(f"{source}: unknown fusion kind {kind!r} (known: "
                              f"{', '.join(FUSION_KINDS)}); a newer flowless wrote it")
    try:
        fusion = FUSION_KINDS[kind](**config)
        fusion.load_state_dict(state)
    except (ConfigError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{source}: fusion weights do not fit ({first})") from exc
    return fusion.eval()
