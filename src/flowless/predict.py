"""Predict the action in one video with trained streams (checkpoints and/or ONNX models).

The video is decoded once and streamed: each stream keeps only the frames of the clip it
is filling, so a long video runs in bounded memory. Every clip of the MARS protocol is
scored; each stream's clip logits are averaged, then fused (multi-stream sets compute
optical flow on the fly). The result carries the time spent in each stage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowless.errors import ConfigError
from flowless.eval.inference import StageTimes, score_video
from flowless.eval.report import top_entries
from flowless.eval.scoring import FUSION_RULES, AttentionRule, fusion_probs, softmax
from flowless.eval.streams import DEFAULT_FAST, Stream, load_streams


def load_predictors(
    checkpoints: Sequence[str | Path] = (),
    onnx: Sequence[str | Path] = (),
    fusion: str | None = None,
    fast: str = DEFAULT_FAST,
) -> tuple[list[Stream], str | AttentionRule | None]:
    """Streams from checkpoints (and a fusion checkpoint) plus ONNX models, and the rule."""
    paths = [*checkpoints, *onnx]
    if not paths and (fusion is None or fusion in FUSION_RULES):
        raise ConfigError("give at least one checkpoint or --onnx model")
    return load_streams(paths, fusion, fast=fast)


def predict(
    checkpoints: Sequence[str | Path],
    video: str | Path,
    *,
    topk: int = 5,
    onnx: Sequence[str | Path] = (),
    fusion: str | None = None,
    protocol: str = "mars",
    batch_size: int = 8,
    flow_backend: str | None = None,
    fast: str = DEFAULT_FAST,
) -> dict[str, Any]:
    """Top-``topk`` classes of ``video`` with probabilities, per stream and fused, and the
    seconds spent per stage (load, decode, flow, transform, network). ``fast``: how the
    PyTorch streams run (:data:`~flowless.eval.streams.FAST_MODES`); unless ``off``
    freed memory is kept for reuse (:func:`~flowless.models.fast.reuse_freed_memory`)."""
    import torch

    from flowless.models.fast import reuse_freed_memory

    torch.set_flush_denormal(True)
    if fast != "off":
        reuse_freed_memory()
    t0 = time.perf_counter()
    streams, rule = load_predictors(checkpoints, onnx, fusion, fast)
    load_s = time.perf_counter() - t0
    times = StageTimes()
    t1 = time.perf_counter()
    scores = score_video(video, streams, protocol=protocol, batch_size=batch_size,
                         flow_backend=flow_backend, times=times)
    classes = streams[0].classes
    probs = fusion_probs(scores.logits, rule) if rule is not None else softmax(scores.logits[0])
    wall = time.perf_counter() - t1
    rule_name = rule.name if isinstance(rule, AttentionRule) else rule
    return {
        "video": str(video),
        "frames": scores.frames,
        "protocol": protocol,
        "fusion": rule_name,
        "top": top_entries(probs, classes, topk),
        "streams": [{**s.describe(), "clips": n, "flow": flow,
                     "top": top_entries(softmax(z), classes, topk)}
                    for s, z, n, flow in zip(streams, scores.logits, scores.clips, scores.flow)],
        "seconds": {"load": load_s, **times.seconds, "total": wall},
    }


def format_prediction(result: dict[str, Any]) -> str:
    """Human-readable lines: the top classes and the time per stage."""
    clips = ", ".join(f"{s['name']} {s['clips']}" for s in result["streams"])
    head = f"{result['video']}: {result['frames']} frames; clips: {clips}"
    if result["fusion"]:
        head += f"; fusion: {result['fusion']}"
    width = max(len(t["class"]) for t in result["top"])
    lines = [head]
    lines += [f"  {i}. {t['class']:<{width}}  {100 * t['prob']:6.2f}%"
              for i, t in enumerate(result["top"], 1)]
    sec = result["seconds"]
    stages = [f"{k} {sec[k]:.2f} s" for k in ("decode", "flow", "transform", "network")
              if k != "flow" or sec.get("flow")]
    lines.append(f"time: {' | '.join(stages)} | total {sec['total']:.2f} s "
                 f"(+ model load {sec['load']:.2f} s)")
    return "\n".join(lines)
