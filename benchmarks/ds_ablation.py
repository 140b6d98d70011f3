"""Why does the distilled student (DS) not beat RGB on the embedded dataset? An ablation.

Works on finished demo folders (``flowless demo --seed S --out runs/demo_sS``): it reuses
their data, flow, Flow teacher and RGB stream, trains DS variants with the demo's recipe and
evaluates each under the MARS protocol, reporting video top-1 and which half of the label
(motion, category) the predictions get right:

- ``ds``: the demo's DS student (six taps, all layers trained from scratch), reused;
- ``ds_late``: the same with the relation loss on the late taps only (``layer4``, ``pool``):
  does matching the colour-blind teacher's early maps cost the student colour?
- ``rgb_ft`` / ``ds_ft`` / ``mars_ft``: the authors' regime: start from a trained RGB model
  (here the demo's RGB stream stands in for their Kinetics-trained model) and train only
  ``layer4`` and ``fc`` (MARS ``ft_begin_index 4``), for half the epochs at a tenth of the
  learning rate; ``rgb_ft`` is the control with cross-entropy only, so the extra training is
  not credited to distillation.

The fine-tuning budget (epochs / 2, lr / 10) was fixed before any run. Every variant is
resumable (a finished run is reused).

    python benchmarks/ds_ablation.py runs/demo_s0 runs/demo_s1 runs/demo_s2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ablation_kit import demo_config

VARIANTS = ("rgb", "ds", "ds_late", "rgb_ft", "ds_ft", "mars_ft")


def _config(cfg: Any, demo: Path, variant: str) -> Any:
    from flowless.demo import _train_config

    runs = demo / "runs"
    teacher = runs / "flow" / "last.pt"
    mode = {"ds_late": "relation", "ds_ft": "relation", "mars_ft": "mars"}.get(variant, "none")
    tc = _train_config(cfg, demo / "data", demo / "flow", "rgb", demo / "ablation" / variant,
                       teacher if mode != "none" else None, mode)
    tc.name = variant
    if variant == "ds_late":
        tc.distill.taps = ["layer4", "pool"]
    if variant.endswith("_ft"):
        tc.model.pretrained = str(runs / "rgb" / "last.pt")
        tc.model.freeze_until = "layer4"
        tc.epochs = max(1, cfg.epochs // 2)
        tc.optim.lr = cfg.lr / 10
        tc.optim.warmup_epochs = 0.0
    return tc


def run(demo: Path, variants: list[str], quiet: bool) -> dict[str, dict[str, float]]:
    """Train (or reuse) and evaluate every variant on one demo folder."""
    from flowless.demo import factor_accuracy
    from flowless.engine import train_once
    from flowless.engine.trainer import DONE
    from flowless.eval.runner import evaluate

    cfg = demo_config(demo)
    classes = json.loads((demo / "data" / "synth.json").read_text())["classes"]
    results = {}
    for variant in variants:
        if variant in ("rgb", "ds"):
            ckpt = demo / "runs" / variant / "last.pt"
        else:
            tc = _config(cfg, demo, variant)
            fresh, t0 = not (Path(tc.out) / DONE).exists(), time.perf_counter()
            ckpt = train_once(tc, quiet=quiet) / "last.pt"
            if fresh:
                print(f"{demo.name} {variant}: trained in {time.perf_counter() - t0:.0f} s",
                      flush=True)
        eval_dir = demo / "ablation" / "eval" / variant
        res = evaluate([str(ckpt)], demo / "data", "ucf101", protocol="mars",
                       flow_root=demo / "flow", out=eval_dir, quiet=True)
        results[variant] = {"top1": res["top1"], **factor_accuracy(eval_dir, classes)}
        print(f"{demo.name} {variant}: " + ", ".join(f"{k} {100 * v:.1f}"
                                                     for k, v in results[variant].items()),
              flush=True)
    return results


def table(all_results: dict[str, dict[str, dict[str, float]]], variants: list[str]) -> str:
    """Mean ± sd over the demo folders, and per folder, as Markdown."""
    names = list(all_results)
    lines = ["| variant | top-1 | motion right | category right | top-1 per seed |",
             "|---|---:|---:|---:|---|"]

    def stat(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"

    for v in variants:
        cols = [stat([all_results[n][v][k] for n in names]) for k in ("top1", "motion", "category")]
        per = " ".join(f"{100 * all_results[n][v]['top1']:.1f}" for n in names)
        lines.append(f"| {v} | " + " | ".join(cols) + f" | {per} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("demos", nargs="+", type=Path, help="finished `flowless demo` folders")
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--out", type=Path, default=Path("runs/ds_ablation.json"),
                   help="results (JSON with the table)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    import torch

    from flowless.engine.trainer import DONE

    torch.set_flush_denormal(True)
    for demo in args.demos:
        if not (demo / "runs" / "ds" / DONE).exists():
            print(f"error: {demo} is not a finished demo folder (run `flowless demo` first)",
                  file=sys.stderr)
            return 2
    all_results = {str(d): run(d, args.variants, args.quiet) for d in args.demos}
    text = table(all_results, args.variants)
    print(text)
    from flowless.io import write_json

    write_json(args.out, {"results": all_results, "table": text})
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
