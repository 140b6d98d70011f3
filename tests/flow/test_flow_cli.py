"""``flowless flow`` inputs (folder, list file, dataset root) and option errors."""

from __future__ import annotations

import pytest

from flowless.cli import main
from flowless.data.discover import discover_videos
from flowless.errors import FlowError
from flowless.flow import read_manifest, store_keys


def test_folder_keys_are_relative_paths_without_extension(video_dir):
    (video_dir / ".hidden").mkdir()
    (video_dir / ".hidden/x.mp4").write_bytes(b"")
    (video_dir / "notes.txt").write_text("not a video")
    keys = [k for k, _ in discover_videos(video_dir)]
    assert keys == ["a/clip 00", "a/clip 02", "b/clip 01", "b/clip 03"]


def test_list_file_relative_absolute_and_labels(tmp_path, video_dir):
    videos = sorted(video_dir.rglob("*.mp4"))
    lst = video_dir / "list.txt"
    lst.write_text(f"# my videos\n{videos[0].relative_to(video_dir)}\n\n"
                   f"{videos[1].relative_to(video_dir)} 3\n{videos[2]}\n")
    assert [k for k, _ in discover_videos(lst)] == ["a/clip 00", "a/clip 02", "b/clip 01"]
    outside = tmp_path / "lists/l.txt"  # paths outside the list folder: common parent
    outside.parent.mkdir()
    outside.write_text(f"{videos[0]}\n{videos[3]}\n")
    assert [k for k, _ in discover_videos(outside)] == ["a/clip 00", "b/clip 03"]


def test_list_file_with_a_missing_video_reports_it(tmp_path, video_dir, capsys):
    lst = video_dir / "list.txt"
    lst.write_text("a/clip 00.mp4\na/gone.mp4\n")
    code = main(["flow", str(lst), str(tmp_path / "s"), "--backend", "dis", "-q", "--workers", "1"])
    assert code == 2
    out = capsys.readouterr()
    assert "1 done, 0 skipped (already complete), 1 failed" in out.out
    assert "a/gone.mp4: file not found" in out.err


def test_dataset_root_with_format(tmp_path, tiny_ucf, capsys):
    pytest.importorskip("flowless.data.annotations")
    code = main(["flow", str(tiny_ucf), str(tmp_path / "s"), "--format", "ucf101",
                 "--backend", "farneback", "--short-side", "32", "--workers", "1", "-q"])
    assert code == 0, capsys.readouterr().err
    assert "10 done" in capsys.readouterr().out
    assert "MoveLeft/v_MoveLeft_g01_c01" in store_keys(tmp_path / "s")


@pytest.mark.parametrize("argv, message", [
    (["--param", "warps"], "expected KEY=VALUE"),
    (["--param", "colour=red"], "unknown parameter 'colour' for flow backend tvl1"),
    (["--shard", "2/2"], "--shard '2/2': expected I/N"),
    (["--preset", "turbo"], "unknown preset 'turbo' for backend tvl1"),
    (["--short-side", "-4"], "short side -4: expected a size in px"),
    (["--backend", "dis", "--param", "patch_size=1"], "patch_size=1 for backend dis"),
])
def test_option_errors_are_one_line_exit_2(tmp_path, video_dir, capsys, argv, message):
    assert main(["flow", str(video_dir), str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flowless flow: error:") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_input_and_empty_folder(tmp_path, capsys):
    assert main(["flow", str(tmp_path / "nope"), str(tmp_path / "s")]) == 2
    assert "nope: not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlowError, match="no video files"):
        discover_videos(tmp_path / "empty")


def test_store_of_other_settings_is_refused_then_overwritten(tmp_path, video_dir, capsys):
    out = tmp_path / "s"
    fast = ["-q", "--workers", "1", "--short-side", "32"]
    assert main(["flow", str(video_dir), str(out), "--backend", "dis", *fast]) == 0
    assert main(["flow", str(video_dir), str(out), "--backend", "farneback", *fast]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'flowless-flow.json'}: this store was made with backend=dis" in err
    assert main(["flow", str(video_dir), str(out), "--backend", "farneback", "--overwrite",
                 *fast]) == 0
    assert "4 done" in capsys.readouterr().out
    assert read_manifest(out)["backend"] == "farneback"
