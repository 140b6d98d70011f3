"""Issue-8 comparison on the embedded dataset: Flow, RGB, MARS and relation ("DS") students.

For each dataset variant (``motion``: ``flowless synth --categories 1``, motion-only classes;
``default``: appearance x motion) and each seed, this script generates the data, extracts
flow, trains the Flow stream (the teacher) and the RGB stream, then the MARS and relation
students for every alpha, all with one recipe and budget, trains the RGB+Flow attention
fusion, and evaluates every network on the test split with the MARS protocol (every
non-overlapping clip, centre crop, clip logits averaged per video). It prints mean, spread
(sample standard deviation) and per-seed values of video top-1, and the students' paired
gains over RGB. Results go to ``<out>/results.json`` and ``<out>/table.md``.

Independent trainings run in parallel processes with one thread each (``--jobs``), and
everything is resumable: rerun the same command after an interruption.

    python benchmarks/distill_sweep.py --quick               # smoke run, about a minute
    python benchmarks/distill_sweep.py --jobs 16             # the full sweep (3 seeds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

VARIANTS = {"motion": {"categories": 1}, "default": {}}


def _watch_parent(parent_pid: int) -> None:
    """Run in each worker: exit when the sweep process dies (kill -9 leaves no orphans)."""
    import threading

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


@dataclass
class Job:
    name: str
    kind: str  # train | fusion | eval
    args: dict[str, Any]
    deps: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny data and epochs (smoke run)")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)),
                   help="parallel training processes, one thread each (default: all cores)")
    p.add_argument("--seeds", type=int, nargs="+", help="training seeds (default 0 1 2)")
    p.add_argument("--alphas", type=float, nargs="+",
                   help="distillation weights swept for MARS and relation (default 2 8 50 200)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["motion", "default"])
    p.add_argument("--out", type=Path, default=Path("runs/distill_sweep"))
    p.add_argument("--new-data-per-seed", action="store_true",
                   help="generate a dataset per seed (data seed = seed) instead of one (seed 0)")
    p.add_argument("--motions", type=int, default=5)
    p.add_argument("--categories", type=int, default=2, help="colour families (default variant)")
    p.add_argument("--videos-per-class", type=int)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--render-size", type=int, default=64)
    p.add_argument("--flow-backend", default="farneback", help="farneback | tvl1 | dis")
    p.add_argument("--motion-scale", type=float, default=1.6,
                   help="synth motion scale (default 1.6, as the demo)")
    p.add_argument("--flow-preset", default=None, help="backend preset (e.g. tvl1 fast)")
    p.add_argument("--flow-short-side", type=int, default=64,
                   help="flow is computed at this short side (default 64: the rendered size)")
    p.add_argument("--arch", default="resnet10")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--clip-len", type=int)
    p.add_argument("--size", type=int, default=32, help="network input size (and short side)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--flip", action="store_true",
                   help="horizontal flips in training (off by default: the synthetic classes "
                   "include mirror-image motions, left/right and clockwise/counter-clockwise)")
    p.add_argument("--fusion-epochs", type=int, default=30)
    args = p.parse_args(argv)
    quick = args.quick
    args.seeds = args.seeds or ([0, 1] if quick else [0, 1, 2])
    args.alphas = args.alphas or ([50.0] if quick else [2.0, 8.0, 50.0, 200.0])
    args.videos_per_class = args.videos_per_class or (6 if quick else 60)
    args.epochs = args.epochs or (2 if quick else 15)
    args.clip_len = args.clip_len or (8 if quick else 16)
    if quick:
        args.motions, args.frames, args.fusion_epochs = min(args.motions, 3), 9, 5
    return args


def _alpha_tag(alpha: float) -> str:
    return f"{alpha:g}"


def plan(args: argparse.Namespace) -> tuple[list[Job], dict[str, dict[str, Path]]]:
    """Every job of the sweep with its dependencies, and each (variant, seed)'s data paths."""
    jobs: list[Job] = []
    places: dict[str, dict[str, Path]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            data_seed = seed if args.new_data_per_seed else 0
            data_dir = args.out / variant / f"data-{data_seed}"
            run_dir = args.out / variant / f"seed-{seed}"
            key = f"{variant}/{seed}"
            places[key] = {"data": data_dir / "videos", "flow": data_dir / "flow", "runs": run_dir}
            common = {"root": str(data_dir / "videos"), "flow_root": str(data_dir / "flow"),
                      "seed": seed}
            jobs.append(Job(f"{key}/flow", "train", dict(common, stream="flow",
                                                         out=str(run_dir / "flow"))))
            jobs.append(Job(f"{key}/rgb", "train", dict(common, stream="rgb",
                                                        out=str(run_dir / "rgb"))))
            students = ["rgb", "flow"]
            for mode, short in (("mars", "mars"), ("relation", "ds")):
                for alpha in args.alphas:
                    name = f"{short}-a{_alpha_tag(alpha)}"
                    students.append(name)
                    jobs.append(Job(f"{key}/{name}", "train",
                                    dict(common, stream="rgb", out=str(run_dir / name), mode=mode,
                                         alpha=alpha, teacher=str(run_dir / "flow" / "last.pt")),
                                    deps=[f"{key}/flow"]))
            jobs.append(Job(f"{key}/fusion", "fusion",
                            dict(common, out=str(run_dir / "fusion-rgb-flow"),
                                 streams=[str(run_dir / s / "last.pt") for s in ("rgb", "flow")]),
                            deps=[f"{key}/rgb", f"{key}/flow"]))
            jobs.append(Job(f"{key}/eval", "eval",
                            dict(common, runs=str(run_dir), students=students,
                                 fusion=str(run_dir / "fusion-rgb-flow" / "last.pt")),
                            deps=[f"{key}/{s}" for s in students] + [f"{key}/fusion"]))
    return jobs, places


# --- work done in the worker processes ---------------------------------------------------

def _train_config(a: dict[str, Any], opts: dict[str, Any]) -> Any:
    from flowless.config import DataConfig, DistillConfig, ModelConfig, OptimConfig, TrainConfig

    mode = a.get("mode", "none")
    return TrainConfig(
        stream=a["stream"], epochs=opts["epochs"], batch_size=opts["batch_size"], seed=a["seed"],
        out=a["out"], device="cpu", threads=1, tensorboard=False,
        data=DataConfig(format="ucf101", root=a["root"], flow_root=a["flow_root"],
                        clip_len=opts["clip_len"], size=opts["size"], short_side=opts["size"],
                        flip=opts["flip"]),
        model=ModelConfig(arch=opts["arch"], width=opts["width"]),
        optim=OptimConfig(name="adamw", lr=opts["lr"], weight_decay=opts["weight_decay"],
                          schedule="cosine", warmup_epochs=1.0 if opts["epochs"] > 3 else 0.0),
        distill=DistillConfig(teacher=a.get("teacher") if mode != "none" else None, mode=mode,
                              alpha=a.get("alpha", 50.0)),
    )


def _finished(run: Path, epochs: int) -> bool:
    from flowless.checkpoint import load_checkpoint

    last = run / "last.pt"
    return last.exists() and int(load_checkpoint(last).get("epoch", 0)) >= epochs


def _video_logits(ckpt: str, records: list[Any], a: dict[str, Any], opts: dict[str, Any]) -> Any:
    """(V, K) clip logits averaged per video, MARS protocol, for one stream checkpoint."""
    import torch

    from flowless.config import DataConfig
    from flowless.engine.data import clip_dataset
    from flowless.eval.scoring import VideoLogits
    from flowless.eval.streams import load_stream

    stream = load_stream(ckpt)
    data = DataConfig(root=a["root"], flow_root=a["flow_root"], clip_len=opts["clip_len"],
                      size=opts["size"], short_side=opts["size"])
    ds = clip_dataset(records, data, stream.input, "test", 0)
    videos = VideoLogits(len(records), len(stream.classes))
    for batch in torch.utils.data.DataLoader(ds, batch_size=32):
        videos.add(stream.logits(batch["clip"]), batch["video"])
    return videos.mean().numpy()


def _evaluate(a: dict[str, Any], opts: dict[str, Any]) -> dict[str, float]:
    import numpy as np

    from flowless.data.annotations import load_index
    from flowless.eval.scoring import fuse
    from flowless.eval.streams import load_streams

    records = load_index(a["root"], "ucf101").split("test")
    labels = np.array([r.label for r in records])
    runs = Path(a["runs"])
    logits = {s: _video_logits(str(runs / s / "last.pt"), records, a, opts) for s in a["students"]}

    def acc(scores: Any) -> float:
        return float((np.argmax(scores, 1) == labels).mean())

    out = {s: acc(z) for s, z in logits.items()}
    pair = [logits["rgb"], logits["flow"]]
    out["rgb+flow mean logits"] = acc(fuse(pair, "logit-mean"))
    out["rgb+flow mean softmax"] = acc(fuse(pair, "softmax-mean"))
    out["rgb+flow log-prob sum"] = acc(fuse(pair, "logprob-sum"))
    _, attention = load_streams([], a["fusion"])
    out["rgb+flow attention"] = acc(attention(pair))
    out["attention weights"] = [float(w) for w in attention.last_weights.mean(0)]
    return out


def run_job(job: Job, opts: dict[str, Any]) -> dict[str, Any]:
    """Run one job in a worker process (1 thread); returns what the table needs."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    a = job.args
    if job.kind == "train":
        from flowless.engine import train

        cfg = _train_config(a, opts)
        run = Path(a["out"])
        if not _finished(run, opts["epochs"]):
            if (run / "last.pt").exists():
                cfg.resume = str(run)
            train(cfg, quiet=True)
    elif job.kind == "fusion":
        from flowless.config import DataConfig, FusionConfig
        from flowless.engine import train_fusion

        if not (Path(a["out"]) / "last.pt").exists():
            train_fusion(FusionConfig(
                streams=a["streams"], epochs=opts["fusion_epochs"], batch_size=16, lr=0.1,
                seed=a["seed"], out=a["out"], device="cpu", threads=1,
                data=DataConfig(format="ucf101", root=a["root"], flow_root=a["flow_root"],
                                clip_len=opts["clip_len"], size=opts["size"],
                                short_side=opts["size"], flip=opts["flip"])), quiet=True)
    else:
        result = _evaluate(a, opts)
        return {"name": job.name, "seconds": time.perf_counter() - start, "result": result}
    return {"name": job.name, "seconds": time.perf_counter() - start}


# --- the main process --------------------------------------------------------------------

def prepare_data(args: argparse.Namespace, places: dict[str, dict[str, Path]]) -> None:
    """Generate each needed dataset and its flow (both skip what already exists)."""
    from flowless.data.annotations import load_index
    from flowless.data.synth import make_synthetic_dataset
    from flowless.flow import extract_flow

    done: set[Path] = set()
    for key, where in places.items():
        variant, seed = key.split("/")
        if where["data"] in done:
            continue
        done.add(where["data"])
        options = {"motions": args.motions, "categories": args.categories,
                   "videos_per_class": args.videos_per_class, "frames": args.frames,
                   "size": args.render_size, "seed": int(seed) if args.new_data_per_seed else 0,
                   "motion_scale": args.motion_scale}
        options.update(VARIANTS[variant])
        t0 = time.perf_counter()
        make_synthetic_dataset(where["data"], jobs=args.jobs, quiet=True, **options)
        index = load_index(where["data"], "ucf101")
        extract_flow([(r.key, r.path) for r in index.records], where["flow"],
                     backend=args.flow_backend, short_side=args.flow_short_side,
                     preset=args.flow_preset, workers=args.jobs, quiet=True)
        print(f"[data] {where['data']}: {len(index.records)} videos, "
              f"{len(index.classes)} classes, flow {args.flow_backend} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)


def run_all(jobs: list[Job], opts: dict[str, Any], workers: int) -> dict[str, dict[str, Any]]:
    """Run jobs as their dependencies finish, ``workers`` at a time; failures skip dependants."""
    results: dict[str, dict[str, Any]] = {}
    failed: set[str] = set()
    pending = {j.name: j for j in jobs}
    running: dict[Future, Job] = {}
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        while pending or running:
            for name, job in list(pending.items()):
                if any(d in failed for d in job.deps):
                    failed.add(name)
                    del pending[name]
                    print(f"[skip] {name}: a dependency failed", flush=True)
                elif all(d in results for d in job.deps):
                    running[pool.submit(run_job, job, opts)] = job
                    del pending[name]
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = running.pop(fut)
                try:
                    results[job.name] = fut.result()
                    print(f"[done] {job.name} ({results[job.name]['seconds']:.0f}s)", flush=True)
                except Exception as exc:  # noqa: BLE001 - report and go on with the rest
                    failed.add(job.name)
                    print(f"[fail] {job.name}: {type(exc).__name__}: {exc}", flush=True)
    return results


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    mean = 100 * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}"


def table(args: argparse.Namespace, evals: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: one section per variant; rows = methods; mean ± sd, gain over RGB, per seed."""
    methods = ["flow", "rgb"]
    methods += [f"mars-a{_alpha_tag(a)}" for a in args.alphas]
    methods += [f"ds-a{_alpha_tag(a)}" for a in args.alphas]
    methods += ["rgb+flow mean logits", "rgb+flow mean softmax", "rgb+flow log-prob sum",
                "rgb+flow attention"]
    lines = []
    for variant in args.variants:
        per_seed = evals.get(variant, {})
        seeds = sorted(per_seed, key=int)
        lines += [f"### {variant} variant ({len(seeds)} seeds: {', '.join(seeds)})", "",
                  "| method | video top-1 % (mean ± sd) | gain over RGB (paired) | per seed |",
                  "|---|---|---|---|"]
        for m in methods:
            vals = [per_seed[s][m] for s in seeds if m in per_seed[s]]
            gains = [per_seed[s][m] - per_seed[s]["rgb"] for s in seeds
                     if m in per_seed[s] and "rgb" in per_seed[s]]
            gain = "" if m == "rgb" else _stats(gains)
            if gain not in ("", "-"):
                gain = ("+" if not gain.startswith("-") else "") + gain
            lines.append(f"| {m} | {_stats(vals)} | {gain} | "
                         f"{' '.join(f'{100 * v:.1f}' for v in vals)} |")
        weights = [per_seed[s]["attention weights"] for s in seeds
                   if "attention weights" in per_seed[s]]
        if weights:
            lines += ["", "attention weights (rgb, flow), mean over test videos: "
                      + "; ".join(f"({w[0]:.2f}, {w[1]:.2f})" for w in weights)]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs, places = plan(args)
    opts = {k: getattr(args, k) for k in ("epochs", "batch_size", "clip_len", "size", "arch",
                                          "width", "lr", "weight_decay", "flip",
                                          "fusion_epochs")}
    print(f"[plan] {len(jobs)} jobs ({sum(j.kind == 'train' for j in jobs)} trainings) on "
          f"{args.jobs} processes; recipe {json.dumps(opts)}", flush=True)
    prepare_data(args, places)
    results = run_all(jobs, opts, args.jobs)
    evals: dict[str, dict[str, dict[str, Any]]] = {}
    for name, res in results.items():
        if "result" in res:
            variant, seed, _ = name.split("/")
            evals.setdefault(variant, {})[seed] = res["result"]
    text = table(args, evals)
    elapsed = time.perf_counter() - started
    header = (f"distill sweep: {args.arch} x{args.width}, {args.clip_len}x{args.size}^2 clips, "
              f"{args.epochs} epochs, AdamW lr {args.lr}, alphas {args.alphas}, flow "
              f"{args.flow_backend}, flip {'on' if args.flip else 'off'}; {elapsed:.0f}s with "
              f"{args.jobs} processes on {os.cpu_count()} cores\n")
    print("\n" + header + "\n" + text, flush=True)
    from flowless.io import write_json, write_text

    write_text(args.out / "table.md", header + "\n" + text)
    write_json(args.out / "results.json", {"args": {k: str(v) if isinstance(v, Path) else v
                                                    for k, v in vars(args).items()},
                                           "evals": evals, "seconds": elapsed})
    missing = len(jobs) - len(results)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
