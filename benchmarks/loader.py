"""Does training wait for data? The loader's clips/s, the model's clips/s and their ratio.

Each case runs flowless's own training step (``flowless.engine.loop.train_epoch``) twice
over: on the real DataLoader (decode, augment, collate, in workers or not) and on the same
batches already in memory ("model": the network alone). ``ratio`` = model clips/s / training
clips/s = a step's time with the loader over the model's own time (goal: <= 1.15). The
loader alone (iterated with no model) is timed too. Runs are interleaved (loader, memory,
loader alone, in a rotating order) and the median of ``--repeats`` is printed, so a noisy
spell of a shared machine hits every figure alike; quote the load average printed with them.

Two estimates that a shared machine disturbs less: ``1/(1-wait)`` from the share of the
steps spent waiting for data (the same steps, so no pairing noise; it misses the cores that
workers take from the model, so it only equals the ratio with 0 workers) and ``cpu``, the
CPU seconds per clip (process and workers) on the loader over those on memory (the extra
work per clip; clean with ``--threads 1``, where no thread spins waiting for another).

Cases: ``demo`` = the demo's RGB stream (ResNet-10 at 1/4 width, 16 x 32 x 32 clips of
64 px videos decoded at 32 px, batch 16); ``demo-ds`` = its relation-distillation step
(the same student, a flow teacher on stored flow); ``r18`` = ResNet-18 at 16 x 112 x 112,
batch 8 (3 steps an epoch), on 320 x 240 videos of 150 frames decoded on the fly
(data.cache off: a real dataset at this size does not fit in memory).

    python benchmarks/loader.py                                 # all cases, defaults
    python benchmarks/loader.py --quick                         # tiny settings, ~1 min
    python benchmarks/loader.py --cases demo --workers 0,2 --cache off,on
    python benchmarks/loader.py --device cuda                   # AMP + channels_last
    python benchmarks/loader.py --demo-data runs/demo/data --demo-flow runs/demo/flow
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

CASES = ("demo", "demo-ds", "r18")


@dataclass(frozen=True)
class Case:
    """One model and clip setting."""

    name: str
    arch: str
    width: float
    clip_len: int
    size: int
    short_side: int | None
    batch: int
    distill: bool = False
    cache: str = "auto"


def cases(quick: bool) -> dict[str, Case]:
    """The cases at full or ``--quick`` size."""
    full = {"demo": Case("demo", "resnet10", 0.25, 16, 32, 32, 16),
            "demo-ds": Case("demo-ds", "resnet10", 0.25, 16, 32, 32, 16, distill=True),
            "r18": Case("r18", "resnet18", 1.0, 16, 112, None, 8, cache="off")}
    if not quick:
        return full
    return {"demo": replace(full["demo"], width=0.125, clip_len=8, batch=8),
            "demo-ds": replace(full["demo-ds"], width=0.125, clip_len=8, batch=8),
            "r18": replace(full["r18"], width=0.125, clip_len=8, size=56, batch=4)}


def demo_data(work: Path, videos_per_class: int) -> tuple[Path, Path]:
    """A demo-like dataset (64 px, 17 frames) and its flow at 64 px (Farneback: a store of
    the same format and field size as the demo's TV-L1 one, made 10x faster)."""
    from flowless.data.annotations import load_index
    from flowless.data.synth import make_synthetic_dataset
    from flowless.flow import extract_flow

    root = make_synthetic_dataset(work / "demo", motions=5, categories=1, frames=17, size=64,
                                  videos_per_class=videos_per_class, test_fraction=0.25,
                                  motion_scale=1.6, quiet=True)
    index = load_index(root, "ucf101")
    extract_flow([(r.key, r.path) for r in index.records], work / "demo-flow",
                 backend="farneback", short_side=64, quiet=True)
    return root, work / "demo-flow"


def real_size_records(work: Path, videos: int, items: int, frames: int) -> list[Any]:
    """``items`` records over ``videos`` distinct 320 x 240 videos of moving squares on a
    scrolling texture (H.264, as a real dataset's files)."""
    from flowless.data.annotations import VideoRecord
    from flowless.data.synth_render import moving_square_frames
    from flowless.data.video import write_video

    paths = []
    for v in range(videos):
        path = work / f"real_{v}.mp4"
        if not path.exists():
            write_video(path, moving_square_frames(frames, 240, 320, 3, 1, seed=v, side=48,
                                                   scroll=2))
        paths.append(path)
    return [VideoRecord(paths[i % videos], i % 2, str(i % 2), "train", f"real_{i % videos}")
            for i in range(items)]


def cpu_seconds() -> float:
    """CPU time of this process and of its live children (DataLoader workers); Linux."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def measure(case: Case, records: list[Any], flow_root: Path | None, *, workers: int | str,
            cache: str, device: str, repeats: int) -> dict[str, Any]:
    """Median clips/s of training on the loader, on memory, and of the loader alone."""
    import torch

    from flowless.config import DataConfig, OptimConfig
    from flowless.engine import data as rundata
    from flowless.engine.distributed import DistEnv
    from flowless.engine.loop import Distiller, StepOptions, Taps, train_epoch
    from flowless.engine.optim import build_optimizer
    from flowless.models import create_model

    dev = torch.device(device)
    env = DistEnv(device=dev)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_flush_denormal(True)
    data = DataConfig(root="-", flow_root=str(flow_root) if flow_root else None,
                      clip_len=case.clip_len, size=case.size, short_side=case.short_side,
                      flip=False, workers=workers, cache=cache)
    ds = rundata.clip_dataset(records, data, "rgbflow" if case.distill else "rgb", "train", 0)
    t0 = time.perf_counter()
    held = rundata.cache_videos([ds], data, env)
    preload_s = time.perf_counter() - t0
    loader = rundata.make_loader(ds, case.batch, env, train=True, seed=0, workers=workers)
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if cuda else torch.contiguous_format
    classes = 1 + max(r.label for r in records)
    net = create_model(case.arch, classes, 3, width=case.width).to(dev, memory_format=fmt)
    distiller = None
    if case.distill:
        teacher = create_model(case.arch, classes, 2, width=case.width).to(dev,
                                                                          memory_format=fmt)
        distiller = Distiller(teacher, "relation", input_key="flow")
    opt = build_optimizer(net, OptimConfig(name="adamw", lr=2e-3, weight_decay=1e-4))
    opts = StepOptions(device=dev, amp_dtype=torch.bfloat16 if cuda else None,
                       channels_last=cuda, quiet=True)
    model = Taps(net)

    def on_loader(epoch: int) -> dict[str, float]:
        rundata.set_epoch(loader, epoch, 0)
        cpu = cpu_seconds()
        out = train_epoch(model, loader, opt, opts, env, distiller=distiller)
        return {**out, "cpu": (cpu_seconds() - cpu) / out["train_clips"]}

    def on_memory() -> dict[str, float]:
        cpu = cpu_seconds()
        out = train_epoch(model, batches, opt, opts, env, distiller=distiller)
        return {**out, "cpu": (cpu_seconds() - cpu) / out["train_clips"]}

    def alone(epoch: int) -> float:
        rundata.set_epoch(loader, epoch, 0)
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch["label"])
        return n / (time.perf_counter() - start)

    rundata.set_epoch(loader, 0, 0)
    batches = list(loader)  # starts the workers; the batches the model runs on alone
    train_epoch(model, batches, opt, opts, env, distiller=distiller)  # warm-up
    on_loader(1)
    runs: dict[str, list[float]] = {"loader": [], "model": [], "train": [], "wait": [],
                                    "ratio": [], "cpu_ratio": []}
    for r in range(repeats):
        order = ["train", "model", "loader"]
        order = order[r % 3:] + order[:r % 3]
        got: dict[str, Any] = {}
        for what in order:
            if what == "train":
                got["train"] = on_loader(2 + r)
            elif what == "model":
                got["model"] = on_memory()
            else:
                got["loader"] = alone(2 + r)
        runs["train"].append(got["train"]["train_clips_per_s"])
        runs["wait"].append(got["train"]["train_data_wait"])
        runs["model"].append(got["model"]["train_clips_per_s"])
        runs["loader"].append(got["loader"])
        runs["ratio"].append(runs["model"][-1] / runs["train"][-1])
        runs["cpu_ratio"].append(got["train"]["cpu"] / got["model"]["cpu"])
    out = {k: statistics.median(v) for k, v in runs.items()}
    out["ratio_range"] = (min(runs["ratio"]), max(runs["ratio"]))
    out["wait_ratio"] = 1 / (1 - out["wait"])
    out.update(case=case.name, workers=loader.num_workers, cache=held > 0,
               cache_mb=held / 2**20, preload_s=preload_s, items=len(ds),
               threads=torch.get_num_threads(), device=device)
    return out  # the loader goes out of scope: its persistent workers stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma list of {', '.join(CASES)}")
    p.add_argument("--quick", action="store_true", help="tiny networks and data (~1 min)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--workers", default="auto", help="comma list of data.workers values to "
                   "compare (default auto)")
    p.add_argument("--cache", default="", help="comma list of data.cache values to compare "
                   "(default: the case's, auto except r18)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats (median)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--demo-data", type=Path, help="an existing demo dataset (out/data) ...")
    p.add_argument("--demo-flow", type=Path, help="... and its flow store (out/flow)")
    p.add_argument("--work", type=Path, help="folder for generated data (default: a temp dir)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    import torch

    from flowless.data.annotations import load_index

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    chosen = cases(args.quick)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in chosen]
    if unknown:
        p.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    repeats = args.repeats or (2 if args.quick else 5)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="flowless-loader-")
        args.work = Path(tmp.name)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# {args.device}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}; ratio = training step time on the loader / "
          "on batches in memory (goal <= 1.15)", flush=True)
    print(f"{'case':<9}{'workers':>8}{'cache':>7}{'loader':>9}{'model':>9}{'training':>9}"
          f"{'ratio':>7}{'range':>11}{'wait':>7}{'1/(1-wait)':>11}{'cpu':>6}  (clips/s; "
          f"medians of {repeats})", flush=True)
    results = []
    for name in names:
        case = chosen[name]
        if name.startswith("demo"):
            if args.demo_data:
                root, flow = args.demo_data, args.demo_flow
            else:
                root, flow = demo_data(args.work, 8 if args.quick else 64)
            records, flow_root = load_index(root, "ucf101").split("train"), flow
            if args.quick:
                records = records[:32]
        else:
            records = real_size_records(args.work, 4, (2 if args.quick else 3) * case.batch,
                                        48 if args.quick else 150)
            flow_root = None
        for cache in [c.strip() for c in args.cache.split(",") if c.strip()] or [case.cache]:
            for workers in [w.strip() for w in args.workers.split(",") if w.strip()]:
                w: int | str = workers if workers == "auto" else int(workers)
                r = measure(case, records, flow_root, workers=w, cache=cache,
                            device=args.device, repeats=repeats)
                r["load_avg"] = os.getloadavg()[0]
                results.append(r)
                lo, hi = r["ratio_range"]
                print(f"{name:<9}{r['workers']:>8}{'on' if r['cache'] else 'off':>7}"
                      f"{r['loader']:>9.1f}{r['model']:>9.1f}{r['train']:>9.1f}"
                      f"{r['ratio']:>7.2f}{f'{lo:.2f}-{hi:.2f}':>11}{100 * r['wait']:>6.1f}%"
                      f"{r['wait_ratio']:>11.2f}{r['cpu_ratio']:>6.2f}  load {r['load_avg']:.2f}",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
