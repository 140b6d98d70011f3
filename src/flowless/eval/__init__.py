"""Evaluation: metrics, fusion rules, streaming inference over videos, dataset runner."""

from flowless.eval.inference import PROTOCOLS, StageTimes, VideoScores, score_video
from flowless.eval.metrics import (
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    summarize,
    topk_accuracy,
)
from flowless.eval.scoring import FUSION_RULES, AttentionRule, fuse, softmax
from flowless.eval.streams import DataSettings, Stream, load_streams

__all__ = [
    "FUSION_RULES",
    "PROTOCOLS",
    "AttentionRule",
    "DataSettings",
    "StageTimes",
    "Stream",
    "VideoScores",
    "confusion_matrix",
    "fuse",
    "load_streams",
    "mean_class_accuracy",
    "per_class_accuracy",
    "score_video",
    "softmax",
    "summarize",
    "topk_accuracy",
]
