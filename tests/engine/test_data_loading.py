"""The loader changes speed, never results: workers and the decoded-video cache give the same
weights, and each epoch logs the share of its time spent waiting for data."""

from __future__ import annotations

import torch
from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint
from flowless.config import load_config
from flowless.engine import read_metrics, train


def test_same_weights_with_any_workers_and_with_the_cache(updown, tmp_path):
    root, flow = updown
    weights = []
    for workers, cache in ((0, "off"), (2, "off"), (2, "on")):
        out = tmp_path / f"w{workers}-{cache}"
        cfg = load_config(None, base_overrides(root, flow, out, epochs=2, data__workers=workers,
                                               data__cache=cache, tensorboard=workers == 0))
        train(cfg, quiet=True)
        weights.append(load_checkpoint(out / "last.pt")["model"])
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])

    records = read_metrics(tmp_path / "w0-off")
    assert all(0 <= r["train_data_wait"] < 1 for r in records)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "w0-off" / "tensorboard")).Reload()
    assert len(events.Scalars("train/data_wait")) == 2


def test_runs_sharing_a_disk_cache_train_the_same_weights(updown, tmp_path):
    """The first run decodes into data.cache_dir, the second reads it: both equal a run
    without it."""
    root, flow = updown
    cache = tmp_path / "decoded"
    weights = []
    for name, extra in (("plain", {}), ("first", {"data__cache_dir": cache}),
                        ("second", {"data__cache_dir": cache})):
        cfg = load_config(None, base_overrides(root, flow, tmp_path / name, epochs=2,
                                               data__workers=0, **extra))
        train(cfg, quiet=True)
        weights.append(load_checkpoint(tmp_path / name / "last.pt")["model"])
        if name == "first":
            files = sorted(p.name for p in cache.iterdir())
    assert files == sorted(p.name for p in cache.iterdir())  # nothing new the second time
    assert files and all(f.startswith("rgb-") and f.endswith(".npy") for f in files)
    for other in weights[1:]:
        assert all(torch.equal(weights[0][k], other[k]) for k in weights[0])


def test_cache_auto_decodes_on_the_fly_when_the_videos_do_not_fit(updown):
    from flowless.config import DataConfig
    from flowless.data.annotations import load_index
    from flowless.engine.data import cache_videos, clip_dataset
    from flowless.engine.distributed import DistEnv

    root, _ = updown
    records = load_index(root, "ucf101").split("train")
    said = []
    for cache_mb, cache in ((0, "auto"), (1, "off"), (0, "on"), (1, "auto")):
        data = DataConfig(root=str(root), clip_len=8, size=32, cache=cache, cache_mb=cache_mb,
                          workers=0)
        ds = clip_dataset(records, data, "rgb", "train", 0)
        held = cache_videos([ds], data, DistEnv(), said.append)
        fits = cache == "on" or (cache == "auto" and cache_mb == 1)
        assert (held > 0) == (ds.decoded is not None) == fits
    assert len(said) == 3 and "over the 0 MB budget" in said[0]
    assert said[1].startswith("data.cache: the videos of 8 records decoded into 0 MB")
