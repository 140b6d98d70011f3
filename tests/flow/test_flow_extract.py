"""Extraction into a store: content, resume, shards, bad videos, parallel determinism."""

from __future__ import annotations

import json
import shutil

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
