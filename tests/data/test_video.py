from pathlib import Path

import numpy as np
import pytest

from flowless.data.plan import ClipPlan
from flowless.data.video import (
    count_frames,
    probe,
    read_clip,
    read_frames,
    read_video,
    resize_short_side,
    write_video,
)
from flowless.errors import VideoError


def test_roundtrip_shape_and_content(make_video):
    path = make_video(num_frames=8, height=48, width=64)
    frames = read_video(path)
    assert frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
    info = probe(path)
    assert (info.width, info.height) == (64, 48)


def test_lossless_write_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "l.mp4", frames, crf=0, pix_fmt="yuv444p")
    back = read_video(tmp_path / "l.mp4")
    assert np.abs(back.astype(int) - frames.astype(int)).max() <= 3  # yuv<->rgb rounding only


def test_short_side_resize(make_video):
    frames = read_video(make_video(height=48, width=64), short_side=24)
    assert frames.shape[1:3] == (24, 32)
    assert resize_short_side(np.zeros((64, 40, 3), np.uint8), 20).shape == (32, 20, 3)


def test_clip_loops_short_video(make_video):
    path = make_video(num_frames=5)
    clip = read_clip(path, start=3, length=8)
    assert clip.shape[0] == 8
    assert list(ClipPlan(8).indices(5, 3)) == [3, 4, 0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"this is text, not a video\n" * 10, "not a readable video")],
)
def test_bad_files_raise_video_error_naming_file(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match=message) as info:
        read_video(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        read_video(tmp_path / "nope.mp4")


def test_truncated_file_is_error_or_prefix(make_video, tmp_path):
    path = make_video(num_frames=20)
    data = Path(path).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    try:
        frames = read_video(cut)
    except VideoError as exc:
        assert str(cut) in str(exc)
    else:
        assert 0 < len(frames) <= 20


# ---------------------------------------------------------------- clip reading, odd inputs
def _write_raw(path, frames, codec="ffv1", pix_fmt="gray"):
    """Write frames with an arbitrary codec / pixel format (PyAV converts from RGB)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _numbered_frames(n, h=21, w=33):
    """Frame t is uniformly grey level 10 * t (readable back from any frame)."""
    return np.stack([np.full((h, w, 3), 10 * t, np.uint8) for t in range(n)])


def test_read_frames_any_order_and_wrap(tmp_path):
    path = tmp_path / "n.mp4"
    write_video(path, _numbered_frames(6, 16, 16), crf=0, pix_fmt="yuv444p")
    assert count_frames(path) == 6
    got = read_frames(path, [4, 1, 1, 9])  # 9 wraps to 9 % 6 = 3
    assert [round(float(f.mean()) / 10) for f in got] == [4, 1, 1, 3]
    clip = read_clip(path, start=4, length=4, stride=2)  # 4, 6, 8, 10 -> 4, 0, 2, 4
    assert [round(float(f.mean()) / 10) for f in clip] == [4, 0, 2, 4]
    with pytest.raises(ValueError):
        read_frames(path, [])


@pytest.mark.parametrize("pix_fmt", ["gray", "gray16le", "yuv420p10le"])
def test_grayscale_16bit_and_odd_size_decode_to_rgb(tmp_path, pix_fmt):
    path = _write_raw(tmp_path / f"{pix_fmt}.mkv", _numbered_frames(5), "ffv1", pix_fmt)
    frames = read_video(path)
    assert frames.shape == (5, 21, 33, 3) and frames.dtype == np.uint8
    assert [round(float(f.mean()) / 10) for f in frames] == [0, 1, 2, 3, 4]
    assert count_frames(path) == 5  # mkv stores no frame count: counted from packets


def _rotate_mp4(src, dst, degrees_cw):
    """Copy an mp4 setting its track display matrix to a clockwise rotation (as phones do)."""
    import struct

    data = bytearray(Path(src).read_bytes())
    at = data.find(b"tkhd") + 4 + 4 + 20 + 8 + 8  # version/flags, times/ids, reserved, layer...
    one = 1 << 16
    matrix = {90: (0, one, 0, -one, 0, 0), 180: (-one, 0, 0, 0, -one, 0),
              270: (0, -one, 0, one, 0, 0)}[degrees_cw]
    data[at : at + 36] = struct.pack(">9i", *matrix, 0, 0, 1 << 30)
    Path(dst).write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    img = np.zeros((16, 32, 3), np.uint8)
    img[:, :8] = 255  # a white band on the left
    write_video(tmp_path / "r.mp4", np.stack([img] * 3), crf=0, pix_fmt="yuv444p")
    path = _rotate_mp4(tmp_path / "r.mp4", tmp_path / f"r{degrees}.mp4", degrees)
    frames = read_video(path)
    expected = np.rot90(img, k=-degrees // 90)  # clockwise
    assert frames.shape[1:] == expected.shape
    assert np.abs(frames[0].astype(int) - expected.astype(int)).max() <= 3
    info = probe(path)
    assert (info.height, info.width) == expected.shape[:2]
    assert info.rotation == (360 - degrees) % 360
