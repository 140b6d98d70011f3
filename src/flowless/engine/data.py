"""Building the datasets and loaders of a run from its config (records, streams, samplers)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from flowless.config import DataConfig
from flowless.engine.distributed import DistEnv
from flowless.engine.state import epoch_seed
from flowless.errors import ConfigError


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... in order: every item exactly once over all ranks."""

    def __init__(self, length: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def load_records(data: DataConfig, run_dir: str | Path | None = None,
                 echo: Callable[[str], None] | None = None,
                 ) -> tuple[list[str], list[Any], list[Any], list[Any]]:
    """(classes, train records, validation records, skipped records) of the dataset.

    Records whose video file (or frame folder) is missing (common in Kinetics) are skipped
    and returned last. A dataset without splits (a plain class folder) holds out
    ``data.val_fraction`` of each class for validation: the split is written to
    ``run_dir/split/`` (list files) and announced in one line through ``echo``. With
    ``data.fold`` "k/K" the training records are the split's minus its fold k, and the
    validation records are that fold (:func:`flowless.data.holdout.fold_split`).
    """
    from flowless.data.annotations import load_index
    from flowless.data.holdout import write_split

    if not data.root:
        raise ConfigError("data.root: no dataset given; set data.root (or pass --dataset ROOT)")
    index = load_index(data.root, data.format, data.split, data.annotations,
                       val_fraction=data.val_fraction)
    holdout = index.holdout()
    train = index.split("all" if holdout and data.val_split in ("none", "") else "train")
    if not train:
        raise ConfigError(f"{data.root}: the {data.format} split {data.split} has no training "
                          f"videos (splits found: {', '.join(index.splits) or 'none'}); check "
                          "data.format, data.split and the annotation files")
    if data.val_split == "auto":
        val = index.split("test") or index.split("validation")
    elif data.val_split in ("none", ""):
        val = []
    else:
        val = index.split(data.val_split)
        if not val:
            raise ConfigError(f"data.val_split: {data.val_split!r} has no videos; available: "
                              f"{', '.join(index.splits)}, or none")
    if holdout and val:
        where = write_split(run_dir, index.root, index.classes, train, val) if run_dir else None
        if echo:
            echo(f"validation: held out {len(val)} of {len(train) + len(val)} videos "
                 f"(data.val_fraction {data.val_fraction:g} of each class; {data.root} has no "
                 "train/test split)" + (f"; split written to {where}" if where else ""))
    if data.fold is not None:  # cross-fitting: hold out one fold of the training split
        from flowless.data.holdout import fold_split, parse_fold

        train, val = fold_split(train, *parse_fold(data.fold))
    skipped = [r for r in train + val if not Path(r.path).exists()]
    if skipped:
        train = [r for r in train if Path(r.path).exists()]
        val = [r for r in val if Path(r.path).exists()]
        if not train:
            raise ConfigError(f"{data.root}: none of the training videos exist (e.g. "
                              f"{skipped[0].path}); check data.root")
    return list(index.classes), train, val, skipped


def dataset_stream(student: str, teacher: str | None, others: tuple[str, ...] = ()
                   ) -> tuple[str, str, str | None]:
    """(ClipDataset stream, student batch key, teacher batch key) for the inputs of the
    student, the teacher and ``others`` (more frozen streams, see :func:`batch_key`)."""
    inputs = {student, *others} | ({teacher} if teacher else set())
    ds = student if len(inputs) == 1 else "rgbflow"
    return ds, batch_key(ds, student), None if teacher is None else batch_key(ds, teacher)


def batch_key(ds_stream: str, input: str) -> str:
    """The batch key holding ``input`` (rgb / flow) in a ClipDataset of ``ds_stream``: an
    ``rgbflow`` item has the RGB clip under ``clip`` and the flow under ``flow``."""
    return "flow" if ds_stream == "rgbflow" and input == "flow" else "clip"


def clip_dataset(records: list[Any], data: DataConfig, stream: str, mode: str,
                 seed: int) -> Dataset:
    """A :class:`flowless.data.clips.ClipDataset` with the config's clip settings."""
    from flowless.data.clips import ClipDataset

    if stream in ("flow", "rgbflow") and not data.flow_root:
        raise ConfigError("data.flow_root: flow input needs a flow store (flowless flow ...); "
                          "set data.flow_root")
    return ClipDataset(records, stream=stream,
                       flow_root=Path(data.flow_root) if data.flow_root else None,
                       clip_len=data.clip_len, size=data.size, stride=data.stride,
                       short_side=data.short_side, mode=mode, seed=seed, flip=data.flip,
                       cache_dir=Path(data.cache_dir) if data.cache_dir else None)


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)`` for the indices of ``sampler``: the epoch travels with each
    index, so persistent workers (which keep the dataset they were started with) draw the
    augmentation of the current epoch."""

    def __init__(self, sampler: Sampler[int]):
        self.sampler, self.epoch = sampler, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


def _local_ranks(env: DistEnv) -> int:
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))) if env.distributed else 1


def resolve_workers(workers: int | str, env: DistEnv, *, in_memory: bool = False) -> int:
    """DataLoader processes for ``data.workers``; ``auto`` = this rank's share of the cores.

    ``auto``: the cores this process may use (CPU affinity) divided among the node's ranks,
    less one for the training process itself, at most 16. None for clips cut from memory
    (``in_memory``) on a CPU device: cutting one costs a few percent of the model's step
    there, and a worker would only take cores from the model (docs/training.md)."""
    if workers != "auto":
        return int(workers)
    if in_memory and env.device.type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(0, min(16, cores // _local_ranks(env) - 1))


def cache_budget(data: DataConfig, env: DistEnv) -> int:
    """Bytes ``data.cache=auto`` may hold: ``data.cache_mb``, and at most half the memory
    available now (Linux) shared among the node's torchrun processes."""
    budget = data.cache_mb * 2**20
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                budget = min(budget, int(line.split()[1]) * 1024 // 2 // _local_ranks(env))
    except (OSError, ValueError, IndexError):
        pass
    return budget


def cache_videos(datasets: list[Dataset], data: DataConfig, env: DistEnv,
                 echo: Callable[[str], None] | None = None) -> int:
    """Decode the datasets' videos into memory (``data.cache``: on, or auto when they fit in
    :func:`cache_budget`); returns the bytes held (0: not cached)."""
    if data.cache == "off" or not datasets:
        return 0
    if data.cache == "auto":
        need, budget = sum(ds.decoded_bytes() for ds in datasets), cache_budget(data, env)
        if need > budget:
            if echo:
                echo(f"data.cache: the decoded videos need about {need / 2**20:.0f} MB, over "
                     f"the {budget / 2**20:.0f} MB budget (data.cache_mb, free memory): "
                     "clips are decoded on the fly")
            return 0
    t0 = time.perf_counter()
    held = sum(ds.preload(resolve_workers(data.workers, env)) for ds in datasets)
    if echo:
        echo(f"data.cache: the videos of {sum(len(ds.records) for ds in datasets)} records "
             f"decoded into {held / 2**20:.0f} MB in {time.perf_counter() - t0:.1f} s")
    return held


def make_loader(dataset: Dataset, batch_size: int, env: DistEnv, *, train: bool, seed: int,
                workers: int | str = "auto", prefetch: int = 2) -> DataLoader:
    """Train: shuffled by (seed, epoch) via DistributedSampler, the dataset indexed by
    ``(epoch, index)`` (:class:`EpochSampler`); val: a strided shard.

    Workers (``auto``: :func:`resolve_workers`) persist across epochs and keep ``prefetch``
    batches each in flight; batches are pinned for a CUDA device."""
    if train:
        sampler: Sampler[Any] = EpochSampler(DistributedSampler(
            dataset, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed,
            drop_last=False))
    else:
        sampler = ShardSampler(len(dataset), env.rank, env.world_size)  # type: ignore[arg-type]
    # Training drops a last partial batch of one clip: BatchNorm cannot train on it.
    drop_last = train and len(sampler) % batch_size == 1 and len(sampler) > batch_size
    n = resolve_workers(workers, env, in_memory=getattr(dataset, "decoded", None) is not None)
    if n > 0:
        # Forked workers inherit OpenCV's thread count: one thread each (no oversubscription).
        # It must be set here, in the parent: setting it in a forked child can hang.
        from flowless.data.clips import single_thread_opencv

        single_thread_opencv()
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=n,
                      pin_memory=env.device.type == "cuda", drop_last=drop_last,
                      generator=torch.Generator(), persistent_workers=n > 0,
                      prefetch_factor=prefetch if n > 0 else None)


def set_epoch(loader: DataLoader, epoch: int, seed: int) -> None:
    """Make the epoch's order and augmentation a function of (seed, epoch)."""
    sampler = loader.sampler
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(epoch_seed(seed, epoch))


def data_settings(data: DataConfig) -> dict[str, Any]:
    """The "data" entry of a stream checkpoint (what a clip looked like in training).

    The flow settings come from the store's manifest unless the config names them; an
    unreadable manifest is an error (a stream must not record the wrong flow backend)."""
    from flowless.flow.store import read_manifest

    backend, flow_short = data.flow_backend, data.flow_short_side
    params: dict[str, Any] = {}
    if data.flow_root:
        manifest = read_manifest(data.flow_root) or {}
        if backend is None or backend == manifest.get("backend"):
            params = dict(manifest.get("params") or {})  # e.g. a faster TV-L1 preset
        backend = backend if backend is not None else manifest.get("backend")
        flow_short = flow_short if flow_short is not None else manifest.get("short_side")
    return {"clip_len": data.clip_len, "size": data.size, "stride": data.stride,
            "short_side": data.short_side, "flow_backend": backend,
            "flow_short_side": flow_short, "flow_params": params}
