"""``flowless benchmark``: RGB-only vs two-stream end-to-end latency and throughput."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    from flowless.benchmark import add_arguments

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


def run(args: argparse.Namespace) -> int:
    from flowless.benchmark import format_results, run_benchmark
    from flowless.io import write_json

    results = run_benchmark(args)
    print(format_results(results))
    if args.json:
        write_json(args.json, results)
    return 0
