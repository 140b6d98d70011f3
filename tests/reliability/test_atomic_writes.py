"""A full disk, a refused rename or a kill during a write never damages the previous file.

Every writer (text/JSON, checkpoints, flow files, videos) writes a temporary file next to
the target and renames it when complete. We make the write fail mid-way or at the rename
(OSError ENOSPC / EACCES, or SIGKILL) and check the old file is unchanged, no temporary
file is left behind (except after SIGKILL, where the next run removes it), and the CLI
reports a full disk as a one-line user error.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from relkit import assert_user_error, run

import flowless.data.video as video_module
import flowless.flow.store as store_module
from flowless.checkpoint import load_checkpoint, save_checkpoint
from flowless.data.video import read_video, write_video
from flowless.errors import FlowlessError
from flowless.io import append_jsonl, write_json, write_text


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _frames(v: int) -> np.ndarray:
    return np.full((4, 16, 16, 3), 40 * v, np.uint8)


# writer -> (write(path, version), read(path) -> comparable value)
WRITERS = {
    "text": (lambda p, v: write_text(p, f"version {v}\n" * 500), lambda p: p.read_text()),
    "json": (lambda p, v: write_json(p, {"version": v, "rows": list(range(500))}),
             lambda p: p.read_text()),
    "checkpoint": (lambda p, v: save_checkpoint(p, {"model": {"w": torch.full((64,), v)}}),
                   lambda p: float(load_checkpoint(p)["model"]["w"][0])),
    "flow": (lambda p, v: store_module.save_flow_u8(p, np.full((3, 2, 8, 8), v, np.uint8)),
             lambda p: int(store_module.load_flow_u8(p)[0, 0, 0, 0])),
    "video": (lambda p, v: write_video(p, _frames(v), crf=0, pix_fmt="yuv444p"),
              lambda p: int(read_video(p)[0, 0, 0, 0])),
}
SUFFIX = {"text": ".txt", "json": ".json", "checkpoint": ".pt", "flow": ".npz", "video": ".mp4"}


def _target(tmp_path: Path, writer: str) -> Path:
    folder = tmp_path / "sortie"
    folder.mkdir()
    return folder / f"fichier{SUFFIX[writer]}"


def _only(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


@pytest.mark.parametrize("previous", [True, False], ids=["over an old file", "first write"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_disk_full_at_rename_keeps_the_old_file(writer, previous, tmp_path, monkeypatch):
    write, read = WRITERS[writer]
    path = _target(tmp_path, writer)
    if previous:
        write(path, 1)
        old_bytes, old_value = path.read_bytes(), read(path)
    monkeypatch.setattr(os, "replace", _disk_full)
    with pytest.raises(FlowlessError, match=r"no space left on device\); free disk space"):
        write(path, 2)
    monkeypatch.undo()
    if previous:
        assert path.read_bytes() == old_bytes and read(path) == old_value
        assert _only(path) == [path.name]
    else:
        assert _only(path) == []


def _half_then_full(self: Path, data: bytes) -> int:
    with open(self, "wb") as fh:
        fh.write(data[: len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _torch_half_then_full(obj, f, *args, **kwargs):
    Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _MuxFailsAfterOnePacket:
    """Wraps a PyAV output container: the second packet written hits a full disk."""

    def __init__(self, container):
        self._container, self._packets = container, 0

    def __getattr__(self, name):
        return getattr(self._container, name)

    def __enter__(self):
        self._container.__enter__()
        return self

    def __exit__(self, *exc):
        return self._container.__exit__(*exc)

    def mux(self, packet):
        self._packets += 1
        if self._packets > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._container.mux(packet)


def _fail_mid_write(writer: str, monkeypatch) -> None:
    if writer in ("text", "json"):
        monkeypatch.setattr(Path, "write_bytes", _half_then_full)
    elif writer == "checkpoint":
        monkeypatch.setattr(torch, "save", _torch_half_then_full)
    elif writer == "flow":  # the second flow field does not fit
        real, calls = store_module._npy_bytes, []

        def npy_bytes(arr):
            calls.append(1)
            if len(calls) > 1:
                _disk_full()
            return real(arr)

        monkeypatch.setattr(store_module, "_npy_bytes", npy_bytes)
    else:
        real_open = video_module.av.open
        monkeypatch.setattr(video_module.av, "open", lambda *a, **k: _MuxFailsAfterOnePacket(
            real_open(*a, **k)) if k.get("mode", a[1] if len(a) > 1 else "r") == "w"
            else real_open(*a, **k))


@pytest.mark.parametrize("writer", list(WRITERS))
def test_disk_full_mid_write_keeps_the_old_file(writer, tmp_path, monkeypatch):
    write, read = WRITERS[writer]
    path = _target(tmp_path, writer)
    write(path, 1)
    old_bytes, old_value = path.read_bytes(), read(path)
    _fail_mid_write(writer, monkeypatch)
    with pytest.raises(FlowlessError, match="no space left on device"):
        write(path, 2)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes and read(path) == old_value
    assert _only(path) == [path.name]


def test_permission_error_at_rename_is_a_user_error(tmp_path, monkeypatch):
    path = _target(tmp_path, "json")
    write_json(path, {"version": 1})

    def refused(*args):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(FlowlessError, match="permission denied.*choose a writable output folder"):
        write_json(path, {"version": 2})
    monkeypatch.undo()
    assert path.read_text() == '{\n  "version": 1\n}\n' and _only(path) == [path.name]


def test_other_errors_stay_internal_and_clean_up(tmp_path, monkeypatch):
    """An I/O error that is not about space or permissions is not disguised as a user
    error, but the temporary file is still removed."""
    path = _target(tmp_path, "text")
    write_text(path, "old")

    def io_error(self, data):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(Path, "write_bytes", io_error)
    with pytest.raises(OSError) as info:
        write_text(path, "new")
    assert not isinstance(info.value, FlowlessError) and info.value.errno == errno.EIO
    monkeypatch.undo()
    assert path.read_text() == "old" and _only(path) == [path.name]


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from flowless.io import write_text

def half_then_killed(self, data):
    with open(self, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.fsync(fh.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

Path.write_bytes = half_then_killed
write_text(sys.argv[1], "new " * 10000)
"""


def test_sigkill_mid_write_keeps_the_old_file(tmp_path):
    path = _target(tmp_path, "text")
    write_text(path, "old")
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_text() == "old"
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".{path.name}.")
    assert leftovers[0].read_text() == "new " * 5000  # the kill really was mid-write
    assert store_module.remove_partial(path) == 1 and _only(path) == [path.name]


def test_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "replace", _disk_full)
    out = tmp_path / "synthèse"
    code, _, err = run(capsys, "synth", out, "--motions", "1", "--categories", "1",
                       "--videos-per-class", "2", "--frames", "4", "--size", "16",
                       "--jobs", "1")
    assert_user_error(code, err, "synth", out, "no space left on device", "free disk space")
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_log_append_errors_are_user_errors_and_keep_earlier_lines(tmp_path, monkeypatch):
    log = tmp_path / "metrics.jsonl"
    append_jsonl(log, {"epoch": 1})
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(FlowlessError, match="metrics.jsonl: cannot write here .no space left"):
        append_jsonl(log, {"epoch": 2})
    monkeypatch.undo()
    assert log.read_text().splitlines()[0] == '{"epoch": 1}'
    with pytest.raises(FlowlessError, match="choose a writable output folder"):
        append_jsonl(log / "sub" / "metrics.jsonl", {"epoch": 1})


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import stat

    from flowless import io

    io.write_text(tmp_path / "shared.txt", "x")
    # mkstemp creates 0600; results must get the mode of any other new file (0666 & ~umask)
    mode = stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode)
    assert mode == 0o666 & ~io._UMASK
    if not io._UMASK & 0o044:
        assert mode & 0o044  # readable by group and others, unlike mkstemp's 0600
