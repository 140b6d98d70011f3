"""End-to-end latency: distilled RGB-only model vs two-stream (RGB + on-the-fly flow).

    python benchmarks/latency.py                # paper-size network (ResNeXt-101), 65 frames
    python benchmarks/latency.py --quick        # tiny smoke run (seconds)
    python benchmarks/latency.py --arch resnet18 --backends tvl1,dis --threads 2

Same options as ``flowless benchmark``; run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse

from flowless.benchmark import add_arguments, format_results, run_benchmark
from flowless.io import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    results = run_benchmark(args)
    print(format_results(results))
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
