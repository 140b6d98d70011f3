"""Which flow should the teacher learn from? Flow-stream top-1 per flow backend (issue #15).

For demo runs that hold the dataset and its TV-L1 flow (``flowless demo --baselines-only
--seeds 200-202 --out runs/dev``), extracts the same videos' flow with each other backend
at the same short side (tvl1-torch with the demo's preset, DIS and Farneback with their
defaults), trains the Flow stream on each with the demo's recipe and seed, evaluates it
(MARS protocol, flow from that store) and prints per backend: extraction seconds per
video on this machine, top-1 per seed, mean ± sd and the difference to OpenCV TV-L1 with
its Student-t interval across seeds (the demo's own store, TV-L1 in the default
demo, is the reference and is not re-extracted). Resumable: stores and runs are kept under
``<run>/backends/<backend>/``.

    python benchmarks/teacher_backends.py runs/dev/seed_200 runs/dev/seed_201 runs/dev/seed_202
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ablation_kit import correct_of, demo_config, emit, parse_args, row_cells, top1

BACKENDS = ("tvl1", "tvl1-torch", "dis", "farneback")


def flow_store(run: Path, backend: str) -> tuple[Path, float | None]:
    """The run's flow store for ``backend`` (made when missing) and seconds per video."""
    from flowless.data.annotations import load_index
    from flowless.flow import extract_flow

    cfg = demo_config(run)
    if backend == cfg.flow_backend:
        return run / "flow", None
    out = run / "backends" / backend / "flow"
    timing = run / "backends" / backend / "extract.json"
    if not timing.exists():
        index = load_index(run / "data", "ucf101")
        t0 = time.perf_counter()
        extract_flow([(r.key, r.path) for r in index.records], out, backend=backend,
                     short_side=cfg.flow_short_side,
                     preset=cfg.flow_preset if backend == "tvl1-torch" else None, quiet=True)
        timing.write_text(json.dumps({"seconds_per_video": (time.perf_counter() - t0)
                                      / len(index.records)}))
    return out, json.loads(timing.read_text())["seconds_per_video"]


def teacher(run: Path, backend: str, flow: Path) -> Path:
    """The Flow stream trained on ``flow`` with the demo's recipe (reused when done)."""
    from flowless.demo import _train_config
    from flowless.engine import train_once

    if backend == demo_config(run).flow_backend:
        return run / "runs/flow/last.pt"
    out = run / "backends" / backend / "flow_stream"
    return train_once(_train_config(demo_config(run), run / "data", flow, "flow", out),
                      quiet=True) / "last.pt"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    names = BACKENDS if args.variants is None else tuple(args.variants.split(";"))
    demo_backend = demo_config(args.runs[0]).flow_backend  # the store the demo made
    acc: dict[str, list[float]] = {b: [] for b in names}
    cost: dict[str, list[float]] = {b: [] for b in names}
    diffs: dict[str, list[float]] = {b: [] for b in names if b != demo_backend}
    base = {}
    for run in args.runs:
        for b in names:
            flow, seconds = flow_store(run, b)
            got = top1(correct_of(run, [teacher(run, b, flow)], None, run / "backends",
                                  f"flow_{b}"))
            acc[b].append(got)
            if seconds is not None:
                cost[b].append(seconds)
            if b == demo_backend:
                base[run] = got
            print(f"{run.name}: {b}: flow teacher top-1 {got:.2f}"
                  + (f", extraction {seconds:.2f} s/video" if seconds else ""), flush=True)
        for b in diffs:
            if run in base:
                diffs[b].append(acc[b][-1] - base[run])
    seeds = [r.name for r in args.runs]
    lines = [f"| flow backend | s / video (extraction) | {' | '.join(seeds)} | mean ± sd | "
             f"vs {demo_backend}: mean [95 % CI across seeds] |",
             "|---|" + "---:|" * (len(seeds) + 3)]
    for b, vals in acc.items():
        cells, spread, vs = row_cells(vals, diffs.get(b))
        sec = f"{sum(cost[b]) / len(cost[b]):.2f}" if cost[b] else "(the demo's store)"
        lines.append(f"| {b} | {sec} | {cells} | {spread} | {vs} |")
    return emit(lines, args.out)


if __name__ == "__main__":
    sys.exit(main())
