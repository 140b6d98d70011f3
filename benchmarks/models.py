"""Speed and memory of the 3D ResNet/ResNeXt family: forward and training clips/s, peak memory.

Each case runs in a fresh child process so its peak memory (``ru_maxrss`` on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU) is its own. Run it alone on a quiet machine
(two torch jobs on 2 cores slow each other 5-10x) and say so when quoting the figures.

    python benchmarks/models.py --quick                  # tiny archs, ~1 minute on 2 cores
    python benchmarks/models.py                          # the family at 16x112x112, batch 8
    python benchmarks/models.py --device cuda --channels-last --compile
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# (arch, width) per case
FULL = [("resnet10", 0.25), ("resnet18", 0.25), ("resnet10", 1.0), ("resnet18", 1.0),
        ("resnet34", 1.0), ("resnet50", 1.0), ("resnext50", 1.0), ("resnext101", 1.0)]
QUICK = [("resnet10", 0.25), ("resnet18", 0.25)]


def _rss_mb() -> float:
    """Current resident memory of this process (MB), from /proc when available."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _timed(fn, iters: int, sync) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - start) / iters


def run_case(case: dict) -> dict:
    """Measure one (arch, width) case in this process; returns a result dict."""
    import torch

    from flowless.models import count_parameters, create_model

    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_flush_denormal(True)
    else:
        torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=case["amp"])
    fmt = torch.channels_last_3d if case["channels_last"] else torch.contiguous_format
    torch.manual_seed(0)
    model = create_model(case["arch"], case["classes"], width=case["width"]).to(device)
    model = model.to(memory_format=fmt)
    b, t, s = case["batch"], case["frames"], case["size"]
    x = torch.randn(b, 3, t, s, s, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, case["classes"], (b,), device=device)
    out = {**case, "params": count_parameters(model), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads()}
    base = _rss_mb()

    model.eval()
    forward = torch.compile(model) if case["compile"] else model
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode(), amp:
        start = time.perf_counter()
        for _ in range(case["warmup"]):
            forward(x)
        sync()
        out["warmup_s"] = round(time.perf_counter() - start, 2)
        sec = _timed(lambda: forward(x), case["iters"], sync)
    out["forward_clips_s"] = b / sec
    out["forward_peak_mb"] = (torch.cuda.max_memory_allocated(device) / 2**20 if cuda
                              else _peak_rss_mb() - base)

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(case["warmup"]):
        step()
    sec = _timed(step, case["iters"], sync)
    out["train_clips_s"] = b / sec
    out["train_peak_mb"] = (torch.cuda.max_memory_allocated(device) / 2**20 if cuda
                            else _peak_rss_mb() - base)
    out["baseline_rss_mb"] = base
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny archs only (resnet10/18 at width 0.25), 16x64x64, batch 4")
    p.add_argument("--archs", help="comma-separated arch[:width] list, e.g. resnet10:0.25,resnext101")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch threads (default: all cores)")
    p.add_argument("--batch", type=int)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--iters", type=int)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--channels-last", action="store_true", help="channels_last_3d memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast (forward and training)")
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        print(json.dumps(run_case(json.loads(args._child))))
        return 0

    if args.archs:
        cases = [(a.split(":")[0], float(a.split(":")[1]) if ":" in a else 1.0)
                 for a in args.archs.split(",")]
    else:
        cases = QUICK if args.quick else FULL
    batch = args.batch or (4 if args.quick else 8)
    size = args.size or (64 if args.quick else 112)
    iters = args.iters or (3 if args.quick else 5)
    print(f"# {args.device}, {args.threads} torch threads, input {batch}x3x{args.frames}x{size}x"
          f"{size}, {iters} timed iterations after {args.warmup} warm-up, channels_last="
          f"{args.channels_last}, compile={args.compile}, amp={args.amp}; figures are only meaningful on a "
          "quiet machine", flush=True)
    header = (f"{'arch':<11}{'width':>6}{'params':>12}{'fwd clips/s':>13}{'train clips/s':>15}"
              f"{'fwd peak MB':>13}{'train peak MB':>15}")
    print(header, flush=True)
    results = []
    for arch, width in cases:
        case = {"arch": arch, "width": width, "device": args.device, "threads": args.threads,
                "batch": batch, "frames": args.frames, "size": size, "classes": args.classes,
                "iters": iters, "warmup": args.warmup, "channels_last": args.channels_last,
                "compile": args.compile, "amp": args.amp}
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run([sys.executable, __file__, "--_child", json.dumps(case)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{arch:<11}{width:>6g}  failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{arch:<11}{width:>6g}{r['params']:>12,}{r['forward_clips_s']:>13.2f}"
              f"{r['train_clips_s']:>15.2f}{r['forward_peak_mb']:>13.0f}{r['train_peak_mb']:>15.0f}",
              flush=True)
    print("# peak MB: CPU = peak RSS above the model+input baseline (ru_maxrss); "
          "GPU = torch.cuda.max_memory_allocated")
    if args.json:
        from flowless.io import write_json

        write_json(args.json, results)
    return 0 if len(results) == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
