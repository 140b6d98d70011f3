"""``flowless demo``: the whole pipeline on the embedded dataset, one table at the end."""

from __future__ import annotations

import argparse


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
    p.add_argument("--quick", action="store_true",
                   help="seconds-scale data and epochs (a smoke test, numbers meaningless)")
    p.add_argument("--epochs", type=int, help="training epochs of every stream and student")
    p.add_argument("--videos-per-class", type=int, help="videos per class (train + test)")
    p.add_argument("--flow-backend", choices=("tvl1", "dis", "farneback"),
                   help="flow backend (default tvl1, as in the paper)")
    p.add_argument("--alpha", type=float, help="distillation weight of MARS and DS (default 50)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--workers", type=int, help="flow extraction processes (default: all cores)")
    return p


def run(args: argparse.Namespace) -> int:
    from flowless.demo import DemoConfig, run_demo

    overrides = {k: v for k, v in {
        "epochs": args.epochs, "videos_per_class": args.videos_per_class,
        "flow_backend": args.flow_backend, "alpha": args.alpha, "threads": args.threads,
        "workers": args.workers,
    }.items() if v is not None}
    base = dict(out=args.out, seed=args.seed, **overrides)
    cfg = DemoConfig.quick_preset(**base) if args.quick else DemoConfig(**base)
    run_demo(cfg, quiet=True if args.quiet else None)
    return 0
