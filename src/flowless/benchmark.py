"""End-to-end speed: the distilled RGB-only model vs the two-stream model (RGB + Flow with
optical flow computed on the fly), on the same video with networks of the same size.

Both paths run the real inference pipeline (:func:`flowless.eval.inference.score_video`):
decode, (flow), clips, network, fusion. Speed does not depend on the weights, so randomly
initialised networks of the requested architecture are used unless checkpoints are
given, and a test video is generated unless one is given. Threads are set explicitly:
on a 2-core machine a second job would distort the figures (docs/method.md §8).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowless.eval.inference import PIPELINE_STAGES, StageTimes, score_video
from flowless.eval.scoring import fuse
from flowless.eval.streams import DEFAULT_FAST, DataSettings, Stream, TorchStream, load_streams

# flow_short_side 256: MARS computes flow after resizing the short side to 256
# (docs/method.md §2), so a flow stream trained on such a store needs flow at that resolution.
# frames = k * clip_len + 1: both pipelines then see the same k clips per stream (N frames
# give N-1 flow fields, and RGB clips are aligned with the flow ones).
DEFAULTS = {"frames": 65, "resolution": "320x240", "arch": "resnext101", "width": 1.0,
            "size": 112, "clip_len": 16, "classes": 101, "repeats": 3, "flow_short_side": 256}
QUICK = {"frames": 25, "resolution": "64x48", "arch": "resnet10", "width": 0.25,
         "size": 32, "clip_len": 8, "classes": 10, "repeats": 1, "flow_short_side": 32}


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions:
    """Settings of :func:`run_benchmark` (``flowless benchmark`` flags). Fields left None
    take :data:`DEFAULTS`, or :data:`QUICK` (tiny, seconds) when ``quick`` is set."""

    video: str | Path | None = None  # None: a generated video (frames, resolution)
    frames: int | None = None
    resolution: str | None = None  # "WxH"
    arch: str | None = None
    width: float | None = None
    size: int | None = None
    clip_len: int | None = None
    classes: int | None = None
    short_side: int | None = None  # RGB frames resized to this short side (None: size)
    flow_short_side: int | None = None
    backends: tuple[str, ...] | str = ("tvl1", "dis", "farneback")  # or "tvl1,dis"
    repeats: int | None = None
    threads: int | None = None  # None: all available cores
    batch_size: int = 8
    rgb: str | Path | None = None  # RGB checkpoint instead of a random network
    flow: str | Path | None = None  # flow checkpoint instead of a random network
    quick: bool = False
    fast: str = DEFAULT_FAST  # how the networks run (eval.streams.FAST_MODES; "off": as trained)

    def resolved(self) -> BenchmarkOptions:
        """A copy with every preset field (:data:`DEFAULTS` keys) set and ``backends`` a
        tuple of names (a comma-separated string is split)."""
        preset = QUICK if self.quick else DEFAULTS
        unset = {k: v for k, v in preset.items() if getattr(self, k) is None}
        names = self.backends.split(",") if isinstance(self.backends, str) else self.backends
        return dataclasses.replace(self, **unset,
                                   backends=tuple(b.strip() for b in names if b.strip()))


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Set torch and OpenCV threads (the two libraries that do the work)."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def machine_info(threads: int) -> dict[str, Any]:
    """CPU, cores, threads, load average and library versions, to publish with figures."""
    import cv2
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": available_cores(), "threads": threads,
            "torch_threads": torch.get_num_threads(), "opencv_threads": cv2.getNumThreads(),
            "load_avg_1min": load, "torch": torch.__version__, "opencv": cv2.__version__,
            "quiet": load is not None and load < 0.5}


def generate_video(path: Path, frames: int, width: int, height: int) -> Path:
    """A textured square moving across a scrolling textured background (flow has work)."""
    from flowless.data.synth_render import moving_square_frames
    from flowless.data.video import write_video

    side = max(4, min(height, width) // 4)
    write_video(path, moving_square_frames(frames, height, width, dx=2, dy=1, seed=0,
                                           side=side, start=(height // 3, 0), scroll=1))
    return path


def random_stream(arch: str, width: float, classes: int, input: str, data: DataSettings,
                  config: dict[str, Any] | None = None, fast: str = DEFAULT_FAST) -> TorchStream:
    """A randomly initialised stream network of the requested size."""
    from flowless.models import create_model

    channels = 3 if input == "rgb" else 2
    if config is not None:
        module = create_model(**{**config, "in_channels": channels})
    else:
        module = create_model(arch, classes, in_channels=channels, width=width)
    return TorchStream(module, name=input, source="random", input=input,
                       classes=[f"class{i}" for i in range(module.num_classes)], data=data,
                       in_channels=channels, fast=fast)


def time_pipeline(video: Path, streams: list[Stream], *, repeats: int, batch_size: int,
                  flow_backend: str | None = None) -> dict[str, Any]:
    """Median wall time of the whole per-video pipeline over ``repeats`` runs."""
    walls, stages = [], []
    clips = frames = 0
    for _ in range(max(1, repeats)):
        times = StageTimes()
        t0 = time.perf_counter()
        scores = score_video(video, streams, batch_size=batch_size, flow_backend=flow_backend,
                             times=times)
        if len(scores.logits) > 1:
            fuse(scores.logits, "softmax-mean")
        walls.append(time.perf_counter() - t0)
        stages.append(times.seconds)
        clips, frames = sum(scores.clips), scores.frames
    latency = statistics.median(walls)
    return {"latency_s": latency, "min_s": min(walls), "runs": len(walls),
            "stages_s": {k: statistics.median(s.get(k, 0.0) for s in stages) for k in PIPELINE_STAGES},
            "videos_per_s": 1.0 / latency, "frames_per_s": frames / latency,
            "clips": clips, "clips_per_s": clips / latency, "frames": frames}


def run_benchmark(options: BenchmarkOptions) -> dict[str, Any]:
    """Time (a) RGB-only and (b) two-stream per flow backend; return a results dict."""
    import torch

    from flowless.models import count_parameters
    from flowless.models.fast import reuse_freed_memory

    o = options.resolved()
    threads = o.threads or available_cores()
    set_threads(threads)
    torch.set_flush_denormal(True)
    if o.fast != "off":
        reuse_freed_memory()
    data = DataSettings(clip_len=o.clip_len, size=o.size, stride=1,
                        short_side=o.short_side or o.size, flow_backend="tvl1",
                        flow_short_side=o.flow_short_side)
    rgb = load_streams([o.rgb], fast=o.fast)[0][0] if o.rgb else \
        random_stream(o.arch, o.width, o.classes, "rgb", data, fast=o.fast)
    if o.flow:
        flow = load_streams([o.flow], fast=o.fast)[0][0]
    else:
        config = getattr(getattr(rgb, "module", None), "config", None) if o.rgb else None
        flow_data = dataclasses.replace(rgb.data, flow_short_side=data.flow_short_side)
        flow = random_stream(o.arch, o.width, o.classes, "flow", flow_data, config, o.fast)
    tmp = None
    if o.video:
        video = Path(o.video)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="flowless-bench-")
        w, h = (int(v) for v in str(o.resolution).lower().split("x"))
        video = generate_video(Path(tmp.name) / "bench.mp4", o.frames, w, h)
    try:
        from flowless.data.video import probe

        info = probe(video)
        repeats, bs = o.repeats, o.batch_size
        time_pipeline(video, [rgb], repeats=1, batch_size=bs)  # warm-up (allocator, decoder)
        rows = [{"pipeline": "rgb-only", "backend": None,
                 **time_pipeline(video, [rgb], repeats=repeats, batch_size=bs)}]
        for backend in o.backends:
            row = time_pipeline(video, [rgb, flow], repeats=repeats, batch_size=bs,
                                flow_backend=backend)
            rows.append({"pipeline": "two-stream", "backend": backend, **row})
    finally:
        if tmp is not None:
            tmp.cleanup()
    base = rows[0]["latency_s"]
    for row in rows:
        row["x_rgb_only"] = row["latency_s"] / base
    module = getattr(rgb, "module", None)
    return {
        "machine": machine_info(threads),
        "video": {"path": str(o.video or "generated"), "width": info.width,
                  "height": info.height, "frames": rows[0]["frames"]},
        "network": {"arch": getattr(module, "config", {}).get("arch", o.arch),
                    "width": getattr(module, "config", {}).get("width", o.width),
                    "params_rgb": count_parameters(module) if module is not None else None,
                    "clip": [rgb.data.clip_len, rgb.data.size, rgb.data.size],
                    "short_side": rgb.data.short_side,
                    "flow_short_side": flow.data.flow_short_side,
                    "weights": "checkpoint" if o.rgb else "random", "fast": o.fast},
        "rows": rows,
    }


def format_results(res: dict[str, Any]) -> str:
    """The table printed by ``flowless benchmark``."""
    m, v, n = res["machine"], res["video"], res["network"]
    quiet = "quiet" if m["quiet"] else "BUSY: figures unreliable"
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; threads: torch {m['torch_threads']}, "
        f"opencv {m['opencv_threads']}; load {m['load_avg_1min']:.2f} ({quiet})",
        f"video: {v['path']} {v['width']}x{v['height']}, {v['frames']} frames; network: "
        f"{n['arch']} width {n['width']} ({(n['params_rgb'] or 0) / 1e6:.2f} M params, "
        f"{n['weights']} weights), clips {'x'.join(map(str, n['clip']))}, RGB short side "
        f"{n['short_side']}, flow short side {n['flow_short_side']}; fast path {n['fast']}",
        f"{'pipeline':<22}{'clips':>6}{'latency':>10}{'decode':>9}{'flow':>9}{'network':>9}"
        f"{'videos/s':>10}{'frames/s':>10}{'x RGB-only':>12}",
    ]
    for r in res["rows"]:
        name = "RGB-only (distilled)" if r["backend"] is None else f"two-stream {r['backend']}"
        st = r["stages_s"]
        lines.append(f"{name:<22}{r['clips']:>6}{r['latency_s']:>9.3f}s{st['decode']:>9.3f}{st['flow']:>9.3f}"
                     f"{st['network']:>9.3f}{r['videos_per_s']:>10.3f}{r['frames_per_s']:>10.1f}"
                     f"{r['x_rgb_only']:>12.1f}")
    slowest = {r["backend"]: r["x_rgb_only"] for r in res["rows"] if r["backend"]}
    if "tvl1" in slowest:
        lines.append(f"RGB-only is {slowest['tvl1']:.1f}x faster end-to-end than two-stream "
                     "with TV-L1 flow")
    return "\n".join(lines)
