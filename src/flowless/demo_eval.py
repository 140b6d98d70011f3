"""The demo's evaluation stage: every row's MARS-protocol accuracy, factor accuracy,
parameters and end-to-end time (:func:`evaluate_all`), with as few decodings of the test set
as possible (:func:`prefill_logits`) and one timing per pipeline (:func:`time_all`)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowless.demo_config import FUSIONS, STREAM_RUNS, Method

if TYPE_CHECKING:
    from flowless.demo import DemoRun


def _params(paths: list[Path]) -> int:
    """Weights in the checkpoints (BatchNorm running statistics not counted)."""
    from flowless.checkpoint import load_checkpoint

    total = 0
    for path in paths:
        state = load_checkpoint(path)["model"]
        total += sum(int(t.numel()) for k, t in state.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    return total


def _time_methods(methods: list[tuple[list[Path], str | None]], videos: list[Path]
                  ) -> list[list[float]]:
    """End-to-end milliseconds of each video (in ``videos`` order) for each (checkpoints,
    fusion) method: decode + flow on the fly (if any) + networks.

    Methods are timed interleaved (each video runs through every method, in a rotating
    order) so that a slow spell of a shared machine, or a previous stage's threads winding
    down, hits every method alike instead of whichever happened to run then.
    """
    from flowless.eval.inference import score_video
    from flowless.eval.streams import load_streams

    loaded = [load_streams([str(p) for p in ckpts], fusion)[0] for ckpts, fusion in methods]
    for streams in loaded:
        score_video(videos[0], streams)  # warm-up (allocators, OpenCV objects)
    times: list[list[float]] = [[] for _ in loaded]
    for v, path in enumerate(videos):
        for k in range(len(loaded)):
            m = (k + v) % len(loaded)
            t0 = time.perf_counter()
            score_video(path, loaded[m])
            times[m].append(time.perf_counter() - t0)
    return [[1000.0 * x for x in t] for t in times]


def factor_accuracy(eval_dir: Path, classes: list[dict[str, Any]]) -> dict[str, float]:
    """Share of test videos whose predicted class has the right motion, and the right
    category, read from an evaluation's ``predictions.jsonl`` and the dataset's ``synth.json``
    class list. Tells which half of the label a method gets wrong."""
    from flowless.eval.report import read_predictions

    rows = read_predictions(eval_dir / "predictions.jsonl")
    if not rows:
        return {}
    return {f: sum(classes[r["label"]][f] == classes[r["predicted"]][f] for r in rows) / len(rows)
            for f in ("motion", "category")}


def evaluate_method(run: DemoRun, m: Method, classes: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row (without its time): MARS-protocol accuracy, factor accuracy, weights."""
    from flowless.eval.report import read_predictions
    from flowless.eval.runner import evaluate

    paths = [run.ckpt(s) for s in m.streams]
    fusion = run.fusion_of(m)
    eval_dir = run.eval_dir(m)
    # each network runs once per video: rows sharing a stream share its logits
    res = evaluate([str(p) for p in paths], run.data_root, "ucf101", protocol="mars",
                   fusion=fusion, flow_root=run.flow_root, out=eval_dir, quiet=True,
                   cache_dir=run.out / "eval" / ".logits")
    fusion_params = _params([Path(fusion)]) if m.fusion in FUSIONS else 0
    factors = factor_accuracy(eval_dir, classes)
    predictions = read_predictions(eval_dir / "predictions.jsonl")
    return {
        "method": m.name, "needs_flow": "flow" in m.streams,
        "top1": res["top1"], "top5": res["top5"],
        "mean_class_acc": res["mean_class_acc"],
        "motion_acc": factors.get("motion"), "category_acc": factors.get("category"),
        "params": _params(paths) + fusion_params,
        "attention_weights": res.get("attention_weights"),
        "eval_dir": str(eval_dir),
        # per test video, for the paired intervals of the claims
        "correct": {p["key"]: int(p["correct"]) for p in predictions},
    }


STREAM_INPUT = {s.name: s.input for s in STREAM_RUNS}  # run name -> rgb / flow


def pipeline_of(m: Method) -> tuple[tuple[str, ...], str | None]:
    """What a method's time depends on: its streams' inputs (every demo network has the
    recipe's architecture, so the input fixes the network) and the fusion's kind, never
    the weights (the same network costs the same, trained or not)."""
    kind = FUSIONS[m.fusion].kind if m.fusion in FUSIONS else m.fusion
    return tuple(sorted(STREAM_INPUT[s] for s in m.streams)), kind


def time_all(run: DemoRun, rows: list[dict[str, Any]], test_videos: list[Path]) -> None:
    """Add ``ms_per_video`` (the median: it resists stray hiccups) and ``ms_each`` (per
    timed video) to each row of :data:`METHODS` (timed interleaved). Methods of the same
    pipeline (:func:`pipeline_of`: e.g. RGB, MARS and DS, one RGB network each) are timed
    once, by the first of them, and share its figures (``timed_as``)."""
    groups: dict[tuple[tuple[str, ...], str | None], list[int]] = {}
    for i, m in enumerate(run.methods):
        groups.setdefault(pipeline_of(m), []).append(i)
    timed = [members[0] for members in groups.values()]
    ms = _time_methods([([run.ckpt(s) for s in run.methods[i].streams],
                         run.fusion_of(run.methods[i])) for i in timed], test_videos)
    for members, t in zip(groups.values(), ms):
        for i in members:
            rows[i]["ms_per_video"] = statistics.median(t)
            rows[i]["ms_each"] = list(t)
            rows[i]["timed_as"] = run.methods[members[0]].name


def prefill_logits(run: DemoRun) -> None:
    """Fill the logits cache of every stream with as few decodings of the test set as
    possible: the single-input rows' networks together (RGB, MARS, DS, ...: one decoding for
    all of them), and the networks of the rows that mix RGB and flow together (their RGB
    clips are aligned with the flow fields, so they are cached apart). Each row's own
    evaluation then finds its logits in the cache (:class:`flowless.eval.runner.LogitsCache`
    keys on the stream and that alignment, so the logits are the ones it would compute)."""
    from flowless.eval.runner import evaluate

    groups: dict[str, list[str]] = {}
    for m in run.methods:
        kinds = {STREAM_INPUT[s] for s in m.streams}
        key = "aligned" if len(kinds) > 1 else kinds.pop()
        groups.setdefault(key, [])
        groups[key] += [s for s in m.streams if s not in groups[key]]
    for key, streams in groups.items():
        if len(streams) > 1:
            evaluate([str(run.ckpt(s)) for s in streams], run.data_root, "ucf101",
                     protocol="mars", fusion="logit-mean", flow_root=run.flow_root,
                     out=run.out / "eval" / ".prefill" / key, quiet=True,
                     cache_dir=run.out / "eval" / ".logits")


def evaluate_all(run: DemoRun, index: Any, classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every method's row: evaluated one after the other, then all timed together."""
    prefill_logits(run)
    rows = [evaluate_method(run, m, classes) for m in run.methods]
    test_videos = [r.path for r in index.split("test")][: max(1, run.cfg.timing_videos)]
    time_all(run, rows, test_videos)
    return rows
