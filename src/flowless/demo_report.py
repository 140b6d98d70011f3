"""What the demo shows: its tables, the paper's claims checked on a run, curves and report.

Everything here reads the rows / summary that :func:`flowless.demo.run_demo` computes (also
``summary.json`` of a finished run) and computes no new numbers from the runs, so it can
be used on old demo folders (``benchmarks/demo_seeds.py``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from flowless.io import atomic_path, write_text


def slug(name: str) -> str:
    """A method name as a file name: ``"RGB+Flow (mean)"`` -> ``"rgb_flow_mean"``."""
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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_factor_table(rows: list[dict[str, Any]]) -> str:
    """Which half of the label each method gets right, as Markdown: the share of test videos
    whose predicted class has the right motion, and the right category (colour family)."""
    lines = ["| method | video top-1 (%) | motion right (%) | category right (%) |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {_pct(r['top1'])} | {_pct(r.get('motion_acc'))} | "
                     f"{_pct(r.get('category_acc'))} |")
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


def copy_confusions(rows: list[dict[str, Any]], figures: Path) -> list[str]:
    """Copy each row's ``confusion.png`` into ``figures``; the report's Markdown for them."""
    lines = []
    for r in rows:
        src = Path(r["eval_dir"]) / "confusion.png"
        if src.exists():
            dst = figures / f"confusion_{slug(r['method'])}.png"
            shutil.copyfile(src, dst)
            lines.append(f"### {r['method']}\n\n![{r['method']}](figures/{dst.name})\n")
    return lines


def write_report(out: Path, summary: dict[str, Any], runs: Path) -> Path:
    """Write ``report.md`` with the table, curves, confusion matrices and checkpoints."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    plot_curves(runs, ["rgb", "flow", "mars", "ds"], figures / "curves.png")
    conf_lines = copy_confusions(summary["rows"], figures)
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
