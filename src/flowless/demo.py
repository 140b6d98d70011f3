"""The main job: reproduce the paper's comparison end to end on the embedded dataset.

``run_demo(DemoConfig(...))`` generates the motion x appearance dataset, extracts flow,
trains the RGB stream, the Flow stream (teacher), the MARS and the relation-distilled
("DS") students with one shared recipe, trains attention fusions, evaluates everything
under the MARS protocol, times each method end to end (decode + flow when needed +
network) and writes ``report.md`` with the table, curves and confusion matrices
(:mod:`flowless.demo_report`). Every number comes from the run.

Each stage is a function of a :class:`DemoRun` (the run's config, folders and stage clock);
:func:`run_demo` calls them in order.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowless.demo_config import DemoConfig
from flowless.demo_report import (
    check_claims,
    format_claims,
    format_factor_table,
    format_table,
    slug,
    write_report,
)
from flowless.io import writable_dir, write_json, write_text


@dataclass(frozen=True)
class Method:
    """One row of the table: streams (run names) and how they are fused."""

    name: str
    streams: tuple[str, ...]
    fusion: str | None = None  # None (single), "logit-mean" or a fusion run name


METHODS = (
    Method("RGB", ("rgb",)),
    Method("Flow", ("flow",)),
    Method("RGB+Flow (mean)", ("rgb", "flow"), "logit-mean"),
    Method("RGB+Flow (attention)", ("rgb", "flow"), "fusion_rgb_flow"),
    Method("RGB+Flow (flowless fusion)", ("rgb", "flow"), "fusion_rgb_flow_flowless"),
    Method("MARS", ("mars",)),
    Method("DS", ("ds",)),
    Method("RGB (2x epochs)", ("rgb_long",)),  # the student's schedule without a teacher
    Method("DS (2x epochs)", ("ds_long",)),  # the paper's DS on the student's schedule
    Method("flowless student", ("student",)),
    Method("DS+RGB (attention)", ("ds", "rgb"), "fusion_ds_rgb"),
    Method("DS+Flow (attention)", ("ds", "flow"), "fusion_ds_flow"),
)


@dataclass(frozen=True)
class StreamRun:
    """One trained network: run name, input (``rgb`` / ``flow``), teacher run, distillation."""

    name: str
    input: str
    teacher: str | None = None
    mode: str = "none"
    ensemble: tuple[str, ...] = ()  # more frozen runs in the KD target (student)
    epochs_scale: int = 1  # epochs = the recipe's epochs x this


# trained in this order (the students need the Flow teacher and the RGB stream)
STREAM_RUNS = (
    StreamRun("rgb", "rgb"),
    StreamRun("flow", "flow"),
    StreamRun("mars", "rgb", teacher="flow", mode="mars"),
    StreamRun("ds", "rgb", teacher="flow", mode="relation"),
    # the flowless student: its recipe includes a schedule twice as long (docs/distillation.md),
    # so the RGB stream trained as long is its control
    StreamRun("student", "rgb", teacher="flow", mode="student", ensemble=("rgb",),
              epochs_scale=2),
    StreamRun("rgb_long", "rgb", epochs_scale=2),
    # and the paper's DS trained as long: what the ensemble KD adds to the relation loss
    StreamRun("ds_long", "rgb", teacher="flow", mode="relation", epochs_scale=2),
)


@dataclass(frozen=True)
class FusionRun:
    """One trained fusion: the runs it fuses and the module (attention | weighted)."""

    streams: tuple[str, ...]
    kind: str = "attention"


FUSIONS = {"fusion_rgb_flow": FusionRun(("rgb", "flow")),
           "fusion_rgb_flow_flowless": FusionRun(("rgb", "flow"), "weighted"),
           "fusion_ds_rgb": FusionRun(("ds", "rgb")),
           "fusion_ds_flow": FusionRun(("ds", "flow"))}

BASELINE_STREAMS = {"rgb", "flow"}  # what a benchmark is calibrated with (never a student)
BEYOND_PAPER = {"fusion_rgb_flow_flowless"}  # flowless's own methods: not calibration rows
CONTROLS = {"ds_long"}  # trained only with DemoConfig.controls (about a minute more)

STAGE_DATA = "1/5 generate dataset"
STAGE_FLOW = "2/5 extract flow"
STAGE_TRAIN = "3/5 train streams, students and fusions"
STAGE_EVAL = "4/5 evaluate (MARS protocol) and time every method"
STAGE_REPORT = "5/5 write report"


class DemoRun:
    """One demo run's config, folders (``out/data``, ``out/flow``, ``out/runs``, ``out/eval``),
    printing and stage timings."""

    def __init__(self, cfg: DemoConfig, out: Path, quiet: bool | None):
        self.cfg = cfg
        self.out = out
        self.quiet = quiet
        self.data_root = out / "data"
        self.flow_root = out / "flow"
        self.runs = out / "runs"
        self.timings: dict[str, float] = {}
        self.t_start = time.perf_counter()

    def echo(self, msg: str) -> None:
        if self.quiet is not True:
            print(msg, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Announce a stage, and record its seconds in :attr:`timings` when it finishes."""
        self.echo(f"[demo] {name} ...")
        t0 = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t0
        self.echo(f"[demo] {name}: done in {time.perf_counter() - t0:.0f} s")

    def ckpt(self, name: str) -> Path:
        """The checkpoint of a stream or fusion run."""
        return self.runs / name / "last.pt"

    def is_done(self, name: str) -> bool:
        from flowless.engine.trainer import DONE

        return (self.runs / name / DONE).exists()

    def fusion_of(self, m: Method) -> str | None:
        """What evaluation takes as ``fusion``: a fusion checkpoint, a rule name or None."""
        if m.fusion in FUSIONS:
            return str(self.ckpt(m.fusion))
        return m.fusion

    def _trains(self, stream: str) -> bool:
        if self.cfg.baselines_only:
            return stream in BASELINE_STREAMS
        return self.cfg.controls or stream not in CONTROLS

    @property
    def methods(self) -> tuple[Method, ...]:
        """The table's rows: :data:`METHODS` without the controls (unless ``cfg.controls``),
        or the baselines when calibrating."""
        return tuple(m for m in METHODS if all(self._trains(s) for s in m.streams)
                     and not (self.cfg.baselines_only and m.fusion in BEYOND_PAPER))

    @property
    def stream_runs(self) -> tuple[StreamRun, ...]:
        return tuple(s for s in STREAM_RUNS if self._trains(s.name))

    @property
    def fusions(self) -> dict[str, FusionRun]:
        return {k: v for k, v in FUSIONS.items() if not self.cfg.baselines_only
                or (set(v.streams) <= BASELINE_STREAMS and k not in BEYOND_PAPER)}

    def eval_dir(self, m: Method) -> Path:
        return self.out / "eval" / slug(m.name)


def _train_config(cfg: DemoConfig, data_root: Path, flow_root: Path, stream: str, out: Path,
                  teacher: Path | None = None, mode: str = "none",
                  ensemble: tuple[Path, ...] = ()) -> Any:
    from flowless.config import DataConfig, DistillConfig, ModelConfig, OptimConfig, TrainConfig

    return TrainConfig(
        stream=stream, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
        out=str(out), device="auto", threads=cfg.threads, tensorboard=False,
        val_every=cfg.val_every,
        data=DataConfig(format="ucf101", root=str(data_root), flow_root=str(flow_root),
                        clip_len=cfg.clip_len, size=cfg.size, short_side=cfg.size,
                        flip=False,  # mirror images swap left/right and cw/ccw classes
                        cache_dir=str(_decoded_cache(data_root))),
        model=ModelConfig(arch=cfg.arch, width=cfg.width),
        optim=OptimConfig(name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                          schedule="cosine", warmup_epochs=1.0 if cfg.epochs > 3 else 0.0),
        # the paper's modes get the demo's alpha; the student its own recipe (distill/recipe.py)
        distill=DistillConfig(teacher=str(teacher) if teacher else None, mode=mode,
                              alpha=None if mode == "student" else cfg.alpha,
                              ensemble=[str(p) for p in ensemble]),
    )


def _fusion_config(cfg: DemoConfig, data_root: Path, flow_root: Path, streams: list[Path],
                   out: Path, kind: str = "attention") -> Any:
    from flowless.config import DataConfig, FusionConfig

    return FusionConfig(
        streams=[str(p) for p in streams], epochs=cfg.fusion_epochs, batch_size=16, lr=0.1,
        seed=cfg.seed, out=str(out), threads=cfg.threads, kind=kind,
        crossfit_dir=str(out.parent / "crossfit"),  # fold copies shared by the fusions
        data=DataConfig(format="ucf101", root=str(data_root), flow_root=str(flow_root),
                        clip_len=cfg.clip_len, size=cfg.size, short_side=cfg.size,
                        flip=False, cache_dir=str(_decoded_cache(data_root))),
    )


def _decoded_cache(data_root: Path) -> Path:
    """Where the demo's runs share their decoded videos (``out/cache``): decoded once by
    the first run that needs them, then read by every other run and process."""
    return data_root.parent / "cache"


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


# --- the stages, in the order run_demo calls them -------------------------------------------


def start_run(cfg: DemoConfig, quiet: bool | None) -> DemoRun:
    """Torch threads, the output folder and ``demo_config.json``; starts the run's clock."""
    import torch

    from flowless.checkpoint import versions

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    out = writable_dir(cfg.out)
    write_json(out / "demo_config.json", {**dataclasses.asdict(cfg), "versions": versions()})
    return DemoRun(cfg, out, quiet)


def generate_data(run: DemoRun) -> None:
    """Render the embedded dataset into ``out/data`` (existing videos are kept)."""
    from flowless.data.synth import make_synthetic_dataset

    cfg = run.cfg
    options: dict[str, Any] = {"context": cfg.context} if cfg.context else {}
    if cfg.test_per_class is not None:
        options["test_per_class"] = cfg.test_per_class
    make_synthetic_dataset(
        run.data_root, motions=cfg.motions, categories=cfg.categories,
        videos_per_class=cfg.videos_per_class, frames=cfg.frames, size=cfg.render_size,
        seed=cfg.seed, motion_scale=cfg.motion_scale, nuisance=cfg.nuisance,
        spin_scale=cfg.spin_scale, zoom_scale=cfg.zoom_scale, zoom_max=cfg.zoom_max,
        distractors=cfg.distractors,
        overwrite=False, quiet=run.quiet, **options)


def extract_flows(run: DemoRun, videos: list[tuple[str, Path]]) -> None:
    """Flow of every (key, path) video into ``out/flow``."""
    from flowless.flow import extract_flow

    cfg = run.cfg
    extract_flow(videos, run.flow_root, backend=cfg.flow_backend,
                 short_side=cfg.flow_short_side,
                 workers=cfg.workers or None, params=cfg.flow_params or None,
                 preset=cfg.flow_preset, quiet=run.quiet)


def train_stream(run: DemoRun, s: StreamRun) -> None:
    """Train one stream or student (a finished run is reused, a killed one resumed)."""
    from flowless.engine import train_once

    name = s.name
    if run.ckpt(name).exists() and run.is_done(name):
        run.echo(f"[demo]   {name}: already trained, reusing {run.ckpt(name)}")
        return
    tc = _train_config(run.cfg, run.data_root, run.flow_root, s.input, run.runs / name,
                       run.ckpt(s.teacher) if s.teacher else None, s.mode,
                       tuple(run.ckpt(e) for e in s.ensemble))
    tc.name = name
    tc.epochs *= s.epochs_scale
    train_once(tc, quiet=run.quiet)


def train_fusion_run(run: DemoRun, name: str, fusion: FusionRun) -> None:
    """Train one fusion of trained streams (a finished one is reused)."""
    from flowless.engine import train_fusion
    from flowless.engine.trainer import DONE

    if run.is_done(name):
        return
    train_fusion(_fusion_config(run.cfg, run.data_root, run.flow_root,
                                [run.ckpt(s) for s in fusion.streams], run.runs / name,
                                fusion.kind), quiet=run.quiet)
    write_text(run.runs / name / DONE, "")


def train_all(run: DemoRun) -> None:
    """The streams and students (in :data:`STREAM_RUNS` order), then the fusions; with
    several jobs, side by side in processes (:mod:`flowless.demo_jobs`)."""
    from flowless.demo_jobs import job_count, train_parallel

    jobs, threads = job_count(run.cfg.jobs, run.cfg.threads)
    if jobs > 1:
        train_parallel(run, jobs, threads)
        return
    for s in run.stream_runs:
        train_stream(run, s)
    for name, fusion in run.fusions.items():
        train_fusion_run(run, name, fusion)


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


def build_summary(run: DemoRun, rows: list[dict[str, Any]], index: Any) -> dict[str, Any]:
    """What ``summary.json`` holds. ``stage_seconds`` is the run's own timings dict, so the
    report stage, timed after this, still lands in ``summary.json`` (not in the report)."""
    from flowless.checkpoint import versions

    return {
        "config": dataclasses.asdict(run.cfg),
        "rows": rows,
        "claims": check_claims(rows),
        "stage_seconds": run.timings,
        "total_seconds": time.perf_counter() - run.t_start,
        "test_videos": len(index.split("test")),
        "train_videos": len(index.split("train")),
        "classes": index.classes,
        "versions": versions(),
        "checkpoints": {s.name: str(run.ckpt(s.name)) for s in run.stream_runs}
        | {name: str(run.ckpt(name)) for name in run.fusions},
    }


def print_summary(run: DemoRun, summary: dict[str, Any]) -> None:
    """The tables and claims on stdout (unless quiet)."""
    run.echo("")
    run.echo(format_table(summary["rows"]))
    run.echo("")
    if run.cfg.categories > 1:
        run.echo(format_factor_table(summary["rows"]))
    run.echo("")
    run.echo(format_claims(summary["claims"]))
    run.echo(f"\nreport: {run.out / 'report.md'}  (total {summary['total_seconds']:.0f} s)")


def run_demo(cfg: DemoConfig, *, quiet: bool | None = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also written to ``out/summary.json``).

    ``quiet=True`` prints nothing; ``None`` prints stage lines and shows progress bars only
    on a terminal.
    """
    from flowless.data.annotations import load_index

    run = start_run(cfg, quiet)
    with run.stage(STAGE_DATA):
        generate_data(run)
    index = load_index(run.data_root, "ucf101")
    classes = json.loads((run.data_root / "synth.json").read_text())["classes"]
    with run.stage(STAGE_FLOW):
        extract_flows(run, [(r.key, r.path) for r in index.records])
    with run.stage(STAGE_TRAIN):
        train_all(run)
    with run.stage(STAGE_EVAL):
        rows = evaluate_all(run, index, classes)
    summary = build_summary(run, rows, index)
    with run.stage(STAGE_REPORT):
        write_report(run.out, summary, run.runs)
    write_json(run.out / "summary.json", summary)
    print_summary(run, summary)
    return summary


def run_seeds(cfg: DemoConfig, seeds: list[int], *, quiet: bool | None = None
              ) -> dict[str, Any]:
    """Run the demo once per seed (``<out>/seed_<S>``, each resumable) and aggregate: per
    method top-1 over seeds, per claim mean, sd, sign count and the interval across seeds.
    Writes ``<out>/seeds.md`` and ``<out>/seeds.json``; returns the aggregate."""
    from flowless.demo_report import format_seeds, seeds_summary

    if not seeds:
        from flowless.errors import ConfigError

        raise ConfigError("--seeds: give at least one seed, e.g. 0-4 or 0,1,2")
    out = writable_dir(Path(cfg.out))
    summaries = [run_demo(dataclasses.replace(cfg, seed=s, out=str(out / f"seed_{s}")),
                          quiet=quiet) for s in seeds]
    agg = seeds_summary(summaries)
    text = format_seeds(agg)
    write_text(out / "seeds.md", f"# flowless demo over seeds {', '.join(map(str, seeds))}\n\n"
               f"{text}\n")
    write_json(out / "seeds.json", agg)
    if quiet is not True:
        print(f"\n{text}\n\nseeds report: {out / 'seeds.md'}", flush=True)
    return agg
