"""Distributed data parallel on CPU: torchrun with 2 processes (gloo) trains and checkpoints once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from trainkit import base_overrides

from flowless.checkpoint import load_checkpoint
from flowless.engine import read_metrics


def test_torchrun_two_processes_on_cpu(updown, tmp_path):
    root, flow = updown
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "flowless", "--quiet", "train", "--out", str(out), "--device", "cpu"]
    for item in base_overrides(root, flow, out, epochs=1, batch_size=2, tensorboard=True):
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1", FLOWLESS_QUIET="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]

    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt"]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and not any(k.startswith("module.") for k in ckpt["model"])
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    (record,) = read_metrics(out)  # rank 0 only: one line
    # 8 training videos over 2 ranks, 4 test clips: every clip counted once
    assert record["val_clips"] == 4 and record["train_clips"] == 8
    assert len(list((out / "tensorboard").glob("events.*"))) == 1
