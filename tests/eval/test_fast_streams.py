"""The fast inference path of PyTorch streams: same logits as the network as trained, the
trained network left for training code, and one switch (fast="off" / --no-fast) to skip it."""

import json

import numpy as np
import pytest
import torch

from flowless.cli import main
from flowless.errors import ConfigError
from flowless.eval import load_streams
from flowless.eval.streams import load_stream
from flowless.export import random_clips


def plain_logits(stream, clips) -> np.ndarray:
    """The unmodified network, run directly: the independent reference."""
    with torch.no_grad():
        return stream.module(clips).numpy()


@pytest.mark.parametrize("fast", ["torch", "onnxruntime"])
@pytest.mark.parametrize("kind", ["rgb", "flow"])
def test_fast_logits_equal_the_network_as_trained(ckpts, kind, fast):
    stream = load_stream(ckpts[kind], fast=fast)
    for batch in (3, 1):  # the onnxruntime copy is traced once, its batch axis is dynamic
        x = random_clips(stream, batch, seed=batch)
        want = plain_logits(stream, x)
        got = stream.logits(x)
        assert np.abs(want).max() > 1  # logits of real scale: the tolerance is relative
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_the_trained_module_is_not_rewritten_for_training_callers(ckpts):
    stream = load_stream(ckpts["rgb"])
    assert stream.fast == "torch"
    before = {k: v.clone() for k, v in stream.module.state_dict().items()}
    stream.logits(random_clips(stream, 2))
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in stream.module.modules())
    assert all(torch.equal(before[k], v) for k, v in stream.module.state_dict().items())
    taps = stream.module.forward_features(random_clips(stream, 1))  # the teacher's taps
    assert set(taps) >= {"stem", "layer4", "pool", "logits"}


def test_no_fast_runs_the_network_itself(ckpts):
    (rgb, flow), _ = load_streams([ckpts["rgb"], ckpts["flow"]], fast="off")
    x = random_clips(rgb, 2)
    assert rgb.runner(x) is rgb.module and rgb.describe()["fast"] == "off"
    np.testing.assert_array_equal(rgb.logits(x), plain_logits(rgb, x))
    rgb.fast = "torch"  # the switch works both ways; a prepared copy is dropped on changes
    assert rgb.runner(x) is not rgb.module
    rgb.fast = "off"
    assert rgb.runner(x) is rgb.module
    with pytest.raises(ConfigError, match="fast='fastest'"):
        load_streams([ckpts["rgb"]], fast="fastest")


def test_predict_gives_the_same_answer_with_and_without_the_fast_path(make_video, ckpts,
                                                                      capsys):
    video = make_video("f.mp4", num_frames=17)
    results = {}
    for flag in ("--no-fast", "--fast=torch", "--fast=onnxruntime"):
        assert main(["predict", str(ckpts["rgb"]), str(ckpts["flow"]), str(video), "--json",
                     flag]) == 0
        results[flag] = json.loads(capsys.readouterr().out)
    off = results["--no-fast"]
    assert [s["fast"] for s in off["streams"]] == ["off", "off"]
    for flag in ("--fast=torch", "--fast=onnxruntime"):
        got = results[flag]
        assert [t["index"] for t in got["top"]] == [t["index"] for t in off["top"]]
        for a, b in zip(got["top"], off["top"]):
            assert a["prob"] == pytest.approx(b["prob"], abs=1e-4)


def test_evaluate_and_benchmark_take_the_switch(tmp_path, tiny_ucf, ckpts, capsys):
    js = tmp_path / "m.json"
    assert main(["evaluate", str(ckpts["rgb"]), "--dataset", str(tiny_ucf), "--format",
                 "ucf101", "--out", str(tmp_path / "e"), "--json", str(js), "--no-fast"]) == 0
    assert json.loads(js.read_text())["streams"][0]["fast"] == "off"
    assert main(["benchmark", "--quick", "--backends", "farneback", "--threads", "1",
                 "--frames", "9", "--no-fast"]) == 0
    assert "fast path off" in capsys.readouterr().out
