"""Bad inputs to predict / evaluate / export: one-line message naming the input, exit 2."""

import numpy as np
import pytest
import torch

from flowless.cli import main
from flowless.data.video import write_video


def run(capsys, *args):
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _zero_frames(path):
    import av

    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
    return path


def _truncated(path, make_video):
    data = make_video("whole.mp4", num_frames=12).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD_VIDEOS = {
    "missing": (lambda p, mv: p, "file not found"),
    "empty": (lambda p, mv: (p.write_bytes(b""), p)[1], "empty"),
    "text": (lambda p, mv: (p.write_text("hello, not a video\n"), p)[1], "not a readable video"),
    "truncated": (_truncated, "not a readable video"),
    "zero_frames": (lambda p, mv: _zero_frames(p), "no"),
}


@pytest.mark.parametrize("kind", sorted(BAD_VIDEOS))
def test_predict_on_a_bad_video(tmp_path, make_video, ckpts, capsys, kind):
    make, expect = BAD_VIDEOS[kind]
    video = make(tmp_path / f"bad {kind} vidéo.mp4", make_video)
    code, out, err = run(capsys, "predict", ckpts["rgb"], video)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert str(video) in err and expect in err and "Traceback" not in err


@pytest.mark.parametrize("frames, height, width", [(1, 1, 1), (1, 48, 64), (3, 2000, 1500)])
def test_predict_on_extreme_frame_counts_and_sizes(tmp_path, ckpts, capsys, frames, height,
                                                   width):
    video = tmp_path / "ünïcode dir" / f"v {frames}x{height}x{width}.mp4"
    video.parent.mkdir()
    rng = np.random.default_rng(0)
    write_video(video, rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8))
    code, out, err = run(capsys, "predict", ckpts["rgb"], video, "--json")
    assert code == 0, err
    assert f'"frames": {frames}' in out and '"clips": 1' in out
    # A flow stream needs two frames: a single-frame video is a user error.
    code, out, err = run(capsys, "predict", ckpts["rgb"], ckpts["flow"], video)
    if frames == 1:
        assert code == 2 and "at least 2 frames" in err and err.count("\n") == 1
    else:
        assert code == 0, err


def test_grayscale_and_16_bit_videos_are_read(tmp_path, ckpts, capsys):
    import av

    for name, pix_fmt, dtype, fmt in (("gray.mkv", "gray", np.uint8, "gray"),
                                      ("deep.mkv", "gray16le", np.uint16, "gray16le")):
        path = tmp_path / name
        with av.open(str(path), mode="w") as c:
            s = c.add_stream("ffv1", rate=25)
            s.width, s.height, s.pix_fmt = 32, 32, pix_fmt
            for t in range(10):
                img = np.full((32, 32), 1000 * t if dtype == np.uint16 else 20 * t, dtype)
                for p in s.encode(av.VideoFrame.from_ndarray(img, format=fmt)):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        code, out, err = run(capsys, "predict", ckpts["rgb"], ckpts["flow"], path)
        assert code == 0, err
        assert "10 frames; clips: rgb 1, flow 1" in out


def test_truncated_and_malicious_checkpoints_are_refused(tmp_path, make_video, ckpts, capsys):
    video = make_video("v.mp4")
    cut = tmp_path / "cut.pt"
    data = ckpts["rgb"].read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    code, _, err = run(capsys, "predict", cut, video)
    assert code == 2 and "cut.pt" in err and err.count("\n") == 1

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "flowless", "kind": "stream", "x": Evil()}, evil)
    for cmd in (["predict", evil, video], ["export", evil, "--onnx", tmp_path / "e.onnx"]):
        code, _, err = run(capsys, *cmd)
        assert code == 2 and "refused to load" in err and err.count("\n") == 1
    assert not marker.exists()


def test_unwritable_outputs_fail_before_any_work(tmp_path, tiny_ucf, ckpts, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run(capsys, "evaluate", ckpts["rgb"], "--dataset", tiny_ucf, "--format",
                       "ucf101", "--out", blocker / "out")
    assert code == 2 and "cannot write here" in err and err.count("\n") == 1
    code, _, err = run(capsys, "export", ckpts["rgb"], "--onnx", blocker / "m.onnx")
    assert code == 2 and "cannot write here" in err


def test_dataset_without_the_subset_is_a_one_line_error(tmp_path, tiny_ucf, ckpts, capsys):
    code, _, err = run(capsys, "evaluate", ckpts["rgb"], "--dataset", tiny_ucf, "--format",
                       "ucf101", "--subset", "validation", "--out", tmp_path / "o")
    assert code == 2 and "no videos in subset 'validation'" in err and err.count("\n") == 1
