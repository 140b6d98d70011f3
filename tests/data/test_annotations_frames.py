"""Frame folders in every annotation format, mmaction2 rawframe lists, and the hold-out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowless.data.annotations import load_index
from flowless.data.discover import discover_videos
from flowless.data.holdout import hold_out
from flowless.errors import AnnotationError, ConfigError


def frames(root: Path, *rels: str, name: str = "image_{:05d}.jpg", count: int = 3) -> None:
    """Frame folders (empty image files: annotations only look at names)."""
    for rel in rels:
        (root / rel).mkdir(parents=True, exist_ok=True)
        for t in range(1, count + 1):
            (root / rel / name.format(t)).write_bytes(b"")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ucf_lists(root: Path) -> None:
    write(root / "classInd.txt", "1 ApplyEyeMakeup\n2 YoYo\n")
    write(root / "trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                    "YoYo/v_YoYo_g08_c01.avi 2\n")
    write(root / "testlist01.txt", "YoYo/v_YoYo_g01_c01.avi\n")


def test_ucf101_mars_frame_folders(tmp_path):
    ucf_lists(tmp_path)
    frames(tmp_path, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "YoYo/v_YoYo_g08_c01",
           "YoYo/v_YoYo_g01_c01")
    index = load_index(tmp_path, "ucf101")
    rec = index.split("test")[0]
    assert rec.path == tmp_path / "YoYo/v_YoYo_g01_c01" and rec.key == "YoYo/v_YoYo_g01_c01"
    assert index.missing() == []
    assert index.summary()["splits"]["train"] == {"videos": 2, "missing": []}


def test_ucf101_flat_jpegs_256_folders(tmp_path):
    ucf_lists(tmp_path)
    frames(tmp_path, "v_ApplyEyeMakeup_g08_c01", "v_YoYo_g08_c01", name="frame{:06d}.jpg")
    index = load_index(tmp_path, "ucf101")
    assert [(r.key, r.label) for r in index.split("train")] == [
        ("v_ApplyEyeMakeup_g08_c01", 0), ("v_YoYo_g08_c01", 1)]
    # a missing video is still reported under its class path
    assert [r.key for r in index.missing()] == ["YoYo/v_YoYo_g01_c01"]


def test_hmdb51_kinetics_ssv2_and_list_accept_frame_folders(tmp_path):
    write(tmp_path / "h/brush_hair_test_split1.txt", "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1\n")
    frames(tmp_path / "h", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", name="img_{:05d}.jpg")
    assert load_index(tmp_path / "h", "hmdb51").missing() == []

    write(tmp_path / "k/train.csv", "label,youtube_id,time_start,time_end,split\n"
                                    "abseiling,-3B32lodo2M,59,69,train\n")
    frames(tmp_path / "k", "train/abseiling/-3B32lodo2M_000059_000069", name="img_{:05d}.jpg")
    rec = load_index(tmp_path / "k", "kinetics").records[0]
    assert rec.key == "train/abseiling/-3B32lodo2M_000059_000069" and rec.path.is_dir()

    write(tmp_path / "l/train.txt", "clips/run.v2 0\nclips/walk.mp4 1\n")
    frames(tmp_path / "l", "clips/run.v2")  # a dot in a frame folder's name is kept
    (tmp_path / "l/clips/walk.mp4").write_bytes(b"")
    assert [r.key for r in load_index(tmp_path / "l", "list").records] == ["clips/run.v2",
                                                                          "clips/walk"]


def test_rawframes_lists_of_mmaction2(tmp_path):
    root = tmp_path / "rawframes"
    ann = tmp_path / "ann"
    write(ann / "classInd.txt", "1 ApplyEyeMakeup\n2 YoYo\n")
    write(ann / "ucf101_train_split_1_rawframes.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01 3 0\nYoYo/v_YoYo_g08_c01 1 3 1\n")
    write(ann / "ucf101_val_split_1_rawframes.txt", "YoYo/v_YoYo_g01_c01 0 120 1\n")
    write(ann / "ucf101_train_split_2_rawframes.txt", "YoYo/v_YoYo_g01_c01 3 1\n")
    frames(root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "YoYo/v_YoYo_g08_c01",
           "YoYo/v_YoYo_g01_c01", name="img_{:05d}.jpg")
    index = load_index(root, "rawframes", annotations=ann)
    assert index.classes == ["ApplyEyeMakeup", "YoYo"]
    assert [(r.split, r.key, r.label) for r in index.records] == [
        ("train", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", 0),
        ("train", "YoYo/v_YoYo_g08_c01", 1), ("validation", "YoYo/v_YoYo_g01_c01", 1)]
    assert index.split("test") == index.split("validation")
    assert [r.key for r in load_index(root, "rawframes", 2, ann).records] == ["YoYo/v_YoYo_g01_c01"]
    one = load_index(root, "rawframes", annotations=ann / "ucf101_val_split_1_rawframes.txt")
    assert [r.split for r in one.records] == ["validation"]
    assert discover_videos(root, "rawframes", annotations=ann)[0] == (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", root / "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01")


@pytest.mark.parametrize("line, message", [
    ("YoYo/v 3\n", "expected '<frame_dir> <total_frames> <label>' or '<frame_dir> <start> "
                   "<total_frames> <label>' (one label), got 'YoYo/v 3'"),
    ("YoYo/v 12 163 1\n", "start 12: clips cut from the middle of a frame folder are not "
                          "supported"),
    ("YoYo/v many 1\n", "'many' is not an integer; expected '<frame_dir> <total_frames>"),
    ("../../etc 3 1\n", "path '../../etc' escapes the dataset root"),
])
def test_bad_rawframes_lines_name_file_and_line(tmp_path, line, message):
    src = write(tmp_path / "train_rawframes.txt", "YoYo/ok 3 0\n" + line)
    with pytest.raises(AnnotationError, match="train_rawframes.txt:2: ") as info:
        load_index(tmp_path, "rawframes")
    assert message in str(info.value)
    src.unlink()
    with pytest.raises(AnnotationError, match=r"no '\*rawframes\*.txt' list found"):
        load_index(tmp_path, "rawframes")


def test_class_folders_of_frame_folders_and_videos(tmp_path):
    frames(tmp_path, "run/clip1", "run/clip2", "walk/sub/clip3", name="frame{:06d}.jpg")
    frames(tmp_path, "walk/flow_only", name="flow_x_{:05d}.jpg")  # flow, not a video
    (tmp_path / "walk/clip4.mp4").write_bytes(b"")
    frames(tmp_path, "walk/with video", name="thumb{:02d}.jpg", count=1)
    (tmp_path / "walk/with video/clip5.mp4").write_bytes(b"")  # a video and its thumbnail
    index = load_index(tmp_path, "folder", val_fraction=0)
    assert [(r.key, r.label) for r in index.records] == [
        ("run/clip1", 0), ("run/clip2", 0), ("walk/clip4", 1), ("walk/sub/clip3", 1),
        ("walk/with video/clip5", 1)]
    assert [k for k, _ in discover_videos(tmp_path)] == [
        "run/clip1", "run/clip2", "walk/clip4", "walk/sub/clip3", "walk/with video/clip5"]
    assert discover_videos(tmp_path / "run/clip1") == [("clip1", tmp_path / "run/clip1")]


def test_hold_out_is_stratified_and_deterministic(tmp_path):
    frames(tmp_path, *[f"a/{i:02d}" for i in range(10)], *[f"b/{i:02d}" for i in range(3)],
           "c/only")
    index = load_index(tmp_path, "folder")  # default val_fraction 0.2
    train, val = index.split("train"), index.split("validation")
    assert [sum(r.class_name == c for r in val) for c in "abc"] == [2, 1, 0]
    assert {r.key for r in train} | {r.key for r in val} == {r.key for r in index.records}
    assert index.split("test") == val  # what evaluate scores by default
    assert index.summary()["holdout"] == {"val_fraction": 0.2, "train": 11, "validation": 3}
    # the split depends on the keys only: not on the order, and stable when a video is added
    assert hold_out(index.records[::-1], 0.2)[1] == val[::-1]
    frames(tmp_path, "a/10")
    again = load_index(tmp_path, "folder").split("validation")
    assert len(again) == 3 and len({r.key for r in val} - {r.key for r in again}) <= 1
    assert load_index(tmp_path, "folder", val_fraction=0).split("validation") == []
    with pytest.raises(ConfigError, match=r"data.val_fraction: 1.0 is not in \[0, 1\)"):
        load_index(tmp_path, "folder", val_fraction=1.0)


def test_datasets_with_splits_have_no_hold_out(tmp_path):
    ucf_lists(tmp_path)
    index = load_index(tmp_path, "ucf101")
    assert index.holdout() is None and "holdout" not in index.summary()
    assert json.dumps(index.summary())  # still plain JSON
