"""Which RGB-only student recovers the two-stream gain? An ablation over seeds (issue #13).

Takes demo runs that already hold the dataset, its flow and the trained RGB and Flow streams
(``flowless demo --baselines-only --seeds 200-204 --out runs/dev`` makes them), trains one
student per variant and seed with the demo's recipe (same network, epochs, optimiser and
seed; only the distillation differs), evaluates each on the test split with the MARS
protocol and prints, per variant: video top-1 per seed, mean ± sd, the share of the gap
closed, (student - RGB) / (best RGB+Flow fusion - RGB), and the student's paired difference
to RGB with its Student-t interval across seeds. Everything is resumable.

    python benchmarks/student_ablation.py runs/dev/seed_200 runs/dev/seed_201 ...
    python benchmarks/student_ablation.py --variants main runs/dev/seed_*   # the first six

Recipes are chosen on development seeds; the chosen one is then reported on fresh seeds
by the demo itself (docs/distillation.md).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from ablation_kit import chosen, correct_of, demo_config, emit, parse_args, row_cells, slug, top1

# name -> (distillation mode, teacher(s), DistillConfig fields, extra); teacher "fused": the
# Flow stream with the RGB stream as ensemble (the RGB+Flow ensemble); extra {"init": "rgb"}:
# the student starts from the trained RGB stream's weights
VARIANTS: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "no distillation (the RGB recipe)": ("none", "", {}, {}),
    "ds (paper)": ("relation", "flow", {"alpha": 50.0}, {}),
    "kd, flow teacher": ("kd", "flow", {"alpha": 1.0, "temperature": 4.0}, {}),
    "kd, fused teacher": ("student", "fused", {"alpha": 0.0, "temperature": 4.0,
                                               "warmup_epochs": 0.0}, {}),
    "kd fused + ds raw (alpha 50), warm-up 2": (
        "student", "fused", {"alpha": 50.0, "normalize": False, "warmup_epochs": 2.0}, {}),
    "kd fused + ds normalised (alpha 5), warm-up 2": (
        "student", "fused", {"alpha": 5.0, "normalize": True, "warmup_epochs": 2.0}, {}),
    # normalised terms are ~1 per tap: alpha 20 gives the paper's overall pull (its raw
    # alpha 50 x (gram + feat) is ~36 at the end of the demo's DS run, the normalised sum ~1.8)
    "kd fused + ds normalised (alpha 20), warm-up 2": (
        "student", "fused", {"alpha": 20.0, "normalize": True, "warmup_epochs": 2.0}, {}),
    # secondary (fewer seeds): normalisation without KD, warm-up, KD temperature
    "ds, normalised taps (alpha 20)": ("relation", "flow", {"alpha": 20.0, "normalize": True},
                                       {}),
    "kd fused + ds normalised (alpha 20), no warm-up": (
        "student", "fused", {"alpha": 20.0, "normalize": True, "warmup_epochs": 0.0}, {}),
    "kd, fused, T=1": ("student", "fused", {"alpha": 0.0, "temperature": 1.0,
                                            "warmup_epochs": 0.0}, {}),
    # the student starts from the trained RGB stream's weights (twice the RGB training)
    "kd, fused teacher, from the RGB stream": (
        "student", "fused", {"alpha": 0.0, "temperature": 4.0, "warmup_epochs": 0.0},
        {"init": "rgb"}),
    "kd fused + ds raw (alpha 50), warm-up 2, from the RGB stream": (
        "student", "fused", {"alpha": 50.0, "normalize": False, "warmup_epochs": 2.0},
        {"init": "rgb"}),
}
MAIN = list(VARIANTS)[1:7]


def train_variant(run: Path, name: str, epochs: int | None) -> Path:
    """Train (or reuse, or resume) the student ``name`` in ``run/ablation/<slug>``; returns
    its last.pt."""
    from flowless.demo import _train_config
    from flowless.engine import train_once

    mode, teachers, distill, extra = VARIANTS[name]
    cfg = demo_config(run)
    out = run / "ablation" / (slug(name) + (f"_e{epochs}" if epochs else ""))
    tc = _train_config(cfg, run / "data", run / "flow", "rgb", out,
                       run / "runs/flow/last.pt" if teachers else None, mode)
    for k, v in distill.items():
        setattr(tc.distill, k, v)
    if teachers == "fused":
        tc.distill.ensemble = [str(run / "runs/rgb/last.pt")]
    if extra.get("init") == "rgb":
        tc.model.pretrained = str(run / "runs/rgb/last.pt")
    if epochs:
        tc.epochs = epochs
    tc.name = "student"
    return train_once(tc, quiet=True) / "last.pt"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv, epochs=True)
    names = MAIN if args.variants == "main" else chosen(args.variants, VARIANTS)
    if names is None:
        return 2
    table: dict[str, list[float]] = {n: [] for n in ["RGB", "best fusion"] + names}
    closed: dict[str, list[float]] = {n: [] for n in names}
    diffs: dict[str, list[float]] = {n: [] for n in names}
    for run in args.runs:
        ckpt = {s: run / "runs" / s / "last.pt" for s in ("rgb", "flow")}
        folder = run / "ablation"
        base = top1(correct_of(run, [ckpt["rgb"]], None, folder, "rgb"))
        best = top1(correct_of(run, [ckpt["rgb"], ckpt["flow"]], "logit-mean", folder,
                               "rgb_flow_mean"))
        att = run / "runs/fusion_rgb_flow/last.pt"
        if att.exists():
            best = max(best, top1(correct_of(run, [ckpt["rgb"], ckpt["flow"]], str(att), folder,
                                             "rgb_flow_attention")))
        table["RGB"].append(base)
        table["best fusion"].append(best)
        for n in names:
            acc = top1(correct_of(run, [train_variant(run, n, args.epochs)], None, folder,
                                  slug(n) + (f"_e{args.epochs}" if args.epochs else "")))
            table[n].append(acc)
            closed[n].append((acc - base) / (best - base) if best > base else float("nan"))
            diffs[n].append(acc - base)
            print(f"{run.name}: {n}: {acc:.2f} (RGB {base:.2f}, best fusion {best:.2f})",
                  flush=True)
    seeds = [r.name for r in args.runs]
    lines = [f"| student | {' | '.join(seeds)} | mean ± sd | gap closed (mean) | "
             "vs RGB: mean [95 % CI across seeds] | above RGB |",
             "|---|" + "---:|" * (len(seeds) + 4)]
    for n, vals in table.items():
        cells, spread, vs = row_cells(vals, diffs.get(n))
        gap = f"{100 * statistics.mean(closed[n]):.0f} %" if n in closed else ""
        above = f"{sum(d > 0 for d in diffs[n])}/{len(diffs[n])}" if n in diffs else ""
        lines.append(f"| {n} | {cells} | {spread} | {gap} | {vs} | {above} |")
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
