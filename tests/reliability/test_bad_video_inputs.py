"""Unreadable and unusual videos through every command that decodes video.

A single-video command (predict, train) stops with one line naming the file and the fix
(exit 2); a batch job (flow, evaluate) skips and reports each bad video and completes the
rest. Odd but valid videos (one frame, 1x1, 4000x3000, grayscale, 16-bit, unicode and
spaces in the path) just work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from relkit import BAD_VIDEOS, ODD_VIDEOS, TRAIN, assert_user_error, run

from flowless.flow import flow_path, load_flow_u8


@pytest.mark.parametrize("kind", list(BAD_VIDEOS))
def test_predict_names_the_bad_video_and_the_fix(kind, bad_videos, rel_ckpts, capsys):
    video = bad_videos[kind]
    code, out, err = run(capsys, "predict", rel_ckpts["rgb"], video)
    assert out == ""
    assert_user_error(code, err, "predict", video, BAD_VIDEOS[kind][1])


@pytest.mark.parametrize("kind", list(BAD_VIDEOS))
def test_flow_of_one_bad_video_file_reports_it(kind, bad_videos, tmp_path, capsys):
    video = bad_videos[kind]
    code, out, err = run(capsys, "flow", video, tmp_path / "flux", "--backend", "farneback")
    if kind == "missing":
        assert_user_error(code, err, "flow", video, "not found")
        return
    assert code == 2 and "0 done, 0 skipped (already complete), 1 failed" in out
    assert err.startswith(f"  failed {video.stem}: {video}: ") and err.count("\n") == 1
    assert BAD_VIDEOS[kind][1] in err and "Traceback" not in err


def test_flow_of_one_good_video_file(good_video, tmp_path, capsys):
    code, out, err = run(capsys, "flow", good_video, tmp_path / "flux", "--backend",
                         "farneback", "--short-side", "0")
    assert code == 0, err
    assert load_flow_u8(flow_path(tmp_path / "flux", good_video.stem)).shape == (9, 2, 32, 48)


def _dataset_of(root: Path, videos: dict[str, Path], good: Path, goods: int = 2) -> list[str]:
    """A 'list'-format dataset at ``root`` whose test.txt lists ``videos`` (copied in, or
    listed though missing) and ``goods`` readable videos; returns the bad keys."""
    root.mkdir(parents=True)
    lines, bad_keys = [], []
    for src in videos.values():
        dest = root / "mauvais" / src.name
        dest.parent.mkdir(exist_ok=True)
        if src.exists():
            shutil.copy(src, dest)
        lines.append(f"mauvais/{dest.name} 0\n")
        bad_keys.append(f"mauvais/{dest.stem}")
    for i in range(goods):
        shutil.copy(good, root / f"bon {i}.mp4")
        lines.append(f"bon {i}.mp4 {i % 2}\n")
    (root / "classInd.txt").write_text("1 MoveLeft\n2 MoveRight\n")
    (root / "test.txt").write_text("".join(lines))
    return sorted(bad_keys)


def test_flow_skips_and_reports_bad_videos_and_completes_the_rest(tmp_path, bad_videos,
                                                                   good_video, capsys):
    bad_keys = _dataset_of(tmp_path / "jeu", bad_videos, good_video)
    out = tmp_path / "flux"
    code, stdout, err = run(capsys, "flow", tmp_path / "jeu", out, "--format", "list",
                            "--backend", "farneback", "--workers", "1", "--short-side", "0")
    assert code == 2, err
    assert f"2 done, 0 skipped (already complete), {len(bad_keys)} failed" in stdout
    assert "Traceback" not in err
    report = json.loads((out / "flowless-flow-report.json").read_text())
    assert sorted(f["key"] for f in report["failures"]) == bad_keys
    for failure in report["failures"]:
        assert failure["error"].startswith(failure["video"]) and "; " in failure["error"]
    shown = [line for line in err.splitlines() if line.startswith("  failed ")]
    assert len(shown) == min(5, len(bad_keys))
    for key in ("bon 0", "bon 1"):  # the readable videos are complete: 10 frames, 9 fields
        assert load_flow_u8(flow_path(out, key)).shape == (9, 2, 32, 48)
    for key in bad_keys:
        assert not flow_path(out, key).exists()


def test_evaluate_skips_and_reports_bad_videos_and_scores_the_rest(tmp_path, bad_videos,
                                                                    good_video, rel_ckpts,
                                                                    capsys):
    bad_keys = _dataset_of(tmp_path / "jeu", bad_videos, good_video)
    code, stdout, err = run(capsys, "evaluate", rel_ckpts["rgb"], "--dataset",
                            tmp_path / "jeu", "--format", "list", "--out", tmp_path / "éval")
    assert code == 0, err
    assert f"2 videos evaluated, {len(bad_keys)} skipped" in stdout
    metrics = json.loads((tmp_path / "éval" / "metrics.json").read_text())
    assert metrics["evaluated"] == 2
    assert sorted(s["key"] for s in metrics["skipped"]) == bad_keys
    for skip in metrics["skipped"]:
        assert skip["path"] in skip["error"] and "; " in skip["error"]
    lines = (tmp_path / "éval" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["key"] for line in lines) == ["bon 0", "bon 1"]


def test_train_names_an_unreadable_training_video(ucf_copy, tmp_path, capsys):
    victim = ucf_copy / "MoveLeft" / "v_MoveLeft_g01_c01.mp4"
    victim.write_text("not a video")
    code, _, err = run(capsys, "train", "--dataset", ucf_copy, "--format", "ucf101",
                       "--out", tmp_path / "run", *TRAIN)
    assert_user_error(code, err, "train", victim, "not a readable video")
    assert not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize("kind", list(ODD_VIDEOS))
def test_predict_reads_odd_videos(kind, odd_videos, rel_ckpts, capsys):
    video, frames = odd_videos[kind], ODD_VIDEOS[kind][1]
    code, out, err = run(capsys, "predict", rel_ckpts["rgb"], video, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == frames and result["streams"][0]["clips"] == 1
    assert sum(entry["prob"] for entry in result["top"]) == pytest.approx(1.0, abs=1e-4)
    code, out, err = run(capsys, "predict", rel_ckpts["rgb"], rel_ckpts["flow"], video)
    if frames == 1:  # no flow of a single frame: a user error, not a crash
        assert_user_error(code, err, "predict", video, "at least 2 frames")
    else:
        assert code == 0, err


def test_flow_and_evaluate_handle_odd_videos(tmp_path, odd_videos, rel_ckpts, capsys):
    root = tmp_path / "jeu bizarre"
    root.mkdir()
    lines = []
    for i, video in enumerate(odd_videos.values()):
        shutil.copy(video, root / video.name)
        lines.append(f"{video.name} {i % 2}\n")
    (root / "test.txt").write_text("".join(lines))
    (root / "classInd.txt").write_text("1 MoveLeft\n2 MoveRight\n")
    out = tmp_path / "flux"
    code, stdout, err = run(capsys, "flow", root, out, "--format", "list", "--backend",
                            "farneback", "--workers", "1", "--short-side", "16")
    assert code == 2 and len(err.splitlines()) == 1  # only the one-frame video fails
    report = json.loads((out / "flowless-flow-report.json").read_text())
    assert [f["key"] for f in report["failures"]] == ["clip one frame"]
    assert "at least 2" in report["failures"][0]["error"]
    for name, (_, frames, (h, w)) in ODD_VIDEOS.items():
        if frames > 1:
            flow = load_flow_u8(flow_path(out, odd_videos[name].stem))
            expect = (16, max(1, round(w * 16 / h))) if h <= w else (round(h * 16 / w), 16)
            assert flow.shape == (frames - 1, 2, *expect), name
    code, stdout, err = run(capsys, "evaluate", rel_ckpts["rgb"], "--dataset", root,
                            "--format", "list", "--out", tmp_path / "éval")
    assert code == 0, err
    assert f"{len(odd_videos)} videos evaluated, 0 skipped" in stdout
    metrics = json.loads((tmp_path / "éval" / "metrics.json").read_text())
    assert metrics["evaluated"] == len(odd_videos) and np.isfinite(metrics["top1"])
