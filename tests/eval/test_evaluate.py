"""`flowless evaluate` end to end on the tiny UCF101-layout dataset."""

import json
import shutil

import numpy as np
import pytest
import torch
from evalkit import save_stream

from flowless.cli import main
from flowless.data.annotations import load_index
from flowless.data.clips import video_clips
from flowless.data.video import read_video
from flowless.eval import load_streams, score_video, softmax
from flowless.eval.metrics import confusion_matrix, mean_class_accuracy
from flowless.eval.report import read_predictions
from flowless.evaluate import evaluate
from flowless.flow import flow_path, quantize, save_flow_u8, video_flow

RULES = ("softmax-mean", "logit-mean", "logprob-sum")


def run_cli(capsys, *args):
    code = main(["evaluate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_outputs_are_written_and_json_matches_the_predictions_file(tmp_path, tiny_ucf, ckpts,
                                                                   capsys):
    out, js = tmp_path / "out", tmp_path / "m.json"
    code, stdout, _ = run_cli(capsys, ckpts["rgb"], "--dataset", tiny_ucf, "--format", "ucf101",
                              "--out", out, "--json", js)
    assert code == 0
    summary = json.loads(js.read_text())
    assert summary == json.loads((out / "metrics.json").read_text())
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preds = read_predictions(out / "predictions.jsonl")
    keys = [r.key for r in load_index(tiny_ucf, "ucf101").split("test")]
    assert [p["key"] for p in preds] == keys and summary["evaluated"] == 4
    # Recompute every figure from the per-video predictions file.
    labels = np.array([p["label"] for p in preds])
    predicted = np.array([p["predicted"] for p in preds])
    top5 = [p["label"] in [t["index"] for t in p["top5"]] for p in preds]
    cm = confusion_matrix(labels, predicted, 2)
    assert summary["top1"] == pytest.approx(float(np.mean(labels == predicted)))
    assert summary["top5"] == pytest.approx(float(np.mean(top5))) == 1.0  # K = 2 <= 5
    assert summary["mean_class_acc"] == pytest.approx(mean_class_accuracy(cm))
    per_class = (out / "per_class.csv").read_text().splitlines()
    assert per_class[0] == "index,class,videos,rgb_acc"
    for i, row in enumerate(per_class[1:]):
        acc = float(row.split(",")[3])
        assert acc == pytest.approx(cm[i, i] / cm[i].sum())
        assert summary["per_class"][i]["accuracy"] == pytest.approx(acc)
    assert [int(v) for v in (out / "confusion.csv").read_text().splitlines()[1].split(",")[1:]] \
        == list(cm[0])
    assert "top-1" in stdout and "4 videos evaluated, 0 skipped" in stdout
    assert not (out / ".partial.jsonl").exists()


def test_probabilities_match_an_independent_computation(tmp_path, tiny_ucf, ckpts):
    summary = evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path)
    preds = read_predictions(tmp_path / "predictions.jsonl")
    (stream,), _ = load_streams([ckpts["rgb"]])
    record = load_index(tiny_ucf, "ucf101").split("test")[0]
    clips = video_clips(read_video(record.path, 32), "rgb", 8, 32, 1, "mars")
    with torch.no_grad():
        probs = softmax(stream.module(clips).double().mean(0).numpy())
    for entry in preds[0]["top5"]:
        assert entry["prob"] == pytest.approx(probs[entry["index"]], abs=2e-6)
    assert summary["streams"][0]["clips"] == 4  # 4 videos of 10 frames: one 8-frame clip each


@pytest.mark.parametrize("rule", RULES)
def test_fusing_a_stream_with_itself_equals_the_stream(tmp_path, tiny_ucf, ckpts, rule):
    single = evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path / "one")
    double = evaluate([ckpts["rgb"], ckpts["rgb"]], tiny_ucf, "ucf101", fusion=rule,
                      out=tmp_path / "two")
    assert [s["name"] for s in double["streams"]] == ["rgb", "rgb-2"]
    assert double["result"] == rule
    for key in ("top1", "top5", "mean_class_acc"):
        assert double[key] == single[key] == double["fusion_rules"][rule][key]
    one = read_predictions(tmp_path / "one" / "predictions.jsonl")
    two = read_predictions(tmp_path / "two" / "predictions.jsonl")
    for a, b in zip(one, two):
        assert a["predicted"] == b["predicted"]
        for x, y in zip(a["top5"], b["top5"]):
            assert x["index"] == y["index"] and x["prob"] == pytest.approx(y["prob"], abs=2e-6)


def test_attention_fusion_checkpoint_alone_or_as_fusion_rule(tmp_path, tiny_ucf, ckpts):
    from flowless.models import fusion_from_checkpoint

    alone = evaluate([ckpts["fusion"]], tiny_ucf, "ucf101", out=tmp_path / "a")
    given = evaluate([ckpts["rgb"], ckpts["flow"]], tiny_ucf, "ucf101",
                     fusion=str(ckpts["fusion"]), out=tmp_path / "b")
    assert alone["result"] == given["result"] == "attention:fusion.pt"
    assert [s["name"] for s in alone["streams"]] == ["rgb", "flow"]
    assert alone["top1"] == given["top1"] and set(alone["attention_weights"]) == {"rgb", "flow"}
    assert set(alone["fusion_rules"]) == {*RULES, "attention:fusion.pt"}
    # Independent check: the fusion module applied to each stream's video-level logits.
    module = fusion_from_checkpoint(str(ckpts["fusion"]))
    streams, _ = load_streams([ckpts["rgb"], ckpts["flow"]])
    preds = read_predictions(tmp_path / "a" / "predictions.jsonl")
    for record, pred in zip(load_index(tiny_ucf, "ucf101").split("test"), preds):
        z = score_video(record.path, streams).logits
        with torch.no_grad():
            fused = module([torch.tensor(v[None], dtype=torch.float32) for v in z])
        probs = softmax(fused.double().numpy())[0]
        assert pred["predicted"] == int(np.argmax(probs))
        for entry in pred["top5"]:
            assert entry["prob"] == pytest.approx(probs[entry["index"]], abs=2e-6)


def test_bad_video_is_skipped_and_reported(tmp_path, tiny_ucf, ckpts, capsys):
    root = tmp_path / "ucf"
    shutil.copytree(tiny_ucf, root)
    bad = load_index(root, "ucf101").split("test")[1]
    bad.path.write_bytes(b"this is not a video")
    code, stdout, _ = run_cli(capsys, ckpts["rgb"], "--dataset", root, "--format", "ucf101",
                              "--out", tmp_path / "out", "--json", tmp_path / "m.json")
    assert code == 0
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["evaluated"] == 3 and summary["videos"] == 4
    assert [s["key"] for s in summary["skipped"]] == [bad.key]
    assert "not a readable video" in summary["skipped"][0]["error"]
    assert f"skipped {bad.key}:" in stdout and "1 skipped" in stdout
    keys = [p["key"] for p in read_predictions(tmp_path / "out" / "predictions.jsonl")]
    assert len(keys) == 3 and bad.key not in keys


def test_video_missing_from_the_flow_store_is_skipped(tmp_path, tiny_ucf, ckpts):
    records = load_index(tiny_ucf, "ucf101").split("test")
    store = tmp_path / "store"
    for r in records[1:]:
        save_flow_u8(flow_path(store, r.key),
                     quantize(video_flow(read_video(r.path), "farneback", short_side=32)))
    summary = evaluate([ckpts["flow"]], tiny_ucf, "ucf101", flow_root=store, out=tmp_path / "o")
    assert summary["evaluated"] == 3
    assert summary["skipped"][0]["key"] == records[0].key
    assert "flow file not found" in summary["skipped"][0]["error"]


def test_interrupted_evaluation_resumes_where_it_stopped(tmp_path, tiny_ucf, ckpts, monkeypatch):
    from flowless.eval import runner

    reference = evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path / "ref")
    calls = []
    real = runner.score_video

    def flaky(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(runner, "score_video", flaky)
    with pytest.raises(KeyboardInterrupt):
        evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path / "run")
    assert (tmp_path / "run" / ".partial.jsonl").exists()
    calls.clear()
    resumed = evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path / "run")
    assert len(calls) == 2  # only the two videos not done before the interruption
    for key in ("top1", "top5", "mean_class_acc", "per_class", "evaluated"):
        assert resumed[key] == reference[key]
    assert (tmp_path / "run" / "predictions.jsonl").read_text() == \
        (tmp_path / "ref" / "predictions.jsonl").read_text()


def test_checkpoint_of_other_classes_is_a_one_line_error(tmp_path, tiny_ucf, capsys):
    ckpt = save_stream(tmp_path / "other.pt", classes=["Jump", "Run", "Swim"])
    code, _, err = run_cli(capsys, ckpt, "--dataset", tiny_ucf, "--format", "ucf101",
                           "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1
    assert "other.pt" in err and "'MoveLeft' is unknown to it" in err


def test_streams_with_different_classes_cannot_be_fused(tmp_path, ckpts, capsys):
    other = save_stream(tmp_path / "other.pt", classes=["A", "B"])
    code, _, err = run_cli(capsys, ckpts["rgb"], other, "--dataset", tmp_path, "--format",
                           "ucf101")
    assert code == 2 and "classes differ" in err and err.count("\n") == 1


def test_ten_by_three_protocol_and_default_output_folder(tiny_ucf, ckpts):
    summary = evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", protocol="10x3")
    out = ckpts["rgb"].parent / "eval-test-10x3"
    assert summary["outputs"]["metrics.json"] == str(out / "metrics.json")
    assert summary["streams"][0]["clips"] == 4 * 30  # 10 clips x 3 crops per video
    assert len(read_predictions(out / "predictions.jsonl")) == 4


def test_logits_cache_runs_each_network_once_and_changes_no_result(tmp_path, tiny_ucf, ckpts,
                                                                   monkeypatch):
    """Rows sharing streams share their logits; results equal an uncached evaluation."""
    from flowless.eval import runner

    flow_root = tmp_path / "no-store"  # flow on the fly
    plain = evaluate([ckpts["rgb"], ckpts["flow"]], tiny_ucf, "ucf101", fusion=ckpts["fusion"],
                     out=tmp_path / "plain")
    calls = []
    real = runner.score_video

    def counting(path, streams, **kwargs):
        calls.append([s.name for s in streams])
        return real(path, streams, **kwargs)

    monkeypatch.setattr(runner, "score_video", counting)
    cache = tmp_path / "cache"
    first = evaluate([ckpts["rgb"], ckpts["flow"]], tiny_ucf, "ucf101", fusion=ckpts["fusion"],
                     out=tmp_path / "a", cache_dir=cache)
    assert calls == [["rgb", "flow"]] * 4 and len(list(cache.glob("*.jsonl"))) == 2
    calls.clear()
    mean = evaluate([ckpts["rgb"], ckpts["flow"]], tiny_ucf, "ucf101", fusion="logit-mean",
                    out=tmp_path / "b", cache_dir=cache)
    assert calls == []  # both streams' logits came from the cache
    for key in ("top1", "top5", "fusion_rules", "streams"):
        assert first[key] == plain[key]
    assert mean["fusion_rules"]["logit-mean"] == plain["fusion_rules"]["logit-mean"]
    # a stream alone is not aligned with flow frames: its own entry, run once, then cached
    evaluate([ckpts["rgb"]], tiny_ucf, "ucf101", out=tmp_path / "c", cache_dir=cache)
    assert calls == [["rgb"]] * 4 and len(list(cache.glob("*.jsonl"))) == 3
    calls.clear()
    # another stream beside a cached one: only the missing stream runs
    evaluate([ckpts["rgb"], ckpts["rgb2"]], tiny_ucf, "ucf101", out=tmp_path / "d",
             cache_dir=cache)
    assert calls == [["ds"]] * 4
    assert not flow_root.exists()
