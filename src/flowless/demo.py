"""The main job: reproduce the paper's comparison end to end on the embedded dataset.

``run_demo(DemoConfig(...))`` generates the motion x appearance dataset, extracts flow,
trains the RGB stream, the Flow stream (teacher), the MARS and the relation-distilled
("DS") students with one shared recipe, trains attention fusions, evaluates everything
under the MARS protocol, times each method end to end (decode + flow when needed +
network) and writes ``report.md`` with the table, curves and confusion matrices.
Every number comes from the run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowless.io import atomic_path, writable_dir, write_json, write_text


@dataclass
class DemoConfig:
    """Everything the demo does; defaults are the README's main job (about 5 min, 2 cores)."""

    out: str = "runs/demo"
    seed: int = 0
    quick: bool = False
    # dataset (flowless synth)
    motions: int = 5
    categories: int = 2
    videos_per_class: int = 48
    frames: int = 17
    render_size: int = 64
    # objects move 1.6x the synth default (chosen once, seed 0, with RGB and Flow streams only:
    # at 1.0 camera jitter and background drift drown the object's flow at 64 px)
    motion_scale: float = 1.6
    # flow (flowless flow): TV-L1 as in the paper, on the rendered frames; the "fast" preset
    # (3 warps, epsilon 0.05) is ~5x cheaper than OpenCV's defaults at ~the same error
    flow_backend: str = "tvl1"
    flow_preset: str | None = "fast"
    flow_short_side: int = 64
    flow_params: dict[str, Any] = field(default_factory=dict)
    workers: int = 0  # flow processes (0: all cores)
    # networks and the one recipe every stream and student gets
    arch: str = "resnet10"
    width: float = 0.25
    clip_len: int = 16
    size: int = 32
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    alpha: float = 50.0  # the paper's default for both MARS and relation
    fusion_epochs: int = 30
    timing_videos: int = 20  # test videos timed end to end per method (median reported)
    threads: int = 0  # torch threads (0: all cores)

    @classmethod
    def quick_preset(cls, **overrides: Any) -> DemoConfig:
        """Seconds-scale data and epochs, for tests and a smoke run."""
        base = dict(quick=True, motions=2, categories=2, videos_per_class=6, frames=9,
                    render_size=32, flow_backend="farneback", flow_preset=None,
                    flow_short_side=32,
                    clip_len=8, size=32, epochs=2, batch_size=8, fusion_epochs=3,
                    timing_videos=2, arch="resnet10", width=0.125)
        base.update(overrides)
        return cls(**base)


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
    Method("MARS", ("mars",)),
    Method("DS", ("ds",)),
    Method("DS+RGB (attention)", ("ds", "rgb"), "fusion_ds_rgb"),
    Method("DS+Flow (attention)", ("ds", "flow"), "fusion_ds_flow"),
)
FUSIONS = {"fusion_rgb_flow": ("rgb", "flow"), "fusion_ds_rgb": ("ds", "rgb"),
           "fusion_ds_flow": ("ds", "flow")}


def _train_config(cfg: DemoConfig, data_root: Path, flow_root: Path, stream: str, out: Path,
                  teacher: Path | None = None, mode: str = "none") -> Any:
    from flowless.config import DataConfig, DistillConfig, ModelConfig, OptimConfig, TrainConfig

    return TrainConfig(
        stream=stream, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
        out=str(out), device="auto", threads=cfg.threads, tensorboard=False,
        data=DataConfig(format="ucf101", root=str(data_root), flow_root=str(flow_root),
                        clip_len=cfg.clip_len, size=cfg.size, short_side=cfg.size,
                        flip=False),  # mirror images swap left/right and cw/ccw classes
        model=ModelConfig(arch=cfg.arch, width=cfg.width),
        optim=OptimConfig(name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay,
                          schedule="cosine", warmup_epochs=1.0 if cfg.epochs > 3 else 0.0),
        distill=DistillConfig(teacher=str(teacher) if teacher else None, mode=mode,
                              alpha=cfg.alpha),
    )


def _fusion_config(cfg: DemoConfig, data_root: Path, flow_root: Path, streams: list[Path],
                   out: Path) -> Any:
    from flowless.config import DataConfig, FusionConfig

    return FusionConfig(
        streams=[str(p) for p in streams], epochs=cfg.fusion_epochs, batch_size=16, lr=0.1,
        seed=cfg.seed, out=str(out), threads=cfg.threads,
        data=DataConfig(format="ucf101", root=str(data_root), flow_root=str(flow_root),
                        clip_len=cfg.clip_len, size=cfg.size, short_side=cfg.size,
                        flip=False),
    )


def _params(paths: list[Path]) -> int:
    from flowless.checkpoint import load_checkpoint

    total = 0
    for path in paths:
        state = load_checkpoint(path)["model"]
        total += sum(int(t.numel()) for k, t in state.items()
                     if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    return total


def _time_methods(methods: list[tuple[list[Path], str | None]], videos: list[Path]) -> list[float]:
    """Median end-to-end milliseconds per video for each (checkpoints, fusion) method:
    decode + flow on the fly (if any) + networks.

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
    return [1000.0 * statistics.median(t) for t in times]  # the median resists stray hiccups


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


def _stage(echo: Callable[[str], None], name: str) -> Callable[[], None]:
    echo(f"[demo] {name} ...")
    t0 = time.perf_counter()
    return lambda: echo(f"[demo] {name}: done in {time.perf_counter() - t0:.0f} s")


def run_demo(cfg: DemoConfig, *, quiet: bool | None = None) -> dict[str, Any]:
    """Run the whole pipeline; returns the summary (also written to ``out/summary.json``).

    ``quiet=True`` prints nothing; ``None`` prints stage lines and shows progress bars only
    on a terminal.
    """
    import torch

    from flowless.checkpoint import versions
    from flowless.data.annotations import load_index
    from flowless.data.synth import make_synthetic_dataset
    from flowless.engine import train, train_fusion
    from flowless.eval.runner import evaluate
    from flowless.flow import extract_flow

    echo = (lambda msg: None) if quiet is True else (lambda msg: print(msg, flush=True))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)
    out = writable_dir(cfg.out)
    write_json(out / "demo_config.json", {**dataclasses.asdict(cfg), "versions": versions()})
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        done = _stage(echo, name)
        t0 = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - t0
        done()
        return result

    data_root = out / "data"
    flow_root = out / "flow"
    runs = out / "runs"
    timed("1/5 generate dataset", lambda: make_synthetic_dataset(
        data_root, motions=cfg.motions, categories=cfg.categories,
        videos_per_class=cfg.videos_per_class, frames=cfg.frames, size=cfg.render_size,
        seed=cfg.seed, motion_scale=cfg.motion_scale, overwrite=False, quiet=quiet))
    index = load_index(data_root, "ucf101")
    synth_classes = json.loads((data_root / "synth.json").read_text())["classes"]
    videos = [(r.key, r.path) for r in index.records]

    def flow() -> Any:
        summary = extract_flow(videos, flow_root, backend=cfg.flow_backend,
                               short_side=cfg.flow_short_side,
                               workers=cfg.workers or None, params=cfg.flow_params or None,
                               preset=cfg.flow_preset, quiet=quiet)
        return summary

    timed("2/5 extract flow", flow)

    def ckpt(name: str) -> Path:
        return runs / name / "last.pt"

    def train_stream(name: str, stream: str, teacher: str | None = None,
                     mode: str = "none") -> None:
        if ckpt(name).exists() and (runs / name / "done").exists():
            echo(f"[demo]   {name}: already trained, reusing {ckpt(name)}")
            return
        tc = _train_config(cfg, data_root, flow_root, stream, runs / name,
                           ckpt(teacher) if teacher else None, mode)
        tc.name = name
        last = runs / name / "last.pt"
        if last.exists():
            tc.resume = str(runs / name)
        train(tc, quiet=quiet)
        write_text(runs / name / "done", "")

    def stage3() -> None:
        train_stream("rgb", "rgb")
        train_stream("flow", "flow")
        train_stream("mars", "rgb", teacher="flow", mode="mars")
        train_stream("ds", "rgb", teacher="flow", mode="relation")
        for name, pair in FUSIONS.items():
            if (runs / name / "done").exists():
                continue
            train_fusion(_fusion_config(cfg, data_root, flow_root, [ckpt(s) for s in pair],
                                        runs / name), quiet=quiet)
            write_text(runs / name / "done", "")

    timed("3/5 train streams, students and fusions", stage3)

    def fusion_of(m: Method) -> str | None:
        if m.fusion in FUSIONS:
            return str(runs / m.fusion / "last.pt")
        return m.fusion

    def stage4() -> list[dict[str, Any]]:
        rows = []
        for m in METHODS:
            paths = [ckpt(s) for s in m.streams]
            fusion = fusion_of(m)
            res = evaluate([str(p) for p in paths], data_root, "ucf101", protocol="mars",
                           fusion=fusion, flow_root=flow_root,
                           out=out / "eval" / _slug(m.name), quiet=True)
            fusion_params = _params([Path(fusion)]) if m.fusion in FUSIONS else 0
            factors = factor_accuracy(out / "eval" / _slug(m.name), synth_classes)
            rows.append({
                "method": m.name, "needs_flow": "flow" in m.streams,
                "top1": res["top1"], "top5": res["top5"],
                "mean_class_acc": res["mean_class_acc"],
                "motion_acc": factors.get("motion"), "category_acc": factors.get("category"),
                "params": _params(paths) + fusion_params,
                "attention_weights": res.get("attention_weights"),
                "eval_dir": str(out / "eval" / _slug(m.name)),
            })
        test_videos = [r.path for r in index.split("test")][: max(1, cfg.timing_videos)]
        ms = _time_methods([([ckpt(s) for s in m.streams], fusion_of(m)) for m in METHODS],
                           test_videos)
        for row, t in zip(rows, ms):
            row["ms_per_video"] = t
        return rows

    rows = timed("4/5 evaluate (MARS protocol) and time every method", stage4)
    summary = {
        "config": dataclasses.asdict(cfg),
        "rows": rows,
        "claims": check_claims(rows),
        "stage_seconds": timings,
        "total_seconds": time.perf_counter() - t_start,
        "test_videos": len(index.split("test")),
        "train_videos": len(index.split("train")),
        "classes": index.classes,
        "versions": versions(),
        "checkpoints": {name: str(ckpt(name)) for name in ("rgb", "flow", "mars", "ds")}
        | {name: str(runs / name / "last.pt") for name in FUSIONS},
    }
    timed("5/5 write report", lambda: write_report(out, summary, runs))
    write_json(out / "summary.json", summary)
    echo("")
    echo(format_table(rows))
    echo("")
    echo(format_factor_table(rows))
    echo("")
    echo(format_claims(summary["claims"]))
    echo(f"\nreport: {out / 'report.md'}  (total {summary['total_seconds']:.0f} s)")
    return summary


def _slug(name: str) -> str:
    return "".join(c.lower() if c.isalnum() else "_" for c in name).strip("_").replace("__", "_")


def format_table(rows: list[dict[str, Any]]) -> str:
    """The demo's table as Markdown."""
    lines = ["| method | needs flow at test time | video top-1 (%) | parameters | "
             "end-to-end ms / video |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {'yes' if r['needs_flow'] else 'no'} | "
                     f"{100 * r['top1']:.1f} | {r['params']:,} | {r['ms_per_video']:.1f} |")
    return "\n".join(lines)


def format_factor_table(rows: list[dict[str, Any]]) -> str:
    """Which half of the label each method gets right, as Markdown: the share of test videos
    whose predicted class has the right motion, and the right category (colour family)."""
    lines = ["| method | video top-1 (%) | motion right (%) | category right (%) |",
             "|---|---:|---:|---:|"]
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}"

    for r in rows:
        lines.append(f"| {r['method']} | {pct(r['top1'])} | {pct(r.get('motion_acc'))} | "
                     f"{pct(r.get('category_acc'))} |")
    return "\n".join(lines)


def check_claims(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claims, checked on this run's rows: each with ``held``, its figures and
    ``value`` (the number compared: points of top-1 difference, the smaller fusion gain in
    points, or the speed ratio).

    - DS beats RGB, and DS beats MARS (video top-1);
    - fusion exploits both streams: RGB+Flow (attention) at least 10 points above RGB alone
      and above Flow alone;
    - the RGB-only rows are at least 10x faster than the rows that need flow (slowest
      RGB-only row against the fastest row that needs flow).
    """
    by = {r["method"]: r for r in rows}
    top = {m: 100 * r["top1"] for m, r in by.items()}
    out = []
    for a, b in (("DS", "RGB"), ("DS", "MARS")):
        if a in top and b in top:
            out.append({"claim": f"{a} beats {b}", "held": top[a] > top[b],
                        "value": top[a] - top[b],
                        "figures": f"{top[a]:.1f} vs {top[b]:.1f} ({top[a] - top[b]:+.1f})"})
    fused = "RGB+Flow (attention)"
    if all(m in top for m in (fused, "RGB", "Flow")):
        gains = (top[fused] - top["RGB"], top[fused] - top["Flow"])
        out.append({"claim": "fusion exploits both streams (attention >= 10 points above each)",
                    "held": min(gains) >= 10.0, "value": min(gains),
                    "figures": f"{top[fused]:.1f}: {gains[0]:+.1f} over RGB, "
                               f"{gains[1]:+.1f} over Flow"})
    rgb_only = [r for r in rows if not r["needs_flow"]]
    with_flow = [r for r in rows if r["needs_flow"]]
    if rgb_only and with_flow:
        slow = max(rgb_only, key=lambda r: r["ms_per_video"])
        fast = min(with_flow, key=lambda r: r["ms_per_video"])
        ratio = fast["ms_per_video"] / slow["ms_per_video"]
        out.append({"claim": "RGB-only rows at least 10x faster than rows that need flow",
                    "held": ratio >= 10.0, "value": ratio,
                    "figures": f"{ratio:.1f}x ({slow['method']} {slow['ms_per_video']:.1f} ms "
                               f"vs {fast['method']} {fast['ms_per_video']:.1f} ms)"})
    return out


def format_claims(claims: list[dict[str, Any]]) -> str:
    """The claims as Markdown list lines."""
    return "\n".join(f"- {c['claim']}: **{'held' if c['held'] else 'did not hold'}** "
                     f"({c['figures']})" for c in claims)


def plot_curves(runs: Path, names: list[str], path: Path) -> None:
    """Training loss and validation clip accuracy per epoch for each run (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flowless.engine import read_metrics

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in names:
        metrics_file = runs / name / "metrics.jsonl"
        if not metrics_file.exists():
            continue
        recs = [r for r in read_metrics(metrics_file) if "epoch" in r]
        epochs = [r["epoch"] for r in recs]
        axes[0].plot(epochs, [r.get("train_ce", r.get("train_loss")) for r in recs], marker="o",
                     label=name)
        val = [(r["epoch"], r.get("val_acc")) for r in recs if r.get("val_acc") is not None]
        if val:
            axes[1].plot(*zip(*val), marker="o", label=name)
    axes[0].set(title="training cross-entropy", xlabel="epoch")
    axes[1].set(title="validation clip accuracy", xlabel="epoch", ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_report(out: Path, summary: dict[str, Any], runs: Path) -> Path:
    """Write ``report.md`` with the table, curves, confusion matrices and checkpoints."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    plot_curves(runs, ["rgb", "flow", "mars", "ds"], figures / "curves.png")
    conf_lines = []
    for r in summary["rows"]:
        src = Path(r["eval_dir"]) / "confusion.png"
        if src.exists():
            dst = figures / f"confusion_{_slug(r['method'])}.png"
            shutil.copyfile(src, dst)
            conf_lines.append(f"### {r['method']}\n\n![{r['method']}](figures/{dst.name})\n")
    cfg = summary["config"]
    weights = [f"- {r['method']}: " + ", ".join(f"{k} {v:.3f}" for k, v in
                                                r["attention_weights"].items())
               for r in summary["rows"] if r.get("attention_weights")]
    ck = summary["checkpoints"]
    text = f"""# flowless demo report

Embedded dataset: {cfg['motions']} motions x {cfg['categories']} categories =
{len(summary['classes'])} classes, {summary['train_videos']} training and
{summary['test_videos']} test videos ({cfg['frames']} frames, rendered at {cfg['render_size']} px, motion
scale {cfg['motion_scale']}),
seed {cfg['seed']}. Flow: {cfg['flow_backend']} (preset {cfg['flow_preset'] or 'default'}) at short side
{cfg['flow_short_side']} px.
Networks: {cfg['arch']} width {cfg['width']}, clips {cfg['clip_len']}x{cfg['size']}x{cfg['size']},
{cfg['epochs']} epochs, AdamW lr {cfg['lr']} cosine, batch {cfg['batch_size']}, the same recipe for
every stream and student; distillation alpha {cfg['alpha']} (MARS and DS alike); the last epoch's
weights are evaluated (no model selection on the test split). Evaluation: MARS protocol (every
non-overlapping clip, centre crop, clip logits averaged per video), video top-1 on the test split.
Time: end to end per video (decode + flow on the fly when needed + networks), median over
{cfg['timing_videos']} test videos on this machine, all methods timed interleaved video by video.

{format_table(summary['rows'])}

What each method gets right: a class is a (motion, category) pair, so a prediction can have
the right motion and the wrong category or the reverse. A flow-only stream cannot see the
category (about 50 % here by construction); a student that learns motion from the flow
teacher should raise the motion column without lowering the category column.

{format_factor_table(summary['rows'])}

The paper's claims on this run (one run; the README gives the spread over seeds):

{format_claims(summary['claims'])}

Total time {summary['total_seconds']:.0f} s; stages: {', '.join(f'{k} {v:.0f} s' for k, v in summary['stage_seconds'].items())}.

## Attention fusion: learned stream weights (mean over test videos)

{chr(10).join(weights) or '(none)'}

## Training curves

![curves](figures/curves.png)

## Confusion matrices

{chr(10).join(conf_lines)}
## Checkpoints

{chr(10).join(f'- {k}: `{v}`' for k, v in ck.items())}

Predict on a video with the distilled RGB-only student:
`flowless predict {ck['ds']} VIDEO.mp4`; with DS + Flow: `flowless predict {ck['fusion_ds_flow']} VIDEO.mp4`.

Versions: {json.dumps(summary['versions'])}
"""
    path = out / "report.md"
    write_text(path, text)
    return path
