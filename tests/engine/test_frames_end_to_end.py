"""The README's "Using it on your data" path on JPEG frame folders in a plain class folder:
summary, flow from frames, flow teacher, distilled student, evaluate, predict."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from trainkit import UPDOWN

from flowless.cli import main
from flowless.data.synth_render import moving_square_frames

TINY = ["data.clip_len=8", "data.size=32", "model.arch=resnet10", "model.width=0.25",
        "epochs=1", "batch_size=4", "optim.name=adamw", "optim.lr=0.002",
        "optim.schedule=none", "tensorboard=false", "threads=1"]


def frame_folders(root: Path) -> Path:
    """ROOT/<class>/<video>/image_00001.jpg (MARS names), 4 videos per class, 10 frames."""
    for ci, (name, dx, dy) in enumerate(UPDOWN):
        for v in range(4):
            folder = root / name / f"v_{name}_g{v:02d}"
            folder.mkdir(parents=True)
            for t, img in enumerate(moving_square_frames(10, 32, 40, dx, dy, seed=10 * ci + v), 1):
                cv2.imwrite(str(folder / f"image_{t:05d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def train(*args: str) -> list[str]:
    argv = ["train", "--quiet", *args]
    for item in TINY:
        argv += ["--set", item]
    return argv


def test_frame_folders_from_summary_to_predict(tmp_path, capsys):
    root = frame_folders(tmp_path / "frames")
    data = ["--dataset", str(root), "--format", "folder"]
    assert main(["dataset", "summary", str(root), "-f", "folder", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["all"] == {"videos": 8, "missing": []}
    assert summary["holdout"] == {"val_fraction": 0.2, "train": 6, "validation": 2}

    flow = tmp_path / "flow"
    assert main(["flow", str(root), str(flow), "--format", "folder", "--backend", "farneback",
                 "--short-side", "0", "--workers", "1", "-q"]) == 0
    assert "8 done" in capsys.readouterr().out

    teacher = tmp_path / "teacher"
    assert main(train(*data, "--flow-root", str(flow), "--stream", "flow",
                      "--out", str(teacher))) == 0
    student = tmp_path / "ds"
    assert main(train(*data, "--flow-root", str(flow), "--teacher", str(teacher / "best.pt"),
                      "--distill", "relation", "--out", str(student))) == 0
    capsys.readouterr()

    out = tmp_path / "eval"
    assert main(["evaluate", str(student / "best.pt"), *data, "--out", str(out), "-q"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"] == 2 and metrics["skipped"] == []  # the held-out videos
    capsys.readouterr()

    video = root / "MoveUp" / "v_MoveUp_g00"
    assert main(["predict", str(student / "best.pt"), str(teacher / "best.pt"), str(video),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["video"] == str(video) and result["frames"] == 10
    assert {t["class"] for t in result["top"]} == {"MoveUp", "MoveDown"}
