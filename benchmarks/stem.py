"""The stem convolution alone: oneDNN's direct Conv3d against the Winograd transform along time.

    python benchmarks/stem.py                  # the shapes below, one thread, 7 repeats
    python benchmarks/stem.py --threads 2 --repeats 3

For each shape (ResNeXt-101's 7x7x7 stem on 112² clips of 16, 8 and 32 frames, and the
demo's narrow stems), the same weights run both ways on the same clips (channels_last_3d,
values in the range of mean-subtracted pixels), interleaved; it prints the median times,
their ratio, the window m that was used and each one's largest error against a float64
convolution, relative to the output's scale. Like predict, evaluate and benchmark, it
first calls reuse_freed_memory() (``--fresh-memory`` skips that: every call then
page-faults its buffers in again, which costs the Winograd path's larger temporaries
most). Run it alone: other jobs move the times.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from flowless.models.fast import reuse_freed_memory
from flowless.models.winograd import TemporalWinogradConv3d

# name, in channels, out channels, kernel, clips, frames, size
SHAPES = [
    ("ResNeXt-101 stem, 16 frames", 3, 64, 7, 4, 16, 112),
    ("ResNeXt-101 stem, 16 frames, 1 clip", 3, 64, 7, 1, 16, 112),
    ("ResNeXt-101 stem, 8 frames", 3, 64, 7, 4, 8, 112),
    ("ResNeXt-101 stem, 32 frames", 3, 64, 7, 2, 32, 112),
    ("flow stem (2 channels), 16 frames", 2, 64, 7, 4, 16, 112),
    ("demo RGB stem (16 ch), 16x24²", 3, 16, 7, 16, 16, 24),
    ("demo flow stem (16 ch), 16x24²", 2, 16, 7, 16, 16, 24),
    ("3x7x7 stem, 16x112²", 3, 64, (3, 7, 7), 4, 16, 112),
]


def seconds(net: nn.Module, x: torch.Tensor) -> float:
    start = time.perf_counter()
    net(x)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--fresh-memory", action="store_true",
                    help="do not call reuse_freed_memory() first")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reused = False if args.fresh_memory else reuse_freed_memory()
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} interleaved "
          f"repeats, freed memory {'reused' if reused else 'returned'}")
    print(f"{'shape':38s} {'direct ms':>9s} {'winograd ms':>11s} {'x':>5s} {'m':>2s} "
          f"{'err direct':>10s} {'err winograd':>12s}")
    for name, cin, cout, kernel, clips, frames, size in SHAPES:
        torch.manual_seed(0)
        kt = kernel if isinstance(kernel, int) else kernel[0]
        conv = nn.Conv3d(cin, cout, kernel, (1, 2, 2), (kt // 2, 3, 3)).eval()
        fast = TemporalWinogradConv3d(conv)
        direct = conv.to(memory_format=torch.channels_last_3d)
        x = (torch.rand(clips, cin, frames, size, size) * 255 - 120).contiguous(
            memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            exact = F.conv3d(x.double(), conv.weight.double(), conv.bias.double(),
                             conv.stride, conv.padding)
            scale = exact.abs().max()
            errors = [((f(x).double() - exact).abs().max() / scale).item() for f in (direct, fast)]
            timed: dict[str, list[float]] = {"direct": [], "winograd": []}
            for _ in range(args.repeats):  # interleaved: A, B, A, B, ...
                timed["direct"].append(seconds(direct, x))
                timed["winograd"].append(seconds(fast, x))
        d, w = (statistics.median(timed[k]) * 1e3 for k in ("direct", "winograd"))
        m = fast.window(exact.shape[2]) or "-"
        print(f"{name:38s} {d:9.1f} {w:11.1f} {d / w:5.2f} {m!s:>2s} {errors[0]:10.1e} "
              f"{errors[1]:12.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
