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


def test_weighted_fusion_is_fitted_on_out_of_fold_logits(updown, flow_teacher, rgb_stream,
                                                          tmp_path):
    from flowless.data.holdout import fold_split
    from flowless.engine.fusion import _fit_weighted
    from flowless.models import WeightedFusion

    root, flow = updown
    cfg = FusionConfig(streams=[str(rgb_stream), str(flow_teacher)], kind="weighted",
                       out=str(tmp_path / "fusion"), crossfit_dir=str(tmp_path / "folds"),
                       data=DataConfig(root=str(root), flow_root=str(flow)))
    run = train_fusion(cfg, quiet=True)
    last = load_checkpoint(run / "last.pt")
    assert last["fusion"] == "weighted" and last["fit_on"] == "crossfit"
    assert last["model_config"] == {"num_classes": 2, "num_streams": 2, "per_class": True}
    folds = sorted(p.name for p in (tmp_path / "folds").iterdir())
    assert len(folds) == 4 and all((tmp_path / "folds" / f / "done").exists() for f in folds)

    # independent: each fold copy's video logits of the fold it never saw, then the same fit
    train_recs = load_index(root, "ucf101").split("train")
    x = torch.zeros(len(train_recs), 2, 2)
    for k in range(2):
        rest, held = fold_split(train_recs, k, 2)
        assert {r.key for r in rest}.isdisjoint(r.key for r in held)
        for i, name in enumerate(("rgb", "flow")):
            (fold_run,) = (tmp_path / "folds").glob(f"{name}_*_fold{k}of2")
            saved = load_checkpoint(fold_run / "last.pt")
            assert saved["config"]["data"]["fold"] == f"{k}/2"
            net = model_from_checkpoint(saved)
            ds = ClipDataset(held, stream=saved["input"], flow_root=flow, clip_len=8, size=32,
                             mode="test")
            sums, counts = torch.zeros(len(held), 2), torch.zeros(len(held))
            with torch.no_grad():
                for j in range(len(ds)):
                    item = ds[j]
                    sums[item["video"]] += net(item["clip"][None])[0]
                    counts[item["video"]] += 1
            rows = [next(n for n, r in enumerate(train_recs) if r.key == h.key) for h in held]
            x[rows, i] = sums / counts[:, None]
    y = torch.tensor([r.label for r in train_recs])
    torch.manual_seed(0)
    mine = WeightedFusion(2, 2, per_class=True)
    _fit_weighted(mine, x, y, cfg.l2)
    got = fusion_from_checkpoint(run / "last.pt")
    assert torch.allclose(got.weights(), mine.weights(), atol=1e-3)  # L-BFGS on 1e-6 input noise
    assert torch.allclose(got.weights().sum(0), torch.ones(2))

    rgb, labels = video_logits(rgb_stream, root, flow)
    flo, _ = video_logits(flow_teacher, root, flow)
    with torch.no_grad():
        acc = float((got([rgb, flo]).argmax(1) == labels).float().mean())
    assert read_metrics(run)[-1]["val_video_acc"] == pytest.approx(acc)

    # a second fusion of the same streams reuses the fold copies
    stamps = {f: (tmp_path / "folds" / f / "last.pt").stat().st_mtime_ns for f in folds}
    cfg.out, cfg.per_class = str(tmp_path / "fusion2"), False
    train_fusion(cfg, quiet=True)
    assert stamps == {f: (tmp_path / "folds" / f / "last.pt").stat().st_mtime_ns for f in folds}


def test_fold_copies_of_plans_with_other_fold_counts_never_meet(tmp_path):
    """Fold 0 of 2 and fold 0 of 4 hold out different videos: reusing one copy for the
    other would predict videos it trained on."""
    from types import SimpleNamespace

    from flowless.engine.crossfit import fold_dir

    s = SimpleNamespace(name="rgb", source=str(tmp_path / "rgb.pt"))
    names = {fold_dir(tmp_path, s, k, n).name for n in (2, 3, 4) for k in range(n)}
    assert len(names) == 2 + 3 + 4
    other = SimpleNamespace(name="rgb", source=str(tmp_path / "b" / "rgb.pt"))
    assert fold_dir(tmp_path, other, 0, 2) != fold_dir(tmp_path, s, 0, 2)


def test_attention_can_be_fitted_on_crossfit_logits_and_says_so(updown, flow_teacher,
                                                                 rgb_stream, tmp_path):
    root, flow = updown
    cfg = FusionConfig(streams=[str(rgb_stream), str(flow_teacher)], epochs=2, fit_on="crossfit",
                       out=str(tmp_path / "fusion"), crossfit_dir=str(tmp_path / "folds"),
                       folds=2, data=DataConfig(root=str(root), flow_root=str(flow)))
    last = load_checkpoint(train_fusion(cfg, quiet=True) / "last.pt")
    assert last["fusion"] == "attention" and last["fit_on"] == "crossfit"
    assert fusion_from_checkpoint(last).__class__.__name__ == "AttentionFusion"
