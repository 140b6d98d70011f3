"""Streaming inference gives exactly the clips of the whole-video reference (video_clips)."""

import numpy as np
import pytest
from evalkit import save_stream

from flowless.data.clips import video_clips
from flowless.data.video import read_video
from flowless.errors import VideoError
from flowless.eval import load_streams, score_video
from flowless.eval.inference import StageTimes
from flowless.flow import flow_path, quantize, save_flow_u8, video_flow


def reference_logits(stream, units, kind, protocol="mars", length=None):
    """Mean logits of the whole-video clips through the stream's own inference path (the
    same network as streaming, so any difference is in the clips)."""
    d = stream.data
    clips = video_clips(units, kind, d.clip_len, d.size, d.stride, protocol, length)
    return stream.logits(clips).astype(np.float64).mean(0), len(clips)


@pytest.mark.parametrize("frames", [3, 8, 15, 16, 17, 33])
@pytest.mark.parametrize("stride", [1, 2])
def test_streamed_rgb_clips_match_whole_video_clips(tmp_path, make_video, ckpts, frames, stride):
    data = {"clip_len": 8, "size": 32, "stride": stride, "short_side": 32}
    ckpt = save_stream(tmp_path / "s.pt", data=data) if stride != 1 else ckpts["rgb"]
    (stream,), _ = load_streams([ckpt])
    video = make_video(f"v{frames}.mp4", num_frames=frames)
    got = score_video(video, [stream], batch_size=3)
    want, n = reference_logits(stream, read_video(video, 32), "rgb")
    assert got.clips == [n] and got.frames == frames
    np.testing.assert_allclose(got.logits[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("frames", [2, 9, 17, 20])
def test_rgb_and_flow_streams_are_aligned_like_record_clips(make_video, ckpts, frames):
    streams, _ = load_streams([ckpts["rgb"], ckpts["flow"]])
    video = make_video(f"a{frames}.mp4", num_frames=frames)
    times = StageTimes()
    got = score_video(video, streams, times=times)
    full = read_video(video)
    flow = quantize(video_flow(full, "farneback", short_side=32))
    length = frames - 1  # N frames -> N-1 flow fields; both streams use the first N-1
    want_rgb, n_rgb = reference_logits(streams[0], read_video(video, 32), "rgb", length=length)
    want_flow, n_flow = reference_logits(streams[1], flow, "flow", length=length)
    assert got.clips == [n_rgb, n_flow]
    np.testing.assert_allclose(got.logits[0], want_rgb, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.logits[1], want_flow, rtol=1e-5, atol=1e-5)
    assert times.seconds["flow"] > 0 and times.seconds["network"] > 0


def test_ten_by_three_protocol_matches_video_clips(make_video, ckpts):
    (stream,), _ = load_streams([ckpts["rgb"]])
    video = make_video("t.mp4", num_frames=20)
    got = score_video(video, [stream], protocol="10x3")
    want, n = reference_logits(stream, read_video(video, 32), "rgb", protocol="10x3")
    assert got.clips == [n] == [30]
    np.testing.assert_allclose(got.logits[0], want, rtol=1e-5, atol=1e-5)


def test_flow_store_gives_the_same_result_as_flow_on_the_fly(tmp_path, make_video, ckpts):
    (stream,), _ = load_streams([ckpts["flow"]])
    video = make_video("f.mp4", num_frames=19)
    u8 = quantize(video_flow(read_video(video), "farneback", short_side=32))
    save_flow_u8(flow_path(tmp_path / "store", "cls/f"), u8)
    fly = score_video(video, [stream])
    stored = score_video(video, [stream], flow_root=tmp_path / "store", key="cls/f")
    assert stored.clips == fly.clips == [2]
    np.testing.assert_allclose(stored.logits[0], fly.logits[0], rtol=1e-6, atol=1e-6)


def test_batch_size_does_not_change_the_result(make_video, ckpts):
    (stream,), _ = load_streams([ckpts["rgb"]])
    video = make_video("b.mp4", num_frames=40)
    one = score_video(video, [stream], batch_size=1)
    many = score_video(video, [stream], batch_size=64)
    assert one.clips == many.clips == [5]
    np.testing.assert_allclose(one.logits[0], many.logits[0], rtol=1e-5, atol=1e-5)


def test_single_frame_video_cannot_feed_a_flow_stream(make_video, ckpts):
    streams, _ = load_streams([ckpts["flow"]])
    video = make_video("one.mp4", num_frames=1)
    with pytest.raises(VideoError, match="one.mp4.*at least 2 frames"):
        score_video(video, streams)
    (rgb,), _ = load_streams([ckpts["rgb"]])
    assert score_video(video, [rgb]).clips == [1]  # RGB loops the single frame


def test_streaming_keeps_only_one_clip_of_frames(monkeypatch, make_video, ckpts):
    """The feeder never holds more than one clip's frames, however long the video."""
    from flowless.eval import inference

    sizes = []
    original = inference._Feeder.frame

    def spy(self, i, img, cache):
        original(self, i, img, cache)
        held = {id(a) for a in self.kept.values()} | {id(a) for a in self.head or []}
        sizes.append(len(held))

    monkeypatch.setattr(inference._Feeder, "frame", spy)
    streams, _ = load_streams([ckpts["rgb"], ckpts["flow"]])
    score_video(make_video("long.mp4", num_frames=64), streams)
    assert len(sizes) == 2 * 64 and max(sizes) <= 8 + 1
