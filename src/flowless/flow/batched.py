"""Batched extraction for tvl1-torch: frame pairs of many videos computed together.

Decoder threads turn videos into grey frames; pairs of the same size, from one video or
several, are gathered into batches of ``batch_size`` and computed on one device. Each
video's fields are streamed, in order, to its own temporary file, renamed when complete,
so the store, the report and resuming are those of extract.py. A pair's flow does not
depend on the other pairs of its batch, so a killed or resharded run gives the same store.
Out of memory halves the batch size and retries; at one pair it fails those videos only.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowless.errors import FlowError, FlowlessError
from flowless.flow.backends import FlowBackend
from flowless.flow.extract import gray_frames
from flowless.flow.quantize import quantize
from flowless.flow.store import flow_path, open_flow_writer, remove_partial

Video = tuple[str, Path]
_END = object()


@dataclass(eq=False)
class _Open:
    """A video whose flow file is being written."""

    key: str
    video: Path
    stack: contextlib.ExitStack
    writer: Any
    prev: np.ndarray | None = None
    frames: int = 0
    queued: int = 0  # pairs waiting in a batch
    decoded: bool = False
    failed: bool = False


@dataclass
class _Batches:
    """Pairs waiting to be computed, grouped by frame size."""

    groups: dict[tuple[int, int], list[tuple[_Open, np.ndarray, np.ndarray]]] = field(
        default_factory=dict)

    def total(self) -> int:
        return sum(len(g) for g in self.groups.values())


def _is_oom(exc: BaseException) -> bool:
    """CUDA or CPU allocation failure (PyTorch raises RuntimeError on the CPU)."""
    import torch

    text = str(exc).lower()
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "allocate" in text))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FlowlessError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".strip()


def _decoders(todo: Sequence[Video], short_side: int | None, count: int, stop: threading.Event,
              events: queue.Queue) -> list[threading.Thread]:
    """Start ``count`` threads that put (key, video, gray | _END | error text) events."""
    jobs: queue.SimpleQueue = queue.SimpleQueue()
    for item in todo:
        jobs.put(item)

    def put(event: tuple) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                events.put(event, timeout=0.2)
                return

    def work() -> None:
        while not stop.is_set():
            try:
                key, video = jobs.get_nowait()
            except queue.Empty:
                break
            try:
                for gray in gray_frames(Path(video), short_side):
                    put((key, video, gray))
                    if stop.is_set():
                        return
                put((key, video, _END))
            except Exception as exc:  # a bad video is reported, the others go on
                put((key, video, _error_text(exc)))
        put((None, None, None))  # this decoder is finished

    threads = [threading.Thread(target=work, daemon=True, name=f"flow-decode-{i}")
               for i in range(count)]
    for t in threads:
        t.start()
    return threads


class BatchedRun:
    """One batched extraction run into ``out``; ``on_result`` gets extract.py's dicts."""

    def __init__(self, out: Path, backend: FlowBackend, batch_size: int,
                 on_result: Callable[[dict[str, Any]], None]):
        self.out, self.backend, self.batch_size = Path(out), backend, max(1, batch_size)
        self.on_result = on_result
        self.open: dict[str, _Open] = {}
        self.batches = _Batches()

    def run(self, todo: Sequence[Video], short_side: int | None, decoders: int = 1) -> None:
        stop = threading.Event()
        events: queue.Queue = queue.Queue(maxsize=4 * self.batch_size + 8)
        threads = _decoders(todo, short_side, max(1, decoders), stop, events)
        running = len(threads)
        try:
            while running:
                key, video, item = events.get()
                if key is None:
                    running -= 1
                elif isinstance(item, np.ndarray):
                    self._add_frame(key, Path(video), item)
                elif item is _END:
                    self._end(key, Path(video))
                else:
                    self._fail(self._video(key, Path(video)), item)
            for shape in list(self.batches.groups):
                self._flush(shape)
        finally:
            stop.set()
            for vid in list(self.open.values()):  # interrupted: drop partial files
                self._abort(vid)
            for t in threads:
                t.join(timeout=5)

    def _video(self, key: str, video: Path) -> _Open:
        vid = self.open.get(key)
        if vid is None:
            target = flow_path(self.out, key)
            remove_partial(target)
            stack = contextlib.ExitStack()
            writer = stack.enter_context(open_flow_writer(target))
            vid = self.open[key] = _Open(key, video, stack, writer)
        return vid

    def _add_frame(self, key: str, video: Path, gray: np.ndarray) -> None:
        vid = self._video(key, video)
        if vid.failed:
            return
        vid.frames += 1
        if vid.prev is not None:
            group = self.batches.groups.setdefault(gray.shape, [])
            group.append((vid, vid.prev, gray))
            vid.queued += 1
            if len(group) >= self.batch_size:
                self._flush(gray.shape)
            elif self.batches.total() >= 4 * self.batch_size:  # many sizes: bound memory
                for shape in list(self.batches.groups):
                    self._flush(shape)
        vid.prev = gray

    def _end(self, key: str, video: Path) -> None:
        vid = self._video(key, video)
        vid.decoded = True
        if vid.frames < 2 and not vid.failed:
            self._fail(vid, f"{video}: has only {vid.frames} frame; optical flow needs at "
                       "least 2")
        self._maybe_finish(vid)

    def _flush(self, shape: tuple[int, int]) -> None:
        pairs = self.batches.groups.pop(shape, [])
        start = 0
        while start < len(pairs):
            chunk = pairs[start:start + self.batch_size]
            flows, reason = self._compute(chunk, shape)
            if flows is None and reason is None:  # out of memory: retry these, smaller
                self.batch_size = max(1, len(chunk) // 2)
                continue
            for vid, _, _ in chunk:
                vid.queued -= 1
            for i, (vid, _, _) in enumerate(chunk):
                if flows is None:
                    self._fail(vid, reason)
                elif not vid.failed:
                    try:
                        vid.writer.add(quantize(flows[i]))
                    except Exception as exc:
                        self._fail(vid, _error_text(exc))
            for vid in dict.fromkeys(p[0] for p in chunk):
                self._maybe_finish(vid)
            start += len(chunk)

    def _compute(self, chunk: list, shape: tuple[int, int]
                 ) -> tuple[np.ndarray | None, str | None]:
        """(flows, None); (None, None) for out of memory with more than one pair; else
        (None, the reason the pairs fail)."""
        reason = None
        try:
            return self.backend.many(np.stack([p[1] for p in chunk]),
                                     np.stack([p[2] for p in chunk])), None
        except Exception as exc:  # the traceback holds the batch's tensors until we leave
            oom = _is_oom(exc)
            if not oom or len(chunk) == 1:
                reason = _error_text(exc)
            if oom and len(chunk) == 1:
                reason = (f"out of memory on {self.backend.device} for one "
                          f"{shape[1]}x{shape[0]} pair ({reason})")
        _free_cache()
        return None, reason

    def _maybe_finish(self, vid: _Open) -> None:
        if not vid.decoded or vid.queued or self.open.get(vid.key) is not vid:
            return
        if vid.failed:
            del self.open[vid.key]
            return
        try:
            vid.stack.close()  # renames the complete file into place
        except Exception as exc:
            vid.failed = True
            del self.open[vid.key]
            remove_partial(flow_path(self.out, vid.key))
            self.on_result({"key": vid.key, "ok": False, "video": str(vid.video),
                            "error": _error_text(exc)})
            return
        del self.open[vid.key]
        self.on_result({"key": vid.key, "ok": True, "fields": vid.writer.count})

    def _fail(self, vid: _Open, reason: str) -> None:
        if vid.failed:
            return
        vid.failed = True
        vid.prev = None
        for shape, group in list(self.batches.groups.items()):
            kept = [p for p in group if p[0] is not vid]
            vid.queued -= len(group) - len(kept)
            self.batches.groups[shape] = kept
        self._abort(vid, keep_entry=True)
        self.on_result({"key": vid.key, "ok": False, "video": str(vid.video), "error": reason})
        self._maybe_finish(vid)

    def _abort(self, vid: _Open, keep_entry: bool = False) -> None:
        """Close the temporary file without renaming it, and delete it."""
        with contextlib.suppress(Exception):
            vid.stack.__exit__(FlowError, FlowError("aborted"), None)
        remove_partial(flow_path(self.out, vid.key))
        if not keep_entry:
            self.open.pop(vid.key, None)


def _free_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
