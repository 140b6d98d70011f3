"""Extraction into a store: content, resume, shards, bad videos, parallel determinism."""

from __future__ import annotations

import json
import os
import shutil
import signal

import numpy as np
import pytest

from flowless.cli import main
from flowless.data.video import read_video
from flowless.errors import ConfigError, FlowError
from flowless.flow import (
    extract_flow,
    flow_path,
    load_flow_u8,
    parse_shard,
    quantize,
    read_manifest,
    shard_videos,
    store_keys,
    video_flow,
)
from flowless.flow.extract import report_path


def test_store_content_equals_in_memory_flow(tmp_path, make_videos):
    videos = make_videos(tmp_path / "v", count=2, num_frames=6)
    summary = extract_flow(videos, tmp_path / "s", backend="farneback", short_side=24, workers=1)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 0)
    for key, path in videos:
        stored = load_flow_u8(flow_path(tmp_path / "s", key))
        assert stored.shape == (5, 2, 24, 32)  # N-1 fields, short side 24 (48x64 input)
        expected = quantize(video_flow(read_video(path), "farneback", short_side=24))
        np.testing.assert_array_equal(stored, expected)
    manifest = read_manifest(tmp_path / "s")
    assert manifest["backend"] == "farneback" and manifest["short_side"] == 24
    assert manifest["params"]["winsize"] == 15 and manifest["quantization"]["bound"] == 20


def test_rerun_skips_complete_and_verify_redoes_broken(tmp_path, make_videos):
    videos = make_videos(tmp_path / "v", count=3)
    out = tmp_path / "s"
    extract_flow(videos, out, backend="dis", short_side=0, workers=1)
    target = flow_path(out, videos[0][0])
    good = target.read_bytes()
    again = extract_flow(videos, out, backend="dis", short_side=0, workers=1)
    assert (again.done, again.skipped) == (0, 3)
    target.write_bytes(good[:100])  # damaged after completion (disk error, bad copy)
    assert extract_flow(videos, out, backend="dis", short_side=0).skipped == 3
    fixed = extract_flow(videos, out, backend="dis", short_side=0, workers=1, verify=True)
    assert (fixed.done, fixed.skipped) == (1, 2) and target.read_bytes() == good
    redo = extract_flow(videos, out, backend="dis", short_side=0, workers=1, overwrite=True)
    assert redo.done == 3 and target.read_bytes() == good


def test_parallel_workers_give_identical_bytes(tmp_path, make_videos):
    videos = make_videos(tmp_path / "v", count=4)
    extract_flow(videos, tmp_path / "one", backend="tvl1", short_side=32, workers=1)
    extract_flow(videos, tmp_path / "two", backend="tvl1", short_side=32, workers=2)
    for key, _ in videos:
        assert (flow_path(tmp_path / "one", key).read_bytes()
                == flow_path(tmp_path / "two", key).read_bytes())


def test_shards_are_disjoint_complete_and_deterministic(tmp_path):
    videos = [(f"c{i % 3}/v{i:02d}", tmp_path / f"v{i}.mp4") for i in range(11)]
    parts = [shard_videos(list(reversed(videos)), (i, 3)) for i in range(3)]
    keys = [k for part in parts for k, _ in part]
    assert sorted(keys) == sorted(k for k, _ in videos) and len(set(keys)) == 11
    assert parts == [shard_videos(videos, (i, 3)) for i in range(3)]
    assert [len(p) for p in parts] == [4, 4, 3]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ConfigError, match="expected I/N"):
            parse_shard(bad)


def test_duplicate_keys_are_refused(tmp_path):
    with pytest.raises(FlowError, match="two videos have the key 'a/v'"):
        shard_videos([("a/v", tmp_path / "a/v.mp4"), ("a/v", tmp_path / "a/v.avi")])


def test_sharded_runs_fill_one_store(tmp_path, make_videos):
    videos = make_videos(tmp_path / "v", count=4)
    for i in range(2):
        s = extract_flow(videos, tmp_path / "s", backend="dis", short_side=0, shard=(i, 2),
                         workers=1)
        assert s.done == 2 and report_path(tmp_path / "s", (i, 2)).exists()
    assert store_keys(tmp_path / "s") == sorted(k for k, _ in videos)


def test_bad_videos_are_reported_and_the_rest_complete(tmp_path, make_videos, make_bad_videos,
                                                       capsys):
    root = tmp_path / "v"
    videos = make_videos(root, count=3)
    bad = make_bad_videos(root, videos[0][1])
    out = tmp_path / "s"
    code = main(["flow", str(root), str(out), "--backend", "farneback", "--workers", "2",
                 "--short-side", "0", "--quiet"])
    assert code == 2
    stdout = capsys.readouterr()
    report = out / "flowless-flow-report.json"
    assert f"3 done, 0 skipped (already complete), 4 failed (see {report})" in stdout.out
    assert "failed bad/empty" in stdout.err
    data = json.loads(report.read_text())
    assert data["finished"] and data["failed"] == 4
    errors = {f["key"]: f["error"] for f in data["failures"]}
    assert set(errors) == set(bad)
    assert "empty" in errors["bad/empty"] and "only 1 frame" in errors["bad/one_frame"]
    assert "not a readable video" in errors["bad/text"]
    assert all(str(bad[k]) == f["video"] for k, f in zip(errors, data["failures"]))
    assert store_keys(out) == sorted(k for k, _ in videos)
    assert not list(out.rglob(".*tmp*"))  # failed videos leave no temporary files
    # A rerun retries only the failures; fixing one makes it complete.
    shutil.copy(videos[0][1], bad["bad/text"])
    code = main(["flow", str(root), str(out), "--backend", "farneback", "--short-side", "0",
                 "--quiet"])
    assert code == 2
    assert "1 done, 3 skipped (already complete), 3 failed" in capsys.readouterr().out


def test_all_good_exit_zero_and_summary(tmp_path, video_dir, capsys):
    code = main(["flow", str(video_dir), str(tmp_path / "s"), "--backend", "dis", "--preset",
                 "ultrafast", "--quiet"])
    assert code == 0
    assert "4 done, 0 skipped (already complete), 0 failed" in capsys.readouterr().out
    assert read_manifest(tmp_path / "s")["params"]["preset"] == "ultrafast"
    assert load_flow_u8(flow_path(tmp_path / "s", "a/clip 00")).shape == (7, 2, 256, 341)


def test_tiny_frames_unicode_paths_and_dis_minimum_size(tmp_path, capsys):
    from flowless.data.video import write_video

    root = tmp_path / "vidéos ü"
    write_video(root / "tiny 1x1.mp4", np.full((4, 1, 1, 3), 100, np.uint8))
    write_video(root / "ça va.mp4", np.random.default_rng(0).integers(0, 255, (4, 16, 20, 3),
                                                                       dtype=np.uint8))
    out = tmp_path / "störe"
    summary = extract_flow([("tiny 1x1", root / "tiny 1x1.mp4"), ("ça va", root / "ça va.mp4")],
                           out, backend="dis", short_side=0, workers=1)
    assert summary.done == 1 and summary.failures[0]["key"] == "tiny 1x1"
    assert "width or height >= 12" in summary.failures[0]["error"]
    assert load_flow_u8(flow_path(out, "ça va")).shape == (3, 2, 16, 20)
    # TV-L1 handles the 1x1 video (padded to 2x2 by H.264); upscaled it works for every backend.
    assert extract_flow([("t", root / "tiny 1x1.mp4")], tmp_path / "t", backend="tvl1",
                        short_side=0).done == 1
    assert extract_flow([("t", root / "tiny 1x1.mp4")], tmp_path / "u", backend="dis",
                        short_side=16).done == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_output_is_a_clear_error(tmp_path, video_dir, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["flow", str(video_dir), str(ro / "s"), "--backend", "dis", "-q"]) == 2
    finally:
        ro.chmod(0o700)
    assert "cannot write here (permission denied)" in capsys.readouterr().err


def crash_on_b(key: str, video: str, delay: float) -> dict:
    """A worker task that kills its own process (like a segfault) for key 'b'."""
    import time

    time.sleep(delay)
    if key == "b":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"key": key, "ok": True, "fields": 1}


def test_a_crashing_worker_is_blamed_alone(tmp_path):
    from flowless.flow.extract import run_pool

    results = []
    todo = [(k, tmp_path / f"{k}.mp4") for k in "abcde"]
    run_pool(todo, 2, (0.05,), results.append, fn=crash_on_b)
    ok = sorted(r["key"] for r in results if r["ok"])
    failed = [r for r in results if not r["ok"]]
    assert ok == ["a", "c", "d", "e"]
    assert [r["key"] for r in failed] == ["b"] and "worker process died" in failed[0]["error"]
