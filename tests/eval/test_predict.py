"""`flowless predict`: top-k output, multi-stream sets, one-line errors."""

import json
import re

import numpy as np
import pytest
from evalkit import CLASSES

from flowless.checkpoint import load_checkpoint, save_checkpoint
from flowless.cli import main
from flowless.eval import load_streams, score_video, softmax

LINE = re.compile(r"^\s+(\d+)\. (\S+)\s+([\d.]+)%$")


def run(capsys, *args):
    code = main(["predict", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_prints_a_valid_top_k(make_video, ckpts, capsys):
    video = make_video("walk.mp4", num_frames=20)
    code, out, err = run(capsys, ckpts["rgb"], video, "--topk", "5")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"{video}: 20 frames; clips: rgb 2")
    ranked = [LINE.match(ln) for ln in lines[1:] if LINE.match(ln)]
    assert [int(m.group(1)) for m in ranked] == [1, 2]  # top-5 clipped to the 2 classes
    names = [m.group(2) for m in ranked]
    probs = [float(m.group(3)) / 100 for m in ranked]
    assert sorted(names) == sorted(CLASSES)
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-3
    assert re.search(r"time: decode [\d.]+ s \| transform [\d.]+ s \| network [\d.]+ s", out)


def test_json_output_matches_an_independent_computation(make_video, ckpts, capsys):
    video = make_video("j.mp4", num_frames=17)
    code, out, _ = run(capsys, ckpts["rgb"], video, "--json", "--topk", "1")
    assert code == 0
    result = json.loads(out)
    streams, _ = load_streams([ckpts["rgb"]])
    probs = softmax(score_video(video, streams).logits[0])
    assert len(result["top"]) == 1
    top = result["top"][0]
    assert top["index"] == int(np.argmax(probs)) and top["class"] == CLASSES[top["index"]]
    assert top["prob"] == pytest.approx(probs.max(), abs=1e-6)
    assert set(result["seconds"]) >= {"decode", "flow", "network", "total"}


def test_rgb_flow_and_fusion_checkpoint_set_computes_flow(make_video, ckpts, capsys):
    video = make_video("two.mp4", num_frames=18)
    code, out, _ = run(capsys, ckpts["rgb"], ckpts["flow"], ckpts["fusion"], video, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["fusion"] == "attention:fusion.pt"
    assert [s["name"] for s in result["streams"]] == ["rgb", "flow"]
    assert result["streams"][1]["clips"] == 2 and result["seconds"]["flow"] > 0
    probs = [t["prob"] for t in result["top"]]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    # The fusion checkpoint alone brings its streams; --fusion names it too: same answer.
    code, out2, _ = run(capsys, ckpts["fusion"], video, "--json")
    assert code == 0 and json.loads(out2)["top"] == result["top"]
    code, out3, _ = run(capsys, "--fusion", ckpts["fusion"], ckpts["rgb"], ckpts["flow"], video,
                        "--json")
    assert code == 0 and json.loads(out3)["top"] == result["top"]
    # Streams given in another order are put back in the fusion's order (rgb, flow).
    code, out4, _ = run(capsys, ckpts["flow"], ckpts["rgb"], ckpts["fusion"], video, "--json")
    assert code == 0 and json.loads(out4)["top"] == result["top"]
    code, _, err = run(capsys, ckpts["rgb"], ckpts["rgb2"], ckpts["fusion"], video)
    assert code == 2 and "trained on rgb+flow streams, rgb+rgb given" in err


def test_corrupt_video_is_a_one_line_error(tmp_path, ckpts, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    code, out, err = run(capsys, ckpts["rgb"], bad)
    assert code == 2 and out == ""
    assert err.startswith("flowless predict: error: ") and err.count("\n") == 1
    assert "broken.mp4" in err and "Traceback" not in err


def test_missing_video_is_a_one_line_error(tmp_path, ckpts, capsys):
    code, _, err = run(capsys, ckpts["rgb"], tmp_path / "nope.mp4")
    assert code == 2 and "nope.mp4: file not found" in err and err.count("\n") == 1


@pytest.mark.parametrize("change, expect", [
    ({"arch": "resnet18"}, "missing"),
    ({"width": 0.25}, "shape"),
])
def test_checkpoint_of_another_architecture_is_a_one_line_error(tmp_path, make_video, ckpts,
                                                                capsys, change, expect):
    ckpt = load_checkpoint(ckpts["rgb"])
    ckpt["model_config"] = {**ckpt["model_config"], **change}
    wrong = save_checkpoint(tmp_path / "wrong.pt", ckpt)
    code, out, err = run(capsys, wrong, make_video("v.mp4"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "wrong.pt" in err and expect in err


def test_flow_checkpoint_claiming_rgb_input_is_rejected(tmp_path, make_video, ckpts, capsys):
    ckpt = load_checkpoint(ckpts["flow"])
    ckpt["input"] = "rgb"
    wrong = save_checkpoint(tmp_path / "mislabelled.pt", ckpt)
    code, _, err = run(capsys, wrong, make_video("v.mp4"))
    assert code == 2 and "needs 3 input channels" in err


def test_video_without_checkpoint_is_a_usage_error(make_video, capsys):
    code, _, err = run(capsys, make_video("v.mp4"))
    assert code == 2 and "give the checkpoint(s) before the video" in err


def test_fusion_checkpoint_of_a_moved_run_finds_its_streams(tmp_path, make_video, ckpts, capsys):
    import os

    run_dir = tmp_path / "moved" / "fusion-run"
    (tmp_path / "moved" / "rgb-run").mkdir(parents=True)
    run_dir.mkdir()
    for name in ("rgb", "flow"):
        (tmp_path / "moved" / f"{name}.pt").write_bytes(ckpts[name].read_bytes())
    fusion = load_checkpoint(ckpts["fusion"])
    fusion["streams"] = ["/gone/rgb-run/best.pt", "/gone/flow-run/best.pt"]
    fusion["streams_relative"] = [os.path.join("..", "rgb.pt"), os.path.join("..", "flow.pt")]
    save_checkpoint(run_dir / "best.pt", fusion)
    code, out, err = run(capsys, run_dir / "best.pt", make_video("m.mp4"), "--json")
    assert code == 0, err
    assert [s["checkpoint"] for s in json.loads(out)["streams"]] == [
        str(run_dir / ".." / "rgb.pt"), str(run_dir / ".." / "flow.pt")]
    fusion["streams_relative"] = []
    save_checkpoint(run_dir / "best.pt", fusion)
    code, _, err = run(capsys, run_dir / "best.pt", make_video("m2.mp4"))
    assert code == 2 and "/gone/rgb-run/best.pt not found" in err
