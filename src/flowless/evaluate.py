"""Public evaluation API: ``evaluate(checkpoints, dataset, ...) -> dict``.

The implementation lives in :mod:`flowless.eval` (metrics, fusion rules, streaming
inference, the dataset runner); this module is the stable entry point for callers
such as the demo and the CLI.
"""

from __future__ import annotations

from flowless.eval.inference import PROTOCOLS, score_video
from flowless.eval.metrics import summarize, topk_accuracy
from flowless.eval.report import read_predictions
from flowless.eval.runner import evaluate
from flowless.eval.scoring import FUSION_RULES, fuse
from flowless.eval.streams import load_streams

__all__ = [
    "FUSION_RULES",
    "PROTOCOLS",
    "evaluate",
    "fuse",
    "load_streams",
    "read_predictions",
    "score_video",
    "summarize",
    "topk_accuracy",
]
