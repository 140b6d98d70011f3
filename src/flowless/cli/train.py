"""``flowless train``: train a stream network (RGB or flow), optionally distilled from a teacher."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowless.config import TrainConfig

# flag -> config key (applied after --config, before --set)
FLAGS = {
    "dataset": "data.root", "format": "data.format", "split": "data.split",
    "annotations": "data.annotations", "flow_root": "data.flow_root", "stream": "stream",
    "arch": "model.arch", "width": "model.width", "pretrained": "model.pretrained",
    "epochs": "epochs", "batch_size": "batch_size", "lr": "optim.lr", "seed": "seed",
    "device": "device", "workers": "data.workers", "teacher": "distill.teacher",
    "distill": "distill.mode", "alpha": "distill.alpha", "out": "out",
    "temperature": "distill.temperature", "kd_weight": "distill.kd_weight",
    "distill_warmup": "distill.warmup_epochs",
}


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        name, help="train an RGB or flow stream, optionally distilled from a flow teacher",
        description="Train a 3D CNN on video clips. Settings come from defaults, then "
        "--config FILE, then the flags below, then --set key=value (e.g. --set optim.lr=0.01 "
        "--set data.clip_len=16). Writes config.yaml, metrics.jsonl, last.pt and best.pt to "
        "--out. A killed run continues exactly with --resume RUN_DIR.")
    p.add_argument("--config", type=Path, help="YAML config file (see docs/training.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value (repeatable), e.g. optim.lr=0.01")
    p.add_argument("--dataset", help="dataset root folder (data.root)")
    p.add_argument("--format", help="dataset format: ucf101, hmdb51, kinetics, ssv2, list, folder, rawframes")
    p.add_argument("--split", type=int, help="official split number (data.split)")
    p.add_argument("--annotations", help="annotation folder/file when not inside the root")
    p.add_argument("--flow-root", help="flow store made by `flowless flow` (data.flow_root)")
    p.add_argument("--stream", choices=("rgb", "flow"), help="input of the trained network")
    p.add_argument("--arch", help="network, e.g. resnext101, resnet18, resnet10")
    p.add_argument("--width", type=float, help="channel-width multiplier (e.g. 0.25 on CPU)")
    p.add_argument("--pretrained", help="initial weights (flowless or Hara/MARS checkpoint)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate (optim.lr)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--teacher", help="frozen teacher stream checkpoint (e.g. the flow stream)")
    p.add_argument("--distill", choices=("mars", "relation", "relation+mars", "kd", "student"),
                   help="distillation loss (needs --teacher); student: flowless's recommended "
                   "RGB-only student (KD from the teachers' ensemble + the paper's relation "
                   "loss; give the RGB stream with --ensemble and twice the streams' epochs, "
                   "docs/distillation.md)")
    p.add_argument("--ensemble", action="append", metavar="CKPT",
                   help="kd/student: another frozen stream (e.g. the RGB stream) whose logits "
                   "join the teacher's in the KD target (repeatable)")
    p.add_argument("--alpha", type=float, help="weight of the feature term (default 50; "
                   "student: of the relation term, default 50)")
    p.add_argument("--kd-weight", type=float, help="student: weight of the KD term (default 1)")
    p.add_argument("--temperature", type=float, help="KD temperature (default 4)")
    p.add_argument("--distill-warmup", type=float, metavar="EPOCHS",
                   help="ramp the distillation weights up linearly over EPOCHS (student "
                   "default 2, paper modes 0)")
    p.add_argument("--resume", help="run folder (or its last.pt) to continue")
    p.add_argument("--out", help="run folder to write (default runs/train)")
    return p


def flag_overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """``key=value`` for each flag in ``flags`` (flag -> config key) given on the command line."""
    return [f"{key}={getattr(args, flag)}" for flag, key in flags.items()
            if getattr(args, flag, None) is not None]


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig from --resume / --config, flags and --set (validated)."""
    import json

    from flowless.config import TrainConfig, load_config

    flags = flag_overrides(args, FLAGS)
    if getattr(args, "ensemble", None):
        flags.append(f"distill.ensemble={json.dumps(list(args.ensemble))}")  # a YAML list
    return load_config(args.config, args.overrides, TrainConfig, flags=flags,
                       resume=args.resume)


def _is_main_process() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` job (RANK / WORLD_SIZE)."""
    try:
        world = int(os.environ.get("WORLD_SIZE") or 1)
        rank = int(os.environ.get("RANK") or 0)
    except ValueError:  # train() has already refused it; print as a single process would
        return True
    return world <= 1 or rank == 0


def run(args: argparse.Namespace) -> int:
    from flowless.engine import train

    cfg = build_config(args)
    run_dir = train(cfg, quiet=True if args.quiet else None)
    if not _is_main_process():
        return 0  # rank 0 reports the run
    from flowless.checkpoint import load_checkpoint

    best = run_dir / "best.pt"
    if best.exists():
        ckpt = load_checkpoint(best)
        m = ckpt.get("metrics", {})
        acc = m.get("val_acc", m.get("train_acc"))
        shown = f"{100 * acc:.1f}%" if isinstance(acc, float) else "-"
        print(f"{run_dir}: best epoch {ckpt.get('epoch')} accuracy {shown} -> {best}")
    else:
        print(f"{run_dir}: done")
    return 0
