"""Resuming: a run killed with SIGKILL and resumed ends with the same weights, bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint
from flowless.config import apply_overrides, load_config
from flowless.engine import read_metrics, train
from flowless.errors import CheckpointError

RECIPE = {"epochs": 8, "seed": 11, "distill__mode": "relation+mars", "optim__name": "sgd",
          "optim__lr": 0.01, "optim__schedule": "plateau", "optim__patience": 1}


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def same_history(a: Path, b: Path) -> None:
    ma, mb = read_metrics(a), read_metrics(b)
    assert [r["epoch"] for r in mb] == [r["epoch"] for r in ma]
    for ra, rb in zip(ma, mb):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
            assert ra[key] == rb[key], (ra["epoch"], key)


class Crash(Exception):
    pass


def test_resume_after_a_crash_matches_uninterrupted_cosine(updown, flow_teacher, tmp_path,
                                                           monkeypatch):
    """In-process: crash right after epoch 2's checkpoint, resume; cosine + warm-up, AdamW."""
    import flowless.engine.trainer as trainer

    root, flow = updown
    recipe = dict(RECIPE, epochs=4, distill__teacher=flow_teacher, optim__name="adamw",
                  optim__lr=0.002, optim__schedule="cosine", optim__warmup_epochs=1)
    full = train(load_config(None, base_overrides(root, flow, tmp_path / "full", **recipe)),
                 quiet=True)
    cfg = load_config(None, base_overrides(root, flow, tmp_path / "part", **recipe))
    real_save = trainer.save_checkpoint

    def crash_after_epoch_2(path, ckpt):
        real_save(path, ckpt)
        if Path(path).name == "last.pt" and ckpt["epoch"] == 2:
            raise Crash

    monkeypatch.setattr(trainer, "save_checkpoint", crash_after_epoch_2)
    with pytest.raises(Crash):
        train(cfg, quiet=True)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 2
    train(apply_overrides(cfg, [f"resume={tmp_path / 'part'}"]), quiet=True)
    assert_same_weights(full / "last.pt", tmp_path / "part" / "last.pt")
    same_history(full, tmp_path / "part")


def _cli(out: Path, overrides: list[str], *extra: str) -> list[str]:
    args = [sys.executable, "-m", "flowless", "--quiet", "train", "--out", str(out)]
    for item in overrides:
        if not item.startswith("out="):
            args += ["--set", item]
    return args + list(extra)


def _kill_when(proc: subprocess.Popen, ready, delay: float = 0.0) -> None:
    """SIGKILL ``proc`` once ``ready()`` holds (plus ``delay`` seconds)."""
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the process ended before it was killed"


def test_kill_9_then_resume_gives_identical_weights(updown, flow_teacher, tmp_path):
    root, flow = updown
    overrides = base_overrides(root, flow, tmp_path / "unused",
                               **dict(RECIPE, distill__teacher=flow_teacher))
    env = dict(os.environ, OMP_NUM_THREADS="1", FLOWLESS_QUIET="1")
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(full, overrides), env=env, check=True, capture_output=True, timeout=120)

    # kill 1: as soon as the first checkpoint appears (mid epoch 2 or while writing)
    proc = subprocess.Popen(_cli(killed, overrides), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (killed / "last.pt").exists())
    epoch_at_kill = load_checkpoint(killed / "last.pt")["epoch"]
    assert 1 <= epoch_at_kill < 8, "the run finished before the kill; the test proves nothing"

    # kill 2: a resumed run, killed a random moment after it wrote its next checkpoint
    resume_cmd = [sys.executable, "-m", "flowless", "--quiet", "train", "--resume", str(killed)]
    proc = subprocess.Popen(resume_cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    stamp = (killed / "last.pt").stat().st_mtime_ns
    _kill_when(proc, lambda: (killed / "last.pt").stat().st_mtime_ns != stamp,
               delay=random.Random(0).uniform(0.0, 0.15))
    assert epoch_at_kill < load_checkpoint(killed / "last.pt")["epoch"] < 8

    done = subprocess.run(resume_cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(killed / "last.pt")["epoch"] == 8
    assert_same_weights(full / "last.pt", killed / "last.pt")
    assert_same_weights(full / "best.pt", killed / "best.pt")
    same_history(full, killed)


def test_resume_errors_name_the_path(tmp_path):
    from flowless.engine.state import load_resume

    with pytest.raises(CheckpointError, match="no last.pt in this folder"):
        load_resume(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_resume(tmp_path / "nope.pt")
    torch.save({"format": "flowless", "model": {}}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not a resumable flowless training checkpoint"):
        load_resume(tmp_path / "weights.pt")
