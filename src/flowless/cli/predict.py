"""``flowless predict CKPT [CKPT ...] VIDEO``: top-k actions of one video."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="predict the action in a video",
        usage="%(prog)s [options] CKPT [CKPT ...] VIDEO  |  %(prog)s --onnx MODEL.onnx VIDEO",
        description="Run trained streams over every clip of VIDEO (decoded once, streamed in "
        "bounded memory) and print the top-k classes with probabilities and the time per "
        "stage. Several checkpoints (e.g. RGB + Flow [+ fusion checkpoint]) are fused; flow "
        "is computed on the fly.",
    )
    parser.add_argument("inputs", nargs="+", metavar="CKPT|VIDEO",
                        help="checkpoints (stream checkpoints and/or one fusion checkpoint; "
                        "none with --onnx), then the video file; options go after the video "
                        "or before the first checkpoint")
    parser.add_argument("--topk", type=int, default=5, help="classes to show (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--onnx", action="append", default=[], metavar="MODEL.onnx",
                        help="an ONNX model from `flowless export` (repeatable)")
    parser.add_argument("--fusion", default=None, metavar="RULE|CKPT",
                        help="softmax-mean (default), logit-mean, logprob-sum or a fusion "
                        "checkpoint")
    parser.add_argument("--protocol", choices=("mars", "10x3"), default="mars",
                        help="mars: every non-overlapping clip, centre crop (default, streams "
                        "in bounded memory); 10x3: 10 clips x 3 crops (keeps the frames)")
    parser.add_argument("--flow-backend", default=None, metavar="B",
                        help="flow backend for flow streams (default: the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    add_fast_arguments(parser)
    return parser


def add_fast_arguments(parser: argparse.ArgumentParser) -> None:
    """``--fast MODE`` and its off switch ``--no-fast`` (predict, evaluate, benchmark)."""
    from flowless.eval.streams import DEFAULT_FAST, FAST_MODES

    parser.add_argument("--fast", choices=FAST_MODES, default=DEFAULT_FAST,
                        help="how PyTorch streams run: torch (BN folded into the convolutions, "
                        "1x1x1 convolutions as GEMMs, channels_last_3d; default), onnxruntime "
                        "(exported in memory, CPU only: seconds to prepare, faster on a busy "
                        "CPU) or off (the network as trained); same logits within 1e-4")
    parser.add_argument("--no-fast", dest="fast", action="store_const", const="off",
                        help="run the networks as trained (same as --fast off)")


def run(args: argparse.Namespace) -> int:
    from flowless.errors import ConfigError
    from flowless.eval.scoring import FUSION_RULES
    from flowless.predict import format_prediction, predict

    *checkpoints, video = args.inputs
    fusion_ckpt = args.fusion is not None and args.fusion not in FUSION_RULES
    if not checkpoints and not args.onnx and not fusion_ckpt:
        raise ConfigError("give the checkpoint(s) before the video, or --onnx MODEL.onnx")
    if args.topk < 1:
        raise ConfigError(f"--topk {args.topk}: must be at least 1")
    result = predict(checkpoints, video, topk=args.topk, onnx=args.onnx, fusion=args.fusion,
                     protocol=args.protocol, batch_size=args.batch_size,
                     flow_backend=args.flow_backend, fast=args.fast)
    print(json.dumps(result) if args.json else format_prediction(result))
    return 0
