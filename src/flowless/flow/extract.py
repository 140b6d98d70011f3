"""Parallel, resumable flow extraction of many videos into a store.

Each video is decoded, converted to grayscale, resized, and its flow fields are quantised
and streamed to ``<key>.npz`` under a temporary name that is renamed when complete. A rerun
skips videos whose final file exists and redoes the rest; OpenCV runs single-threaded in
each worker so results do not depend on the number of workers or on interruptions. A
video that fails is recorded in the report file and the others complete. The tvl1-torch
backend runs in this process instead, batching frame pairs of many videos on one device
(flow/batched.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flowless.errors import ConfigError, FlowError, FlowlessError
from flowless.flow.backends import (
    FlowBackend,
    check_device,
    get_backend,
    resize_gray,
    resolve_params,
    to_gray,
)
from flowless.flow.quantize import quantize
from flowless.flow.store import (
    MANIFEST_NAME,
    check_key,
    ensure_manifest,
    flow_path,
    load_flow_u8,
    make_manifest,
    open_flow_writer,
    remove_partial,
)
from flowless.io import write_json
from flowless.progress import progress

Video = tuple[str, Path]


@dataclass
class ExtractSummary:
    """What a run did; ``line()`` is the summary printed by the CLI."""

    done: int
    skipped: int
    failures: list[dict[str, str]]
    report: Path
    seconds: float
    total: int = 0
    done_keys: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self) -> str:
        text = f"{self.done} done, {self.skipped} skipped (already complete), {self.failed} failed"
        return text + (f" (see {self.report})" if self.failed else "")


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (0-based i) -> (i, n)."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError as exc:
        raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4") from exc
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return i, n


def shard_videos(videos: Sequence[Video], shard: tuple[int, int] = (0, 1)) -> list[Video]:
    """Shard ``i`` of ``n``: every n-th video by sorted key, from the i-th (disjoint, complete)."""
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: expected 0 <= i < n")
    by_key: dict[str, Path] = {}
    for key, path in videos:
        check_key(key)
        path = Path(path)
        if key in by_key and by_key[key] != path:
            raise FlowError(f"two videos have the key {key!r}: {by_key[key]} and {path}; "
                            "rename one (flow files are named after the key)")
        by_key[key] = path
    keys = sorted(by_key)
    return [(k, by_key[k]) for k in keys[i::n]]


def report_path(out: str | Path, shard: tuple[int, int] = (0, 1)) -> Path:
    """The failure report of a run (one per shard so shards never overwrite each other)."""
    i, n = shard
    name = "flowless-flow-report.json" if n == 1 else f"flowless-flow-report.shard-{i}-of-{n}.json"
    return Path(out) / name


def gray_frames(video: Path, short_side: int | None) -> Iterator[np.ndarray]:
    """The grey frames flow is computed on: resized, and a resolution change mid-stream
    resized back to the first frame's size."""
    from flowless.data.video import iter_frames

    first = None
    for frame in iter_frames(video):
        gray = resize_gray(to_gray(frame), short_side)
        if first is None:
            first = gray.shape
        elif gray.shape != first:
            gray = cv2.resize(gray, first[::-1], interpolation=cv2.INTER_AREA)
        yield gray


def flow_video_file(video: Path, out_file: Path, backend: str, params: dict[str, Any],
                    short_side: int | None, batch_size: int = 1, device: str = "auto") -> int:
    """Compute, quantise and stream one video's flow to ``out_file``; return the field count.
    tvl1-torch computes ``batch_size`` pairs at a time."""
    flow_of = get_backend(backend, device=device, **params)
    batch = batch_size if backend == "tvl1-torch" else 1
    frames, prev, pending = 0, None, []
    with open_flow_writer(out_file) as writer:

        def flush() -> None:
            flows = flow_of.many(np.stack([a for a, _ in pending]),
                                 np.stack([b for _, b in pending]))
            for flow in flows:
                writer.add(quantize(flow))
            pending.clear()

        for gray in gray_frames(video, short_side):
            frames += 1
            if prev is not None:
                pending.append((prev, gray))
                if len(pending) >= batch:
                    flush()
            prev = gray
        if pending:
            flush()
        if frames < 2:
            raise FlowError(f"{video}: has only {frames} frame; optical flow needs at least 2")
    return writer.count


def _process(key: str, video: str, out: str, backend: str, params: dict[str, Any],
             short_side: int | None, batch_size: int = 1, device: str = "auto"
             ) -> dict[str, Any]:
    """Worker task: one video -> result dict (never raises for a bad video)."""
    target = flow_path(out, key)
    try:
        remove_partial(target)
        count = flow_video_file(Path(video), target, backend, params, short_side, batch_size,
                                device)
        return {"key": key, "ok": True, "fields": count}
    except FlowlessError as exc:
        error = str(exc)
    except Exception as exc:  # any other failure of one video must not stop the batch
        error = f"{type(exc).__name__}: {exc}".strip()
    return {"key": key, "ok": False, "video": video, "error": error}


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:  # the main process died (e.g. kill -9): stop too
            os._exit(1)


def _init_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the main process
    cv2.setNumThreads(1)  # deterministic and no oversubscription across workers
    os.environ["OMP_NUM_THREADS"] = "1"  # the same for PyTorch (tvl1-torch), imported later
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _died(key: str, video: Path) -> dict[str, Any]:
    return {"key": key, "ok": False, "video": str(video),
            "error": "worker process died on this video (crash or out of memory; from a "
                     "script, call extract_flow under `if __name__ == '__main__':`)"}


def run_pool(todo: list[Video], workers: int, task: tuple,
             on_result: Callable[[dict[str, Any]], None],
             fn: Callable[..., dict[str, Any]] = _process) -> None:
    """Run ``fn(key, video, *task)`` for ``todo`` on ``workers`` processes.

    Videos in flight when a worker dies (segfault, out of memory) are retried one per fresh
    process, so the crash is blamed on the right video and the others complete.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    pending: deque[Video] = deque(todo)
    suspects: list[Video] = []
    while pending:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(os.getpid(),))
        inflight: dict[Any, Video] = {}
        interrupted = False
        try:
            while pending or inflight:
                while pending and len(inflight) < workers:
                    key, video = pending.popleft()
                    inflight[pool.submit(fn, key, str(video), *task)] = (key, video)
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key, video = inflight.pop(fut)
                    try:
                        on_result(fut.result())
                    except BrokenProcessPool:
                        suspects.append((key, video))
                if suspects:
                    suspects.extend(inflight.values())
                    break
        except KeyboardInterrupt:
            interrupted = True
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()  # do not wait for long videos in flight
            raise
        finally:
            pool.shutdown(wait=not (suspects or interrupted), cancel_futures=True)
        if suspects and workers > 1:
            for key, video in suspects:
                run_pool([(key, video)], 1, task, on_result, fn)
        elif suspects:
            on_result(_died(*suspects[0]))
        suspects = []


def _run_inline(todo: list[Video], task: tuple,
                on_result: Callable[[dict[str, Any]], None]) -> None:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for key, video in todo:
            on_result(_process(key, str(video), *task))
    finally:
        cv2.setNumThreads(threads)


def _is_complete(path: Path, verify: bool) -> bool:
    if not path.is_file():
        return False
    if not verify:
        return True
    try:
        load_flow_u8(path)
        return True
    except FlowError:
        path.unlink()
        return False


def extract_flow(
    videos: Sequence[Video],
    out: str | Path,
    *,
    backend: str = "tvl1",
    short_side: int | None = 256,
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    params: dict[str, Any] | None = None,
    preset: str | None = None,
    overwrite: bool = False,
    verify: bool = False,
    quiet: bool | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> ExtractSummary:
    """Compute the flow of ``videos`` ((key, path) pairs) into the store ``out``.

    Skips videos already complete (``verify`` also re-reads them and redoes broken ones;
    ``overwrite`` recomputes them). Returns counts and the failures (also in the report).
    tvl1-torch runs on ``device`` (auto: CUDA if available) in batches of ``batch_size``
    pairs (default 64 on CUDA, 4 on CPU): on CUDA or with one worker in this process,
    batching across videos (flow/batched.py); else in ``workers`` processes, one thread each.
    """
    started = time.perf_counter()
    out = Path(out)
    full = resolve_params(backend, params, preset)
    device = check_device(device, backend)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: expected at least 1")
    flow_of = FlowBackend(backend, full, device=device)  # refuse bad parameters early
    if flow_of.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("device cuda: PyTorch sees no CUDA GPU (torch.cuda.is_available()"
                              " is False); use --device cpu or auto")
    if short_side is not None and short_side < 0:
        raise ConfigError(f"short side {short_side}: expected a size in px, or 0 to keep it")
    short_side = short_side or None
    mine = shard_videos(videos, shard)
    ensure_manifest(out, make_manifest(backend, full, short_side), overwrite=overwrite)
    todo = [(k, p) for k, p in mine if overwrite or not _is_complete(flow_path(out, k), verify)]
    report = report_path(out, shard)
    summary = ExtractSummary(0, len(mine) - len(todo), [], report, 0.0, total=len(mine))

    def write_report(finished: bool) -> None:
        write_json(report, {
            "store": str(out), "manifest": str(out / MANIFEST_NAME),
            "shard": f"{shard[0]}/{shard[1]}", "finished": finished,
            "done": summary.done, "skipped": summary.skipped, "failed": summary.failed,
            "failures": summary.failures,
        })

    bar = progress(total=len(todo), desc=f"flow {backend}", unit="video", quiet=quiet)

    def on_result(result: dict[str, Any]) -> None:
        if result["ok"]:
            summary.done += 1
            summary.done_keys.append(result["key"])
        else:
            summary.failures.append({k: result[k] for k in ("key", "video", "error")})
            bar.set_postfix(failed=summary.failed)
            write_report(False)
        bar.update(1)

    processes = min(workers or default_workers(), max(1, len(todo)))
    cuda = flow_of.device.startswith("cuda")
    batch_size = batch_size or (64 if cuda else 4)
    task = (str(out), backend, full, short_side, batch_size, flow_of.device)
    try:
        if backend == "tvl1-torch" and (cuda or processes <= 1):
            _run_batched(todo, out, flow_of, short_side, on_result, workers, batch_size)
        elif processes <= 1:
            _run_inline(todo, task, on_result)
        else:
            run_pool(todo, processes, task, on_result)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - started
    write_report(True)
    return summary


def _run_batched(todo: list[Video], out: Path, flow_of: FlowBackend, short_side: int | None,
                 on_result: Callable[[dict[str, Any]], None], workers: int | None,
                 batch_size: int) -> None:
    """tvl1-torch in this process, batching pairs across videos: on CUDA (``workers``
    decoder threads, at most 4), or on one CPU thread (as one OpenCV worker)."""
    import torch

    from flowless.flow.batched import BatchedRun

    cuda = flow_of.device.startswith("cuda")
    threads = torch.get_num_threads()
    torch.set_num_threads(threads if cuda else 1)
    try:
        run = BatchedRun(out, flow_of, batch_size, on_result)
        run.run(todo, short_side, decoders=min(4, workers or default_workers()) if cuda else 1)
    finally:
        torch.set_num_threads(threads)
