"""Shared parts of the ablation scripts (student_ablation.py, fusion_ablation.py): the demo
config of a seed run, cached per-video results, variant selection and the table cells."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def demo_config(run: Path) -> Any:
    """The DemoConfig a seed run was made with (its demo_config.json)."""
    from flowless.demo_config import DemoConfig

    saved = json.loads((run / "demo_config.json").read_text())
    return DemoConfig(**{k: v for k, v in saved.items() if k in DemoConfig.__dataclass_fields__})


def correct_of(run: Path, ckpts: list[Path], fusion: str | None, folder: Path,
               tag: str) -> dict[str, int]:
    """Per test video 1/0 (MARS protocol) of ``ckpts`` fused by ``fusion``, cached in
    ``folder/eval_<tag>.json``."""
    from flowless.eval.report import read_predictions
    from flowless.eval.runner import evaluate

    cache = folder / f"eval_{tag}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    out = folder / f"eval_{tag}"
    evaluate([str(p) for p in ckpts], run / "data", "ucf101", protocol="mars", fusion=fusion,
             flow_root=run / "flow", out=out, quiet=True)
    got = {p["key"]: int(p["correct"]) for p in read_predictions(out / "predictions.jsonl")}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(got))
    return got


def top1(correct: dict[str, int]) -> float:
    return 100 * sum(correct.values()) / len(correct)


def parse_args(doc: str, argv: list[str] | None, epochs: bool = False) -> Any:
    """The scripts' command line: run folders, --variants, --out (and --epochs); also sets
    flush-denormal as training does."""
    import argparse

    import torch

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="demo runs (seed folders)")
    p.add_argument("--variants", default=None, help="names separated by ; (default: all)")
    if epochs:
        p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--out", type=Path, default=None, help="write the table here (markdown)")
    torch.set_flush_denormal(True)
    return p.parse_args(argv)


def chosen(text: str | None, known: dict[str, Any]) -> list[str] | None:
    """The variants named in ``text`` (separated by ";", as names hold commas; all when
    None), or None after printing the one-line error for an unknown name."""
    names = list(known) if text is None else [n.strip() for n in text.split(";")]
    bad = [n for n in names if n not in known]
    if bad:
        print(f"unknown variant {bad[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return None
    return names


def row_cells(values: list[float], diffs: list[float] | None) -> tuple[str, str, str]:
    """(per-seed cells, mean ± sd, difference mean [Student-t 95 % CI across seeds])."""
    from flowless.eval.stats import across_seeds

    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    cells = " | ".join(f"{v:.1f}" for v in values)
    vs = ""
    if diffs:
        ci = across_seeds(diffs)
        vs = f"{ci['mean']:+.1f}" + ("" if ci["low"] is None else
                                     f" [{ci['low']:+.1f}, {ci['high']:+.1f}]")
    return cells, f"{statistics.mean(values):.1f} ± {sd:.1f}", vs


def emit(lines: list[str], out: Path | None) -> int:
    """Print the table ``lines`` and write it to ``out`` when given; the scripts' exit 0."""
    text = "\n".join(lines)
    print(text)
    if out:
        out.write_text(text + "\n")
    return 0
