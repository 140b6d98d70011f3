"""Building the datasets and loaders of a run from its config (records, streams, samplers)."""

from __future__ import annotations

from collections.abc import Iterator
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


def load_records(data: DataConfig) -> tuple[list[str], list[Any], list[Any], list[Any]]:
    """(classes, train records, validation records, skipped records) of the dataset.

    Records whose video file is missing (common in Kinetics) are skipped and returned last.
    """
    from flowless.data.annotations import load_index

    if not data.root:
        raise ConfigError("data.root: no dataset given; set data.root (or pass --dataset ROOT)")
    index = load_index(data.root, data.format, data.split, data.annotations)
    train = index.split("train")
    if not train:
        raise ConfigError(f"{data.root}: the {data.format} split {data.split} has no training "
                          "videos; check data.format, data.split and the annotation files")
    if data.val_split == "auto":
        val = index.split("test") or index.split("validation")
    elif data.val_split in ("none", ""):
        val = []
    else:
        val = index.split(data.val_split)
        if not val:
            raise ConfigError(f"data.val_split: {data.val_split!r} has no videos; available: "
                              f"{', '.join(index.splits)}, or none")
    skipped = [r for r in train + val if not Path(r.path).is_file()]
    if skipped:
        train = [r for r in train if Path(r.path).is_file()]
        val = [r for r in val if Path(r.path).is_file()]
        if not train:
            raise ConfigError(f"{data.root}: none of the training videos exist (e.g. "
                              f"{skipped[0].path}); check data.root")
    return list(index.classes), train, val, skipped


def dataset_stream(student: str, teacher: str | None) -> tuple[str, str, str | None]:
    """(ClipDataset stream, student batch key, teacher batch key) for the two inputs."""
    if teacher is None or teacher == student:
        return student, "clip", (None if teacher is None else "clip")
    if student == "rgb":  # teacher on flow
        return "rgbflow", "clip", "flow"
    return "rgbflow", "flow", "clip"  # flow student, RGB teacher


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
                       short_side=data.short_side, mode=mode, seed=seed, flip=data.flip)


def make_loader(dataset: Dataset, batch_size: int, env: DistEnv, *, train: bool, seed: int,
                workers: int) -> DataLoader:
    """Train: shuffled by (seed, epoch) via DistributedSampler; val: a strided shard."""
    if train:
        sampler: Sampler[int] = DistributedSampler(dataset, num_replicas=env.world_size,
                                                   rank=env.rank, shuffle=True, seed=seed,
                                                   drop_last=False)
    else:
        sampler = ShardSampler(len(dataset), env.rank, env.world_size)  # type: ignore[arg-type]
    # Training drops a last partial batch of one clip: BatchNorm cannot train on it.
    drop_last = train and len(sampler) % batch_size == 1 and len(sampler) > batch_size
    if workers > 0:
        # Forked workers inherit OpenCV's thread count: one thread each (no oversubscription).
        # It must be set here, in the parent: setting it in a forked child can hang.
        import cv2

        cv2.setNumThreads(1)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=env.device.type == "cuda", drop_last=drop_last,
                      generator=torch.Generator(), persistent_workers=False)


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
