"""`flowless train` command line: config errors are one line with exit code 2; flags map to keys."""

from __future__ import annotations

import argparse

import pytest
from trainkit import base_overrides

from flowless.cli import build_parser, main
from flowless.cli.train import build_config


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


@pytest.mark.parametrize("argv,message", [
    (["--set", "optim.lrr=1"], "flowless train: error: optim.lrr: unknown key; valid keys: "
                               "optim.name, optim.lr, optim.momentum"),
    (["--set", "epochs=many"], "flowless train: error: epochs: expected int, got 'many'"),
    (["--set", "distill.mode=mars"], "flowless train: error: distill.mode: mars needs a teacher"),
    (["--set", "data.root=/nonexistent/ucf"], "flowless train: error: /nonexistent/ucf: "),
    (["--resume", "/nonexistent/run"], "flowless train: error: /nonexistent/run: not found"),
])
def test_user_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err


def test_yaml_error_names_the_file(tmp_path, capsys):
    cfg = tmp_path / "my run.yaml"
    cfg.write_text("optim:\n  lr: fast\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == (
        f"flowless train: error: {cfg}: optim.lr: expected float, got 'fast'\n")


def test_flags_then_set_overrides(tmp_path):
    cfg = build_config(parse("--dataset", "/d", "--epochs", "3", "--lr", "0.01", "--teacher",
                             "t.pt", "--alpha", "8", "--set", "epochs=4", "--out", "o"))
    assert (cfg.data.root, cfg.epochs, cfg.optim.lr, cfg.out) == ("/d", 4, 0.01, "o")
    assert cfg.distill.teacher == "t.pt" and cfg.distill.alpha == 8.0
    assert cfg.distill.mode == "relation"  # a teacher alone means the paper's loss
    assert build_config(parse("--teacher", "t.pt", "--distill", "mars")).distill.mode == "mars"


def test_train_command_runs_and_resume_reads_the_run_config(updown, tmp_path, capsys):
    root, flow = updown
    out = tmp_path / "run"
    argv = ["train", "--quiet"]
    for item in base_overrides(root, flow, out, epochs=1):
        argv += ["--set", item]
    assert main(argv) == 0
    assert f"-> {out / 'best.pt'}" in capsys.readouterr().out
    cfg = build_config(parse("--resume", str(out), "--set", "epochs=2"))
    assert cfg.out == str(out) and cfg.epochs == 2 and cfg.data.root == str(root)
    assert cfg.resume == str(out) and cfg.model.width == 0.25
    assert main(["train", "--quiet", "--resume", str(out), "--set", "epochs=2"]) == 0
    assert "best epoch" in capsys.readouterr().out
