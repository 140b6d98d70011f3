"""Annotation formats on generated fixture trees, with each format's traps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowless.data.annotations import load_index
from flowless.errors import AnnotationError


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ---------------------------------------------------------------- UCF101
def ucf_tree(root: Path) -> Path:
    write(root / "classInd.txt", "1 ApplyEyeMakeup\n2 Basketball\n3 YoYo\n")
    write(root / "trainlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nBasketball/v_Basketball_g08_c01.avi 2\n"
          "YoYo/v_YoYo_g08_c01.avi 3\n")
    # the testlist has no labels: the class comes from the folder
    write(root / "testlist01.txt",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n")
    write(root / "trainlist02.txt", "YoYo/v_YoYo_g01_c01.avi 3\n")
    write(root / "testlist02.txt", "YoYo/v_YoYo_g08_c01.avi\n")
    touch(root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
          "Basketball/v_Basketball_g08_c01.avi",
          "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi")
    return root  # YoYo/v_YoYo_g08_c01.avi is missing on purpose


def test_ucf101_records_labels_and_missing(tmp_path):
    index = load_index(ucf_tree(tmp_path), "ucf101")
    assert index.classes == ["ApplyEyeMakeup", "Basketball", "YoYo"]
    assert index.splits == ["train", "test"]
    train, test = index.split("train"), index.split("test")
    assert [(r.label, r.class_name) for r in train] == [(0, "ApplyEyeMakeup"), (1, "Basketball"),
                                                         (2, "YoYo")]
    assert [(r.label, r.class_name) for r in test] == [(0, "ApplyEyeMakeup"), (2, "YoYo")]
    assert test[1].key == "YoYo/v_YoYo_g01_c01"
    assert test[1].path == tmp_path / "YoYo/v_YoYo_g01_c01.avi"
    assert [r.key for r in index.missing()] == ["YoYo/v_YoYo_g08_c01"]
    summary = index.summary()
    assert summary == {"classes": 3, "splits": {
        "train": {"videos": 3, "missing": ["YoYo/v_YoYo_g08_c01.avi"]},
        "test": {"videos": 2, "missing": []}}}


def test_ucf101_split_2_and_annotations_outside_root(tmp_path):
    ann = ucf_tree(tmp_path / "lists")
    root = tmp_path / "videos"
    touch(root, "YoYo/v_YoYo_g01_c01.avi")
    index = load_index(root, "ucf101", split=2, annotations=ann)
    assert [(r.split, r.key) for r in index.records] == [
        ("train", "YoYo/v_YoYo_g01_c01"), ("test", "YoYo/v_YoYo_g08_c01")]
    assert index.records[0].path == root / "YoYo/v_YoYo_g01_c01.avi"


def test_ucf101_lists_in_ucfTrainTestlist_and_videos_converted_to_mp4(tmp_path):
    ucf_tree(tmp_path / "ucfTrainTestlist")
    touch(tmp_path, "YoYo/v_YoYo_g08_c01.mp4")
    index = load_index(tmp_path, "ucf101")
    rec = index.split("train")[2]
    assert rec.path == tmp_path / "YoYo/v_YoYo_g08_c01.mp4" and rec.key == "YoYo/v_YoYo_g08_c01"


def test_ucf101_crlf_bom_and_trailing_spaces_are_fine(tmp_path):
    ucf_tree(tmp_path)
    write(tmp_path / "classInd.txt", "\ufeff1 ApplyEyeMakeup\r\n2 Basketball \r\n3 YoYo\r\n\r\n")
    assert load_index(tmp_path, "ucf101").classes == ["ApplyEyeMakeup", "Basketball", "YoYo"]


@pytest.mark.parametrize("line, message", [
    ("YoYo/v_YoYo_g08_c01.avi 4", "label 4 is not in classInd.txt"),
    ("YoYo/v_YoYo_g08_c01.avi 0", "label 0 is not in classInd.txt"),
    ("YoYo/v_YoYo_g08_c01.avi", "expected '<path> <label>'"),
    ("YoYo/v_YoYo_g08_c01.avi 1", "disagrees with the folder 'YoYo'"),
    ("../outside/v_x.avi 1", "escapes the dataset root"),
    ("YoYo/../../v_x.avi 1", "escapes the dataset root"),
    ("/etc/v_x.avi 1", "outside the dataset root"),
    ("Basketball/v_Basketball_g08_c01.avi 2", r"listed twice \(first at"),
])
def test_ucf101_bad_trainlist_line_names_file_and_line(tmp_path, line, message):
    ucf_tree(tmp_path)
    write(tmp_path / "trainlist01.txt", f"Basketball/v_Basketball_g08_c01.avi 2\n\n{line}\n")
    with pytest.raises(AnnotationError, match=message) as info:
        load_index(tmp_path, "ucf101")
    assert str(info.value).startswith(f"{tmp_path / 'trainlist01.txt'}:3: ")
    assert info.value.line == 3


def test_ucf101_absolute_path_inside_root_is_accepted(tmp_path):
    ucf_tree(tmp_path)
    write(tmp_path / "trainlist01.txt", f"{tmp_path}/YoYo/v_YoYo_g05_c01.avi 3\n")
    assert load_index(tmp_path, "ucf101").split("train")[0].key == "YoYo/v_YoYo_g05_c01"


def test_ucf101_testlist_unknown_class_folder(tmp_path):
    ucf_tree(tmp_path)
    write(tmp_path / "testlist01.txt", "YoYo/v_YoYo_g01_c01.avi\nJuggling/v_Juggling_g01_c01.avi\n")
    with pytest.raises(AnnotationError,
                       match=r"testlist01.txt:2: class folder 'Juggling' is not in"):
        load_index(tmp_path, "ucf101")


def test_ucf101_non_utf8_file(tmp_path):
    ucf_tree(tmp_path)
    write(tmp_path / "testlist01.txt", b"YoYo/v_YoYo_g01_c01.avi\nYoYo/v_\xe9t\xe9.avi\n")
    with pytest.raises(AnnotationError, match=r"testlist01.txt:2: not valid UTF-8 \(byte 0xe9\)"):
        load_index(tmp_path, "ucf101")


def test_ucf101_class_index_errors_and_missing_split(tmp_path):
    ucf_tree(tmp_path)
    with pytest.raises(AnnotationError, match=r"trainlist03.txt: annotation file not found"):
        load_index(tmp_path, "ucf101", split=3)
    write(tmp_path / "classInd.txt", "1 A\n3 B\n")
    with pytest.raises(AnnotationError, match="class indices must be 1..2 without gaps"):
        load_index(tmp_path, "ucf101")
    write(tmp_path / "classInd.txt", "1 A\nB\n")
    with pytest.raises(AnnotationError, match=r"classInd.txt:2: expected '<index> <class name>'"):
        load_index(tmp_path, "ucf101")


# ---------------------------------------------------------------- HMDB51
def hmdb_tree(root: Path, ann: Path) -> None:
    write(ann / "brush_hair_test_split1.txt",
          "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n"
          "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \n"
          "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0 \n")
    write(ann / "cartwheel_test_split1.txt",
          "#122_Cleaning_Up_The_Beach_cartwheel_f_cm_np1_ba_bad_0.avi 2\n"
          "Acrobacias_cartwheel_f_cm_np1_ri_bad_0.avi 1\n")
    write(ann / "brush_hair_test_split2.txt", "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 1\n")
    touch(root, "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
          "cartwheel/#122_Cleaning_Up_The_Beach_cartwheel_f_cm_np1_ba_bad_0.avi")


def test_hmdb51_skips_unused_lines_and_sorts_classes(tmp_path):
    hmdb_tree(tmp_path, tmp_path / "testTrainMulti_7030_splits")
    index = load_index(tmp_path, "hmdb51")
    assert index.classes == ["brush_hair", "cartwheel"]
    got = [(r.split, r.label, r.key) for r in index.records]
    assert got == [
        ("train", 0, "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0"),
        ("test", 0, "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1"),
        # a leading '#' is part of HMDB51 video names, not a comment
        ("test", 1, "cartwheel/#122_Cleaning_Up_The_Beach_cartwheel_f_cm_np1_ba_bad_0"),
        ("train", 1, "cartwheel/Acrobacias_cartwheel_f_cm_np1_ri_bad_0"),
    ]
    assert index.summary()["splits"]["train"] == {
        "videos": 2, "missing": ["cartwheel/Acrobacias_cartwheel_f_cm_np1_ri_bad_0.avi"]}


def test_hmdb51_errors(tmp_path):
    ann = tmp_path / "splits"
    hmdb_tree(tmp_path, ann)
    with pytest.raises(AnnotationError,
                       match=r"cartwheel_test_split2.txt: annotation file not found"):
        load_index(tmp_path, "hmdb51", split=2, annotations=ann)
    write(ann / "cartwheel_test_split1.txt", "a.avi 1\nb.avi 3\n")
    with pytest.raises(AnnotationError,
                       match=r"cartwheel_test_split1.txt:2: expected '<video> <0\|1\|2>'"):
        load_index(tmp_path, "hmdb51", annotations=ann)
    write(ann / "cartwheel_test_split1.txt",
          "../brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1\n")
    with pytest.raises(AnnotationError, match=r"cartwheel_test_split1.txt:1: video name .* leaves"):
        load_index(tmp_path, "hmdb51", annotations=ann)
    with pytest.raises(AnnotationError, match="no '<class>_test_split<K>.txt' files found"):
        load_index(tmp_path, "hmdb51")


# ---------------------------------------------------------------- Kinetics
KINETICS_CSV = (
    "label,youtube_id,time_start,time_end,split\n"
    "abseiling,--07WQ2iBlw,1,11,train\n"
    '"passing American football (in game)",-0nGlQGzHrY,45,55,train\n'
    "massaging person's head,0EFgMWrv1Mk,3,13,train\n"
    '"say ""hello""",AAA_bbb-123,0,10,train\n'
)


def test_kinetics_labels_with_spaces_and_quotes_both_layouts(tmp_path):
    write(tmp_path / "ann/train.csv", KINETICS_CSV)
    write(tmp_path / "ann/validate.csv", "label,youtube_id,time_start,time_end,split\n"
          "abseiling,zzzzzzzzzzz,100,110,val\n")
    write(tmp_path / "ann/test.csv",
          "youtube_id,time_start,time_end,split\nTTTTTTTTTTT,5,15,test\n")
    write(tmp_path / "ann/notes.csv", "a,b\n1,2\n")  # unrelated CSV is ignored
    touch(tmp_path, "train/abseiling/--07WQ2iBlw_000001_000011.mp4",  # with the split folder
          "passing American football (in game)/-0nGlQGzHrY_000045_000055.mp4",  # without
          "train/massaging_person's_head/0EFgMWrv1Mk_000003_000013.mp4",  # spaces -> underscores
          "test/TTTTTTTTTTT_000005_000015.mp4")
    index = load_index(tmp_path, "kinetics", annotations=tmp_path / "ann")
    assert index.classes == ["abseiling", "massaging person's head",
                             "passing American football (in game)", 'say "hello"']
    got = {r.key: (r.split, r.label) for r in index.records}
    assert got == {
        "test/TTTTTTTTTTT_000005_000015": ("test", -1),
        "train/abseiling/--07WQ2iBlw_000001_000011": ("train", 0),
        "passing American football (in game)/-0nGlQGzHrY_000045_000055": ("train", 2),
        "train/massaging_person's_head/0EFgMWrv1Mk_000003_000013": ("train", 1),
        'train/say "hello"/AAA_bbb-123_000000_000010': ("train", 3),
        "abseiling/zzzzzzzzzzz_000100_000110": ("validation", 0),
    }
    assert index.summary()["splits"]["validation"]["missing"] == [
        "abseiling/zzzzzzzzzzz_000100_000110.mp4"]
    assert [r.key for r in index.split("val")] == ["abseiling/zzzzzzzzzzz_000100_000110"]


def test_kinetics_errors(tmp_path):
    bad = KINETICS_CSV + "abseiling,xyz,1,eleven,train\n"
    write(tmp_path / "train.csv", bad)
    with pytest.raises(AnnotationError,
                       match=r"train.csv:6: time_start and time_end must be numbers"):
        load_index(tmp_path, "kinetics")
    write(tmp_path / "train.csv", KINETICS_CSV + "abseiling,xyz,1,11,train,extra\n")
    with pytest.raises(AnnotationError, match=r"train.csv:6: wrong number of fields"):
        load_index(tmp_path, "kinetics")
    write(tmp_path / "train.csv", KINETICS_CSV + "abseiling,../../etc,1,11,train\n")
    with pytest.raises(AnnotationError, match=r"train.csv:6: invalid youtube_id"):
        load_index(tmp_path, "kinetics")
    write(tmp_path / "train.csv", KINETICS_CSV + "abseiling,--07WQ2iBlw,1,11,train\n")
    with pytest.raises(AnnotationError,
                       match=r"train.csv:6: .* listed twice \(first at .*train.csv:2\)"):
        load_index(tmp_path, "kinetics")
    write(tmp_path / "train.csv", "label;youtube_id\n")
    with pytest.raises(AnnotationError, match="no Kinetics CSV rows"):
        load_index(tmp_path, "kinetics")


# ---------------------------------------------------------------- Something-Something v2
def ssv2_tree(root: Path) -> None:
    labels = {"Approaching something with your camera": "0",
              "Holding something next to something": "1",
              "Putting something into something": "2"}
    write(root / "labels.json", json.dumps(labels, indent=1))
    train = [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
              "template": "Holding [something] next to [something]",
              "placeholders": ["potato", "vicks vaporub bottle"]},
             {"id": "42326", "label": "approaching a cup with your camera",
              "template": "Approaching [something] with your camera", "placeholders": ["a cup"]}]
    val = [{"id": "24", "label": "putting pen into cup",
            "template": "Putting [something] into [something]", "placeholders": ["pen", "cup"]}]
    write(root / "train.json", json.dumps(train, indent=1))
    write(root / "validation.json", json.dumps(val, indent=1))
    write(root / "test.json", json.dumps([{"id": "1000"}], indent=1))
    touch(root, "78687.webm", "20bn-something-something-v2/42326.webm")


def test_ssv2_templates_with_brackets(tmp_path):
    ssv2_tree(tmp_path)
    index = load_index(tmp_path, "ssv2")
    assert index.classes[1] == "Holding something next to something"
    got = [(r.split, r.label, r.key) for r in index.records]
    assert got == [("train", 1, "78687"), ("train", 0, "20bn-something-something-v2/42326"),
                   ("validation", 2, "24"), ("test", -1, "1000")]
    assert index.summary()["splits"]["validation"] == {"videos": 1, "missing": ["24.webm"]}


def test_ssv2_unknown_template_names_the_line(tmp_path):
    ssv2_tree(tmp_path)
    val = [{"id": "24", "template": "Putting [something] into [something]"},
           {"id": "25", "template": "Juggling [something]"}]
    write(tmp_path / "validation.json", json.dumps(val, indent=1))
    with pytest.raises(AnnotationError, match=r"validation.json:7: template 'Juggling something' "
                       r"of video 25 is not in labels.json"):
        load_index(tmp_path, "ssv2")
    write(tmp_path / "validation.json", "[{\"id\": \"24\",}")
    with pytest.raises(AnnotationError, match=r"validation.json:1: invalid JSON"):
        load_index(tmp_path, "ssv2")
    write(tmp_path / "validation.json", json.dumps([{"id": "../x", "template": "a"}]))
    with pytest.raises(AnnotationError, match=r"has no valid 'id'"):
        load_index(tmp_path, "ssv2")


# ---------------------------------------------------------------- list and folder
def test_list_format_with_and_without_class_names(tmp_path):
    write(tmp_path / "train.txt", "a/one.mp4 0\nb/two words.mp4 2\n")
    write(tmp_path / "test.txt", "a/three 1\n")
    touch(tmp_path, "a/three.avi")
    index = load_index(tmp_path, "list")
    assert index.classes == ["class_0", "class_1", "class_2"]
    assert [(r.split, r.label, r.key, r.path.name) for r in index.records] == [
        ("train", 0, "a/one", "one.mp4"), ("train", 2, "b/two words", "two words.mp4"),
        ("test", 1, "a/three", "three.avi")]  # the extension is found on disk
    write(tmp_path / "classes.txt", "walk\nrun\njump\n")
    assert load_index(tmp_path, "list").records[1].class_name == "jump"
    write(tmp_path / "classInd.txt", "1 Walk\n2 Run\n3 Jump\n")  # UCF style, 1-based lines
    assert [r.class_name for r in load_index(tmp_path, "list").records] == ["Walk", "Jump", "Run"]
    (tmp_path / "classInd.txt").unlink()
    write(tmp_path / "classes.txt", "walk\nrun\n")
    with pytest.raises(AnnotationError, match=r"train.txt:2: label 2 is out of range"):
        load_index(tmp_path, "list")


def test_list_format_single_file_and_split_files(tmp_path):
    write(tmp_path / "lists/my_val_list.txt", "x.mp4 0\n")
    index = load_index(tmp_path, "list", annotations=tmp_path / "lists/my_val_list.txt")
    assert [(r.split, r.key) for r in index.records] == [("validation", "x")]
    write(tmp_path / "train_split2.txt", "y.mp4 0\n")
    write(tmp_path / "train.txt", "z.mp4 0\n")
    assert [r.key for r in load_index(tmp_path, "list", split=2).records] == ["y"]
    write(tmp_path / "train.txt", "z.mp4 -1\n")
    with pytest.raises(AnnotationError, match=r"train.txt:1: label -1 is negative"):
        load_index(tmp_path, "list")
    write(tmp_path / "train.txt", "z.mp4 one\n")
    with pytest.raises(AnnotationError, match=r"train.txt:1: label 'one' is not an integer"):
        load_index(tmp_path, "list")


def test_folder_format_plain_and_with_split_folders(tmp_path):
    touch(tmp_path / "a", "walk/1.mp4", "walk/sub/2.avi", "run/3.webm", "run/notes.txt")
    index = load_index(tmp_path / "a", "folder")
    assert index.classes == ["run", "walk"]
    assert [(r.split, r.label, r.key) for r in index.records] == [
        ("all", 0, "run/3"), ("all", 1, "walk/1"), ("all", 1, "walk/sub/2")]
    touch(tmp_path / "b", "train/walk/1.mp4", "train/run/2.mp4", "test/walk/3.mp4")
    index = load_index(tmp_path / "b", "folder")
    assert [(r.split, r.class_name) for r in index.records] == [
        ("train", "run"), ("train", "walk"), ("test", "walk")]
    write(tmp_path / "c/x/readme.txt", "")
    with pytest.raises(AnnotationError, match="no videos found"):
        load_index(tmp_path / "c", "folder")


def test_unknown_format_and_missing_root(tmp_path):
    with pytest.raises(AnnotationError, match="unknown format 'ucf'"):
        load_index(tmp_path, "ucf")
    with pytest.raises(AnnotationError, match="dataset root is not a folder"):
        load_index(tmp_path / "nope", "ucf101")


def test_tiny_ucf_fixture_loads(tiny_ucf):
    index = load_index(tiny_ucf, "ucf101")
    assert len(index.split("train")) == 6 and len(index.split("test")) == 4
    assert not index.missing()
