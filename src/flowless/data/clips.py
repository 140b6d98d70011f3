"""The clip dataset (decoded on the fly; no JPEG frames on disk), cut by a :class:`ClipPlan`.

Training (MARS): one clip per video per epoch: a random start, ``clip_len`` frames every
``stride`` frames, one multi-scale corner crop and a coin-flip horizontal flip, all drawn
from ``(seed, epoch, index)`` so a run is reproducible and resumable with any number of
DataLoader workers. Test: the clips and crops of the plan's protocol. RGB frames
``t..t+L-1`` pair with flow fields ``t..t+L-1`` (a video of N frames has N-1 fields), and
both get the same crop and flip. A dataset that fits in memory can be decoded once
(:meth:`ClipDataset.preload`); its clips are then cut from memory, the same clips bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flowless.data.annotations import VideoRecord
from flowless.data.plan import ClipPlan
from flowless.data.transforms import Crop, flow_to_hwc, random_crop, transform_clip
from flowless.data.video import count_frames, probe, read_frames, read_video
from flowless.errors import ConfigError, FlowlessError

STREAMS = ("rgb", "flow", "rgbflow")
_CACHE_FORMAT = 1  # bump when what _whole returns changes


def video_clips(
    frames: np.ndarray,
    kind: str,
    clip_len: int,
    size: int,
    stride: int = 1,
    protocol: str = "mars",
    length: int | None = None,
) -> torch.Tensor:
    """All test clips of one video (see :meth:`ClipPlan.clips`): float (N, C, L, S, S)."""
    return ClipPlan(clip_len, stride, protocol).clips(frames, kind, size, length)


def load_frames(
    record: VideoRecord, kind: str, *, flow_root: Path | None = None, short_side: int | None = None
) -> np.ndarray:
    """A record's whole input: RGB uint8 (T, H, W, 3) decoded at ``short_side``, or its
    stored flow uint8 (T-1, 2, H, W) from the store at ``flow_root``."""
    if kind == "rgb":
        return read_video(record.path, short_side)
    from flowless.flow import flow_path, load_flow_u8

    return load_flow_u8(flow_path(_need_flow_root(flow_root), record.key))


def record_clips(
    record: VideoRecord,
    inputs: Sequence[str],
    *,
    flow_root: Path | None = None,
    clip_len: int = 16,
    size: int = 112,
    stride: int = 1,
    short_side: int | None = None,
    protocol: str = "mars",
) -> dict[str, torch.Tensor]:
    """Test clips of one video for each input ("rgb", "flow"), aligned: clip ``n`` of every
    input starts on the same frame and uses the same crop. Returns {input: (N, C, L, S, S)}."""
    arrays = {k: load_frames(record, k, flow_root=flow_root, short_side=short_side)
              for k in inputs}
    length = min(len(a) for a in arrays.values())
    return {k: video_clips(a, k, clip_len, size, stride, protocol, length)
            for k, a in arrays.items()}


def _need_flow_root(flow_root: Path | None) -> Path:
    if flow_root is None:
        raise ConfigError("a flow stream needs the flow store folder (flow_root / --flow)")
    return Path(flow_root)


class ClipDataset(torch.utils.data.Dataset):
    """Clips of ``records`` for training (one random clip per video) or testing (one item
    per video x clip x crop). Items: ``{"clip": (C, T, S, S), "label", "video"}`` plus
    ``"flow"`` (2, T, S, S) for ``stream="rgbflow"``; test items also ``"clip_index"`` and
    ``"crop"``. For ``stream="flow"`` the clip is the 2-channel flow. ``flip=False`` turns
    the training flip off, for classes that a mirror image changes (left vs right motion)."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        *,
        stream: str = "rgb",
        flow_root: Path | None = None,
        clip_len: int = 16,
        size: int = 112,
        stride: int = 1,
        short_side: int | None = None,
        mode: str = "train",
        protocol: str = "mars",
        seed: int = 0,
        flip: bool = True,
        cache_dir: Path | None = None,
    ):
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}; use one of {', '.join(STREAMS)}")
        if mode not in ("train", "test"):
            raise ConfigError(f"unknown mode {mode!r}; use 'train' or 'test'")
        if size < 1:
            raise ConfigError("clip_len, size and stride must be positive")
        self.plan = ClipPlan(clip_len, stride, protocol)
        self.records = list(records)
        self.stream, self.mode, self.protocol = stream, mode, protocol
        self.inputs = {"rgb": ("rgb",), "flow": ("flow",), "rgbflow": ("rgb", "flow")}[stream]
        self.flow_root = _need_flow_root(flow_root) if "flow" in self.inputs else None
        self.clip_len, self.size, self.stride = clip_len, size, stride
        self.short_side, self.seed, self.epoch = short_side, seed, 0
        self.flip = flip  # off for mirror-image classes (left/right motion, SSv2 directions)
        # decoded whole videos kept on disk (preload reads them instead of decoding again)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None
        self._counts: dict[int, int] = {}  # frame counts read so far (files do not change)
        # preload(): {input: channels-last uint8 array per record}; duplicates share one array
        self.decoded: dict[str, list[np.ndarray]] | None = None
        self.num_clips_per_video: list[int] = []
        self.items: list[tuple[int, int, int]] = []  # test: (video, clip, crop)
        if mode == "test":
            crops = self.plan.num_crops
            for v in range(len(self.records)):
                clips = len(self.plan.starts(self.num_frames(v)))
                self.num_clips_per_video.append(clips * crops)
                self.items += [(v, c, k) for c in range(clips) for k in range(crops)]

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (call before each training epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records) if self.mode == "train" else len(self.items)

    def num_frames(self, v: int) -> int:
        """Frames available to clips of video ``v``: RGB frames, flow fields, or the smaller."""
        if v not in self._counts:
            self._counts[v] = self._count(v)
        return self._counts[v]

    def _count(self, v: int) -> int:
        counts = []
        if "rgb" in self.inputs:
            counts.append(count_frames(self.records[v].path))
        if "flow" in self.inputs:
            from flowless.flow import count_fields, flow_path

            counts.append(count_fields(flow_path(self.flow_root, self.records[v].key)))
        return min(counts)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Item ``key``, or with ``key = (epoch, i)`` item ``i`` as drawn in ``epoch``:
        persistent DataLoader workers keep their own copy of the dataset, so the sampler
        sends the epoch along with the index (see :class:`flowless.engine.data.EpochSampler`)."""
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        in_worker = _in_worker()
        try:
            return self._train_item(i, epoch) if self.mode == "train" else self._test_item(i)
        except FlowlessError as exc:
            if in_worker:  # keep it a one-line user error across the worker boundary
                raise WorkerError(str(exc)) from exc
            raise

    def _train_item(self, i: int, epoch: int) -> dict:
        rng = np.random.default_rng([x % 2**64 for x in (self.seed, epoch, i)])
        total = self.num_frames(i)
        idx = self.plan.indices(total, self.plan.train_start(total, rng))
        arrays = {k: self._read(i, k, idx) for k in self.inputs}
        ref = arrays[self.inputs[0]]
        crop = random_crop(ref.shape[1], ref.shape[2], rng)
        flip = bool(rng.random() < 0.5) and self.flip  # the draw is made either way
        return self._item(i, arrays, crop, flip)

    def _read(self, v: int, kind: str, idx: np.ndarray) -> np.ndarray:
        """Channels-last uint8 frames at ``idx`` (decoding/reading only what is needed).

        Indices past the end wrap around the frames (fields) the file holds, as
        :func:`~flowless.data.video.read_frames` does; the preloaded arrays follow the same rule.
        """
        if self.decoded is not None:
            whole = self.decoded[kind][v]
            return whole[idx] if int(idx.max()) < len(whole) else whole[idx % len(whole)]
        rec = self.records[v]
        if kind == "rgb":
            return read_frames(rec.path, idx, self.short_side)
        from flowless.flow import flow_path, load_flow_u8

        lo, hi = int(idx.min()), int(idx.max()) + 1
        flow = load_flow_u8(flow_path(self.flow_root, rec.key), lo, hi)
        if len(flow) < hi - lo:  # fewer fields than counted: read all and wrap
            flow = load_flow_u8(flow_path(self.flow_root, rec.key))
            return flow_to_hwc(flow[idx % len(flow)])
        return flow_to_hwc(flow[idx - lo])

    def _test_item(self, i: int) -> dict:
        v, c, k = self.items[i]
        if self.decoded is not None:
            arrays = {kind: a[v] for kind, a in self.decoded.items()}
        else:
            if self._cache is None or self._cache[0] != v:
                self._cache = (v, self._whole(v))
            arrays = self._cache[1]
        total = min(len(a) for a in arrays.values())
        idx = self.plan.indices(total, self.plan.start(c, total))
        ref = arrays[self.inputs[0]]
        crop = self.plan.crops(ref.shape[1], ref.shape[2])[k]
        item = self._item(v, {kind: a[idx] for kind, a in arrays.items()}, crop, False)
        item.update(clip_index=c, crop=k)
        return item

    def _whole(self, v: int) -> dict[str, np.ndarray]:
        """Every frame (field) of video ``v`` per input, channels-last uint8; read from
        ``cache_dir`` when it holds them, else decoded (and then stored there)."""
        return {kind: self._whole_input(v, kind) for kind in self.inputs}

    def _whole_input(self, v: int, kind: str) -> np.ndarray:
        rec = self.records[v]
        path = self._cached_path(v, kind)
        if path is not None and path.exists():
            try:
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError):
                pass  # damaged (e.g. a full disk): decode again and replace it
        a = load_frames(rec, kind, flow_root=self.flow_root, short_side=self.short_side)
        a = flow_to_hwc(a) if kind == "flow" else a
        if path is not None:
            from flowless.io import atomic_path

            with atomic_path(path, suffix=".npy") as tmp:
                np.save(tmp, np.ascontiguousarray(a))
        return a

    def _cached_path(self, v: int, kind: str) -> Path | None:
        """The disk cache file of video ``v``'s input ``kind``: named by a digest of the
        source file (path, size, modification time) and the decoding settings, so a
        changed or replaced file, or another ``short_side``, never reads a stale array."""
        if self.cache_dir is None:
            return None
        import hashlib
        import json

        rec = self.records[v]
        if kind == "rgb":
            source = Path(rec.path)
        else:
            from flowless.flow import flow_path

            source = flow_path(_need_flow_root(self.flow_root), rec.key)
        try:
            st = source.stat()
        except OSError:
            return None  # missing: decoding raises the one-line error naming the file
        ident = json.dumps([_CACHE_FORMAT, kind, str(source.resolve()), st.st_size,
                            st.st_mtime_ns, self.short_side if kind == "rgb" else None])
        return self.cache_dir / f"{kind}-{hashlib.sha1(ident.encode()).hexdigest()[:24]}.npy"

    def _item(self, v: int, arrays: dict[str, np.ndarray], crop: Crop, flip: bool) -> dict:
        out = {kind: transform_clip(a, kind, crop, self.size, flip) for kind, a in arrays.items()}
        item = {"clip": out[self.inputs[0]], "label": self.records[v].label, "video": v}
        if self.stream == "rgbflow":
            item["flow"] = out["flow"]
        return item

    def _source_of(self) -> list[int]:
        """For each record, the first record of the same video (records may repeat a file)."""
        first: dict[tuple[str, str], int] = {}
        return [first.setdefault((str(r.path), r.key if self.flow_root else ""), v)
                for v, r in enumerate(self.records)]

    def decoded_bytes(self, sample: int = 8) -> int:
        """Estimated memory of :meth:`preload`, from the headers of up to ``sample`` videos."""
        sources = sorted(set(self._source_of()))
        if not sources:
            return 0
        k = min(sample, len(sources))
        picks = sorted({sources[j * (len(sources) - 1) // max(1, k - 1)] for j in range(k)})
        total = sum(_input_bytes(self.records[v], k, self.flow_root, self.short_side)
                    for v in picks for k in self.inputs)
        return total * len(sources) // len(picks)

    def preload(self, workers: int = 0) -> int:
        """Decode every video (and read its flow) into memory once, in ``workers`` processes;
        clips are then cut from memory. Returns the bytes held."""
        from torch.utils.data import DataLoader

        source_of = self._source_of()
        sources = sorted(set(source_of))
        if workers > 0 and self.cache_dir is not None and all(
                (p := self._cached_path(v, k)) is not None and p.exists()
                for v in sources for k in self.inputs):
            workers = 0  # reading .npy files: a worker would only add the copy between processes
        if workers > 0:
            single_thread_opencv()
        loader = DataLoader(_WholeVideos(self, sources), batch_size=None, num_workers=workers,
                            collate_fn=_as_is)
        loaded = dict(zip(sources, loader))
        for v, s in enumerate(source_of):
            self._counts[v] = loaded[s][1]
        self.decoded = {k: [loaded[s][0][k] for s in source_of] for k in self.inputs}
        return sum(loaded[s][0][k].nbytes for s in sources for k in self.inputs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = None  # never ship decoded frames to DataLoader workers
        return state


class WorkerError(FlowlessError):
    """A user error (unreadable video or flow file) raised in a DataLoader worker.

    torch re-raises a worker's exception as ``type(exc)(traceback text)``; this class takes
    one message and keeps only the original one-line message, so the CLI still prints one
    line and exits with code 2.
    """

    def __init__(self, message: str):
        if "Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(": ", 1)[-1] if last.startswith(f"{__name__}.") else last
        super().__init__(message)


class _WholeVideos(torch.utils.data.Dataset):
    """Item ``j``: (every frame of video ``sources[j]`` per input, its frame count)."""

    def __init__(self, ds: ClipDataset, sources: list[int]):
        self.ds, self.sources = ds, sources

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, j: int) -> tuple[dict[str, np.ndarray], int]:
        v = self.sources[j]
        try:
            whole = {k: np.ascontiguousarray(a) for k, a in self.ds._whole(v).items()}
            return whole, self.ds.num_frames(v)
        except FlowlessError as exc:
            if _in_worker():
                raise WorkerError(str(exc)) from exc
            raise


def _as_is(item: Any) -> Any:
    return item


def _input_bytes(record: VideoRecord, kind: str, flow_root: Path | None,
                 short_side: int | None) -> int:
    """Bytes of a record's decoded input, from the file headers (no decoding)."""
    if kind == "flow":
        from flowless.flow import count_fields, flow_path, load_flow_u8

        path = flow_path(_need_flow_root(flow_root), record.key)
        return count_fields(path) * load_flow_u8(path, 0, 1).nbytes
    info = probe(record.path)
    h, w = info.height, info.width
    if short_side is not None:
        h, w = (short_side, round(w * short_side / h)) if h <= w else \
            (round(h * short_side / w), short_side)
    return (info.num_frames or count_frames(record.path)) * h * w * 3


def single_thread_opencv() -> None:
    """One OpenCV thread in this process and the DataLoader workers it will fork.

    Call it in the parent before workers start: ``cv2.setNumThreads`` in a forked child
    hangs once the parent has used OpenCV's thread pool (see :func:`_in_worker`)."""
    import cv2

    cv2.setNumThreads(1)


def _in_worker() -> bool:
    """True inside a DataLoader worker.

    OpenCV's thread count is not touched here: ``cv2.setNumThreads`` in a forked child
    hangs once the parent has used OpenCV's thread pool (it waits on the parent's threads,
    which the child does not have). :func:`flowless.engine.data.make_loader` sets it in the
    parent before the workers are forked instead.
    """
    return torch.utils.data.get_worker_info() is not None
