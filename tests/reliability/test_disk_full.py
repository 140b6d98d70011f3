"""A checkpoint that does not fit on the disk is a one-line "no space left" user error.

torch.save reports a full disk as a RuntimeError without an errno ("[enforce fail at
inline_container.cc:672] . unexpected pos ..."). On a real, tiny tmpfs (root only; skipped
elsewhere) and with torch.save mocked, save_checkpoint and ``flowless train`` must report
"no space left on device" (exit code 2) and leave no temporary file.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from relkit import TRAIN, assert_user_error, run

from flowless.checkpoint import load_checkpoint, save_checkpoint
from flowless.errors import FlowlessError

TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
TORCH_WRITE_FAILED = ("[enforce fail at inline_container.cc:588] . PytorchStreamWriter failed "
                      "writing file data/0: file write failed")
BIG = {"model": {"w": torch.zeros(1 << 19)}}  # 2 MiB: more than the 1 MiB disk


@pytest.fixture
def full_disk(tmp_path) -> Path:
    """A folder on a 1 MiB tmpfs, unmounted afterwards; skipped where mounting is refused."""
    mnt = tmp_path / "petit disque"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill up ({exc}); needs root and mount rights")
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs to fill up (needs root and mount rights, e.g. not "
                    f"in CI): {proc.stderr.strip()}")
    try:
        yield mnt / "sortie"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_real_full_disk_is_a_user_error_and_keeps_the_old_file(full_disk):
    path = full_disk / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.full((8,), 1.0)}})
    with pytest.raises(FlowlessError) as info:
        save_checkpoint(path, BIG)
    assert str(info.value) == (f"{path}: cannot write here (no space left on device); free disk "
                               "space (or choose another output folder) and rerun")
    assert _files(full_disk) == ["last.pt"]  # no temporary file left
    assert float(load_checkpoint(path)["model"]["w"][0]) == 1.0


def test_training_onto_a_full_disk_exits_2_in_one_line(full_disk, rel_ucf, capsys):
    code, _, err = run(capsys, "train", "--quiet", "--dataset", rel_ucf, "--format", "ucf101",
                       "--out", full_disk, *TRAIN)
    assert_user_error(code, err, "train", full_disk, "no space left on device",
                      "free disk space")
    assert not [name for name in _files(full_disk) if name.startswith(".")]


def _torch_fails(message: str, disk_full: bool, monkeypatch):
    """torch.save writes part of the file, then raises torch's RuntimeError; with
    ``disk_full`` any further write to the disk (the errno probe) fails with ENOSPC."""

    def save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04 part of a checkpoint")
        if disk_full:
            def no_space(*a):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(os, "fsync", no_space)
        raise RuntimeError(message)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("message", [TORCH_FULL, TORCH_WRITE_FAILED])
def test_torch_write_failure_on_a_full_disk_is_a_user_error(message, tmp_path, monkeypatch):
    path = tmp_path / "sortie" / "best.pt"
    _torch_fails(message, True, monkeypatch)
    with pytest.raises(FlowlessError, match=r"best\.pt: cannot write here \(no space left on "
                                            r"device\); free disk space") as info:
        save_checkpoint(path, BIG)
    assert isinstance(info.value.__cause__, OSError)
    assert str(info.value.__cause__.__cause__) == message  # torch's error is kept as the cause
    monkeypatch.undo()
    assert _files(path.parent) == []


def test_errno_text_in_torch_message_is_enough(tmp_path, monkeypatch):
    path = tmp_path / "best.pt"
    _torch_fails("PytorchStreamWriter failed writing file data/0: file write failed: "
                 "Disk quota exceeded", False, monkeypatch)
    with pytest.raises(FlowlessError, match="disk quota exceeded.*free disk space"):
        save_checkpoint(path, BIG)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("message", [TORCH_FULL, "expected a tensor, got a bug"])
def test_other_torch_errors_stay_internal_and_clean_up(message, tmp_path, monkeypatch):
    """The same message on a disk with room (or another error) is not disguised as a user
    error; the temporary file is still removed."""
    path = tmp_path / "best.pt"
    _torch_fails(message, False, monkeypatch)
    with pytest.raises(RuntimeError) as info:
        save_checkpoint(path, BIG)
    assert str(info.value) == message and not isinstance(info.value, FlowlessError)
    assert _files(tmp_path) == []


def test_cli_reports_torch_disk_full_in_one_line(rel_ucf, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sortie"
    _torch_fails(TORCH_FULL, True, monkeypatch)
    code, _, err = run(capsys, "train", "--quiet", "--dataset", rel_ucf, "--format", "ucf101",
                       "--out", out, *TRAIN)
    assert_user_error(code, err, "train", out / "last.pt", "no space left on device",
                      "free disk space")
    monkeypatch.undo()
    assert not [name for name in _files(out) if name.endswith(".pt") or ".tmp" in name]
