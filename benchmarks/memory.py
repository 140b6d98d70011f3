"""Peak resident memory of ``flowless predict`` on a long video (streaming decode).

Generates a long 320x240 video (10 minutes at 25 fps = 15,000 frames by default), saves
a randomly initialised checkpoint, runs ``python -m flowless predict`` in a child process
and reports its peak RSS (``wait4`` rusage), against the 2 GB budget and against what
holding the decoded video at once would take.

    python benchmarks/memory.py                 # 15000 frames, ResNeXt-101 (minutes)
    python benchmarks/memory.py --quick         # 300 frames, tiny network (seconds)
    python benchmarks/memory.py --flow          # also RGB + Flow (flow computed on the fly)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LIMIT_MB = 2048


def write_long_video(path: Path, frames: int, width: int, height: int, fps: int = 25) -> Path:
    """Encode a moving-texture video frame by frame (never holding it in memory)."""
    import av

    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    side = min(height, width) // 4
    square = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for t in range(frames):
            img = np.roll(background, t % width, axis=1)
            y, x = (height // 3 + t) % (height - side), (3 * t) % (width - side)
            img[y : y + side, x : x + side] = square
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def save_random_checkpoint(path: Path, input: str, arch: str, width: float, size: int,
                           clip_len: int, classes: int) -> Path:
    from flowless.checkpoint import save_checkpoint
    from flowless.models import create_model

    model = create_model(arch, classes, in_channels=3 if input == "rgb" else 2, width=width)
    return save_checkpoint(path, {
        "kind": "stream", "model": model.state_dict(), "model_config": model.config,
        "stream": input, "input": input, "classes": [f"class{i}" for i in range(classes)],
        "data": {"clip_len": clip_len, "size": size, "stride": 1, "short_side": size,
                 "flow_backend": "farneback", "flow_short_side": size},
    })


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Run ``cmd``; return (exit code, peak RSS in MB, seconds, stdout)."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return proc.returncode, usage.ru_maxrss / 1024, seconds, text  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="video length (default 15000)")
    parser.add_argument("--resolution", default="320x240", metavar="WxH")
    parser.add_argument("--arch", default=None, help="network (default resnext101)")
    parser.add_argument("--width", type=float, default=None, help="width multiplier (default 1)")
    parser.add_argument("--size", type=int, default=None, help="crop size (default 112)")
    parser.add_argument("--clip-len", type=int, default=None, help="clip length (default 16)")
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument("--threads", type=int, default=2, help="OMP threads of the child")
    parser.add_argument("--flow", action="store_true",
                        help="also measure RGB + Flow with Farneback flow computed on the fly")
    parser.add_argument("--video", default=None, help="use this video instead of generating one")
    parser.add_argument("--quick", action="store_true", help="300 frames, tiny network")
    parser.add_argument("--json", default=None, metavar="OUT", help="write results as JSON")
    args = parser.parse_args()
    quick = args.quick
    frames = args.frames or (300 if quick else 15000)
    arch = args.arch or ("resnet10" if quick else "resnext101")
    width = args.width or (0.25 if quick else 1.0)
    size = args.size or (32 if quick else 112)
    clip_len = args.clip_len or (8 if quick else 16)
    w, h = (int(v) for v in args.resolution.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="flowless-mem-") as tmp:
        tmp_path = Path(tmp)
        if args.video:
            video = Path(args.video)
        else:
            t0 = time.perf_counter()
            video = write_long_video(tmp_path / "long.mp4", frames, w, h)
            print(f"generated {video.name}: {frames} frames {w}x{h} "
                  f"({video.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        rgb = save_random_checkpoint(tmp_path / "rgb.pt", "rgb", arch, width, size, clip_len,
                                     args.classes)
        runs = {"rgb-only": [str(rgb)]}
        if args.flow:
            flow = save_random_checkpoint(tmp_path / "flow.pt", "flow", arch, width, size,
                                          clip_len, args.classes)
            runs["rgb+flow (farneback)"] = [str(rgb), str(flow)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "FLOWLESS_QUIET": "1"}
        results = []
        for name, ckpts in runs.items():
            cmd = [sys.executable, "-m", "flowless", "predict", *ckpts, str(video), "--json"]
            code, peak, seconds, text = peak_rss_of(cmd, env)
            if code != 0:
                raise SystemExit(f"predict failed ({code}): {text.strip()[-500:]}")
            pred = json.loads(text.strip().splitlines()[-1])
            results.append({"pipeline": name, "peak_rss_mb": peak, "seconds": seconds,
                            "frames": pred["frames"],
                            "clips": sum(s["clips"] for s in pred["streams"])})
    naive_mb = frames * w * h * 3 / 2**20
    print(f"network {arch} width {width}, clips {clip_len}x{size}x{size}; decoded video held "
          f"at once would be {naive_mb:.0f} MB")
    print(f"{'pipeline':<24}{'frames':>8}{'clips':>8}{'peak RSS':>12}{'time':>10}  <2 GB")
    for r in results:
        ok = "yes" if r["peak_rss_mb"] < LIMIT_MB else "NO"
        print(f"{r['pipeline']:<24}{r['frames']:>8}{r['clips']:>8}{r['peak_rss_mb']:>9.0f} MB"
              f"{r['seconds']:>9.1f}s  {ok}")
    if args.json:
        from flowless.io import write_json

        write_json(args.json, {"frames": frames, "resolution": [w, h], "arch": arch,
                               "width": width, "naive_mb": naive_mb, "runs": results})


if __name__ == "__main__":
    main()
