"""End-to-end latency: distilled RGB-only model vs two-stream (RGB + on-the-fly flow).

    python benchmarks/latency.py                # paper-size network (ResNeXt-101), 65 frames
    python benchmarks/latency.py --quick        # tiny smoke run (seconds)
    python benchmarks/latency.py --arch resnet18 --backends tvl1,dis --threads 2

Same options as ``flowless benchmark``; run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys

from flowless.cli.benchmark import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
