"""Evaluate trained streams (and their fusion) on a dataset split: video-level top-1, top-5,
mean class accuracy, per-video predictions, per-class accuracy and a confusion matrix.

Each video is decoded once; every stream's clip logits are averaged over the video, then
fused (docs/method.md §4-5). A video that cannot be read (or has no flow in the store)
is reported and skipped. Per-video results are appended to ``<out>/.partial.jsonl`` as
they come, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowless.errors import CheckpointError, ConfigError, FlowError, VideoError
from flowless.eval import report
from flowless.eval.inference import PROTOCOLS, StageTimes, score_video
from flowless.eval.metrics import summarize
from flowless.eval.scoring import FUSION_RULES, AttentionRule, fuse, softmax
from flowless.eval.streams import DEFAULT_FAST, Stream, load_streams
from flowless.io import append_jsonl, writable_dir, write_json
from flowless.progress import progress

PARTIAL = ".partial.jsonl"


def label_map(dataset_classes: Sequence[str], model_classes: Sequence[str], source: str) -> np.ndarray:
    """Map dataset label indices to the model's class indices (by name)."""
    if list(dataset_classes) == list(model_classes):
        return np.arange(len(model_classes))
    position = {c: i for i, c in enumerate(model_classes)}
    missing = [c for c in dataset_classes if c not in position]
    if missing:
        raise CheckpointError(
            f"{source}: the checkpoint's {len(model_classes)} classes do not cover the dataset's "
            f"{len(dataset_classes)} (e.g. {missing[0]!r} is unknown to it); evaluate on the "
            "dataset it was trained on"
        )
    return np.array([position[c] for c in dataset_classes])


def _fingerprint(streams: Sequence[Stream], **settings: Any) -> dict[str, Any]:
    files = []
    for s in streams:
        st = Path(s.source).stat()
        files.append([str(Path(s.source).resolve()), st.st_size, st.st_mtime_ns])
    return {"fingerprint": {"checkpoints": files, **{k: str(v) for k, v in settings.items()}}}


class LogitsCache:
    """One stream's video-level logits (and clip counts) on disk, keyed by video.

    Evaluating several fusions of the same streams (the demo's rows, a sweep of fusion
    rules) then runs each network once per video. The file name is a hash of everything
    the logits depend on: the checkpoint (path, size, mtime), the stream's name, whether
    its clips are aligned with a stream of the other input (RGB beside flow uses the flow
    fields' frames) and the evaluation settings. Videos that failed are not cached.
    """

    def __init__(self, folder: Path, stream: Stream, aligned: bool, **settings: Any):
        import hashlib

        ident = json.dumps(_fingerprint([stream], stream=stream.name, aligned=aligned,
                                        **settings), sort_keys=True)
        self.path = folder / f"{hashlib.sha1(ident.encode()).hexdigest()[:20]}.jsonl"
        self.entries: dict[str, tuple[list[float], int]] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        row = json.loads(line)
                        self.entries[row["key"]] = (row["logits"], int(row["clips"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line of a killed run

    def get(self, key: str) -> tuple[list[float], int] | None:
        return self.entries.get(key)

    def put(self, key: str, logits: list[float], clips: int) -> None:
        self.entries[key] = (logits, clips)
        append_jsonl(self.path, {"key": key, "logits": logits, "clips": clips})


def _score(record: Any, streams: list[Stream], caches: list[LogitsCache] | None,
           **options: Any) -> dict[str, Any]:
    """One video's entry: each stream's logits and clip count, from the caches when there
    and by running the missing streams (together, so their clips stay aligned)."""
    got = [c.get(record.key) for c in caches] if caches else [None] * len(streams)
    missing = [i for i, g in enumerate(got) if g is None]
    if missing:
        scores = score_video(record.path, [streams[i] for i in missing], key=record.key,
                             **options)
        for i, z, n in zip(missing, scores.logits, scores.clips):
            got[i] = (z.tolist(), int(n))
            if caches:
                caches[i].put(record.key, got[i][0], got[i][1])
    return {"key": record.key, "logits": {s.name: g[0] for s, g in zip(streams, got)},
            "clips": {s.name: g[1] for s, g in zip(streams, got)}}


def _load_partial(path: Path, fingerprint: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-video results of an interrupted run with the same settings (else start afresh)."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    try:
        if not lines or json.loads(lines[0]) != fingerprint:
            return {}
    except json.JSONDecodeError:
        return {}
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill: redo that video
            continue
        done[entry["key"]] = entry
    return done


def _clean(obj: Any) -> Any:
    """NaN -> None, numpy -> Python, so the summary is strict JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _metrics(scores: np.ndarray, labels: np.ndarray, k: int) -> dict[str, Any]:
    s = summarize(scores, labels, k) if len(labels) else {
        "top1": math.nan, "top5": math.nan, "mean_class_acc": math.nan,
        "confusion": np.zeros((k, k), np.int64)}
    return {"top1": s["top1"], "top5": s["top5"], "mean_class_acc": s["mean_class_acc"],
            "confusion": s["confusion"]}


def evaluate(
    checkpoints: Sequence[str | Path],
    dataset: str | Path,
    fmt: str = "ucf101",
    *,
    split: int = 1,
    annotations: str | Path | None = None,
    subset: str = "test",
    protocol: str = "mars",
    fusion: str | None = None,
    flow_root: str | Path | None = None,
    flow_backend: str | None = None,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    batch_size: int = 8,
    limit: int | None = None,
    quiet: bool | None = None,
    fast: str = DEFAULT_FAST,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate checkpoints on ``subset`` of a dataset; returns the summary dict.

    Writes ``predictions.jsonl``, ``per_class.csv``, ``confusion.csv``, ``confusion.png``
    and ``metrics.json`` to ``out`` (default: ``eval-<subset>-<protocol>`` next to the
    first checkpoint) and the summary to ``json_path`` when given. ``fast``: how the
    PyTorch streams run (:data:`~flowless.eval.streams.FAST_MODES`); unless ``off``
    freed memory is kept for reuse (:func:`~flowless.models.fast.reuse_freed_memory`).
    ``cache_dir``: keep each stream's per-video logits there (:class:`LogitsCache`) and
    reuse them, so evaluating other fusions of the same streams runs no network again.
    """
    import torch

    from flowless.data.annotations import load_index
    from flowless.models.fast import reuse_freed_memory

    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose mars or 10x3")
    torch.set_flush_denormal(True)
    if fast != "off":
        reuse_freed_memory()
    streams, rule = load_streams(checkpoints, fusion, fast=fast)
    index = load_index(Path(dataset), fmt, split=split,
                       annotations=Path(annotations) if annotations else None)
    records = list(index.split(subset))[: limit if limit else None]
    if not records:
        raise ConfigError(f"{dataset}: no videos in subset {subset!r} of split {split}; "
                          "check --subset/--split")
    classes = streams[0].classes
    to_model = label_map(index.classes, classes, streams[0].source)
    out = writable_dir(Path(out) if out else
                       Path(checkpoints[0]).parent / f"eval-{subset}-{protocol}")
    if json_path:
        writable_dir(Path(json_path).parent)
    partial = out / PARTIAL
    fingerprint = _fingerprint(streams, dataset=Path(dataset).resolve(), fmt=fmt, split=split,
                               subset=subset, protocol=protocol, flow_root=flow_root,
                               flow_backend=flow_backend, annotations=annotations)
    done = _load_partial(partial, fingerprint)
    if not done:
        write_json_line(partial, fingerprint)

    times = StageTimes()
    caches = None
    if cache_dir is not None:
        aligned = len({s.input for s in streams}) > 1
        caches = [LogitsCache(writable_dir(Path(cache_dir)), s, aligned,
                              dataset=Path(dataset).resolve(), fmt=fmt, split=split,
                              annotations=annotations, protocol=protocol, flow_root=flow_root,
                              flow_backend=flow_backend, batch_size=batch_size, fast=fast)
                  for s in streams]
    t0 = time.perf_counter()
    scored = 0  # videos processed in this run (a resumed run skips the others)
    bar = progress(records, desc="evaluate", unit="video", quiet=quiet)
    for record in bar:
        if record.key in done:
            continue
        scored += 1
        try:
            entry = _score(record, streams, caches, protocol=protocol, batch_size=batch_size,
                           flow_root=flow_root, flow_backend=flow_backend, times=times)
        except (VideoError, FlowError) as exc:
            entry = {"key": record.key, "error": str(exc)}
            if not bar.disable:
                bar.write(f"skipped {record.key}: {exc}")
        append_jsonl(partial, entry)
        done[record.key] = entry
    seconds = time.perf_counter() - t0

    return _finish(records, done, streams, rule, to_model, classes, out, json_path,
                   partial=partial, seconds=seconds, scored=scored, times=times,
                   meta={"dataset": str(dataset), "format": fmt, "split": split,
                         "subset": subset, "protocol": protocol,
                         "flow": str(flow_root) if flow_root else "on the fly"})


def write_json_line(path: Path, obj: dict[str, Any]) -> None:
    path.unlink(missing_ok=True)
    append_jsonl(path, obj)


def _finish(records, done, streams: list[Stream], rule, to_model, classes, out: Path,
            json_path, *, partial: Path, seconds: float, scored: int, times: StageTimes,
            meta: dict[str, Any]) -> dict[str, Any]:
    k = len(classes)
    ok = [r for r in records if "logits" in done[r.key]]
    skipped = [{"key": r.key, "path": str(r.path), "error": done[r.key]["error"]}
               for r in records if "error" in done[r.key]]
    labels = np.array([to_model[r.label] if r.label >= 0 else -1 for r in ok], dtype=np.int64)
    logits = {s.name: np.array([done[r.key]["logits"][s.name] for r in ok]).reshape(len(ok), k)
              for s in streams}
    results: dict[str, dict[str, Any]] = {}
    probs: dict[str, np.ndarray] = {}
    for s in streams:
        probs[s.name] = softmax(logits[s.name])
        results[s.name] = _metrics(logits[s.name], labels, k)
    fused_results: dict[str, dict[str, Any]] = {}
    weights = None
    if len(streams) > 1:
        stack = [logits[s.name] for s in streams]
        for name in FUSION_RULES:
            p = fuse(stack, name)
            fused_results[name] = _metrics(p, labels, k)
            probs[name] = p
        if isinstance(rule, AttentionRule):
            p = rule(stack) if len(ok) else np.zeros((0, k))
            fused_results[rule.name] = _metrics(p, labels, k)
            probs[rule.name] = p
            if rule.last_weights is not None and rule.last_weights.ndim == 2:
                weights = dict(zip([s.name for s in streams], rule.last_weights.mean(0)))
    main = (rule.name if isinstance(rule, AttentionRule) else rule) if len(streams) > 1 \
        else streams[0].name
    final = fused_results.get(main) or results[main]

    lines = [report.prediction_line(r.key, int(lab), classes, probs[main][i],
                                    {s.name: probs[s.name][i] for s in streams})
             for i, (r, lab) in enumerate(zip(ok, labels))]
    report.write_predictions(out / "predictions.jsonl", lines)
    confusions = {name: res["confusion"] for name, res in {**results, **fused_results}.items()}
    report.write_per_class(out / "per_class.csv", classes, confusions)
    report.write_confusion_csv(out / "confusion.csv", classes, final["confusion"])
    report.plot_confusion(out / "confusion.png", classes, final["confusion"],
                          f"{main}: top-1 {_pct(final['top1'])} on {len(ok)} videos")
    per_class = [{"class": c, "videos": int(final["confusion"][i].sum()),
                  "accuracy": (final["confusion"][i, i] / final["confusion"][i].sum())
                  if final["confusion"][i].sum() else None} for i, c in enumerate(classes)]

    def strip(res: dict[str, Any]) -> dict[str, Any]:
        return {key: v for key, v in res.items() if key != "confusion"}

    summary = {
        **meta,
        "videos": len(records), "evaluated": len(ok), "skipped": skipped, "classes": k,
        "result": main,
        "top1": final["top1"], "top5": final["top5"], "mean_class_acc": final["mean_class_acc"],
        "streams": [{**s.describe(), **strip(results[s.name]),
                     "clips": int(sum(done[r.key]["clips"][s.name] for r in ok))}
                    for s in streams],
        "fusion": {"rule": main, **strip(fused_results[main])} if fused_results else None,
        "fusion_rules": {n: strip(v) for n, v in fused_results.items()},
        "attention_weights": weights,
        "per_class": per_class,
        "seconds": seconds,
        "videos_per_s": (scored / seconds) if seconds > 0 and scored else None,
        "stage_seconds": times.seconds,
        "outputs": {name: str(out / name) for name in
                    ("predictions.jsonl", "per_class.csv", "confusion.csv", "confusion.png",
                     "metrics.json")},
    }
    summary = _clean(summary)
    write_json(out / "metrics.json", summary)
    if json_path:
        write_json(json_path, summary)
    partial.unlink(missing_ok=True)
    return summary


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"
