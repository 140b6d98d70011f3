"""A plain class folder trains: a hold-out written to the run folder, the same in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowless.cli import main
from flowless.config import DataConfig
from flowless.data.annotations import load_index
from flowless.engine.data import load_records
from flowless.errors import ConfigError


@pytest.fixture
def class_folder(tmp_path) -> Path:
    """ROOT/<class>/<video> without train/ or test/: 6 + 4 frame folders and one video."""
    root = tmp_path / "my videos"
    for cls, n in (("jump", 6), ("run", 4)):
        for i in range(n):
            folder = root / cls / f"clip {i}"
            folder.mkdir(parents=True)
            (folder / "frame000001.jpg").write_bytes(b"")
    (root / "run/extra.mp4").write_bytes(b"")
    return root


def test_a_plain_class_folder_holds_out_validation_and_writes_it(class_folder, tmp_path, capsys):
    lines: list[str] = []
    data = DataConfig(format="folder", root=str(class_folder))
    classes, train, val, skipped = load_records(data, tmp_path / "run", lines.append)
    assert classes == ["jump", "run"] and skipped == []
    assert (len(train), len(val)) == (9, 2)  # 20 % of each class: 1 of 6 and 1 of 5
    assert sorted(r.class_name for r in val) == ["jump", "run"]
    assert len(lines) == 1 and lines[0].startswith(
        f"validation: held out {len(val)} of 11 videos (data.val_fraction 0.2 of each class")
    assert lines[0].endswith(f"split written to {tmp_path / 'run/split'}")

    # the written split reads back as a list-format dataset: same videos, labels, classes
    back = load_index(class_folder, "list", annotations=tmp_path / "run/split")
    assert back.classes == classes
    assert [(r.key, r.label) for r in back.split("train")] == [(r.key, r.label) for r in train]
    assert [(r.key, r.label) for r in back.split("validation")] == [(r.key, r.label) for r in val]

    # dataset summary shows the same split
    assert main(["dataset", "summary", str(class_folder), "-f", "folder", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["holdout"] == {
        "val_fraction": 0.2, "train": len(train), "validation": len(val)}
    assert main(["dataset", "summary", str(class_folder), "-f", "folder"]) == 0
    assert f"hold-out (no train/test split): train {len(train)}, validation {len(val)}" \
        in capsys.readouterr().out

    # the same again (deterministic); no validation keeps every video for training
    assert load_records(data)[2] == val
    none = DataConfig(format="folder", root=str(class_folder), val_split="none")
    assert len(load_records(none)[1]) == 11


def test_the_fraction_is_a_config_key(class_folder, capsys):
    data = DataConfig(format="folder", root=str(class_folder), val_fraction=0.5)
    _, train, val, _ = load_records(data)
    assert (len(train), len(val)) == (5, 6)  # 3 of 6 and 3 of 5 (rounded half up)
    assert main(["dataset", "summary", str(class_folder), "-f", "folder", "--val-fraction",
                 "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["holdout"]["validation"] == 6


def test_no_training_split_names_the_splits_found(tmp_path):
    (tmp_path / "testlist01.txt").write_text("a/b.avi\n")
    (tmp_path / "classInd.txt").write_text("1 a\n")
    (tmp_path / "trainlist01.txt").write_text("")
    with pytest.raises(ConfigError, match=r"has no training videos \(splits found: test\)"):
        load_records(DataConfig(format="ucf101", root=str(tmp_path)))
