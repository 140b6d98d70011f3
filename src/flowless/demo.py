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
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowless.demo_config import (  # noqa: F401  (METHODS and the rest: the demo's public names)
    BASELINE_STREAMS,
    BEYOND_PAPER,
    CONTROLS,
    FUSIONS,
    METHODS,
    STREAM_RUNS,
    DemoConfig,
    FusionRun,
    Method,
    StreamRun,
)
from flowless.demo_eval import evaluate_all, factor_accuracy  # noqa: F401
from flowless.demo_report import (
    check_claims,
    format_claims,
    format_factor_table,
    format_table,
    slug,
    write_report,
)
from flowless.io import writable_dir, write_json, write_text

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

    def _includes(self, streams: tuple[str, ...], fusion: str | None) -> bool:
        """Whether a row or a fusion run over ``streams`` (fused by ``fusion``) is part of
        this run: its streams are trained, and flowless's own fusion is no calibration row."""
        return all(self._trains(s) for s in streams) and not (
            self.cfg.baselines_only and fusion in BEYOND_PAPER)

    @property
    def methods(self) -> tuple[Method, ...]:
        """The table's rows: :data:`METHODS` without the controls (unless ``cfg.controls``),
        or the baselines when calibrating."""
        return tuple(m for m in METHODS if self._includes(m.streams, m.fusion))

    @property
    def stream_runs(self) -> tuple[StreamRun, ...]:
        return tuple(s for s in STREAM_RUNS if self._trains(s.name))

    @property
    def fusions(self) -> dict[str, FusionRun]:
        return {k: v for k, v in FUSIONS.items() if self._includes(v.streams, k)}

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


def synth_config(cfg: DemoConfig) -> Any:
    """The :class:`~flowless.data.synth.SynthConfig` of the demo's dataset."""
    from flowless.data.synth import SynthConfig

    return SynthConfig(
        motions=cfg.motions, categories=cfg.categories, videos_per_class=cfg.videos_per_class,
        test_per_class=cfg.test_per_class, frames=cfg.frames, size=cfg.render_size,
        seed=cfg.seed, motion_scale=cfg.motion_scale, nuisance=cfg.nuisance,
        spin_scale=cfg.spin_scale, zoom_scale=cfg.zoom_scale, zoom_max=cfg.zoom_max,
        distractors=cfg.distractors, context=cfg.context)


def check_config(cfg: DemoConfig) -> None:
    """Raise the one-line ConfigError of a bad dataset or training setting before any
    folder is made or any work is done."""
    from flowless.config import validate

    synth_config(cfg).validate()
    out = Path(cfg.out)
    validate(_train_config(cfg, out / "data", out / "flow", "rgb", out / "runs" / "rgb"))


def generate_data(run: DemoRun) -> None:
    """Render the embedded dataset into ``out/data`` (existing videos are kept)."""
    from flowless.data.synth import generate

    generate(run.data_root, synth_config(run.cfg), quiet=run.quiet)


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

    check_config(cfg)
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
