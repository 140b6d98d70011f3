"""``flowless evaluate CKPT [CKPT ...] --dataset ROOT --format F``: video-level accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    from flowless.cli.predict import add_fast_arguments
    from flowless.data.annotations import FORMATS

    parser = subparsers.add_parser(
        name,
        help="video-level top-1/top-5/mean class accuracy of streams and their fusion",
        description="Evaluate one or more trained streams on a dataset split under the MARS "
        "protocol (every non-overlapping clip, centre crop) or 10 clips x 3 crops. Each "
        "stream's clip logits are averaged per video, then several streams are fused. Writes "
        "predictions.jsonl, per_class.csv, confusion.csv/png and metrics.json to --out. "
        "Unreadable videos are skipped and listed.",
    )
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT",
                        help="stream checkpoints (best.pt), or a fusion checkpoint alone")
    parser.add_argument("--dataset", required=True, metavar="ROOT", help="dataset root folder")
    parser.add_argument("--format", "-f", required=True, choices=FORMATS,
                        help="annotation format")
    parser.add_argument("--split", type=int, default=1, help="split number (default 1)")
    parser.add_argument("--annotations", metavar="DIR", default=None,
                        help="folder (or list file) with the annotation files, when not in ROOT")
    parser.add_argument("--subset", default="test",
                        help="which part of the split to evaluate (default test)")
    parser.add_argument("--protocol", choices=("mars", "10x3"), default="mars",
                        help="mars: all non-overlapping clips, centre crop (default); "
                        "10x3: 10 clips x 3 crops")
    parser.add_argument("--fusion", default=None, metavar="RULE|CKPT",
                        help="softmax-mean (default), logit-mean, logprob-sum, or an attention "
                        "fusion checkpoint; all rules are reported, this one is the result")
    parser.add_argument("--flow-root", default=None, metavar="STORE",
                        help="flow store for flow streams (default: compute flow on the fly)")
    parser.add_argument("--flow-backend", default=None, metavar="B",
                        help="on-the-fly flow backend (default: the checkpoint's)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: eval-<subset>-<protocol> next to CKPT)")
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write the summary as one JSON object to OUT ('-' = stdout)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N videos")
    add_fast_arguments(parser)
    return parser


def _pct(x: Any) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}"


def format_summary(s: dict[str, Any]) -> str:
    """A small table: one row per stream and per fusion rule."""
    rows = [(st["name"], st) for st in s["streams"]]
    rows += [(f"fusion {name}", res) for name, res in s["fusion_rules"].items()]
    width = max(12, *(len(n) for n, _ in rows))
    lines = [f"{s['dataset']} ({s['format']}, split {s['split']}, {s['subset']}), protocol "
             f"{s['protocol']}: {s['evaluated']} videos evaluated, {len(s['skipped'])} skipped",
             f"{'result':<{width}}  {'top-1':>6}  {'top-5':>6}  {'mean class':>10}"]
    for name, res in rows:
        mark = " *" if name in (s["result"], f"fusion {s['result']}") and len(rows) > 1 else ""
        lines.append(f"{name:<{width}}  {_pct(res['top1'])}  {_pct(res['top5'])}  "
                     f"{_pct(res['mean_class_acc']):>10}{mark}")
    if s.get("attention_weights"):
        w = ", ".join(f"{k} {v:.3f}" for k, v in s["attention_weights"].items())
        lines.append(f"mean attention weights: {w}")
    for skip in s["skipped"][:20]:
        lines.append(f"skipped {skip['key']}: {skip['error']}")
    if len(s["skipped"]) > 20:
        lines.append(f"... and {len(s['skipped']) - 20} more (see metrics.json)")
    rate = s.get("videos_per_s")
    lines.append(f"{s['seconds']:.1f} s" + (f" ({rate:.2f} videos/s)" if rate else "")
                 + f"; outputs in {Path(s['outputs']['metrics.json']).parent}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from flowless.evaluate import evaluate

    to_stdout = args.json == "-"
    summary = evaluate(
        args.checkpoints, args.dataset, args.format, split=args.split,
        annotations=args.annotations, subset=args.subset, protocol=args.protocol,
        fusion=args.fusion, flow_root=args.flow_root, flow_backend=args.flow_backend,
        out=args.out, json_path=None if to_stdout else args.json, batch_size=args.batch_size,
        limit=args.limit, quiet=args.quiet, fast=args.fast,
    )
    if to_stdout:
        print(json.dumps(summary))
    else:
        print(format_summary(summary))
    return 0
