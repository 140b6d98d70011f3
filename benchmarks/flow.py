"""Optical flow benchmark: speed and accuracy per backend/preset, and worker scaling.

Accuracy is the average end-point error (EPE, px) against ground truth on frame pairs
made by warping a smooth random texture with a known flow (translation, rotation + zoom,
smooth random field; see flowless.flow.synthetic), on the central 80% of the image. Speed
is single-threaded OpenCV (one worker = one core), frame pairs per second; tvl1-torch runs
on one CPU thread too, one pair at a time or in batches ("batch"). "EPD" is the mean
end-point difference of tvl1-torch to OpenCV's TV-L1 (same preset) on the same pairs, and
on generated videos (flowless.data.synth: drifting background, camera jitter, noise).
Worker scaling runs ``extract_flow`` on generated videos with 1 and 2 worker processes.

    python benchmarks/flow.py            # full (takes minutes: TV-L1 at 240x320 is slow)
    python benchmarks/flow.py --quick    # smoke test, seconds
    python benchmarks/flow.py --device cuda [--batch-sizes 16 32 64 128 256]
                                         # tvl1-torch on the GPU at 320x240 and 340x256
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

CASES = [("tvl1", "default", 1), ("tvl1", "fast", 1), ("tvl1-torch", "default", 1),
         ("tvl1-torch", "default", 8), ("tvl1-torch", "fast", 8), ("dis", "ultrafast", 1),
         ("dis", "fast", 1), ("dis", "medium", 1), ("farneback", "default", 1)]
SIZES = {"112": (112, 112), "240": (240, 320), "256": (256, 340)}


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


def _time_pairs(fb: FlowBackend, pairs: list, batch: int, min_seconds: float) -> float:
    """Seconds per pair: one pair at a time (batch 1) or ``batch`` pairs per call."""
    if batch == 1:
        run = [lambda a=a, b=b: fb(a, b) for a, b, _ in pairs]
    else:
        cycle = [pairs[i % len(pairs)] for i in range(batch)]
        firsts, seconds = np.stack([p[0] for p in cycle]), np.stack([p[1] for p in cycle])
        run = [lambda: fb.many(firsts, seconds)]
    run[0]()  # warm-up (allocations)
    start, done = time.perf_counter(), 0
    while done == 0 or time.perf_counter() - start < min_seconds:
        for call in run:
            call()
        done += len(pairs) if batch == 1 else batch
    return (time.perf_counter() - start) / done


def _epd(a: np.ndarray, b: np.ndarray) -> float:
    """Mean end-point difference of two flows (..., H, W, 2)."""
    return float(np.hypot(a[..., 0] - b[..., 0], a[..., 1] - b[..., 1]).mean())


def bench_backends(sizes: list[str], pairs_per_size: int, min_seconds: float) -> list[dict]:
    """Time each backend over the pairs, repeated until ``min_seconds`` have passed."""
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    rows = []
    for size in sizes:
        h, w = SIZES[size]
        pairs = make_pairs(h, w, pairs_per_size)
        opencv: dict[str, list[np.ndarray]] = {}
        for backend, preset, batch in CASES:
            fb = FlowBackend(backend, preset=preset, device="cpu")
            seconds = _time_pairs(fb, pairs, batch, min_seconds)
            flows = [fb(first, second) for first, second, _ in pairs]
            if backend == "tvl1":
                opencv[preset] = flows
            errors = [end_point_error(f, p[2]) for f, p in zip(flows, pairs)]
            errors_u8 = [end_point_error(dequantize(quantize(f)), p[2])
                         for f, p in zip(flows, pairs)]
            epd = (float(np.mean([_epd(f, g) for f, g in zip(flows, opencv[preset])]))
                   if backend == "tvl1-torch" else None)
            rows.append({"size": f"{w}x{h}", "backend": backend, "preset": preset,
                         "batch": batch, "ms_per_pair": 1000 * seconds, "fps": 1 / seconds,
                         "epe": float(np.mean(errors)), "epe_u8": float(np.mean(errors_u8)),
                         "epd_opencv": epd})
            print(f"  {rows[-1]['size']:>7} {backend:>10}/{preset:<9} x{batch:<2} "
                  f"{rows[-1]['ms_per_pair']:8.2f} ms  EPE {rows[-1]['epe']:.3f}", flush=True)
    return rows


def video_agreement(size: int, videos: int, frames: int, device: str) -> dict:
    """Mean end-point difference of tvl1-torch to OpenCV TV-L1 on generated videos."""
    from flowless.data.synth import SynthConfig, plan_videos
    from flowless.data.synth_render import render
    from flowless.flow import video_flow

    cfg = SynthConfig(size=size, frames=frames)
    specs = plan_videos(cfg)[:: max(1, len(plan_videos(cfg)) // videos)][:videos]
    per_video, magnitude = [], []
    for spec in specs:
        frames_rgb = render(cfg, spec)
        ours = video_flow(frames_rgb, "tvl1-torch", device=device).transpose(0, 2, 3, 1)
        theirs = video_flow(frames_rgb, "tvl1").transpose(0, 2, 3, 1)
        per_video.append(_epd(ours, theirs))
        magnitude.append(float(np.hypot(theirs[..., 0], theirs[..., 1]).mean()))
    return {"setup": f"{len(specs)} generated videos x {frames} frames at {size}x{size}, "
                     f"default parameters, tvl1-torch on {device}",
            "epd_mean": float(np.mean(per_video)), "epd_max_video": float(np.max(per_video)),
            "flow_magnitude": float(np.mean(magnitude))}


def make_videos(root: Path, videos: int, frames: int, size: int) -> list[tuple[str, Path]]:
    """Generated mp4s: a texture scrolling by up to 7 px per frame (crf 10)."""
    from flowless.data.video import write_video

    items = []
    for i in range(videos):
        texture = textured_image(size + 64, size + 64, seed=100 + i)
        seq = [texture[32 - t % 8: 32 - t % 8 + size, 32 + t % 8: 32 + t % 8 + size]
               for t in range(frames)]
        path = root / "videos" / f"v{i:03d}.mp4"
        write_video(path, np.stack([np.repeat(g[..., None], 3, 2) for g in seq]), crf=10)
        items.append((f"v{i:03d}", path))
    return items


def bench_workers(videos: int, frames: int, size: int, backend: str, preset: str,
                  workers: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = make_videos(root, videos, frames, size)
        for n in workers:
            out = root / f"store_w{n}"
            start = time.perf_counter()
            summary = extract_flow(items, out, backend=backend, preset=preset, short_side=size,
                                   workers=n, quiet=True, device="cpu")
            seconds = time.perf_counter() - start
            assert summary.done == videos and summary.failed == 0
            rows.append({"backend": backend, "workers": n, "seconds": seconds,
                         "videos_per_s": videos / seconds,
                         "fields_per_s": videos * (frames - 1) / seconds})
    base = rows[0]["videos_per_s"]
    for row in rows:
        row["speedup"] = row["videos_per_s"] / base
    return rows


def print_tables(backend_rows: list[dict], worker_rows: list[dict], worker_setup: str) -> None:
    print("\n| size | backend | preset | batch | ms/pair | frame pairs/s (1 core) | EPE px | "
          "EPE px (u8) | EPD to OpenCV px |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in backend_rows:
        epd = "" if r["epd_opencv"] is None else f"{r['epd_opencv']:.4f}"
        print(f"| {r['size']} | {r['backend']} | {r['preset']} | {r['batch']} | "
              f"{r['ms_per_pair']:.2f} | {r['fps']:.1f} | {r['epe']:.3f} | {r['epe_u8']:.3f} | "
              f"{epd} |")
    print(f"\nWorker scaling ({worker_setup}):")
    print("| backend | workers | seconds | videos/s | fields/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in worker_rows:
        print(f"| {r['backend']} | {r['workers']} | {r['seconds']:.2f} | "
              f"{r['videos_per_s']:.2f} | {r['fields_per_s']:.1f} | {r['speedup']:.2f}x |")


def bench_gpu(batch_sizes: list[int], pairs_per_size: int, min_seconds: float) -> list[dict]:
    """tvl1-torch on CUDA: pairs/s and peak memory per batch size at 320x240 and 340x256,
    with its EPE beside OpenCV's on the same pairs."""
    import torch

    cv2.setNumThreads(1)
    rows = []
    for size in ("240", "256"):
        h, w = SIZES[size]
        pairs = make_pairs(h, w, pairs_per_size)
        cpu = [FlowBackend("tvl1")(a, b) for a, b, _ in pairs]
        cpu_epe = float(np.mean([end_point_error(f, p[2]) for f, p in zip(cpu, pairs)]))
        for preset in ("default", "fast"):
            fb = FlowBackend("tvl1-torch", preset=preset, device="cuda")
            flows = fb.many(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
            flows = flows.transpose(0, 2, 3, 1)
            epe = float(np.mean([end_point_error(f, p[2]) for f, p in zip(flows, pairs)]))
            for batch in batch_sizes:
                torch.cuda.reset_peak_memory_stats()
                try:
                    seconds = _time_pairs(fb, pairs, batch, min_seconds)  # many() syncs
                except torch.cuda.OutOfMemoryError:
                    print(f"  {w}x{h} {preset} batch {batch}: out of memory", flush=True)
                    torch.cuda.empty_cache()
                    break
                rows.append({"size": f"{w}x{h}", "preset": preset, "batch": batch,
                             "fps": 1 / seconds, "peak_gib": torch.cuda.max_memory_allocated()
                             / 2**30, "epe": epe, "epe_opencv_default": cpu_epe,
                             "epd_opencv_default": float(np.mean(
                                 [_epd(f, g) for f, g in zip(flows, cpu)]))})
                print(f"  {w}x{h} {preset:<7} batch {batch:>4}: {1 / seconds:8.1f} pairs/s "
                      f"peak {rows[-1]['peak_gib']:.1f} GiB", flush=True)
    return rows


def bench_gpu_extraction(videos: int, frames: int, size: int, batch: int) -> dict:
    """End to end on CUDA: decode, batch across videos, quantise and write the store."""
    with tempfile.TemporaryDirectory() as tmp:
        items = make_videos(Path(tmp), videos, frames, size)
        start = time.perf_counter()
        summary = extract_flow(items, Path(tmp) / "store", backend="tvl1-torch", device="cuda",
                               batch_size=batch, short_side=size, quiet=True)
        seconds = time.perf_counter() - start
    assert summary.done == videos and summary.failed == 0
    return {"setup": f"{videos} videos x {frames} frames at {size}x{size}, batch {batch}",
            "seconds": seconds, "fields_per_s": videos * (frames - 1) / seconds}


def main_gpu(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        print("--device cuda: PyTorch sees no CUDA GPU", file=sys.stderr)
        return 2
    print(f"tvl1-torch GPU benchmark: {torch.cuda.get_device_name()}, torch {torch.__version__},"
          f" {time.strftime('%Y-%m-%d')}")
    rows = bench_gpu(args.batch_sizes, 6, 2.0)
    video = video_agreement(112, 4, 9, "cuda")
    extraction = bench_gpu_extraction(32, 33, 256, max(args.batch_sizes))
    print("\n| size | preset | batch | pairs/s | peak GiB | EPE px | EPE OpenCV default px | "
          "EPD to OpenCV default px |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['preset']} | {r['batch']} | {r['fps']:.1f} | "
              f"{r['peak_gib']:.1f} | {r['epe']:.3f} | {r['epe_opencv_default']:.3f} | "
              f"{r['epd_opencv_default']:.4f} |")
    print(f"\nVideos ({video['setup']}): mean EPD to OpenCV {video['epd_mean']:.4f} px "
          f"(worst video {video['epd_max_video']:.4f}; mean flow {video['flow_magnitude']:.2f})")
    print(f"Extraction ({extraction['setup']}): {extraction['fields_per_s']:.1f} fields/s")
    if args.json:
        args.json.write_text(json.dumps({"gpu": rows, "video": video,
                                         "extraction": extraction}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: only the tvl1-torch GPU measurements")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256],
                        help="batch sizes for --device cuda")
    args = parser.parse_args(argv)
    if args.device == "cuda":
        return main_gpu(args)

    if args.quick:
        sizes, pairs, min_seconds = ["112"], 3, 0.2
        wv, wf, ws, wb, wp = 4, 6, 64, "tvl1", "fast"
        agreement = (64, 2, 4)
    else:
        sizes, pairs, min_seconds = ["112", "240"], 6, 3.0
        wv, wf, ws, wb, wp = 8, 24, 112, "tvl1", "default"
        agreement = (112, 4, 9)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"flow benchmark{' (quick)' if args.quick else ''}: {platform.processor() or '?'} "
          f"{cores} cores, OpenCV {cv2.__version__}, load average before {load[0]:.2f} "
          "(a busy machine slows every figure)")
    backend_rows = bench_backends(sizes, pairs, min_seconds)
    video = video_agreement(*agreement, "cpu")
    setup = f"{wv} videos x {wf} frames at {ws}x{ws}, preset {wp}"
    worker_rows = (bench_workers(wv, wf, ws, wb, wp, [1, 2])
                   + bench_workers(wv, wf, ws, "tvl1-torch", wp, [1, 2]))
    print_tables(backend_rows, worker_rows, setup)
    print(f"\ntvl1-torch vs OpenCV TV-L1 on {video['setup']}: mean end-point difference "
          f"{video['epd_mean']:.4f} px (worst video {video['epd_max_video']:.4f}; mean flow "
          f"{video['flow_magnitude']:.2f} px)")
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average after: {load_after:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"backends": backend_rows, "workers": worker_rows,
                                         "worker_setup": setup, "video": video,
                                         "load_before": load[0],
                                         "load_after": load_after}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
