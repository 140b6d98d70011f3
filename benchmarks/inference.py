"""Inference speed of one network: MARS's model code against flowless's inference options.

    python benchmarks/inference.py                      # ResNeXt-101, 4 x 3 x 16 x 112², 3 repeats
    python benchmarks/inference.py --quick              # ResNeXt-50, 2 x 3 x 8 x 64², seconds
    python benchmarks/inference.py --compile --bf16     # also torch.compile and bf16 autocast

Every option runs the same weights (random, with random BN statistics so that folding BN is
not a no-op) on the same batch of clips in the range of real inputs. Repeats are
interleaved (A, B, C, A, B, C, ...) and medians of wall and process CPU time reported,
with the largest logit difference to MARS's model code (relative to the logits' scale when
they exceed 1) and the one-off preparation time. Run it alone: two jobs on 2 cores
slow each other 5-10x; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from flowless.benchmark import available_cores, machine_info
from flowless.data.transforms import RGB_MEAN
from flowless.eval.streams import DataSettings, TorchStream
from flowless.models import create_model
from flowless.models.fast import (
    channels_last,
    fold_batchnorm,
    pointwise_as_linear,
    reuse_freed_memory,
    winograd_stems,
)

BLOCKS = {"resnext50": (3, 4, 6, 3), "resnext101": (3, 4, 23, 3), "resnext152": (3, 8, 36, 3)}
FULL = {"arch": "resnext101", "batch": 4, "frames": 16, "size": 112, "repeats": 3}
QUICK = {"arch": "resnext50", "batch": 2, "frames": 8, "size": 64, "repeats": 1}
TOLERANCE = 1e-3  # the bar for "equal logits"


# --- MARS's model code -------------------------------------------------------------------
# A copy of the network definition of Hara et al.'s 3D-ResNeXt as MARS uses it
# (models/resnext.py of MARS: BN after each convolution, the shortcut added after the third
# BN, a fixed-size average pool, shortcut type B). Same parameter names as flowless, so
# one state dict loads into both and load_state_dict(strict=True) checks the structure.


class MarsBottleneck(nn.Module):
    expansion = 2

    def __init__(self, inplanes: int, planes: int, cardinality: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        mid = cardinality * int(planes / 32)
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1,
                               groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


class MarsResNeXt(nn.Module):
    def __init__(self, layers: tuple[int, ...], sample_size: int, sample_duration: int,
                 cardinality: int = 32, num_classes: int = 400, input_channels: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv3d(input_channels, 64, kernel_size=7, stride=(1, 2, 2),
                               padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=(3, 3, 3), stride=2, padding=1)
        self.layer1 = self._make_layer(128, layers[0], cardinality)
        self.layer2 = self._make_layer(256, layers[1], cardinality, stride=2)
        self.layer3 = self._make_layer(512, layers[2], cardinality, stride=2)
        self.layer4 = self._make_layer(1024, layers[3], cardinality, stride=2)
        last_duration = int(math.ceil(sample_duration / 16))
        last_size = int(math.ceil(sample_size / 32))
        self.avgpool = nn.AvgPool3d((last_duration, last_size, last_size), stride=1)
        self.fc = nn.Linear(cardinality * 32 * MarsBottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, cardinality: int,
                    stride: int = 1) -> nn.Sequential:
        out = planes * MarsBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out))
        layers = [MarsBottleneck(self.inplanes, planes, cardinality, stride, downsample)]
        self.inplanes = out
        layers += [MarsBottleneck(out, planes, cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


# --- the options ---------------------------------------------------------------------------


def random_network(arch: str, classes: int, seed: int = 0) -> nn.Module:
    """A flowless network with random weights and random BN statistics (eval mode)."""
    torch.manual_seed(seed)
    net = create_model(arch, classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@contextlib.contextmanager
def _bf16() -> Any:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        yield


def _compiled(net: nn.Module, clips: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """fold BN + channels_last_3d under torch.compile (inductor with freezing: weights
    become constants and conv + bias + ReLU fuse into oneDNN calls), compiled here."""
    compiled = torch.compile(channels_last(fold_batchnorm(net)), options={"freezing": True})
    with torch.inference_mode():
        compiled(clips)
    return compiled


def _ready(stream: TorchStream, clips: torch.Tensor) -> Callable[[torch.Tensor], Any]:
    """The stream's logits with its fast copy already made (the export, for onnxruntime)."""
    with torch.inference_mode():
        stream.runner(clips)
    return stream.logits


def options(net: nn.Module, mars: nn.Module, stream: Callable[[str], TorchStream],
            clips: torch.Tensor, *, compile: bool, bf16: bool
            ) -> dict[str, tuple[Callable[[], Any], Any]]:
    """name -> (prepare() returning a callable on clips, the grad mode to run it in)."""
    inference = torch.inference_mode
    out: dict[str, tuple[Callable[[], Any], Any]] = {
        "MARS model code": (lambda: mars, inference),
        "flowless, no_grad (2019 style)": (lambda: net, torch.no_grad),
        "flowless, inference_mode (--no-fast)": (lambda: stream("off").logits, inference),
        "+ fold BN": (lambda: fold_batchnorm(net), inference),
        "+ channels_last_3d": (lambda: channels_last(net), inference),
        "+ channels_last_3d + 1x1x1 convs as GEMM":
            (lambda: channels_last(pointwise_as_linear(net)), inference),
        "+ Winograd stem (time)": (lambda: winograd_stems(net), inference),
        "+ all four (--fast torch, default)":
            (lambda: _ready(stream("torch"), clips), inference),
        "onnxruntime (--fast onnxruntime)":
            (lambda: _ready(stream("onnxruntime"), clips), inference),
    }
    if bf16:
        out["+ all four, bf16 autocast"] = (lambda: _ready(stream("torch"), clips), _bf16)
    if compile:
        out["+ fold BN + channels_last_3d, torch.compile"] = (
            lambda: _compiled(net, clips), inference)
    return out


def bf16_native() -> bool:
    """Whether oneDNN has bf16 instructions on this CPU (AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def run(args: argparse.Namespace) -> dict[str, Any]:
    preset = QUICK if args.quick else FULL
    cfg = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    threads = args.threads or available_cores()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    machine = machine_info(threads)
    net = random_network(cfg["arch"], args.classes)
    mars = MarsResNeXt(BLOCKS[cfg["arch"]], cfg["size"], cfg["frames"],
                       num_classes=args.classes).eval()
    mars.load_state_dict(net.state_dict(), strict=True)
    g = torch.Generator().manual_seed(1)
    shape = (cfg["batch"], 3, cfg["frames"], cfg["size"], cfg["size"])
    clips = torch.rand(shape, generator=g) * 255 - torch.tensor(RGB_MEAN).view(1, 3, 1, 1, 1)
    data = DataSettings(clip_len=cfg["frames"], size=cfg["size"])

    def stream(fast: str) -> TorchStream:
        return TorchStream(net, name="rgb", source="random", input="rgb", data=data,
                           classes=[str(i) for i in range(args.classes)], in_channels=3,
                           fast=fast)

    chosen = options(net, mars, stream, clips, compile=args.compile, bf16=args.bf16)
    rows = measure(chosen, clips, cfg["repeats"])
    # Phase 2: the process setting predict/evaluate/benchmark add (not undoable, so after).
    reused = reuse_freed_memory()
    again = {f"MARS model code, {REUSED}": chosen["MARS model code"],
             f"--fast torch, {REUSED} (CLI default)": (lambda: _ready(stream("torch"), clips),
                                                       torch.inference_mode)}
    if reused:
        rows.update(measure(again, clips, cfg["repeats"]))
    base = rows["MARS model code"]
    for row in rows.values():
        if "times" in row:
            row["clips_per_s"] = cfg["batch"] / row["median_s"]
            row["x_mars"] = base["median_s"] / row["median_s"]
            row["x_mars_cpu"] = base["cpu_s"] / row["cpu_s"]
            row["equal"] = row["max_diff"] <= TOLERANCE
    machine["load_avg_1min_end"] = machine_info(threads)["load_avg_1min"]
    return {"machine": machine, "config": cfg, "classes": args.classes,
            "bf16_native": bf16_native(), "rows": rows}


REUSED = "reused memory"


def measure(chosen: dict[str, tuple[Callable[[], Any], Any]], clips: torch.Tensor,
            repeats: int) -> dict[str, dict[str, Any]]:
    """Prepare each option, check its logits against the first one's, then time all of
    them in interleaved rounds; medians of wall and process CPU seconds per batch."""
    rows: dict[str, dict[str, Any]] = {}
    runners: dict[str, tuple[Callable[[torch.Tensor], Any], Any]] = {}
    for name, (prepare, mode) in chosen.items():
        t0 = time.perf_counter()
        try:
            fn = prepare()
        except Exception as exc:  # noqa: BLE001 - an option that fails is reported, not fatal
            rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
            continue
        rows[name] = {"prepare_s": time.perf_counter() - t0, "times": [], "cpu_times": []}
        runners[name] = (fn, mode)
    ref = None
    for name, (fn, mode) in runners.items():  # warm-up, and the logits of each option
        with mode():
            out = torch.as_tensor(fn(clips)).float()
        ref = out if ref is None else ref
        rows[name]["max_diff"] = float((out - ref).abs().max() / max(1.0, ref.abs().max()))
    for _ in range(repeats):
        for name, (fn, mode) in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            with mode():
                fn(clips)
            rows[name]["times"].append(time.perf_counter() - t0)
            rows[name]["cpu_times"].append(time.process_time() - c0)
    for row in rows.values():
        if "times" in row:
            row["median_s"] = statistics.median(row["times"])
            row["cpu_s"] = statistics.median(row["cpu_times"])
    return rows


def format_results(res: dict[str, Any]) -> str:
    m, c = res["machine"], res["config"]
    load = f"{m['load_avg_1min']:.2f} at start, {m['load_avg_1min_end']:.2f} at end"
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with "
             f"{m['torch_threads']} threads; load {load}"
             + ("" if m["quiet"] else " (BUSY: figures unreliable)"),
             f"network: {c['arch']} ({res['classes']} classes), batch {c['batch']} x 3 x "
             f"{c['frames']} x {c['size']}², {c['repeats']} interleaved repeats, medians",
             f"{'option':<44}{'prepare':>9}{'s/batch':>9}{'clips/s':>9}{'x MARS':>8}"
             f"{'cpu s':>7}{'x MARS':>8}{'max |dlogit|':>14}"]
    for name, r in res["rows"].items():
        if "error" in r:
            lines.append(f"{name:<44}  failed: {r['error']}")
            continue
        mark = "" if r["equal"] else f" > {TOLERANCE:.0e}"
        lines.append(f"{name:<44}{r['prepare_s']:>8.2f}s{r['median_s']:>9.3f}"
                     f"{r['clips_per_s']:>9.2f}{r['x_mars']:>8.2f}{r['cpu_s']:>7.2f}"
                     f"{r['x_mars_cpu']:>8.2f}{r['max_diff']:>14.1e}{mark}")
    lines.append("s/batch: median wall time; cpu s: median process CPU time (all threads; "
                 "on a shared machine the steadier measure of work); x MARS: against the "
                 "first row")
    if any(REUSED in k for k in res["rows"]):
        lines.append(f"{REUSED}: timed after reuse_freed_memory(), which predict, evaluate "
                     "and benchmark call unless --no-fast (glibc keeps freed memory instead "
                     "of page-faulting it in again every batch)")
    if not res["bf16_native"]:
        lines.append("bf16: this CPU has no native bf16 (AVX512-BF16/AMX); autocast emulates "
                     "it" + (" (see its row)" if any("bf16" in k for k in res["rows"])
                             else "; --bf16 measures it anyway"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"small settings that run in seconds ({QUICK['arch']}, batch "
                   f"{QUICK['batch']}, {QUICK['frames']}x{QUICK['size']}²): a smoke test")
    p.add_argument("--arch", choices=tuple(BLOCKS), default=None,
                   help=f"network (default {FULL['arch']})")
    p.add_argument("--batch", type=int, default=None, help=f"clips (default {FULL['batch']})")
    p.add_argument("--frames", type=int, default=None,
                   help=f"frames per clip (default {FULL['frames']})")
    p.add_argument("--size", type=int, default=None, help=f"crop size (default {FULL['size']})")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"interleaved timed runs per option (default {FULL['repeats']})")
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: cores)")
    p.add_argument("--compile", action="store_true",
                   help="also torch.compile (inductor, freezing); compiling takes minutes")
    p.add_argument("--bf16", action="store_true",
                   help="also bf16 autocast (slow where the CPU has no native bf16)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")
    args = p.parse_args(argv)
    res = run(args)
    print(format_results(res))
    if args.json:
        from flowless.io import write_json

        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
