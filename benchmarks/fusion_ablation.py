"""Does a learned RGB+Flow fusion beat the mean of logits? An ablation over seeds (issue #13).

Takes demo runs holding the dataset, its flow and the trained RGB and Flow streams
(``flowless demo --baselines-only --seeds 200-204 --out runs/dev``), fits each fusion
variant on the same frozen streams, evaluates it on the test split with the MARS protocol
and prints, per variant: video top-1 per seed, mean ± sd, and the paired difference to the
logit mean with its Student-t interval across seeds (and per seed, the paired-bootstrap
interval over test videos). Cross-fitted fold copies of the streams are trained once per
run (``<run>/crossfit``) and shared by the variants. Resumable.

    python benchmarks/fusion_ablation.py runs/dev/seed_200 runs/dev/seed_201 ...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ablation_kit import chosen, correct_of, demo_config, emit, parse_args, row_cells, slug, top1

# name -> FusionConfig fields
VARIANTS: dict[str, dict[str, Any]] = {
    "attention (paper), training logits": {"kind": "attention", "fit_on": "train"},
    "attention, crossfit logits": {"kind": "attention", "fit_on": "crossfit"},
    "weighted per stream, training logits": {"kind": "weighted", "fit_on": "train",
                                             "per_class": False},
    "weighted per stream, crossfit": {"kind": "weighted", "fit_on": "crossfit",
                                      "per_class": False},
    "weighted per class, training logits": {"kind": "weighted", "fit_on": "train",
                                            "per_class": True},
    "weighted per class, crossfit": {"kind": "weighted", "fit_on": "crossfit",
                                     "per_class": True},
    # fold copies trained on 3/4 of the training set, closer to the streams being fused
    "weighted per stream, crossfit 4 folds": {"kind": "weighted", "fit_on": "crossfit",
                                              "per_class": False, "folds": 4},
    "weighted per class, crossfit 4 folds": {"kind": "weighted", "fit_on": "crossfit",
                                             "per_class": True, "folds": 4},
}


def fit_variant(run: Path, name: str) -> Path:
    """Fit (or reuse) fusion ``name`` on the run's RGB and Flow streams; returns last.pt."""
    from flowless.demo import _fusion_config
    from flowless.engine import train_fusion
    from flowless.io import write_text

    cfg = demo_config(run)
    out = run / "fusion_ablation" / slug(name)
    if not (out / "done").exists():
        fc = _fusion_config(cfg, run / "data", run / "flow",
                            [run / "runs/rgb/last.pt", run / "runs/flow/last.pt"], out)
        for k, v in VARIANTS[name].items():
            setattr(fc, k, v)
        fc.crossfit_dir = str(run / "crossfit")
        train_fusion(fc, quiet=True)
        write_text(out / "done", "")
    return out / "last.pt"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    from flowless.eval.stats import paired_difference

    names = chosen(args.variants, VARIANTS)
    if names is None:
        return 2
    acc: dict[str, list[float]] = {n: [] for n in ["logit mean"] + names}
    diffs: dict[str, list[float]] = {n: [] for n in names}
    for run in args.runs:
        streams = [run / "runs/rgb/last.pt", run / "runs/flow/last.pt"]
        folder = run / "fusion_ablation"
        mean = correct_of(run, streams, "logit-mean", folder, "logit_mean")
        keys = sorted(mean)
        acc["logit mean"].append(top1(mean))
        for n in names:
            got = correct_of(run, streams, str(fit_variant(run, n)), folder, slug(n))
            acc[n].append(top1(got))
            d = paired_difference([got[k] for k in keys], [mean[k] for k in keys])
            diffs[n].append(d["diff"])
            print(f"{run.name}: {n}: {acc[n][-1]:.2f} vs mean {acc['logit mean'][-1]:.2f}: "
                  f"{d['diff']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]", flush=True)
    seeds = [r.name for r in args.runs]
    lines = [f"| RGB+Flow fusion | {' | '.join(seeds)} | mean ± sd | vs logit mean: mean "
             "[95 % CI across seeds] | better / worse seeds |",
             "|---|" + "---:|" * (len(seeds) + 3)]
    for n, vals in acc.items():
        cells, spread, vs = row_cells(vals, diffs.get(n))
        count = f"{sum(d > 0 for d in diffs[n])} / {sum(d < 0 for d in diffs[n])}" \
            if n in diffs else ""
        lines.append(f"| {n} | {cells} | {spread} | {vs} | {count} |")
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
