"""Flow from frame folders: the same fields as from the frames themselves; bad folders listed."""

from __future__ import annotations

import json

import cv2
import numpy as np

from flowless.cli import main
from flowless.data.synth_render import moving_square_frames
from flowless.flow import flow_path, load_flow_u8, quantize
from flowless.flow.backends import get_backend, to_gray

FRAMES = moving_square_frames(5, 32, 40, 2, 1, seed=5)


def write_frames(folder, frames=FRAMES, name="img_{:05d}.png"):
    folder.mkdir(parents=True, exist_ok=True)
    for t, img in enumerate(frames, 1):
        cv2.imwrite(str(folder / name.format(t)), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def test_flow_of_a_frame_folder_equals_flow_of_its_frames(tmp_path, capsys):
    root = tmp_path / "frames"
    write_frames(root / "walk/good")
    write_frames(root / "walk/gap")
    (root / "walk/gap/img_00003.png").unlink()
    out = tmp_path / "flow"
    code = main(["flow", str(root), str(out), "--backend", "farneback", "--short-side", "0",
                 "--workers", "1", "-q"])
    assert code == 2  # one bad folder: listed, the other done
    captured = capsys.readouterr()
    assert "1 done" in captured.out and "failed walk/gap:" in captured.err
    report = json.loads((out / "flowless-flow-report.json").read_text())
    assert report["failures"][0]["video"] == str(root / "walk/gap")
    assert "a gap in the frame numbering: no image numbered 3" in report["failures"][0]["error"]

    flow = get_backend("farneback")
    gray = [to_gray(f) for f in FRAMES]
    expected = np.stack([quantize(flow(a, b)).transpose(2, 0, 1) for a, b in zip(gray, gray[1:])])
    assert np.array_equal(load_flow_u8(flow_path(out, "walk/good")), expected)
