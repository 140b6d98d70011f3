"""``flowless train-fusion``: learn a fusion (attention or flowless weighted) of frozen streams."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowless.config import FusionConfig

FLAGS = {
    "dataset": "data.root", "format": "data.format", "split": "data.split",
    "annotations": "data.annotations", "flow_root": "data.flow_root", "epochs": "epochs",
    "batch_size": "batch_size", "lr": "lr", "train_views": "train_views", "seed": "seed",
    "device": "device", "workers": "data.workers", "out": "out",
    "fusion": "kind", "fit_on": "fit_on", "folds": "folds",
}


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help="learn a fusion of frozen streams (e.g. RGB + flow, DS + flow)",
        description="Train a fusion on top of two or more frozen stream checkpoints (each "
        "gets its own input: RGB or flow clips of the same video): the paper's attention "
        "module (--fusion attention, the default) or flowless fusion (--fusion weighted), a "
        "weighted logit mean with normalised per-class weights and a temperature, fitted on "
        "out-of-fold logits (--fit-on crossfit retrains each stream on all folds but one; "
        "docs/method.md §11). The streams' logits are computed once; the fusion trains in "
        "seconds. Logs the learned stream weights; writes best.pt/last.pt (kind fusion) to "
        "--out.")
    p.add_argument("streams", nargs="+", help="stream checkpoints (best.pt of `flowless train`)")
    p.add_argument("--dataset", help="dataset root folder")
    p.add_argument("--format", help="dataset format (ucf101, hmdb51, kinetics, ssv2, list, folder, rawframes)")
    p.add_argument("--split", type=int)
    p.add_argument("--annotations")
    p.add_argument("--flow-root", help="flow store (needed when a stream takes flow)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--train-views", type=int,
                   help="augmented clips per training video whose logits are cached")
    p.add_argument("--fusion", choices=("attention", "weighted"),
                   help="attention: the paper's module; weighted: flowless fusion")
    p.add_argument("--fit-on", choices=("train", "crossfit"),
                   help="fit on the streams' training logits (the paper's way, default for "
                   "attention) or on out-of-fold logits (default for weighted)")
    p.add_argument("--folds", type=int, help="crossfit folds (default 2)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--workers", type=int)
    p.add_argument("--config", type=Path, help="YAML fusion config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="output folder (default runs/fusion)")
    return p


def build_config(args: argparse.Namespace) -> FusionConfig:
    """The FusionConfig from --config, flags, --set and the stream checkpoints (validated)."""
    from flowless.cli.train import flag_overrides
    from flowless.config import FusionConfig, load_config

    return load_config(args.config, args.overrides, FusionConfig,
                       flags=flag_overrides(args, FLAGS), streams=args.streams)


def run(args: argparse.Namespace) -> int:
    from flowless.engine import train_fusion

    cfg = build_config(args)
    run_dir = train_fusion(cfg, quiet=True if args.quiet else None)
    from flowless.engine.metrics import read_metrics

    records = read_metrics(run_dir)
    if records:
        last = records[-1]
        weights = " ".join(f"{w:.3f}" for w in last.get("weights", []))
        acc = last.get("val_video_acc")
        shown = f"{100 * acc:.1f}%" if isinstance(acc, float) else "-"
        print(f"{run_dir}: video accuracy {shown}, stream weights {weights} -> {run_dir}/best.pt")
    return 0
