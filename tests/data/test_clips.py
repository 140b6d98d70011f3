"""Clip sampling and ClipDataset: shapes, RGB/flow alignment, determinism, workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from flowless.data.annotations import VideoRecord, load_index
from flowless.data.clips import ClipDataset, record_clips, video_clips
from flowless.data.plan import ClipPlan
from flowless.data.transforms import FLOW_MEAN, RGB_MEAN
from flowless.data.video import write_video
from flowless.errors import ConfigError
from flowless.flow import flow_path, save_flow_u8

H, W = 24, 32  # RGB frames; flow is stored at twice this resolution


def coded_rgb(num_frames: int) -> np.ndarray:
    """R = horizontal position, G = vertical position, B = 10 x frame number (mod 256)."""
    x = (np.arange(W) + 0.5) / W * 240
    y = (np.arange(H) + 0.5) / H * 240
    frames = np.empty((num_frames, H, W, 3), np.uint8)
    frames[..., 0] = np.round(x)[None, None, :]
    frames[..., 1] = np.round(y)[None, :, None]
    frames[..., 2] = (10 * np.arange(num_frames) % 256)[:, None, None]
    return frames


def coded_flow(num_fields: int) -> np.ndarray:
    """Flow fields at 2x resolution: x = 10 x field number, y = (position x + y) / 2 as in RGB."""
    h, w = 2 * H, 2 * W
    x = (np.arange(w) + 0.5) / w * 240
    y = (np.arange(h) + 0.5) / h * 240
    flow = np.empty((num_fields, 2, h, w), np.uint8)
    flow[:, 0] = 10 * np.arange(num_fields)[:, None, None]
    flow[:, 1] = np.round((x[None, :] + y[:, None]) / 2)[None]
    return flow


@pytest.fixture
def coded(tmp_path) -> tuple[list[VideoRecord], Path]:
    """Two lossless videos (20 and 9 frames) with their flow (N-1 fields) in a store."""
    records, store = [], tmp_path / "flow"
    for i, n in enumerate((20, 9)):
        path = tmp_path / "videos" / f"v{i}.mp4"
        write_video(path, coded_rgb(n), crf=0, pix_fmt="yuv444p")
        save_flow_u8(flow_path(store, f"v{i}"), coded_flow(n - 1))
        records.append(VideoRecord(path, i, f"c{i}", "train", f"v{i}"))
    return records, store


def decode_item(item: dict) -> dict:
    """Undo normalisation; return per-frame time codes and the position maps."""
    rgb = item["clip"].numpy() + np.asarray(RGB_MEAN, np.float32)[:, None, None, None]
    flow = item["flow"].numpy()
    flipped = rgb[0, 0, 0, -1] < rgb[0, 0, 0, 0]  # x position decreases: mirrored
    t_rgb = rgb[2].mean(axis=(1, 2)) / 10
    t_flow = (-flow[0] if flipped else flow[0]).mean(axis=(1, 2)) + FLOW_MEAN
    return {"flipped": flipped, "t_rgb": t_rgb, "t_flow": t_flow / 10,
            "pos_rgb": (rgb[0] + rgb[1]) / 2, "pos_flow": flow[1] + FLOW_MEAN}


def test_clip_starts_by_hand():
    assert ClipPlan(16).starts(40) == [0, 16]
    assert ClipPlan(16).starts(10) == [0]  # shorter than a clip: one looped clip
    assert ClipPlan(16, stride=2).starts(64) == [0, 32]
    assert ClipPlan(16, protocol="10x3").starts(100) == [4, 12, 21, 29, 38, 46, 55, 63, 72, 80]
    assert ClipPlan(16, protocol="10x3").starts(5) == [0] * 10


def test_video_clips_shapes_and_values():
    frames = coded_rgb(40)
    clips = video_clips(frames, "rgb", clip_len=16, size=8)
    assert tuple(clips.shape) == (2, 3, 16, 8, 8)
    # clip 1 starts at frame 16: the blue channel holds 10 * t minus the mean
    assert np.allclose(clips[1, 2, :, 0, 0].numpy(), (10 * np.arange(16, 32)) % 256 - RGB_MEAN[2])
    tens = video_clips(coded_flow(39), "flow", clip_len=8, size=8, protocol="10x3")
    assert tuple(tens.shape) == (30, 2, 8, 8, 8)
    # 10x3 is clip-major: the 3 crops of a clip share frames but not positions
    assert torch.equal(tens[0, 0], tens[2, 0]) and not torch.equal(tens[0, 1], tens[2, 1])
    short = video_clips(coded_rgb(5), "rgb", clip_len=8, size=8)
    assert np.allclose(short[0, 2, :, 0, 0].numpy() + RGB_MEAN[2], [0, 10, 20, 30, 40, 0, 10, 20])


def test_train_items_align_rgb_and_flow(coded):
    records, store = coded
    ds = ClipDataset(records, stream="rgbflow", flow_root=store, clip_len=6, size=12, seed=3)
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            assert item["clip"].shape == (3, 6, 12, 12) and item["flow"].shape == (2, 6, 12, 12)
            assert item["label"] == i and item["video"] == i
            d = decode_item(item)
            flips.add(bool(d["flipped"]))
            # frame t of the RGB clip pairs with flow field t (same time code)
            assert np.abs(d["t_rgb"] - d["t_flow"]).max() < 0.5
            # the same crop: position maps agree (crop at 2 resolutions, lossless video)
            assert np.abs(d["pos_rgb"] - d["pos_flow"]).mean() < 4
    assert flips == {True, False}


def test_short_video_loops_with_flow(coded):
    records, store = coded
    ds = ClipDataset(records[1:], stream="rgbflow", flow_root=store, clip_len=12, size=8)
    d = decode_item(ds[0])  # 9 frames / 8 fields: the clip loops over the 8 aligned frames
    assert np.allclose(np.round(d["t_rgb"]) % 8, np.round(d["t_rgb"]))
    assert np.abs(d["t_rgb"] - d["t_flow"]).max() < 0.5


def test_same_seed_and_epoch_give_the_same_clip(coded):
    records, store = coded
    a = ClipDataset(records, stream="flow", flow_root=store, clip_len=4, size=8, seed=1)
    b = ClipDataset(records, stream="flow", flow_root=store, clip_len=4, size=8, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert torch.equal(a[0]["clip"], b[0]["clip"]) and a[0]["clip"].shape == (2, 4, 8, 8)
    draws = set()
    for epoch in range(6):
        a.set_epoch(epoch)
        draws.add(a[0]["clip"].numpy().tobytes())
    assert len(draws) > 1  # other epochs draw other clips


def test_dataloader_workers_reproduce_direct_access(coded):
    records, _ = coded
    ds = ClipDataset(records * 2, clip_len=4, size=8, seed=5)
    ds.set_epoch(1)
    direct = torch.stack([ds[i]["clip"] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat([b["clip"] for b in batches]), direct)
    assert torch.cat([b["video"] for b in batches]).tolist() == [0, 1, 2, 3]


def test_test_mode_items_map_back_to_videos(coded):
    records, store = coded
    ds = ClipDataset(records, stream="rgbflow", flow_root=store, clip_len=8, size=8, mode="test")
    # 19 aligned frames -> 2 clips; 8 aligned frames -> 1 looped clip; centre crop only
    assert ds.num_clips_per_video == [2, 1] and len(ds) == 3
    assert [(ds[i]["video"], ds[i]["clip_index"], ds[i]["crop"]) for i in range(3)] == [
        (0, 0, 0), (0, 1, 0), (1, 0, 0)]
    d = decode_item(ds[1])
    assert not d["flipped"] and np.allclose(np.round(d["t_rgb"]), np.arange(8, 16))
    assert np.abs(d["t_rgb"] - d["t_flow"]).max() < 0.5
    tens = ClipDataset(records, clip_len=8, size=8, mode="test", protocol="10x3")
    assert tens.num_clips_per_video == [30, 30] and len(tens) == 60
    same = record_clips(records[0], ["rgb"], clip_len=8, size=8, protocol="10x3")["rgb"]
    assert torch.equal(tens[4]["clip"], same[4])


def test_record_clips_aligns_inputs(coded):
    records, store = coded
    clips = record_clips(records[0], ["rgb", "flow"], flow_root=store, clip_len=8, size=8)
    assert clips["rgb"].shape == (2, 3, 8, 8, 8) and clips["flow"].shape == (2, 2, 8, 8, 8)
    t_rgb = clips["rgb"][:, 2].mean(dim=(2, 3)) + RGB_MEAN[2]
    t_flow = clips["flow"][:, 0].mean(dim=(2, 3)) + FLOW_MEAN
    assert torch.allclose(t_rgb, t_flow, atol=4)


def test_dataset_on_a_real_index(tiny_ucf):
    train = load_index(tiny_ucf, "ucf101").split("train")
    ds = ClipDataset(train, clip_len=8, size=16, short_side=24)
    item = ds[5]
    assert item["clip"].shape == (3, 8, 16, 16) and item["label"] == train[5].label == 1


def test_bad_options_are_config_errors(coded):
    records, _ = coded
    with pytest.raises(ConfigError, match="flow store"):
        ClipDataset(records, stream="flow")
    with pytest.raises(ConfigError, match="unknown stream 'depth'"):
        ClipDataset(records, stream="depth")
    with pytest.raises(ConfigError, match="unknown test protocol"):
        ClipDataset(records, mode="test", protocol="5x5")


def test_unreadable_video_in_a_worker_stays_a_one_line_user_error(tmp_path):
    from flowless.errors import FlowlessError

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is text, not a video\n" * 10)
    ds = ClipDataset([VideoRecord(bad, 0, "a", "train", "bad")], clip_len=4, size=8)
    with pytest.raises(FlowlessError, match="not a readable video") as info:
        next(iter(torch.utils.data.DataLoader(ds, num_workers=1)))
    assert str(info.value).startswith(f"{bad}: ") and "\n" not in str(info.value)


def test_dataloader_workers_do_not_hang_after_the_parent_used_opencv(coded, tmp_path):
    """Regression: cv2.setNumThreads in a forked worker hung once the parent had used
    OpenCV's thread pool. Run in a child process with a time limit, as a hang cannot fail."""
    import dataclasses
    import subprocess
    import sys

    records, _ = coded
    rows = [{**dataclasses.asdict(r), "path": str(r.path)} for r in records]
    script = tmp_path / "run.py"
    script.write_text(f"""
from pathlib import Path
import cv2, numpy as np, torch
from flowless.data.annotations import VideoRecord
from flowless.data.clips import ClipDataset
from flowless.engine.data import make_loader
from flowless.engine.distributed import DistEnv
img = np.random.randint(0, 255, (1080, 1920, 3), np.uint8)
for _ in range(3):  # start OpenCV's thread pool in the parent
    cv2.GaussianBlur(cv2.resize(img, (960, 540)), (15, 15), 0)
records = [VideoRecord(**{{**r, "path": Path(r["path"])}}) for r in {rows!r}]
ds = ClipDataset(records * 2, clip_len=4, size=8, seed=5)
raw = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
assert sum(len(b["clip"]) for b in raw) == len(ds)
env = DistEnv()
ours = make_loader(ds, 2, env, train=True, seed=0, workers=2)
assert sum(len(b["clip"]) for b in ours) == len(ds)
assert ClipDataset(records, clip_len=4, size=8).preload(workers=2) > 0  # forks workers too
print("ok")
""")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


def test_preloaded_videos_give_the_clips_decoded_on_the_fly(coded):
    records, store = coded
    kwargs = dict(stream="rgbflow", flow_root=store, clip_len=12, size=8, seed=2)
    disk, memory = ClipDataset(records * 2, **kwargs), ClipDataset(records * 2, **kwargs)
    estimate = memory.decoded_bytes()
    assert memory.preload() == estimate == 20 * H * W * 3 + 19 * 4 * H * W * 2 + \
        9 * H * W * 3 + 8 * 4 * H * W * 2  # each video once, though listed twice
    assert memory.decoded["rgb"][0] is memory.decoded["rgb"][2]
    for epoch in range(2):  # the 9-frame video loops: indices wrap as read_frames wraps them
        for i in range(2):
            a, b = disk[(epoch, i)], memory[(epoch, i)]
            assert torch.equal(a["clip"], b["clip"]) and torch.equal(a["flow"], b["flow"])
    test = dict(kwargs, mode="test")
    disk, memory = ClipDataset(records, **test), ClipDataset(records, **test)
    memory.preload()
    assert all(torch.equal(disk[i]["clip"], memory[i]["clip"]) for i in range(len(disk)))


def test_the_disk_cache_gives_the_decoded_arrays_and_follows_the_files(coded, tmp_path,
                                                                      monkeypatch):
    import os

    import flowless.data.clips as clips

    records, store = coded
    cache = tmp_path / "cache"
    kwargs = dict(stream="rgbflow", flow_root=store, clip_len=12, size=8, short_side=12)
    plain = ClipDataset(records, **kwargs)
    plain.preload()
    first = ClipDataset(records, cache_dir=cache, **kwargs)
    first.preload()
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["flow"] * 2 + ["rgb"] * 2
    # a second dataset (another run, another record set) reads the files, decodes nothing
    decoded = []
    real = clips.load_frames
    monkeypatch.setattr(clips, "load_frames", lambda *a, **k: decoded.append(a) or real(*a, **k))
    again = ClipDataset(records[::-1], cache_dir=cache, **kwargs)
    again.preload(workers=0)
    assert decoded == []
    for kind in ("rgb", "flow"):
        for v in range(2):
            want = plain.decoded[kind][v]
            assert np.array_equal(first.decoded[kind][v], want)
            assert np.array_equal(again.decoded[kind][1 - v], want)
    # another short side, a rewritten video or a damaged file is decoded again
    ClipDataset(records[:1], cache_dir=cache, stream="rgb", short_side=16).preload()
    assert len(decoded) == 1 and len(list(cache.glob("rgb-*"))) == 3
    st = os.stat(records[1].path)
    os.utime(records[1].path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ClipDataset(records[1:], cache_dir=cache, stream="rgb", short_side=12).preload()
    assert len(decoded) == 2 and len(list(cache.glob("rgb-*"))) == 4
    damaged = ClipDataset(records[:1], cache_dir=cache, stream="flow", flow_root=store)
    damaged._cached_path(0, "flow").write_bytes(b"not an array")
    damaged.preload()
    assert len(decoded) == 3 and np.array_equal(damaged.decoded["flow"][0],
                                                plain.decoded["flow"][0])
    assert np.array_equal(np.load(damaged._cached_path(0, "flow")), plain.decoded["flow"][0])
    assert not list(cache.glob(".*tmp*"))  # written to a temporary name, renamed


def test_persistent_workers_draw_the_clips_of_each_epoch(coded):
    from flowless.engine.data import make_loader, set_epoch
    from flowless.engine.distributed import DistEnv

    records, _ = coded
    ds = ClipDataset(records * 2, clip_len=4, size=8, seed=5)
    loader = make_loader(ds, 2, DistEnv(), train=True, seed=0, workers=2)
    assert loader.persistent_workers
    for epoch in (1, 2):
        set_epoch(loader, epoch, 0)
        got = {int(v): c for b in loader for v, c in zip(b["video"], b["clip"])}
        assert all(torch.equal(got[i], ds[(epoch, i)]["clip"]) for i in range(len(ds)))
