"""``flowless benchmark``: RGB-only vs two-stream end-to-end latency and throughput."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowless.benchmark import BenchmarkOptions


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help="time RGB-only vs two-stream (with flow) inference",
        description="For the same video and the same network size, time end-to-end "
        "inference (decode, flow, clips, network) of (a) the distilled RGB-only model and "
        "(b) the two-stream model computing optical flow on the fly, per flow backend; "
        "print latency, throughput and the ratio. Run it on a quiet machine.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``flowless benchmark`` and ``benchmarks/latency.py``."""
    from flowless.benchmark import DEFAULTS as d
    from flowless.cli.predict import add_fast_arguments

    parser.add_argument("--video", default=None, help="video to time (default: generated)")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"frames of the generated video (default {d['frames']})")
    parser.add_argument("--resolution", default=None, metavar="WxH",
                        help=f"size of the generated video (default {d['resolution']})")
    parser.add_argument("--arch", default=None, help=f"network (default {d['arch']})")
    parser.add_argument("--width", type=float, default=None,
                        help=f"network width multiplier (default {d['width']})")
    parser.add_argument("--size", type=int, default=None, help=f"crop size (default {d['size']})")
    parser.add_argument("--clip-len", type=int, default=None,
                        help=f"frames per clip (default {d['clip_len']})")
    parser.add_argument("--classes", type=int, default=None,
                        help=f"number of classes (default {d['classes']})")
    parser.add_argument("--short-side", type=int, default=None,
                        help="RGB frames resized to this short side (default: --size)")
    parser.add_argument("--flow-short-side", type=int, default=None,
                        help="flow computed at this short side (default 256 as in MARS; "
                        "a smaller one is cheaper but must match the flow stream's training)")
    parser.add_argument("--backends", default="tvl1,dis,farneback",
                        help="flow backends of the two-stream path (comma-separated)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed runs per pipeline, median reported (default {d['repeats']})")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and OpenCV threads (default: all available cores)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per forward pass")
    parser.add_argument("--rgb", default=None, metavar="CKPT",
                        help="RGB (distilled) checkpoint instead of a random network")
    parser.add_argument("--flow", default=None, metavar="CKPT",
                        help="flow checkpoint instead of a random network")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings that run in seconds (a smoke test, not figures)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")
    add_fast_arguments(parser)


def options(args: argparse.Namespace) -> BenchmarkOptions:
    """The :class:`~flowless.benchmark.BenchmarkOptions` of parsed flags (one per field)."""
    from flowless.benchmark import BenchmarkOptions

    return BenchmarkOptions(**{f.name: getattr(args, f.name)
                               for f in dataclasses.fields(BenchmarkOptions)})


def run(args: argparse.Namespace) -> int:
    from flowless.benchmark import format_results, run_benchmark
    from flowless.io import write_json

    results = run_benchmark(options(args))
    print(format_results(results))
    if args.json:
        write_json(args.json, results)
    return 0
