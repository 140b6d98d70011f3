"""`flowless train` / `train-fusion` command lines: every flag lands on its config key,
train-fusion refuses clip settings, and only rank 0 prints the final line."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

import flowless.engine
from flowless.checkpoint import save_checkpoint
from flowless.cli import build_parser, main
from flowless.cli import train as train_cli
from flowless.cli import train_fusion as fusion_cli
from flowless.config import FUSION_CLIP_KEYS

# flag -> (command-line value, value in the config); every flag of FLAGS must be listed
COMMON = {
    "dataset": ("/d", "/d"), "format": ("hmdb51", "hmdb51"), "split": ("2", 2),
    "annotations": ("/a", "/a"), "flow_root": ("/f", "/f"), "epochs": ("7", 7),
    "batch_size": ("5", 5), "lr": ("0.25", 0.25), "seed": ("9", 9), "device": ("cpu", "cpu"),
    "workers": ("3", 3), "out": ("o", "o"),
}
VALUES = {
    "train": dict(COMMON, stream=("flow", "flow"), arch=("resnet18", "resnet18"),
                  width=("0.5", 0.5), pretrained=("p.pth", "p.pth"),
                  teacher=("t.pt", "t.pt"), distill=("kd", "kd"), alpha=("8", 8.0),
                  temperature=("2", 2.0), kd_weight=("0.5", 0.5), distill_warmup=("3", 3.0)),
    "train-fusion": dict(COMMON, train_views=("4", 4), fusion=("weighted", "weighted"),
                         fit_on=("crossfit", "crossfit"), folds=("3", 3)),
}
MODULES = {"train": train_cli, "train-fusion": fusion_cli}
STREAMS = ["a.pt", "b.pt"]


def parse(command: str, *argv: str):
    streams = STREAMS if command == "train-fusion" else []
    return build_parser().parse_args([command, *streams, *argv])


def get(cfg, key: str):
    return functools.reduce(getattr, key.split("."), cfg)


@pytest.mark.parametrize("command", list(MODULES))
def test_every_flag_lands_on_its_config_key(command):
    module, values = MODULES[command], VALUES[command]
    assert set(values) == set(module.FLAGS), "a flag was added: list its test value here"
    argv = []
    for flag, (given, _) in values.items():
        argv += [f"--{flag.replace('_', '-')}", given]
    cfg = module.build_config(parse(command, *argv))
    for flag, key in module.FLAGS.items():
        assert get(cfg, key) == values[flag][1], (flag, key)
    if command == "train-fusion":
        assert cfg.streams == STREAMS


def test_ensemble_flag_is_repeatable_and_keeps_odd_paths():
    cfg = train_cli.build_config(parse("train", "--teacher", "t.pt", "--distill", "student",
                                       "--ensemble", "runs/rgb, 1/best.pt", "--ensemble", "x.pt"))
    assert cfg.distill.ensemble == ["runs/rgb, 1/best.pt", "x.pt"]
    assert cfg.distill.mode == "student"


@pytest.mark.parametrize("command", list(MODULES))
def test_set_wins_over_flags(command):
    cfg = MODULES[command].build_config(parse(command, "--epochs", "3", "--set", "epochs=4",
                                              "--out", "o"))
    assert (cfg.epochs, cfg.out) == (4, "o")


@pytest.mark.parametrize("key", FUSION_CLIP_KEYS)
def test_train_fusion_refuses_clip_settings_from_set(key, capsys):
    assert main(["train-fusion", *STREAMS, "--set", f"{key}=8"]) == 2
    assert capsys.readouterr().err == (
        f"flowless train-fusion: error: {key}: train-fusion takes clip settings from the "
        f"stream checkpoints; drop {key}\n")


def test_train_fusion_refuses_clip_settings_from_the_config_file(tmp_path, capsys):
    path = tmp_path / "fusion.yaml"
    path.write_text("data:\n  root: /d\n  clip_len: 8\n")
    assert main(["train-fusion", *STREAMS, "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"flowless train-fusion: error: {path}: data.clip_len: train-fusion takes clip "
        "settings from the stream checkpoints; drop data.clip_len from the file\n")


@pytest.fixture
def fake_training(tmp_path, monkeypatch) -> Path:
    """``flowless.engine.train`` replaced by one that writes a finished run's best.pt."""
    run = tmp_path / "run"

    def train(cfg, quiet=None):
        save_checkpoint(run / "best.pt", {"epoch": 2, "metrics": {"val_acc": 0.75}})
        return run

    monkeypatch.setattr(flowless.engine, "train", train)
    return run


@pytest.mark.parametrize("world,rank,prints", [
    (None, None, True), ("2", "0", True), ("2", "1", False), ("4", "3", False), ("1", "1", True),
])
def test_only_rank_0_prints_the_result(world, rank, prints, fake_training, monkeypatch, capsys):
    for name, value in (("WORLD_SIZE", world), ("RANK", rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert main(["train", "--quiet", "--out", str(fake_training)]) == 0
    out = capsys.readouterr().out
    expected = f"{fake_training}: best epoch 2 accuracy 75.0% -> {fake_training / 'best.pt'}\n"
    assert out == (expected if prints else "")

