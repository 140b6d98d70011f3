"""A run's logged figures and its checkpoint's settings agree with what evaluation and
prediction later do: the same clips (one clip plan) and the same flow backend."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint
from flowless.config import load_config
from flowless.data.annotations import load_index
from flowless.engine import read_metrics, train
from flowless.errors import ConfigError, FlowError
from flowless.evaluate import evaluate
from flowless.models import model_from_checkpoint
from flowless.predict import predict


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("stream", ["rgb", "flow"])
def test_logged_video_accuracy_equals_flowless_evaluate(updown, tmp_path, stream):
    root, flow = updown
    out = tmp_path / stream
    train(load_config(None, base_overrides(root, flow, out, stream=stream, epochs=2)),
          quiet=True)
    logged = read_metrics(out)[-1]["val_video_acc"]
    summary = evaluate([out / "last.pt"], root, "ucf101", out=tmp_path / "eval",
                       flow_root=flow if stream == "flow" else None, quiet=True)
    assert summary["evaluated"] == 4
    assert summary["top1"] == pytest.approx(logged, abs=1e-12)

    # Independent reference: every clip of the MARS protocol, cut by hand from the frames
    # (non-overlapping starts, short-side centre square), through the network, averaged.
    from flowless.data.transforms import square_crop, transform_clip
    from flowless.data.video import read_video
    from flowless.flow import flow_path, load_flow_u8

    net = model_from_checkpoint(load_checkpoint(out / "last.pt")).eval()
    lines = {json.loads(x)["key"]: json.loads(x)
             for x in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()}
    for record in load_index(root, "ucf101").split("test"):
        if stream == "rgb":
            frames = read_video(record.path)
        else:
            frames = load_flow_u8(flow_path(flow, record.key)).transpose(0, 2, 3, 1)
        starts = range(0, len(frames) - 8 + 1, 8)
        crop = square_crop(frames.shape[1], frames.shape[2])
        clips = torch.stack([transform_clip(frames[s:s + 8], stream, crop, 32) for s in starts])
        with torch.no_grad():
            mean = net(clips).double().mean(0).numpy()
        probs = {e["class"]: e["prob"] for e in lines[record.key]["top5"]}
        expected = _softmax(mean)
        got = np.array([probs[c] for c in ("MoveUp", "MoveDown")])
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_stream_trained_on_dis_flow_predicts_with_dis(updown, tmp_path, make_video):
    from flowless.flow import extract_flow

    root, _ = updown
    index = load_index(root, "ucf101")
    dis = tmp_path / "dis"
    extract_flow([(r.key, r.path) for r in index.records], dis, backend="dis", short_side=None,
                 workers=1, quiet=True)
    out = tmp_path / "flow"
    train(load_config(None, base_overrides(root, dis, out, stream="flow", epochs=1)), quiet=True)
    assert load_checkpoint(out / "best.pt")["data"]["flow_backend"] == "dis"

    video = index.split("test")[0]
    result = predict([out / "best.pt"], video.path)
    assert result["streams"][0]["flow"] == "dis"
    assert result["streams"][0]["data"]["flow_backend"] == "dis"
    # Flow computed on the fly gives the logits of the stored DIS flow, not of TV-L1's.
    stored = evaluate([out / "best.pt"], root, "ucf101", flow_root=dis, out=tmp_path / "ev",
                      quiet=True)
    line = next(json.loads(x) for x in (tmp_path / "ev" / "predictions.jsonl").read_text()
                .splitlines() if json.loads(x)["key"] == video.key)
    assert stored["evaluated"] == 4
    got = {e["class"]: e["prob"] for e in result["top"]}
    want = {e["class"]: e["prob"] for e in line["top5"]}
    assert got == pytest.approx(want, abs=1e-4)


def test_unreadable_flow_manifest_stops_training_with_its_name(updown, tmp_path):
    root, flow = updown
    broken = tmp_path / "flow"
    shutil.copytree(flow, broken)
    (broken / "flowless-flow.json").write_text("{not json")
    with pytest.raises(FlowError, match="flowless-flow.json: unreadable store manifest"):
        train(load_config(None, base_overrides(root, broken, tmp_path / "run", stream="flow",
                                               epochs=1)), quiet=True)


def test_unknown_training_flow_backend_is_asked_for_not_assumed(updown, tmp_path):
    root, flow = updown
    bare = tmp_path / "flow"
    shutil.copytree(flow, bare)
    (bare / "flowless-flow.json").unlink()  # e.g. flow imported from JPEGs of unknown origin
    out = tmp_path / "run"
    train(load_config(None, base_overrides(root, bare, out, stream="flow", epochs=1)),
          quiet=True)
    assert load_checkpoint(out / "best.pt")["data"]["flow_backend"] is None
    video = load_index(root, "ucf101").split("test")[0].path
    with pytest.raises(ConfigError, match="does not record which flow backend.*--flow-backend"):
        predict([out / "best.pt"], video)
    result = predict([out / "best.pt"], video, flow_backend="farneback")
    assert result["streams"][0]["flow"] == "farneback"
