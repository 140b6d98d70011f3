"""tvl1-torch: OpenCV's TV-L1 in PyTorch. Quality against OpenCV and ground truth, batch
independence, the tvl1 parameter names, and batched extraction (resume, OOM, failures)."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowless.cli import main
from flowless.data.synth import SynthConfig, plan_videos
from flowless.data.synth_render import render
from flowless.errors import ConfigError
from flowless.flow import (
    FlowBackend,
    extract_flow,
    flow_path,
    load_flow,
    resolve_params,
    store_keys,
    video_flow,
)
from flowless.flow.synthetic import (
    end_point_error,
    rotation_field,
    smooth_random_field,
    textured_image,
    translation_field,
    warp_pair,
)
from flowless.flow.tvl1_torch import (
    TorchTVL1,
    TVL1Options,
    _median_sort,
    median_filter,
    tvl1_flow,
)

# Few iterations: enough to exercise the machinery, cheap enough for 2 cores.
QUICK = {"nscales": 2, "warps": 2, "outer_iterations": 2, "inner_iterations": 10}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def epd(a: np.ndarray, b: np.ndarray) -> float:
    """Mean end-point difference of two flows (..., 2, H, W)."""
    d = a - b
    return float(np.hypot(d[..., 0, :, :], d[..., 1, :, :]).mean())


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_equals_opencv_median_blur(size):
    u = np.random.default_rng(size).standard_normal((2, 13, 17)).astype(np.float32)
    u[0, :4, :4] = 0.5  # ties
    expected = np.stack([cv2.medianBlur(c, size) for c in u])
    assert np.array_equal(median_filter(torch.from_numpy(u)[None], size)[0].numpy(), expected)
    pad = F.pad(torch.from_numpy(u)[None], (size // 2,) * 4, mode="replicate")
    by_sort = _median_sort(pad, size, 13, 17)  # the CUDA path, run here on the CPU
    assert np.array_equal(by_sort[0].numpy(), expected)


@pytest.mark.parametrize("params, bound", [
    (dict(nscales=1, warps=1, outer_iterations=2, inner_iterations=10), 1e-3),
    (dict(nscales=3, warps=2, outer_iterations=1, inner_iterations=10), 1e-2)])
def test_fixed_iterations_match_opencv_to_float_precision(params, bound):
    first, second = warp_pair(textured_image(40, 48, seed=1), rotation_field(40, 48, 4.0))
    params = {**params, "epsilon": 1e-9, "median_filtering": 5}
    ours = FlowBackend("tvl1-torch", params, device="cpu")(first, second)
    theirs = FlowBackend("tvl1", params)(first, second)
    # Measured: max 5e-5 px (one scale) and 1e-3 px (three scales, at the border).
    assert np.abs(ours - theirs).max() < bound


@pytest.mark.parametrize("kind", ["translation", "rotation", "smooth"])
def test_epe_within_10_percent_of_opencv(kind):
    truth = {"translation": translation_field(64, 64, 2.5, -1.5),
             "rotation": rotation_field(64, 64, 4.0),
             "smooth": smooth_random_field(64, 64, 3.0, seed=1)}[kind]
    first, second = warp_pair(textured_image(64, 64, seed=3), truth)
    ours = FlowBackend("tvl1-torch", device="cpu")(first, second)
    theirs = FlowBackend("tvl1")(first, second)
    # Measured EPE (OpenCV / ours): 0.0063/0.0063, 0.019/0.018, 0.093/0.093 px.
    assert end_point_error(ours, truth) <= 1.10 * end_point_error(theirs, truth)
    assert end_point_error(ours, truth) < 0.15 < end_point_error(np.zeros_like(truth), truth)


def test_video_flow_is_within_0_3_px_of_opencv():
    cfg = SynthConfig(size=64, frames=5)
    frames = render(cfg, plan_videos(cfg)[2])  # drifting background, jitter, noise, object
    ours = video_flow(frames, "tvl1-torch", device="cpu")
    theirs = video_flow(frames, "tvl1")
    assert ours.shape == theirs.shape == (4, 2, 64, 64) and ours.dtype == np.float32
    # Measured 0.0001-0.01 px (mean flow 0.6-0.9 px) on three such videos.
    assert epd(ours, theirs) <= 0.3 and epd(ours, theirs) < epd(np.zeros_like(theirs), theirs)


def test_a_pairs_flow_does_not_depend_on_its_batch():
    pairs = [warp_pair(textured_image(32, 48, seed=s), translation_field(32, 48, s, 1.0))
             for s in range(3)]
    first = torch.from_numpy(np.stack([p[0] for p in pairs]))
    second = torch.from_numpy(np.stack([p[1] for p in pairs]))
    options = TVL1Options.from_params(resolve_params("tvl1-torch", QUICK))
    together = tvl1_flow(first, second, options)
    alone = torch.cat([tvl1_flow(first[i:i + 1], second[i:i + 1], options) for i in range(3)])
    assert torch.equal(together, alone)  # bit for bit: each pair stops on its own


def test_parameters_and_presets_are_those_of_tvl1():
    assert resolve_params("tvl1-torch") == resolve_params("tvl1")
    assert resolve_params("tvl1-torch", {"warps": "3"}, "fast") == resolve_params(
        "tvl1", {"warps": "3"}, "fast")
    options = TorchTVL1(resolve_params("tvl1-torch", {"lambda": 0.2, "inner_iterations": 7}),
                        "cpu").options
    assert options.lambda_ == 0.2 and options.inner_iterations == 7
    with pytest.raises(ConfigError, match="gamma=0.5 for backend tvl1-torch: must be 0"):
        resolve_params("tvl1-torch", {"gamma": 0.5})
    with pytest.raises(ConfigError, match="unknown parameter 'nope'"):
        resolve_params("tvl1-torch", {"nope": 1})
    with pytest.raises(ConfigError, match="device cuda needs --backend tvl1-torch"):
        FlowBackend("dis", device="cuda")


def test_opencv_tvl1_keeps_its_scales_after_a_small_image():
    first, second = warp_pair(textured_image(64, 64, seed=3), translation_field(64, 64, 5, 0))
    used = FlowBackend("tvl1", {"warps": 1})
    used(first[:24, :24], second[:24, :24])  # OpenCV would keep nscales=2 from here on
    assert np.array_equal(used(first, second), FlowBackend("tvl1", {"warps": 1})(first, second))


def _extract(videos, out, **kwargs):
    args = dict(backend="tvl1-torch", short_side=0, params=QUICK, device="cpu", quiet=True,
                workers=1)
    return extract_flow(videos, out, **{**args, **kwargs})


def test_batched_extraction_is_resumable_and_lists_failures(tmp_path, make_videos,
                                                            make_bad_videos):
    videos = make_videos(tmp_path / "v", count=3, num_frames=6)
    bad = make_bad_videos(tmp_path / "v", videos[0][1])
    reference = _extract(videos + sorted(bad.items()), tmp_path / "ref", batch_size=4)
    assert reference.done == 3 and sorted(f["key"] for f in reference.failures) == sorted(bad)
    assert "only 1 frame" in {f["key"]: f["error"] for f in reference.failures}["bad/one_frame"]

    out = tmp_path / "resumed"  # a run killed after one video, with a partial file left
    _extract(videos[:1], out, batch_size=3)
    flow_path(out, videos[1][0]).parent.mkdir(parents=True, exist_ok=True)
    partial = flow_path(out, videos[1][0]).with_name(f".{videos[1][0].split('/')[1]}.npz.x.tmp")
    partial.write_bytes(b"PK")
    summary = _extract(videos, out, batch_size=2, workers=2)
    assert (summary.done, summary.skipped, summary.failed) == (2, 1, 0)
    assert not partial.exists()
    for key, _ in videos:
        assert flow_path(out, key).read_bytes() == flow_path(tmp_path / "ref", key).read_bytes()
    # The store holds what the in-memory API computes (same quantisation and layout).
    frames_flow = video_flow(np.stack(list(_frames(videos[0][1]))), "tvl1-torch", device="cpu",
                             **QUICK)
    assert np.abs(load_flow(flow_path(out, videos[0][0])) - frames_flow).max() <= 0.08


def _frames(path):
    from flowless.data.video import iter_frames

    return iter_frames(path)


def test_out_of_memory_halves_the_batch_then_fails_only_those_videos(tmp_path, make_videos,
                                                                     monkeypatch):
    videos = make_videos(tmp_path / "v", count=2, num_frames=5)
    reference = _extract(videos, tmp_path / "ref", batch_size=1)
    real = TorchTVL1.__call__
    sizes = []

    def small_only(self, first, second):
        sizes.append(len(first))
        if len(first) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, first, second)

    monkeypatch.setattr(TorchTVL1, "__call__", small_only)
    summary = _extract(videos, tmp_path / "oom", batch_size=8)
    assert summary.done == 2 and sizes[:3] == [8, 4, 2] and max(sizes[2:]) <= 2
    for key, _ in videos:
        assert flow_path(tmp_path / "oom", key).read_bytes() == flow_path(
            tmp_path / "ref", key).read_bytes()

    def never(self, first, second):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(TorchTVL1, "__call__", never)
    summary = _extract(videos, tmp_path / "none", batch_size=4)
    assert summary.failed == 2 and all("out of memory on cpu" in f["error"]
                                       for f in summary.failures)
    assert store_keys(tmp_path / "none") == [] and not list((tmp_path / "none").rglob(".*tmp*"))
    assert reference.failed == 0


def test_cli_backend_and_device(tmp_path, video_dir, capsys):
    args = ["flow", str(video_dir), str(tmp_path / "s"), "--backend", "tvl1-torch", "-q",
            "--short-side", "0", "--workers", "1", "--batch-size", "4"]
    quick = [f"--param={k}={v}" for k, v in QUICK.items()]
    assert main([*args, "--device", "cpu", *quick]) == 0
    assert len(store_keys(tmp_path / "s")) == 4
    assert main(["flow", str(video_dir), str(tmp_path / "t"), "--device", "cuda", "-q"]) == 2
    assert "device cuda needs --backend tvl1-torch" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda", *quick]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


@CUDA
def test_cuda_flow_matches_cpu_flow():
    first, second = warp_pair(textured_image(64, 64, seed=3), rotation_field(64, 64, 4.0))
    cpu = FlowBackend("tvl1-torch", device="cpu")(first, second)
    gpu = FlowBackend("tvl1-torch", device="cuda")(first, second)
    assert epd(cpu.transpose(2, 0, 1), gpu.transpose(2, 0, 1)) < 0.01


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_identical_store(tmp_path, make_videos):
    from test_flow_resume import kill_when

    videos = make_videos(tmp_path / "v", count=3, num_frames=12)
    reference = _extract(videos, tmp_path / "ref", batch_size=1)
    assert reference.done == 3
    args = [sys.executable, "-m", "flowless", "flow", str(tmp_path / "v"), str(tmp_path / "out"),
            "--backend", "tvl1-torch", "--device", "cpu", "--short-side", "0", "--workers", "1",
            "--batch-size", "1", "-q", *[f"--param={k}={v}" for k, v in QUICK.items()]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FLOWLESS_QUIET": "1"}
    killed = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill_when(killed, tmp_path / "out", complete=1)
    assert len(store_keys(tmp_path / "out")) < 3
    rerun = subprocess.run(args, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert not list((tmp_path / "out").rglob(".*tmp*"))
    for key, _ in videos:
        assert flow_path(tmp_path / "out", key).read_bytes() == flow_path(
            tmp_path / "ref", key).read_bytes()
