"""The demo's training stage in parallel processes.

The demo's networks are small: on a few cores one training gains little from a second
thread, so independent trainings run side by side instead, one process (spawned) per job
with ``cores // jobs`` torch threads each. A network starts once the runs it needs are
done (a student after its teacher and ensemble, a fusion after its streams); among the
ready ones the longest goes first. Each task is the same call as in the sequential stage
(:func:`flowless.demo.train_stream`, :func:`flowless.demo.train_fusion_run`), so finished
runs are reused and killed ones resumed; results equal a sequential run with the same
number of threads per network.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any


def job_count(jobs: int, threads: int) -> tuple[int, int]:
    """(parallel trainings, torch threads each) for ``jobs`` (0: auto, one per core up to
    4) on ``threads`` cores (0: all)."""
    cores = threads or os.cpu_count() or 1
    n = jobs if jobs > 0 else min(4, cores)
    n = max(1, min(n, cores))
    return n, max(1, cores // n)


def _run_task(cfg: dict[str, Any], out: str, kind: str, name: str) -> float:
    """One training in a worker process; returns its seconds."""
    import torch

    from flowless.demo import DemoConfig, DemoRun, train_fusion_run, train_stream

    torch.set_num_threads(max(1, cfg["threads"]))
    torch.set_flush_denormal(True)
    run = DemoRun(DemoConfig(**cfg), Path(out), quiet=True)
    t0 = time.perf_counter()
    if kind == "stream":
        train_stream(run, next(s for s in run.stream_runs if s.name == name))
    else:
        train_fusion_run(run, name, run.fusions[name])
    return time.perf_counter() - t0


def _tasks(run: Any) -> dict[str, tuple[str, tuple[str, ...], float]]:
    """name -> (kind, runs it needs, rough cost in RGB trainings)."""
    tasks: dict[str, tuple[str, tuple[str, ...], float]] = {}
    for s in run.stream_runs:
        deps = ((s.teacher,) if s.teacher else ()) + tuple(s.ensemble)
        tasks[s.name] = ("stream", deps, s.epochs_scale * (1.5 if s.teacher else 1.0))
    for name, f in run.fusions.items():
        tasks[name] = ("fusion", tuple(f.streams), 2.0 if f.kind == "weighted" else 0.2)
    return tasks


def train_parallel(run: Any, jobs: int, threads: int) -> None:
    """Train every stream, student and fusion of ``run`` with ``jobs`` processes of
    ``threads`` torch threads each."""
    tasks = _tasks(run)
    done = {name for name in tasks if run.is_done(name)}
    pending = [name for name in tasks if name not in done]
    cfg = dataclasses.asdict(dataclasses.replace(run.cfg, threads=threads))
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        while pending or running:
            ready = sorted((n for n in pending if set(tasks[n][1]) <= done),
                           key=lambda n: -tasks[n][2])
            for name in ready[: jobs - len(running)]:
                pending.remove(name)
                running[pool.submit(_run_task, cfg, str(run.out), tasks[name][0], name)] = name
            if not running:
                raise RuntimeError(f"demo: {', '.join(pending)} wait for runs that never come")
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                name = running.pop(fut)
                seconds = fut.result()  # a failed training raises here, with its message
                done.add(name)
                run.echo(f"[demo]   {name}: trained in {seconds:.0f} s")
