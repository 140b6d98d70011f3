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


PAPER_FUSED = ("RGB+Flow (mean)", "RGB+Flow (attention)")  # the calibrated benchmark's
FUSED = PAPER_FUSED + ("RGB+Flow (flowless fusion)",)
STUDENT, FLOWLESS_FUSION = "flowless student", "RGB+Flow (flowless fusion)"
RGB_LONG = "RGB (2x epochs)"  # the student's schedule without distillation
DS_LONG = "DS (2x epochs)"  # the student's schedule with the paper's DS


def _paired(rows: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, float]:
    """Points of top-1 that ``a`` is above ``b``, with the paired-bootstrap
    interval over the test videos both were evaluated on; a point value (zero-width
    interval) when the rows carry no per-video results (old summaries)."""
    from flowless.eval.stats import paired_difference

    ca, cb = rows[a].get("correct"), rows[b].get("correct")
    keys = sorted(set(ca) & set(cb)) if ca and cb else []
    if keys:
        res = paired_difference([ca[k] for k in keys], [cb[k] for k in keys])
    else:
        d = 100 * (rows[a]["top1"] - rows[b]["top1"])
        res = {"diff": d, "low": d, "high": d, "n": 0}
    return res


def _gap_closed(rows: dict[str, dict[str, Any]], student: str, base: str, fused: str,
                share: float) -> dict[str, float]:
    """Points by which ``student`` exceeds ``base + share * (fused - base)``, with its paired
    interval: per test video, student - ((1 - share) * base + share * fused), resampled
    together. >= 0 means the student closes at least ``share`` of the gap."""
    from flowless.eval.stats import paired_difference

    c = [rows[m].get("correct") for m in (student, base, fused)]
    keys = sorted(set(c[0]) & set(c[1]) & set(c[2])) if all(c) else []
    if not keys:
        t = {m: 100 * rows[m]["top1"] for m in (student, base, fused)}
        d = t[student] - ((1 - share) * t[base] + share * t[fused])
        return {"diff": d, "low": d, "high": d, "n": 0}
    mix = [(1 - share) * c[1][k] + share * c[2][k] for k in keys]
    return paired_difference([c[0][k] for k in keys], mix)


def _claim(name: str, res: dict[str, float], threshold: float, strict: bool, figures: str,
           unit: str = " points") -> dict[str, Any]:
    from flowless.eval.stats import verdict

    value = res.get("diff", res.get("ratio"))
    v = verdict(res["low"], res["high"], threshold, strict=strict)
    ci = f"95 % CI [{res['low']:+.1f}, {res['high']:+.1f}]" if unit == " points" else \
        f"95 % CI [{res['low']:.1f}x, {res['high']:.1f}x]"
    return {"claim": name, "verdict": v, "held": v == "held", "value": value,
            "low": res["low"], "high": res["high"], "threshold": threshold,
            "videos": res.get("n", 0), "figures": f"{figures}; {ci}"}


def check_claims(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's claims and the benchmark's own targets, checked on this run's rows.

    Each claim has ``value`` (points of top-1 difference, or a speed ratio), its 95 %
    interval (``low``, ``high``: a paired bootstrap over the test videos, see
    :mod:`flowless.eval.stats`) and a ``verdict``: held (the whole interval clears the
    claim), not held (it falls short) or inconclusive. ``held`` is ``verdict == "held"``.

    - DS beats RGB; DS beats MARS;
    - fusion exploits both streams: RGB+Flow (attention) at least 10 points above RGB alone
      and above Flow alone (the verdict of the smaller gain);
    - the RGB-only rows are at least 10x faster than the rows that need flow (slowest
      RGB-only row against the fastest row that needs flow, per-video times paired);
    - benchmark targets (docs/dataset.md): Flow at least 5 points above RGB, and the better
      RGB+Flow fusion at least 5 points above the better single stream;
    - beyond the paper (docs/distillation.md): the flowless student beats RGB, beats RGB
      trained as long as the student, and closes at least half of the gap between RGB and
      the best RGB+Flow fusion; flowless fusion beats the mean of logits.
    """
    by = {r["method"]: r for r in rows}
    top = {m: 100 * r["top1"] for m, r in by.items()}
    out = []
    for a, b in (("DS", "RGB"), ("DS", "MARS")):
        if a in top and b in top:
            out.append(_claim(f"{a} beats {b}", _paired(by, a, b), 0.0, True,
                              f"{top[a]:.1f} vs {top[b]:.1f} ({top[a] - top[b]:+.1f})"))
    fused = "RGB+Flow (attention)"
    if all(m in top for m in (fused, "RGB", "Flow")):
        gains = [_paired(by, fused, s) for s in ("RGB", "Flow")]
        worst = min(gains, key=lambda g: g["low"])
        claim = _claim("fusion exploits both streams (attention >= 10 points above each)",
                       worst, 10.0, False,
                       f"{top[fused]:.1f}: {gains[0]['diff']:+.1f} over RGB, "
                       f"{gains[1]['diff']:+.1f} over Flow")
        claim["value"] = min(g["diff"] for g in gains)
        out.append(claim)
    rgb_only = [r for r in rows if not r["needs_flow"]]
    with_flow = [r for r in rows if r["needs_flow"]]
    if rgb_only and with_flow:
        out.append(_speed_claim(rgb_only, with_flow))
    if "RGB" in top and "Flow" in top:
        out.append(_claim("benchmark: the flow stream is the stronger (Flow >= RGB + 5)",
                          _paired(by, "Flow", "RGB"), 5.0, False,
                          f"{top['Flow']:.1f} vs {top['RGB']:.1f} "
                          f"({top['Flow'] - top['RGB']:+.1f})"))
        fusions = [m for m in PAPER_FUSED if m in top]  # the target as calibrated
        if fusions:
            best_fused = max(fusions, key=lambda m: top[m])
            stream = max(("RGB", "Flow"), key=lambda m: top[m])
            out.append(_claim("benchmark: fusion adds to the better stream (best RGB+Flow >= "
                              "best stream + 5)", _paired(by, best_fused, stream), 5.0, False,
                              f"{best_fused} {top[best_fused]:.1f} vs {stream} "
                              f"{top[stream]:.1f} ({top[best_fused] - top[stream]:+.1f})"))
    out += _beyond_claims(by, top)
    return out


def _beyond_claims(by: dict[str, dict[str, Any]], top: dict[str, float]) -> list[dict[str, Any]]:
    """The claims of flowless's own student and fusion (when their rows are there)."""
    out = []
    fusions = [m for m in FUSED if m in top]
    if STUDENT in top and "RGB" in top:
        out.append(_claim(f"{STUDENT} beats RGB", _paired(by, STUDENT, "RGB"), 0.0, True,
                          f"{top[STUDENT]:.1f} vs {top['RGB']:.1f} "
                          f"({top[STUDENT] - top['RGB']:+.1f})"))
        if RGB_LONG in top:  # is it the teacher, or only the longer schedule?
            out.append(_claim(f"{STUDENT} beats {RGB_LONG} (the same schedule, no teacher)",
                              _paired(by, STUDENT, RGB_LONG), 0.0, True,
                              f"{top[STUDENT]:.1f} vs {top[RGB_LONG]:.1f} "
                              f"({top[STUDENT] - top[RGB_LONG]:+.1f})"))
        if DS_LONG in top:  # does the ensemble KD add to the paper's relation loss?
            out.append(_claim(f"{STUDENT} beats {DS_LONG} (the paper's DS on the same "
                              "schedule)", _paired(by, STUDENT, DS_LONG), 0.0, True,
                              f"{top[STUDENT]:.1f} vs {top[DS_LONG]:.1f} "
                              f"({top[STUDENT] - top[DS_LONG]:+.1f})"))
        if fusions:
            best = max(fusions, key=lambda m: top[m])
            gap = top[best] - top["RGB"]
            closed = (top[STUDENT] - top["RGB"]) / gap if gap > 0 else float("nan")
            out.append(_claim(f"{STUDENT} closes >= 50 % of the gap between RGB and the best "
                              "RGB+Flow fusion", _gap_closed(by, STUDENT, "RGB", best, 0.5),
                              0.0, False,
                              f"{100 * closed:.0f} % closed: {top[STUDENT]:.1f} between RGB "
                              f"{top['RGB']:.1f} and {best} {top[best]:.1f}; points above "
                              "the half-way mark"))
    if FLOWLESS_FUSION in top and "RGB+Flow (mean)" in top:
        out.append(_claim(f"{FLOWLESS_FUSION} beats RGB+Flow (mean)",
                          _paired(by, FLOWLESS_FUSION, "RGB+Flow (mean)"), 0.0, True,
                          f"{top[FLOWLESS_FUSION]:.1f} vs {top['RGB+Flow (mean)']:.1f} "
                          f"({top[FLOWLESS_FUSION] - top['RGB+Flow (mean)']:+.1f})"))
    return out


def _speed_claim(rgb_only: list[dict[str, Any]], with_flow: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    from flowless.eval.stats import paired_ratio_of_medians

    slow = max(rgb_only, key=lambda r: r["ms_per_video"])
    fast = min(with_flow, key=lambda r: r["ms_per_video"])
    ratio = fast["ms_per_video"] / slow["ms_per_video"]
    if slow.get("ms_each") and fast.get("ms_each"):
        res = paired_ratio_of_medians(fast["ms_each"], slow["ms_each"])
    else:
        res = {"ratio": ratio, "low": ratio, "high": ratio, "n": 0}
    return _claim("RGB-only rows at least 10x faster than rows that need flow", res, 10.0,
                  False, f"{ratio:.1f}x ({slow['method']} {slow['ms_per_video']:.1f} ms vs "
                  f"{fast['method']} {fast['ms_per_video']:.1f} ms)", unit="x")


def format_claims(claims: list[dict[str, Any]]) -> str:
    """The claims as Markdown list lines, each with its verdict, figures and interval."""
    return "\n".join(f"- {c['claim']}: **{c.get('verdict', 'held' if c['held'] else 'not held')}"
                     f"** ({c['figures']})" for c in claims)


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


def dataset_line(cfg: dict[str, Any]) -> str:
    """What the classes are, in words."""
    if cfg["categories"] > 1:
        return f"{cfg['motions']} motions x {cfg['categories']} colour categories"
    context = cfg.get("context") or 0.0
    hint = (f", the object's colour is its class's own {100 * context:.0f} % of the time "
            "(scene context)") if context else ", any colour"
    return f"{cfg['motions']} motion classes{hint}"


def factor_section(rows: list[dict[str, Any]], cfg: dict[str, Any]) -> str:
    """The motion / category table when a class is a (motion, category) pair."""
    if cfg["categories"] <= 1:
        return ("Classes are motions: a flow-only stream can name every class; the RGB stream "
                "sees the motion through its 3D convolutions and the colour hint.")
    return f"""What each method gets right: a class is a (motion, category) pair, so a prediction can have
the right motion and the wrong category or the reverse. A flow-only stream cannot see the
category (about 50 % here by construction); a student that learns motion from the flow
teacher should raise the motion column without lowering the category column.

{format_factor_table(rows)}"""


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

Embedded dataset (variant {cfg.get('variant', 'appearance-motion')}): {dataset_line(cfg)} =
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
{cfg['timing_videos']} test videos on this machine, all methods timed interleaved video by video;
methods with the same networks, inputs and fusion (e.g. RGB, MARS and DS) cost the same and
share one timing (`timed_as` in summary.json).

{format_table(summary['rows'])}

{factor_section(summary['rows'], cfg)}

The paper's claims and the benchmark's targets on this run. Each difference comes with a
95 % interval from a paired bootstrap over the test videos (both methods resampled on the
same videos); the verdict is "held" when the whole interval clears the claim, "not held"
when it falls short, "inconclusive" otherwise. One seed: `flowless demo --seeds 0-4` gives
the spread over seeds.

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

{_predict_hint(ck)}

Versions: {json.dumps(summary['versions'])}
"""
    path = out / "report.md"
    write_text(path, text)
    return path


def _predict_hint(ck: dict[str, str]) -> str:
    """How to predict with the run's networks (the student when one was trained)."""
    if "ds" in ck and "fusion_ds_flow" in ck:
        return (f"Predict on a video with the distilled RGB-only student:\n`flowless predict "
                f"{ck['ds']} VIDEO.mp4`; with DS + Flow: `flowless predict "
                f"{ck['fusion_ds_flow']} VIDEO.mp4`.")
    return (f"Predict on a video with the RGB stream: `flowless predict {ck['rgb']} "
            "VIDEO.mp4` (a calibration run: no student was trained).")


def _mean_sd(values: list[float]) -> str:
    from flowless.eval.stats import across_seeds

    a = across_seeds(values)
    return f"{a['mean']:.1f} ± {a['sd']:.1f}" if a["sd"] is not None else f"{a['mean']:.1f}"


def seeds_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate finished demo runs of several seeds: per method top-1 per seed, and per
    claim (re-checked on each run's rows) the per-seed values and verdicts, mean, sd, how
    many seeds clear the claim's threshold, and the Student-t interval across seeds."""
    from flowless.eval.stats import across_seeds

    seeds = [s["config"]["seed"] for s in summaries]
    methods = [r["method"] for r in summaries[0]["rows"]]
    by_seed = [{r["method"]: r for r in s["rows"]} for s in summaries]
    top1 = {m: [100 * rows[m]["top1"] for rows in by_seed] for m in methods}
    per_seed = [check_claims(s["rows"]) for s in summaries]
    claims = []
    for i, first in enumerate(per_seed[0]):
        runs = [c[i] for c in per_seed]
        values = [c["value"] for c in runs]
        stats = across_seeds(values)
        clear = sum(v >= first["threshold"] if first["threshold"] else v > 0 for v in values)
        claims.append({"claim": first["claim"], "threshold": first["threshold"],
                       "values": values, "verdicts": [c["verdict"] for c in runs],
                       "clears": clear, **stats})
    return {"seeds": seeds, "methods": methods, "top1": top1,
            "needs_flow": {m: by_seed[0][m]["needs_flow"] for m in methods}, "claims": claims}


def format_seeds(agg: dict[str, Any]) -> str:
    """The multi-seed tables as Markdown: top-1 per seed with mean ± sd, then the claims."""
    seeds = agg["seeds"]
    out = [f"| method | needs flow | {' | '.join(f'seed {k}' for k in seeds)} | mean ± sd |",
           "|---|---|" + "---:|" * (len(seeds) + 1)]
    for m in agg["methods"]:
        top = agg["top1"][m]
        out.append(f"| {m} | {'yes' if agg['needs_flow'][m] else 'no'} | "
                   + " | ".join(f"{v:.1f}" for v in top) + f" | {_mean_sd(top)} |")
    out += ["", "| claim | per seed (verdict) | mean ± sd | 95 % CI across seeds | seeds "
            "clearing it |", "|---|---|---:|---|---:|"]
    for c in agg["claims"]:
        unit = "x" if "faster" in c["claim"] else ""
        each = "; ".join(f"{v:+.1f}{unit} ({d})" if not unit else f"{v:.1f}x ({d})"
                         for v, d in zip(c["values"], c["verdicts"]))
        ci = "-" if c["low"] is None else f"[{c['low']:.1f}, {c['high']:.1f}]"
        sd = "" if c["sd"] is None else f" ± {c['sd']:.1f}"
        out.append(f"| {c['claim']} | {each} | {c['mean']:.1f}{sd} | {ci} | "
                   f"{c['clears']}/{len(c['values'])} |")
    return "\n".join(out)
