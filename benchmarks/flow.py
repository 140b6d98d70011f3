"""Optical flow benchmark: speed and accuracy per backend/preset, and worker scaling.

Accuracy is the average end-point error (EPE, px) against ground truth on frame pairs
made by warping a smooth random texture with a known flow (translation, rotation + zoom,
smooth random field; see flowless.flow.synthetic), on the central 80% of the image. Speed
is single-threaded OpenCV (one worker = one core), frame pairs per second. Worker scaling
runs ``extract_flow`` on generated videos with 1 and 2 worker processes.

    python benchmarks/flow.py            # full (takes minutes: TV-L1 at 240x320 is slow)
    python benchmarks/flow.py --quick    # smoke test, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from flowless.flow import FlowBackend, dequantize, extract_flow, quantize
from flowless.flow.synthetic import (
    end_point_error,
    rotation_field,
    smooth_random_field,
    textured_image,
    translation_field,
    warp_pair,
)

CASES = [("tvl1", "default"), ("tvl1", "fast"), ("dis", "ultrafast"), ("dis", "fast"),
         ("dis", "medium"), ("farneback", "default")]
SIZES = {"112": (112, 112), "240": (240, 320)}


def make_pairs(h: int, w: int, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(first, second, true flow) for translation, rotation+zoom and smooth random motion."""
    scale = min(h, w) / 112  # the same motion in "object" terms at both sizes
    pairs = []
    for i in range(count):
        texture = textured_image(h, w, seed=i)
        kind = i % 3
        if kind == 0:
            flow = translation_field(h, w, 2.3 * scale, -1.4 * scale)
        elif kind == 1:
            flow = rotation_field(h, w, degrees=3.0, scale=1.03)
        else:
            flow = smooth_random_field(h, w, max_px=3.0 * scale, seed=i)
        first, second = warp_pair(texture, flow)
        pairs.append((first, second, flow))
    return pairs


def bench_backends(sizes: list[str], pairs_per_size: int, min_seconds: float) -> list[dict]:
    """Time each backend over the pairs, repeated until ``min_seconds`` have passed."""
    cv2.setNumThreads(1)
    rows = []
    for size in sizes:
        h, w = SIZES[size]
        pairs = make_pairs(h, w, pairs_per_size)
        for backend, preset in CASES:
            fb = FlowBackend(backend, preset=preset)
            fb(pairs[0][0], pairs[0][1])  # warm-up (allocations)
            errors, errors_u8 = [], []
            start, calls = time.perf_counter(), 0
            while calls == 0 or time.perf_counter() - start < min_seconds:
                for first, second, _ in pairs:
                    fb(first, second)
                calls += len(pairs)
            seconds = (time.perf_counter() - start) / calls
            for first, second, truth in pairs:
                flow = fb(first, second)
                errors.append(end_point_error(flow, truth))
                errors_u8.append(end_point_error(dequantize(quantize(flow)), truth))
            rows.append({"size": f"{w}x{h}", "backend": backend, "preset": preset,
                         "ms_per_pair": 1000 * seconds, "fps": 1 / seconds,
                         "epe": float(np.mean(errors)), "epe_u8": float(np.mean(errors_u8))})
            print(f"  {rows[-1]['size']:>7} {backend:>9}/{preset:<9} "
                  f"{rows[-1]['ms_per_pair']:8.2f} ms  EPE {rows[-1]['epe']:.3f}", flush=True)
    return rows


def bench_workers(videos: int, frames: int, size: int, backend: str, preset: str,
                  workers: list[int]) -> list[dict]:
    from flowless.data.video import write_video

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = []
        for i in range(videos):
            texture = textured_image(size + 64, size + 64, seed=100 + i)
            seq = [texture[32 - t % 8: 32 - t % 8 + size, 32 + t % 8: 32 + t % 8 + size]
                   for t in range(frames)]
            path = root / "videos" / f"v{i:03d}.mp4"
            write_video(path, np.stack([np.repeat(g[..., None], 3, 2) for g in seq]), crf=10)
            items.append((f"v{i:03d}", path))
        for n in workers:
            out = root / f"store_w{n}"
            start = time.perf_counter()
            summary = extract_flow(items, out, backend=backend, preset=preset, short_side=size,
                                   workers=n, quiet=True)
            seconds = time.perf_counter() - start
            assert summary.done == videos and summary.failed == 0
            rows.append({"workers": n, "seconds": seconds, "videos_per_s": videos / seconds,
                         "fields_per_s": videos * (frames - 1) / seconds})
    base = rows[0]["videos_per_s"]
    for row in rows:
        row["speedup"] = row["videos_per_s"] / base
    return rows


def print_tables(backend_rows: list[dict], worker_rows: list[dict], worker_setup: str) -> None:
    print("\n| size | backend | preset | ms/pair | frame pairs/s (1 core) | EPE px | EPE px (u8) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in backend_rows:
        print(f"| {r['size']} | {r['backend']} | {r['preset']} | {r['ms_per_pair']:.2f} | "
              f"{r['fps']:.1f} | {r['epe']:.3f} | {r['epe_u8']:.3f} |")
    print(f"\nWorker scaling ({worker_setup}):")
    print("| workers | seconds | videos/s | fields/s | speed-up |")
    print("|---:|---:|---:|---:|---:|")
    for r in worker_rows:
        print(f"| {r['workers']} | {r['seconds']:.2f} | {r['videos_per_s']:.2f} | "
              f"{r['fields_per_s']:.1f} | {r['speedup']:.2f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    if args.quick:
        sizes, pairs, min_seconds = ["112"], 3, 0.2
        wv, wf, ws, wb, wp = 4, 6, 64, "tvl1", "fast"
    else:
        sizes, pairs, min_seconds = ["112", "240"], 6, 3.0
        wv, wf, ws, wb, wp = 8, 24, 112, "tvl1", "default"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"flow benchmark{' (quick)' if args.quick else ''}: {platform.processor() or '?'} "
          f"{cores} cores, OpenCV {cv2.__version__}, load average before {load[0]:.2f} "
          "(a busy machine slows every figure)")
    backend_rows = bench_backends(sizes, pairs, min_seconds)
    setup = f"{wv} videos x {wf} frames at {ws}x{ws}, {wb}/{wp}"
    worker_rows = bench_workers(wv, wf, ws, wb, wp, [1, 2])
    print_tables(backend_rows, worker_rows, setup)
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average after: {load_after:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"backends": backend_rows, "workers": worker_rows,
                                         "worker_setup": setup, "load_before": load[0],
                                         "load_after": load_after}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
