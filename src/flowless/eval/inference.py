"""Video -> per-stream video-level logits, streaming: frames are decoded once and each
stream keeps only the frames of the clip it is filling, so memory does not grow with the
video's length (MARS protocol). Clips match :func:`flowless.data.clips.video_clips`.

Per stream, every clip's logits are averaged over the video (docs/method.md §4-5).
MARS protocol: clips start every ``clip_len * stride`` frames, short side -> size, centre
crop; a video shorter than one clip is looped. Flow field t is the flow from frame t to
t+1, so a flow stream sees N-1 fields of an N-frame video; when a set mixes RGB and flow
streams, RGB clips are limited to the first N-1 frames too, so both start on the same
frames (as in ``record_clips``). 10x3: ten uniformly spaced clips x 3 crops; it needs the
video's length first, so it keeps the video's frames (at the stream's short side).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowless.data.plan import PROTOCOLS, ClipPlan
from flowless.errors import ConfigError, VideoError
from flowless.eval.scoring import VideoLogits
from flowless.eval.streams import Stream

PIPELINE_STAGES = ("decode", "flow", "transform", "network")


@dataclass
class StageTimes:
    """Seconds spent per pipeline stage (summed over videos when shared)."""

    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(PIPELINE_STAGES, 0.0))

    def add(self, stage: str, dt: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    def total(self) -> float:
        return sum(self.seconds.values())


@dataclass
class VideoScores:
    """Result of one video: per-stream mean clip logits, clip counts, decoded frames, and
    per stream where its flow came from (a backend name, "store", or None for RGB)."""

    logits: list[np.ndarray]
    clips: list[int]
    frames: int
    flow: list[str | None] = field(default_factory=list)


class _Scorer:
    """Batches one stream's clips through its network and averages the logits."""

    def __init__(self, stream: Stream, batch_size: int, times: StageTimes):
        self.stream, self.batch_size, self.times = stream, max(1, batch_size), times
        self.pending: list[Any] = []
        self.pending_n = 0
        self.video: VideoLogits | None = None

    def add(self, clips: Any) -> None:
        """Queue a (N, C, T, S, S) tensor of clips; run every full batch."""
        self.pending.append(clips)
        self.pending_n += int(clips.shape[0])
        while self.pending_n >= self.batch_size:
            self._run(self.batch_size)

    def _run(self, n: int) -> None:
        import torch

        batch = torch.cat(self.pending, 0) if len(self.pending) > 1 else self.pending[0]
        head, rest = batch[:n], batch[n:]
        self.pending, self.pending_n = ([rest] if len(rest) else []), len(rest)
        t0 = time.perf_counter()
        logits = np.asarray(self.stream.logits(head), dtype=np.float64)
        self.times.add("network", time.perf_counter() - t0)
        if self.video is None:
            self.video = VideoLogits(1, logits.shape[1])
        self.video.add(logits, np.zeros(len(logits), np.int64))

    def finish(self) -> tuple[np.ndarray, int]:
        if self.pending_n:
            self._run(self.pending_n)
        assert self.video is not None, "no clip was made"
        return self.video.mean()[0].numpy(), int(self.video.counts[0])


class _Feeder:
    """Receives decoded frames (index, image) and emits one stream's clips to its scorer."""

    def __init__(self, stream: Stream, protocol: str, scorer: _Scorer, times: StageTimes,
                 *, align: bool, flow_backend: str | None):
        self.stream, self.scorer, self.times = stream, scorer, times
        self.plan = stream.data.plan(protocol)
        self.kind = stream.input
        self.last = self.plan.span - 1
        self.pair = self.kind == "flow"  # field t needs frames t and t+1
        self.align = align
        # A clip is complete once frame `last + lag` of it has been seen.
        self.lag = 1 if (self.pair or align) else 0
        self.backend = stream.data.backend_for(flow_backend, stream.source) if self.pair \
            else None
        self.head: list[np.ndarray] | None = []  # all frames until the first clip is complete
        self.kept: dict[int, np.ndarray] = {}
        self.k = self.emitted = self.frames = 0
        self.shape: tuple[int, ...] | None = None

    def _prepare(self, img: np.ndarray, cache: dict[Any, np.ndarray]) -> np.ndarray:
        """This stream's view of a frame: RGB at its short side, or flow-ready grayscale."""
        from flowless.data.video import resize_short_side

        d = self.stream.data
        key: Any = ("rgb", d.short_side) if self.kind == "rgb" else ("gray", d.flow_short_side)
        if key not in cache:
            t0 = time.perf_counter()
            if self.kind == "rgb":
                cache[key] = resize_short_side(img, d.short_side)
            else:
                from flowless.flow.backends import resize_gray, to_gray

                cache[key] = resize_gray(to_gray(img), d.flow_short_side)
            self.times.add("transform" if self.kind == "rgb" else "flow",
                           time.perf_counter() - t0)
        unit = cache[key]
        if self.shape is None:
            self.shape = unit.shape
        elif unit.shape != self.shape:  # the resolution changed mid-video: keep the first
            import cv2

            unit = cv2.resize(unit, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_AREA)
        return unit

    def _wanted(self, rel: int) -> bool:
        stride = self.plan.stride
        if 0 <= rel <= self.last and rel % stride == 0:
            return True
        return self.pair and 1 <= rel <= self.last + 1 and (rel - 1) % stride == 0

    def frame(self, i: int, img: np.ndarray, cache: dict[Any, np.ndarray]) -> None:
        unit = self._prepare(img, cache)
        self.frames = i + 1
        if self.head is not None:
            self.head.append(unit)
        if not self.plan.streamable:
            return
        while True:
            start = self.plan.start(self.k, self.frames)
            rel = i - start
            if rel < 0:
                return
            if self._wanted(rel):
                self.kept[i] = unit
            if rel < self.last + self.lag:
                return
            self._emit([self.kept[start + o] for o in self.plan.offsets],
                       [self.kept[start + o + 1] for o in self.plan.offsets]
                       if self.pair else None)
            self.kept, self.head = {}, None
            self.k += 1

    def _flow(self, frames: np.ndarray) -> np.ndarray:
        from flowless.flow import quantize, video_flow

        t0 = time.perf_counter()
        # The training store's parameters apply only to the backend the stream was trained on.
        params = self.stream.data.flow_params if self.backend == self.stream.data.flow_backend \
            else {}
        fields = quantize(video_flow(frames, backend=self.backend, **params))
        self.times.add("flow", time.perf_counter() - t0)
        return fields

    def _clips(self, plan: ClipPlan, units: np.ndarray, length: int | None) -> None:
        t0 = time.perf_counter()
        clips = plan.clips(units, self.kind, self.stream.data.size, length)
        self.times.add("transform", time.perf_counter() - t0)
        self.emitted += int(clips.shape[0])
        self.scorer.add(clips)

    def _emit(self, firsts: list[np.ndarray], seconds: list[np.ndarray] | None) -> None:
        if seconds is None:
            units = np.stack(firsts)
        else:  # one flow field per clip frame: frame -> next frame
            units = np.concatenate([self._flow(np.stack(pair)) for pair in zip(firsts, seconds)])
        self._clips(ClipPlan(self.plan.clip_len), units, None)  # the clip's frames, in order

    def finish(self, path: Path) -> None:
        """Short videos (MARS, looped) and 10x3 use the frames kept in ``head``."""
        if self.emitted or self.head is None:
            return
        head, self.head = self.head, None
        if self.pair:
            if len(head) < 2:
                raise VideoError(path, "has a single frame; a flow stream needs at least 2 frames")
            units, length = self._flow(np.stack(head)), None
        else:
            units = np.stack(head)
            length = max(1, len(head) - 1) if self.align else None
        self._clips(self.plan, units, length)


def _store_clips(stream: Stream, scorer: _Scorer, times: StageTimes, protocol: str,
                 flow_root: Path, key: str) -> None:
    """Flow clips read from a flow store, one clip's fields at a time (MARS)."""
    from flowless.flow import count_fields, flow_path, load_flow_u8

    plan = stream.data.plan(protocol)
    path = flow_path(flow_root, key)
    for lo, hi in plan.windows(count_fields(path)):
        t0 = time.perf_counter()
        fields = load_flow_u8(path, lo, hi)
        t1 = time.perf_counter()
        times.add("decode", t1 - t0)
        scorer.add(plan.clips(fields, "flow", stream.data.size))
        times.add("transform", time.perf_counter() - t1)


def _timed_frames(path: Path, times: StageTimes) -> Iterator[np.ndarray]:
    from flowless.data.video import iter_frames

    frames = iter_frames(path)
    try:
        while True:
            t0 = time.perf_counter()
            try:
                img = next(frames)
            except StopIteration:
                return
            finally:
                times.add("decode", time.perf_counter() - t0)
            yield img
    finally:
        frames.close()


def score_video(
    path: str | Path,
    streams: Sequence[Stream],
    *,
    protocol: str = "mars",
    batch_size: int = 8,
    flow_root: str | Path | None = None,
    key: str | None = None,
    flow_backend: str | None = None,
    times: StageTimes | None = None,
) -> VideoScores:
    """Run every stream over one video: decode once, stream clips through in batches.

    Flow streams read entry ``key`` of the store ``flow_root`` when given, else compute
    flow on the fly with the checkpoint's backend and flow short side (``flow_backend``
    overrides the backend). Raises VideoError/FlowError for an unreadable video or flow.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    path = Path(path)
    times = times if times is not None else StageTimes()
    scorers = [_Scorer(s, batch_size, times) for s in streams]
    align = any(s.input == "flow" for s in streams) and any(s.input == "rgb" for s in streams)
    feeders: list[_Feeder] = []
    flow: list[str | None] = []
    for stream, scorer in zip(streams, scorers):
        if stream.input == "flow" and flow_root is not None:
            _store_clips(stream, scorer, times, protocol, Path(flow_root),
                         key if key is not None else path.stem)
            flow.append("store")
        else:
            feeders.append(_Feeder(stream, protocol, scorer, times, align=align,
                                   flow_backend=flow_backend))
            flow.append(feeders[-1].backend)
    frames = 0
    if feeders:
        for i, img in enumerate(_timed_frames(path, times)):
            cache: dict[Any, np.ndarray] = {}
            for feeder in feeders:
                feeder.frame(i, img, cache)
            frames = i + 1
        for feeder in feeders:
            feeder.finish(path)
    results = [s.finish() for s in scorers]
    return VideoScores([r[0] for r in results], [r[1] for r in results], frames, flow)
