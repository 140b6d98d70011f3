"""End-to-end training on a tiny generated dataset: each stream and distillation mode learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint
from flowless.config import load_config
from flowless.data.annotations import load_index
from flowless.data.clips import ClipDataset
from flowless.distill import distill_loss
from flowless.engine import read_metrics, train
from flowless.errors import ConfigError
from flowless.models import create_model, model_from_checkpoint


def fixed_batch(root: Path, flow: Path) -> dict:
    """Every training video's centre clips, RGB and flow: a fixed set to measure the objective."""
    records = load_index(root, "ucf101").split("train")
    ds = ClipDataset(records, stream="rgbflow", flow_root=flow, clip_len=8, size=32, mode="test")
    return torch.utils.data.default_collate([ds[i] for i in range(len(ds))])


def objective(net, batch, stream, mode="none", teacher=None, alpha=50.0) -> float:
    """CE + alpha * distillation term on ``batch`` (BatchNorm on batch statistics, as in training)."""
    net = net.train()
    with torch.no_grad():
        feats = net.forward_features(batch["clip"] if stream == "rgb" else batch["flow"])
        loss = F.cross_entropy(feats["logits"], batch["label"])
        if mode != "none":
            term, _ = distill_loss(mode, feats, teacher.forward_features(batch["flow"]))
            loss = loss + alpha * term
    return float(loss)


@pytest.mark.parametrize("stream,mode", [("flow", "none"), ("rgb", "none"), ("rgb", "mars"),
                                         ("rgb", "relation"), ("rgb", "relation+mars"),
                                         ("rgb", "kd")])
def test_training_lowers_the_objective(updown, flow_teacher, tmp_path, stream, mode):
    root, flow = updown
    extra = {"stream": stream, "seed": 3}
    if mode != "none":
        extra.update({"distill__mode": mode, "distill__teacher": flow_teacher})
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", **extra))
    run = train(cfg, quiet=True)

    torch.manual_seed(3)  # the trainer builds the network right after seeding with cfg.seed
    initial = create_model("resnet10", 2, 3 if stream == "rgb" else 2, width=0.25)
    last = load_checkpoint(run / "last.pt")
    trained = model_from_checkpoint(last)
    teacher = model_from_checkpoint(load_checkpoint(flow_teacher)) if mode != "none" else None
    batch = fixed_batch(root, flow)
    before = objective(initial, batch, stream, mode, teacher)
    after = objective(trained, batch, stream, mode, teacher)
    assert after < 0.95 * before, (before, after)

    records = read_metrics(run)
    assert [r["epoch"] for r in records] == list(range(1, 11))
    assert all(r["train_clips_per_s"] > 0 and 0 <= r["val_acc"] <= 1 for r in records)
    if mode != "none":
        assert all(r["train_distill"] > 0 for r in records)
        # total = CE + alpha * term, per clip and so on average
        r = records[-1]
        assert r["train_loss"] == pytest.approx(r["train_ce"] + 50 * r["train_distill"], rel=1e-6)
    expected_name = {"none": stream, "mars": "mars", "relation": "ds", "relation+mars": "ds+mars",
                     "kd": "kd"}[mode]
    assert last["kind"] == "stream" and last["stream"] == expected_name
    assert last["input"] == stream and last["classes"] == ["MoveUp", "MoveDown"]
    assert last["data"]["clip_len"] == 8 and last["data"]["size"] == 32
    assert last["data"]["flow_backend"] == "farneback"
    assert last["epoch"] == 10 and last["config"]["stream"] == stream


def test_run_folder_contents(updown, tmp_path):
    root, flow = updown
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", epochs=2,
                                           tensorboard=True, seed=1))
    run = train(cfg, quiet=True)
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["width"] == 0.25
    assert load_config(run / "config.yaml") == cfg
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 1 and info["world_size"] == 1 and "torch" in info["versions"]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert {"optimizer", "scheduler", "rng", "history", "best"} <= set(last)
    assert "optimizer" not in best and best["epoch"] == last["best"]["epoch"]
    vals = [r["val_acc"] for r in read_metrics(run)]
    assert best["metrics"]["val_acc"] == max(vals)
    assert last["model_config"]["width"] == 0.25 and last["format"] == "flowless"


def test_refuses_to_overwrite_a_run(updown, tmp_path):
    root, flow = updown
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", epochs=1))
    train(cfg, quiet=True)
    with pytest.raises(ConfigError, match="already holds a run .* --resume"):
        train(cfg, quiet=True)


def test_freeze_until_keeps_early_stages_fixed(updown, tmp_path):
    root, flow = updown
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", epochs=2, seed=5,
                                           model__freeze_until="layer4"))
    run = train(cfg, quiet=True)
    torch.manual_seed(5)
    initial = create_model("resnet10", 2, 3, width=0.25).state_dict()
    final = load_checkpoint(run / "last.pt")["model"]
    for name, value in initial.items():
        if name.endswith(("weight", "bias")) and "running" not in name:
            same = torch.equal(value, final[name])
            assert same == (not name.startswith(("layer4", "fc"))), name


def test_teacher_of_another_width_is_a_config_error(updown, flow_teacher, tmp_path):
    root, flow = updown
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", model__width=0.5,
                                           distill__mode="relation",
                                           distill__teacher=flow_teacher))
    with pytest.raises(ConfigError, match="tap 'stem' has shape .* in the teacher but"):
        train(cfg, quiet=True)


def test_repeated_quiet_runs_print_nothing(updown, tmp_path, capsys):
    root, flow = updown
    for i in range(2):
        train(load_config(None, base_overrides(root, flow, tmp_path / f"r{i}", epochs=1)),
              quiet=True)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    train(load_config(None, base_overrides(root, flow, tmp_path / "loud", epochs=1)))
    assert "epoch 1/1  train loss" in capsys.readouterr().out


def test_data_flip_false_never_mirrors_training_clips(updown):
    from flowless.config import DataConfig
    from flowless.engine.data import clip_dataset

    root, flow = updown
    records = load_index(root, "ucf101").split("train")[:2]
    data = DataConfig(root=str(root), flow_root=str(flow), clip_len=8, size=32)
    flipping = clip_dataset(records, data, "rgbflow", "train", seed=0)
    data.flip = False
    plain = clip_dataset(records, data, "rgbflow", "train", seed=0)
    mirrored = 0
    for epoch in range(8):
        flipping.set_epoch(epoch)
        plain.set_epoch(epoch)
        for i in range(2):
            a, b = flipping[i], plain[i]
            if torch.equal(a["clip"], b["clip"]):
                continue
            # same draw, only the flip differs: the flipped item is the mirror image
            assert torch.equal(a["clip"], b["clip"].flip(-1))
            assert torch.allclose(a["flow"][0], -b["flow"][0].flip(-1), atol=1.0)
            mirrored += 1
    assert mirrored > 0


def test_student_records_its_recipe_ramps_its_weights_and_fuses_the_ensemble(
        updown, flow_teacher, tmp_path):
    from flowless.distill.recipe import STUDENT

    root, flow = updown
    cfg = load_config(None, base_overrides(
        root, flow, tmp_path / "run", epochs=3, seed=2, distill__mode="student",
        distill__teacher=flow_teacher, distill__ensemble=f"[{flow_teacher}]",
        distill__warmup_epochs=2))
    run = train(cfg, quiet=True)
    saved = yaml.safe_load((run / "config.yaml").read_text())["distill"]
    # unset weights were filled with the recipe's, the given warm-up kept
    assert saved["alpha"] == STUDENT["alpha"] and saved["normalize"] is STUDENT["normalize"]
    assert saved["temperature"] == STUDENT["temperature"] and saved["warmup_epochs"] == 2
    records = read_metrics(run)
    for r, ramp in zip(records, (0.5, 1.0, 1.0)):
        assert r["train_loss"] == pytest.approx(r["train_ce"] + ramp * r["train_distill"],
                                                rel=1e-6)
        assert r["train_kd"] > 0 and r["train_gram"] > 0 and r["train_feat"] > 0
    last = load_checkpoint(run / "last.pt")
    assert last["stream"] == "student" and last["input"] == "rgb"


def test_student_ensemble_must_share_the_classes(updown, flow_teacher, tmp_path):
    from flowless.checkpoint import save_checkpoint

    root, flow = updown
    other = load_checkpoint(flow_teacher)
    net = create_model("resnet10", 3, 2, width=0.25)
    other.update(model=net.state_dict(), model_config=net.config, classes=["a", "b", "c"])
    save_checkpoint(tmp_path / "three.pt", other)
    cfg = load_config(None, base_overrides(
        root, flow, tmp_path / "run", epochs=1, distill__mode="student",
        distill__teacher=flow_teacher, distill__ensemble=f"[{tmp_path / 'three.pt'}]"))
    with pytest.raises(ConfigError, match=r"three\.pt has 3 classes but the dataset has 2"):
        train(cfg, quiet=True)


def test_train_once_reuses_a_finished_run_and_resumes_a_killed_one(updown, tmp_path,
                                                                    monkeypatch):
    import flowless.engine.trainer as trainer
    from flowless.engine import train_once

    root, flow = updown
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "run", epochs=1))
    run = train_once(cfg, quiet=True)
    assert (run / "done").exists() and load_checkpoint(run / "last.pt")["epoch"] == 1
    calls = []
    monkeypatch.setattr(trainer, "train", lambda c, quiet=None: calls.append(c))
    assert train_once(cfg, quiet=True) == run and calls == []  # finished: reused
    (run / "done").unlink()  # as if killed after its last checkpoint
    train_once(cfg, quiet=True)
    assert calls[0].resume == str(run) and (run / "done").exists()


def test_validating_less_often_trains_the_same_weights(updown, tmp_path):
    """The demo validates every 4th epoch: validation must not move the weights (no RNG
    draws, no BN updates), and it runs at val_every multiples and the last epoch."""
    root, flow = updown
    runs = {}
    for every in (1, 2):
        cfg = load_config(None, base_overrides(root, flow, tmp_path / f"v{every}", epochs=3,
                                               val_every=every, **{"optim.schedule": "cosine"}))
        runs[every] = train(cfg, quiet=True)
    a, b = (load_checkpoint(runs[k] / "last.pt")["model"] for k in (1, 2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    validated = [r["epoch"] for r in read_metrics(runs[2]) if "val_acc" in r]
    assert validated == [2, 3]
    assert [r["train_loss"] for r in read_metrics(runs[1])] == \
        [r["train_loss"] for r in read_metrics(runs[2])]
