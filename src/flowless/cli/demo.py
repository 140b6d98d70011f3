"""``flowless demo``: the whole pipeline on the embedded dataset, one table at the end."""

from __future__ import annotations

import argparse

from flowless.demo_config import VARIANTS, DemoConfig


def add_parser(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help="run the whole pipeline on the embedded dataset and print the comparison table",
        description="Generate the embedded dataset, extract flow, train RGB, Flow, MARS and "
        "DS (relation-distilled) streams and attention fusions, evaluate them under the MARS "
        "protocol and write OUT/report.md. A rerun reuses finished stages.",
    )
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of every run")
    p.add_argument("--seeds", default=None, metavar="LIST",
                   help="run once per seed (e.g. 0-4 or 0,2,5) into OUT/seed_S and aggregate "
                   "the table and the claims over seeds into OUT/seeds.md")
    p.add_argument("--variant", default=DemoConfig.variant, choices=tuple(VARIANTS),
                   help="embedded dataset: context8 (default; classes are 8 motions, colour "
                   "is a scene hint), context (the same on 5 motions at 32 px, the default "
                   "before), appearance-motion (a class is a motion x colour pair; the default "
                   "before 0.2) or motion-only")
    p.add_argument("--baselines-only", action="store_true",
                   help="train and evaluate only RGB, Flow and their fusions (calibrating a "
                   "benchmark variant never looks at a distilled student)")
    p.add_argument("--controls", action="store_true",
                   help="also train the DS (2x epochs) row, the paper's DS on the flowless "
                   "student's schedule (1-2 minutes more)")
    p.add_argument("--quick", action="store_true",
                   help="seconds-scale data and epochs (a smoke test, numbers meaningless)")
    p.add_argument("--epochs", type=int, help="training epochs of every stream and student")
    p.add_argument("--size", type=int, help="clip height and width every network sees "
                   "(default 24; 32 on the other variants)")
    p.add_argument("--motions", type=int, help="motion classes: the first M of flowless "
                   "synth's list (1-8 with a scene hint; default 8)")
    p.add_argument("--videos-per-class", type=int, help="videos per class (train + test)")
    p.add_argument("--context", type=float, help="share of videos whose object has its "
                   "class's colour (the scene hint of the context variants, 0-1)")
    p.add_argument("--motion-scale", type=float,
                   help="object speed, spin and zoom rate, as a multiple of flowless synth's")
    p.add_argument("--nuisance", type=float, help="background drift, camera jitter and pixel "
                   "noise, as a multiple of flowless synth's")
    p.add_argument("--spin-scale", type=float, help="the Rotate motions' spin, as a multiple "
                   "of --motion-scale's")
    p.add_argument("--zoom-scale", type=float, help="the Zoom motions' rate, as a multiple "
                   "of --motion-scale's")
    p.add_argument("--zoom-max", type=float, help="the largest size ratio a zoom reaches over "
                   "the video (flowless synth's default 2.5)")
    p.add_argument("--test-per-class", type=int, help="test videos per class (the rest of "
                   "--videos-per-class train)")
    p.add_argument("--flow-backend", choices=("tvl1", "dis", "farneback"),
                   help="flow backend (default tvl1, as in the paper)")
    p.add_argument("--alpha", type=float, help="distillation weight of MARS and DS (default 50)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--workers", type=int, help="flow extraction processes (default: all cores)")
    p.add_argument("--jobs", type=int, help="trainings side by side, each in its own process "
                   "with threads / jobs torch threads (default: one per core, up to 4; 1: one "
                   "after another)")
    return p


def run(args: argparse.Namespace) -> int:
    from flowless.demo import run_demo, run_seeds

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "size": args.size, "motions": args.motions,
        "videos_per_class": args.videos_per_class,
        "context": args.context, "motion_scale": args.motion_scale, "nuisance": args.nuisance,
        "spin_scale": args.spin_scale, "zoom_scale": args.zoom_scale, "zoom_max": args.zoom_max,
        "test_per_class": args.test_per_class,
        "flow_backend": args.flow_backend, "alpha": args.alpha, "threads": args.threads,
        "workers": args.workers, "jobs": args.jobs,
    }.items() if v is not None}
    base = dict(out=args.out, seed=args.seed, baselines_only=args.baselines_only,
                controls=args.controls, **overrides)
    cfg = DemoConfig.quick_preset(variant=args.variant, **base) if args.quick else \
        DemoConfig.for_variant(args.variant, **base)
    quiet = True if args.quiet else None
    if args.seeds is not None:
        run_seeds(cfg, parse_seeds(args.seeds), quiet=quiet)
    else:
        run_demo(cfg, quiet=quiet)
    return 0


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5] (ranges and lists mix)."""
    from flowless.errors import ConfigError

    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise ConfigError(f"--seeds: {text!r} is not a list of seeds; write e.g. 0-4 or "
                          "0,2,5") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds: {text!r}: give non-negative seeds, e.g. 0-4")
    return seeds
