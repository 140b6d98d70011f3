"""Attention-fusion training on frozen streams: checkpoint layout and logged stream weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint, save_checkpoint
from flowless.cli import main
from flowless.config import DataConfig, FusionConfig, load_config
from flowless.data.annotations import load_index
from flowless.data.clips import ClipDataset
from flowless.engine import read_metrics, train, train_fusion
from flowless.errors import ConfigError
from flowless.models import fusion_from_checkpoint, model_from_checkpoint


@pytest.fixture(scope="module")
def rgb_stream(updown, tmp_path_factory) -> Path:
    root, flow = updown
    out = tmp_path_factory.mktemp("rgb") / "rgb"
    train(load_config(None, base_overrides(root, flow, out, epochs=3)), quiet=True)
    return out / "best.pt"


def video_logits(ckpt: Path, root: Path, flow: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent computation: a stream's clip logits averaged per test video, and labels."""
    net = model_from_checkpoint(load_checkpoint(ckpt))
    kind = load_checkpoint(ckpt)["input"]
    records = load_index(root, "ucf101").split("test")
    ds = ClipDataset(records, stream=kind, flow_root=flow, clip_len=8, size=32, mode="test")
    sums = torch.zeros(len(records), 2)
    counts = torch.zeros(len(records))
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            sums[item["video"]] += net(item["clip"][None])[0]
            counts[item["video"]] += 1
    return sums / counts[:, None], torch.tensor([r.label for r in records])


def test_train_fusion_logs_weights_and_saves_a_fusion_checkpoint(updown, flow_teacher,
                                                                 rgb_stream, tmp_path):
    root, flow = updown
    cfg = FusionConfig(streams=[str(rgb_stream), str(flow_teacher)], epochs=4, batch_size=4,
                       train_views=2, out=str(tmp_path / "fusion"),
                       data=DataConfig(root=str(root), flow_root=str(flow)))
    run = train_fusion(cfg, quiet=True)
    last = load_checkpoint(run / "last.pt")
    assert last["kind"] == "fusion" and last["model_config"] == {"num_classes": 2, "num_streams": 2}
    assert last["streams"] == [str(rgb_stream.resolve()), str(flow_teacher.resolve())]
    assert [os.path.normpath(run / p) for p in last["streams_relative"]] == last["streams"]
    assert last["inputs"] == ["rgb", "flow"] and last["stream_names"] == ["rgb", "flow"]
    assert last["classes"] == ["MoveUp", "MoveDown"] and last["data"]["clip_len"] == 8

    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert all(len(r["weights"]) == 2 and all(0 < w < 1 for w in r["weights"]) for r in records)
    # 8 training videos x 2 views of cached logits per epoch
    assert all(r["train_loss"] > 0 for r in records)

    rgb, labels = video_logits(rgb_stream, root, flow)
    flo, _ = video_logits(flow_teacher, root, flow)
    fusion = fusion_from_checkpoint(run / "last.pt")
    with torch.no_grad():
        scores, weights = fusion.forward_with_weights([rgb, flo])
    assert records[-1]["weights"] == pytest.approx(weights.mean(0).tolist(), abs=1e-5)
    acc = float((scores.argmax(1) == labels).float().mean())
    assert records[-1]["val_video_acc"] == pytest.approx(acc)
    best = load_checkpoint(run / "best.pt")
    assert best["metrics"]["val_video_acc"] == max(r["val_video_acc"] for r in records)


def test_train_fusion_cli_prints_weights(updown, flow_teacher, rgb_stream, tmp_path, capsys):
    root, flow = updown
    code = main(["train-fusion", str(rgb_stream), str(flow_teacher), "--dataset", str(root),
                 "--format", "ucf101", "--flow-root", str(flow), "--epochs", "2",
                 "--out", str(tmp_path / "f"), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "stream weights" in out and str(tmp_path / "f" / "best.pt") in out


def test_streams_with_different_clips_are_refused(updown, flow_teacher, rgb_stream, tmp_path,
                                                  capsys):
    root, flow = updown
    ckpt = load_checkpoint(rgb_stream)
    ckpt["data"] = dict(ckpt["data"], clip_len=16)
    other = save_checkpoint(tmp_path / "rgb16.pt", ckpt)
    cfg = FusionConfig(streams=[str(other), str(flow_teacher)], epochs=1,
                       out=str(tmp_path / "f"), data=DataConfig(root=str(root), flow_root=str(flow)))
    with pytest.raises(ConfigError, match="clip settings clip_len differ"):
        train_fusion(cfg, quiet=True)
    code = main(["train-fusion", str(rgb_stream), "--dataset", str(root), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err == "flowless train-fusion: error: streams: fusion needs at least two stream checkpoints\n"
