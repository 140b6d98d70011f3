"""Loader speed: clips/s read from JPEG frame folders vs H.264 mp4 vs MPEG-4 avi, same clips.

The videos are generated (a textured square over a scrolling textured background plus
sensor-like noise, UCF101 size 320x240, about 0.3 Mbit/s as H.264 and 0.5 Mbit/s as MPEG-4,
like UCF101's files), written as H.264 mp4 and MPEG-4 avi, and the mp4's decoded frames are
saved as MARS-named JPEG folders (quality 95), so every source holds the same frames. One
:class:`~flowless.data.clips.ClipDataset` per source (same records, seed and epoch: the same
clip starts and crops) is read in one process with one OpenCV thread: training clips (one
random 16-frame clip per video, MARS augmentation) and test clips (every clip, MARS
protocol). Sources are interleaved over the repeats and the median is printed.

    python benchmarks/frames.py              # 8 videos x 150 frames (6 s at 25 fps)
    python benchmarks/frames.py --quick      # seconds, to check the script

The figures depend on the load of the machine: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from flowless.benchmark import machine_info
from flowless.data.annotations import VideoRecord
from flowless.data.clips import ClipDataset
from flowless.data.synth_render import moving_square_frames
from flowless.data.video import count_frames, iter_frames, read_frames, write_video


def write_avi(path: Path, frames: np.ndarray, bit_rate: int = 500_000) -> None:
    """MPEG-4 part 2 in AVI (UCF101's codec family) at a UCF101-like bit rate."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.bit_rate = bit_rate
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())


def make_sources(root: Path, videos: int, frames: int, width: int, height: int,
                 ) -> dict[str, list[VideoRecord]]:
    """{source: records}: the same videos as mp4, avi and JPEG frame folders."""
    sources: dict[str, list[VideoRecord]] = {"mp4 (H.264)": [], "avi (MPEG-4)": [],
                                             "JPEG frames": []}
    for v in range(videos):
        pixels = moving_square_frames(frames, height, width, dx=2 + v % 3, dy=1, seed=v)
        noise = np.random.default_rng(v).integers(-4, 5, pixels.shape)
        pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
        mp4, avi, folder = root / f"v{v}.mp4", root / f"v{v}.avi", root / f"v{v}"
        write_video(mp4, pixels)
        write_avi(avi, pixels)
        folder.mkdir()
        for t, img in enumerate(iter_frames(mp4), 1):
            cv2.imwrite(str(folder / f"image_{t:05d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        for name, path in zip(sources, (mp4, avi, folder)):
            sources[name].append(VideoRecord(path, 0, "c", "train", f"v{v}"))
    counts = {name: [count_frames(r.path) for r in recs] for name, recs in sources.items()}
    if len({tuple(c) for c in counts.values()}) != 1:
        raise SystemExit(f"the sources differ in frame counts: {counts}")
    return sources


def disk_mb(records: list[VideoRecord]) -> float:
    total = 0
    for r in records:
        paths = r.path.iterdir() if r.path.is_dir() else [r.path]
        total += sum(p.stat().st_size for p in paths)
    return total / 1e6


def clips_per_s(records: list[VideoRecord], mode: str, epochs: int) -> float:
    """Clips per second over ``epochs`` passes (16-frame clips, 112 px, as MARS); mode
    "read": the same number of random 16-frame clips, read only (no crop, resize, tensor)."""
    if mode == "read":
        rng = np.random.default_rng(0)  # the same starts for every source
        starts = [(r.path, int(rng.integers(0, count_frames(r.path) - 15)))
                  for _ in range(epochs) for r in records]
        t0 = time.perf_counter()
        for path, start in starts:
            read_frames(path, start + np.arange(16))
        return len(starts) / (time.perf_counter() - t0)
    data = ClipDataset(records, clip_len=16, size=112, mode=mode, seed=0)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        data.set_epoch(epoch)  # training: new clip starts and crops, the same for every source
        for i in range(len(data)):
            data[i]
    return epochs * len(data) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=150, help="frames per video")
    parser.add_argument("--epochs", type=int, default=5, help="training passes per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    videos, frames, repeats, (w, h) = args.videos, args.frames, args.repeats, (320, 240)
    epochs = args.epochs
    if args.quick:
        videos, frames, repeats, epochs, (w, h) = 2, 40, 1, 1, (160, 120)
    cv2.setNumThreads(1)
    machine = machine_info(1)
    print(f"loader benchmark: {machine['cpu']}, {machine['cores']} cores, 1 thread, load "
          f"average before {machine['load_avg_1min']:.2f} (a busy machine slows every figure)")
    with tempfile.TemporaryDirectory(prefix="flowless-frames-") as tmp:
        sources = make_sources(Path(tmp), videos, frames, w, h)
        modes = ("read", "train", "test")
        times = {s: {m: [] for m in modes} for s in sources}
        for _ in range(repeats):
            for mode in modes:
                for name, recs in sources.items():  # interleaved: load drift hits all alike
                    times[name][mode].append(clips_per_s(recs, mode, 1 if mode == "test"
                                                         else epochs))
        rows = [{"source": name, "disk_mb": disk_mb(recs),
                 **{mode: statistics.median(v) for mode, v in times[name].items()}}
                for name, recs in sources.items()]
    base = rows[0]
    print(f"\n{videos} videos x {frames} frames at {w}x{h}; 16-frame clips, 112 px, "
          f"{repeats} repeats (median); train: 1 random clip per video x {epochs} epochs, "
          "test: every clip (MARS protocol)")
    print("read: the training clips' frames only; train: + crop, resize, tensor (the "
          "ClipDataset item)")
    print("| source | read clips/s | train clips/s | test clips/s | read / train / test vs mp4 "
          "| disk MB |")
    print("|---|---:|---:|---:|---|---:|")
    for r in rows:
        ratios = " / ".join(f"{r[m] / base[m]:.2f}x" for m in modes)
        print(f"| {r['source']} | {r['read']:.1f} | {r['train']:.1f} | {r['test']:.1f} | "
              f"{ratios} | {r['disk_mb']:.2f} |")
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average after: {load_after:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "videos": videos, "frames": frames,
                                         "size": [w, h], "rows": rows,
                                         "load_after": load_after}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
