"""kill -9 at any moment, then rerun: the store equals an uninterrupted run's, byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowless.flow import count_fields, extract_flow, flow_path, load_flow_u8, store_keys

ARGS = ["--backend", "tvl1", "--short-side", "0", "--quiet"]


def start(root: Path, out: Path, workers: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FLOWLESS_QUIET": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "flowless", "flow", str(root), str(out), *ARGS,
         "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def kill_when(proc: subprocess.Popen, out: Path, complete: int, timeout: float = 60) -> list[int]:
    """SIGKILL ``proc`` once ``complete`` flow files exist; return its worker pids."""
    deadline = time.monotonic() + timeout
    workers: set[int] = set()
    while len(list(out.rglob("[!.]*.npz"))) < complete:
        workers.update(children(proc.pid))
        assert proc.poll() is None, "finished before it could be killed: make the job longer"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    workers.update(children(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return sorted(workers)


def test_kill_9_then_rerun_gives_identical_files(tmp_path, make_videos):
    root = tmp_path / "videos"
    videos = make_videos(root, count=6, num_frames=10)
    reference = tmp_path / "reference"
    extract_flow(videos, reference, backend="tvl1", short_side=0, workers=1, quiet=True)

    out = tmp_path / "killed"
    # First kill: after one video, with two worker processes in flight.
    workers = kill_when(start(root, out, workers=2), out, complete=1)
    for key in store_keys(out):  # whatever has a final name is complete and readable
        assert count_fields(flow_path(out, key)) == 9
        load_flow_u8(flow_path(out, key))
    assert len(store_keys(out)) < len(videos)
    deadline = time.monotonic() + 5
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path("/proc/self/stat").exists():  # Linux: check the workers stopped with the parent
        assert workers and not any(alive(w) for w in workers), "orphan workers kept running"

    # Second kill, later, single process; then a rerun to completion.
    kill_when(start(root, out, workers=1), out, complete=len(store_keys(out)) + 1)
    final = start(root, out, workers=2)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr.decode()
    assert "skipped (already complete), 0 failed" in stdout.decode()
    assert not list(out.rglob(".*tmp*"))  # partial files of killed runs are cleaned up

    assert store_keys(out) == store_keys(reference) == sorted(k for k, _ in videos)
    for key in store_keys(reference):
        assert flow_path(out, key).read_bytes() == flow_path(reference, key).read_bytes(), key
    assert (out / "flowless-flow.json").read_bytes() == (
        reference / "flowless-flow.json").read_bytes()
