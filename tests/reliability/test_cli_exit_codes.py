"""Real processes: exit codes 0/1/2/130, one-line messages, tracebacks only with --debug."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from relkit import evil_zip_checkpoint, run

import flowless.data.annotations as annotations

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "FLOWLESS_QUIET": "1"}


def flowless(*args, prelude: str = "") -> subprocess.CompletedProcess:
    """``python -m flowless ARGS`` (or, with ``prelude``, main() after running it)."""
    argv = [str(a) for a in args]
    if prelude:
        code = f"import sys\n{prelude}\nfrom flowless.cli import main\nsys.exit(main({argv!r}))"
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "flowless", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)


def test_user_error_exit_2_one_line_and_traceback_only_with_debug(tmp_path):
    root = tmp_path / "pas là"
    proc = flowless("dataset", "summary", root, "--format", "ucf101")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"flowless dataset: error: {root}: dataset root is not a folder; " \
                          "check the path\n"
    debug = flowless("dataset", "summary", root, "--format", "ucf101", "--debug")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr and "AnnotationError" in debug.stderr
    assert debug.stderr.endswith(proc.stderr)


INTERNAL = ("import flowless.data.annotations as a\n"
            "def broken(*args, **kwargs):\n"
            "    raise ZeroDivisionError('a bug')\n"
            "a.load_index = broken")


def test_internal_error_exit_1_one_line_and_traceback_only_with_debug(tmp_path):
    proc = flowless("dataset", "summary", tmp_path, "--format", "ucf101", prelude=INTERNAL)
    assert proc.returncode == 1
    assert proc.stderr == ("flowless dataset: internal error: ZeroDivisionError: a bug (rerun "
                           "with --debug for the traceback and report it)\n")
    debug = flowless("dataset", "summary", tmp_path, "--format", "ucf101", "--debug",
                     prelude=INTERNAL)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "a bug" in debug.stderr


def test_usage_error_exit_2(tmp_path):
    proc = flowless("flow", tmp_path, tmp_path / "out", "--no-such-option")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: flowless")
    assert "unrecognized arguments: --no-such-option" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_code_checkpoint_is_refused_by_a_real_process(tmp_path, good_video):
    marker = tmp_path / "payload-ran"
    evil = evil_zip_checkpoint(tmp_path / "modèle.pt", marker)
    proc = flowless("predict", evil, good_video)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "refused to load" in proc.stderr
    assert str(evil) in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_batch_flow_with_a_bad_video_completes_and_exits_2(tmp_path, good_video):
    folder = tmp_path / "vidéos"
    folder.mkdir()
    (folder / "cassée.mp4").write_text("not a video")
    (folder / "bonne.mp4").write_bytes(good_video.read_bytes())
    out = tmp_path / "flux"
    proc = flowless("flow", folder, out, "--backend", "farneback", "--workers", "1")
    assert proc.returncode == 2, proc.stderr
    assert "1 done, 0 skipped (already complete), 1 failed" in proc.stdout
    assert proc.stderr.startswith("  failed cassée: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert (out / "bonne.npz").is_file() and not (out / "cassée.npz").exists()


def test_ctrl_c_exits_130_in_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(annotations, "load_index", interrupted)
    code, out, err = run(capsys, "dataset", "summary", tmp_path, "--format", "ucf101")
    assert code == 130 and err == "flowless dataset: interrupted\n"


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_exit_0(argv):
    proc = flowless(*argv)
    assert proc.returncode == 0 and "flowless" in proc.stdout and proc.stderr == ""


def test_no_command_prints_help_and_exits_2():
    proc = flowless()
    assert proc.returncode == 2 and "usage: flowless" in proc.stdout
