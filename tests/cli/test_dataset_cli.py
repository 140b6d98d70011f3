"""`flowless dataset summary`: text and JSON reports, exit code 2 on bad annotations."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from flowless.cli import main


@pytest.fixture
def ucf(tiny_ucf, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(tiny_ucf, root)
    (root / "MoveLeft/v_MoveLeft_g01_c01.mp4").unlink()  # one missing training video
    return root


def test_summary_json_reads_back(ucf, capsys):
    assert main(["dataset", "summary", str(ucf), "--format", "ucf101", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {"classes": 2, "splits": {
        "train": {"videos": 6, "missing": ["MoveLeft/v_MoveLeft_g01_c01.mp4"]},
        "test": {"videos": 4, "missing": []}}}
    assert out.count("\n") == 1  # exactly one JSON object


def test_summary_text_report(ucf, capsys):
    assert main(["dataset", "summary", str(ucf), "-f", "ucf101", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "classes: 2" in out
    assert [line.split() for line in out.splitlines() if line.startswith(("train", "test"))] == [
        ["train", "6", "1"], ["test", "4", "0"]]
    assert "  MoveLeft/v_MoveLeft_g01_c01.mp4" in out.splitlines()


def test_annotations_elsewhere(ucf, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        shutil.move(ucf / name, lists / name)
    args = ["dataset", "summary", str(ucf), "--format", "ucf101", "--annotations", str(lists)]
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["videos"] == 4


@pytest.mark.parametrize("content, message", [
    ("MoveLeft/v_MoveLeft_g01_c01.mp4 7\n", "trainlist01.txt:1: label 7 is not in classInd.txt"),
    ("MoveLeft/v_MoveLeft_g01_c01.mp4 1\nbroken line here\n",
     "trainlist01.txt:2: expected '<path> <label>', got 'broken line here'"),
    ("../../etc/passwd 1\n", "trainlist01.txt:1: path '../../etc/passwd' escapes the dataset root"),
])
def test_bad_annotations_exit_2_with_one_line(ucf, capsys, content, message):
    (ucf / "trainlist01.txt").write_text(content)
    assert main(["dataset", "summary", str(ucf), "--format", "ucf101", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("flowless dataset: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_wrong_format_choice_is_a_usage_error(ucf, capsys):
    with pytest.raises(SystemExit) as info:
        main(["dataset", "summary", str(ucf), "--format", "ucf"])
    assert info.value.code == 2
    assert "invalid choice: 'ucf'" in capsys.readouterr().err


def test_frame_pattern_option(tmp_path, monkeypatch, capsys):
    from flowless.data.frames import PATTERN_ENV

    monkeypatch.setenv(PATTERN_ENV, "")  # restored after the test: the option sets it
    monkeypatch.delenv(PATTERN_ENV)
    (tmp_path / "walk/v1").mkdir(parents=True)
    (tmp_path / "walk/v1/shot-0001.png").write_bytes(b"")
    args = ["dataset", "summary", str(tmp_path), "-f", "folder", "--json"]
    assert main(args + ["--frame-pattern", "../x_%d.png"]) == 2
    assert "FLOWLESS_FRAME_PATTERN='../x_%d.png': expected one image name" in \
        capsys.readouterr().err
    assert main(args + ["--frame-pattern", "shot-%04d.png"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["all"]["videos"] == 1
    assert os.environ[PATTERN_ENV] == "shot-%04d.png"  # reaches the workers it starts
