"""Mean and spread of the demo's table over several seeds (the README's 3-seed tables).

Reads ``summary.json`` of finished demo runs (``flowless demo --seed S --out runs/demo_sS``)
and prints, per method, video top-1 per seed with mean ± sample standard deviation, the
motion / category accuracy means, the end-to-end time per video, and how many times faster
the slowest RGB-only row is than the fastest row that needs flow, per seed, and on how many
seeds each of the paper's claims held, with the interval across seeds
(:func:`flowless.demo_report.seeds_summary`; ``flowless demo --seeds 0-4`` runs and
aggregates in one command).

    python benchmarks/demo_seeds.py runs/demo_s0 runs/demo_s1 runs/demo_s2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def tables(summaries: list[dict], first: int | None = None) -> str:
    """Markdown: accuracy per seed and mean ± sd (also over the ``first`` runs when given);
    halves of the label; times; claims."""
    seeds = [s["config"]["seed"] for s in summaries]
    methods = [r["method"] for r in summaries[0]["rows"]]
    rows = [{r["method"]: r for r in s["rows"]} for s in summaries]
    head = " | ".join(f"seed {k}" for k in seeds)
    extra = f" mean ± sd (first {first}) |" if first else ""
    out = [f"| method | needs flow | {head} |{extra} mean ± sd |",
           "|---|---|" + "---:|" * (len(seeds) + 1 + bool(first))]
    for m in methods:
        top = [100 * r[m]["top1"] for r in rows]
        part = f" {_ms(top[:first])} |" if first else ""
        out.append(f"| {m} | {'yes' if rows[0][m]['needs_flow'] else 'no'} | "
                   + " | ".join(f"{v:.1f}" for v in top) + f" |{part} {_ms(top)} |")
    out += ["", "| method | motion right (%) | category right (%) | ms / video (median per seed) |",
            "|---|---:|---:|---|"]
    for m in methods:
        mot = [100 * r[m]["motion_acc"] for r in rows]
        cat = [100 * r[m]["category_acc"] for r in rows]
        ms = " / ".join(f"{r[m]['ms_per_video']:.1f}" for r in rows)
        out.append(f"| {m} | {_ms(mot)} | {_ms(cat)} | {ms} |")
    from flowless.demo_report import format_seeds, seeds_summary

    out += ["", format_seeds(seeds_summary(summaries))]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("demos", nargs="+", type=Path, help="finished `flowless demo` folders")
    p.add_argument("--first", type=int, help="also give mean ± sd over the first N folders")
    args = p.parse_args(argv)
    summaries = []
    for d in args.demos:
        path = d / "summary.json"
        if not path.is_file():
            print(f"error: {path} not found; run `flowless demo --out {d}` first", file=sys.stderr)
            return 2
        summaries.append(json.loads(path.read_text()))
    print(tables(summaries, args.first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
