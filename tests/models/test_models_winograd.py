"""The stem by a Winograd transform along time (models/winograd.py), checked against
float64 convolutions computed by PyTorch directly."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flowless.models import create_model, winograd
from flowless.models.fast import fast_network, winograd_stems
from flowless.models.winograd import (
    WINDOWS,
    TemporalWinogradConv3d,
    winograd_matrices,
)


def correlate(d: torch.Tensor, g: torch.Tensor, m: int) -> torch.Tensor:
    return torch.stack([sum(g[k] * d[i + k] for k in range(len(g))) for i in range(m)])


@pytest.mark.parametrize("m", WINDOWS)
@pytest.mark.parametrize("r", [2, 3, 5, 7])
def test_the_transforms_compute_the_correlation_exactly_in_float64(m, r):
    at, g, bt = winograd_matrices(m, r)
    assert at.shape == (m, m + r - 1) and g.shape == (m + r - 1, r) and bt.shape == (m + r - 1,) * 2
    gen = torch.Generator().manual_seed(r * 10 + m)
    d = torch.randn(m + r - 1, dtype=torch.float64, generator=gen)
    k = torch.randn(r, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(at @ ((g @ k) * (bt @ d)), correlate(d, k, m), rtol=1e-10, atol=1e-10)


def test_no_points_for_a_transform_too_large():
    with pytest.raises(ValueError, match="no interpolation points"):
        winograd_matrices(8, 9)
    with pytest.raises(ValueError, match="no interpolation points"):
        winograd_matrices(8, 6)  # 12 points: between the two defined sets
    assert TemporalWinogradConv3d(nn.Conv3d(3, 4, (6, 3, 3))).window_sizes == (2, 4)


def reference(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    bias = None if conv.bias is None else conv.bias.double()
    return F.conv3d(x.double(), conv.weight.double(), bias, conv.stride, conv.padding)


CASES = [  # in, out, kernel, stride, padding, bias, clip shape (N, C, T, H, W)
    (3, 16, 7, (1, 2, 2), 3, True, (2, 3, 16, 40, 40)),     # Hara et al.'s stem, m = 8
    (2, 8, 7, (1, 2, 2), 3, False, (3, 2, 8, 24, 20)),      # flow stem, one window of 8
    (3, 8, 7, (1, 2, 2), 3, True, (1, 3, 13, 17, 23)),      # 13 frames: padded windows
    (3, 8, 7, (1, 2, 2), 3, True, (2, 3, 4, 16, 16)),       # m = 4
    (3, 8, (3, 7, 7), (1, 2, 2), (1, 3, 3), True, (2, 3, 16, 20, 20)),
    (3, 8, (5, 3, 3), (1, 1, 1), (0, 1, 1), False, (2, 3, 11, 9, 9)),  # no time padding
    (3, 8, (7, 5, 5), (1, 2, 1), (3, 2, 0), True, (1, 3, 10, 15, 14)),  # uneven strides
    (3, 8, (6, 3, 3), (1, 1, 1), (2, 1, 1), False, (2, 3, 16, 9, 9)),  # even: no F(8, 6)
]


@pytest.mark.parametrize("cin,cout,kernel,stride,padding,bias,shape", CASES)
def test_the_stem_equals_the_direct_convolution(cin, cout, kernel, stride, padding, bias, shape):
    torch.manual_seed(0)
    conv = nn.Conv3d(cin, cout, kernel, stride, padding, bias=bias).eval()
    fast = TemporalWinogradConv3d(conv)
    x = torch.rand(shape) * 255 - 120  # the range of mean-subtracted pixels
    with torch.inference_mode():
        want = reference(conv, x)
        got = fast(x)
        cl = fast(x.contiguous(memory_format=torch.channels_last_3d))
    assert fast.window(want.shape[2]) is not None  # the transform ran, not the fallback
    assert got.shape == want.shape and got.dtype == torch.float32
    scale = want.abs().max()
    assert (got.double() - want).abs().max() / scale < 2e-4
    assert torch.equal(cl, got)


def test_clips_are_cut_into_chunks_without_changing_the_result(monkeypatch):
    conv = nn.Conv3d(3, 8, 7, (1, 2, 2), 3).eval()
    fast = TemporalWinogradConv3d(conv)
    x = torch.randn(5, 3, 8, 16, 16) * 50
    with torch.inference_mode():
        whole = fast(x)
        monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one clip at a time
        assert torch.equal(fast(x), whole)


def test_the_window_needs_the_fewest_2d_convolutions_and_short_clips_run_directly():
    fast = TemporalWinogradConv3d(nn.Conv3d(3, 4, 7, (1, 2, 2), 3))
    # 2D convolutions: m = 8: windows * 14; m = 4: windows * 10; m = 2: windows * 8
    assert fast.window(16) == 8 and fast.window(8) == 8 and fast.window(4) == 4
    assert fast.window(12) == 8  # 2 * 14 = 28 (4 frames wasted) against 3 * 10 = 30
    assert fast.window(2) == 2 and fast.window(1) is None
    conv = nn.Conv3d(3, 4, 7, (1, 2, 2), 3).eval()
    x = torch.randn(1, 3, 1, 16, 16)  # one output frame: the direct convolution
    with torch.inference_mode():
        assert torch.equal(TemporalWinogradConv3d(conv)(x), conv(x))


def test_only_stride_1_in_time_one_group_and_narrow_inputs_are_replaced():
    assert not TemporalWinogradConv3d.applies(nn.Conv3d(3, 4, 7, (2, 2, 2), 3))
    assert not TemporalWinogradConv3d.applies(nn.Conv3d(4, 4, 3, groups=2))
    assert not TemporalWinogradConv3d.applies(nn.Conv3d(3, 4, (9, 3, 3)))
    assert not TemporalWinogradConv3d.applies(nn.Conv3d(3, 4, 3, dilation=2))
    with pytest.raises(ValueError, match="stride-1-in-time"):
        TemporalWinogradConv3d(nn.Conv3d(3, 4, 7, 2))
    net = winograd_stems(create_model("resnext50", 4, width=0.125).eval())
    kinds = [type(m) for m in net.modules() if isinstance(m, (nn.Conv3d, TemporalWinogradConv3d))]
    assert isinstance(net.conv1, TemporalWinogradConv3d)
    assert kinds.count(TemporalWinogradConv3d) == 1  # the blocks' 3x3x3 convolutions stay


def test_fast_network_logits_with_the_stem_match_the_plain_network():
    torch.manual_seed(0)
    net = create_model("resnext50", 5, width=0.125).eval()
    x = torch.rand(2, 3, 16, 48, 48) * 255 - 120
    fast = fast_network(net)
    assert isinstance(fast.net.conv1, TemporalWinogradConv3d)
    with torch.inference_mode():
        want, got = net(x), fast(x)
    assert (got - want).abs().max() <= 1e-3 * max(1.0, want.abs().max().item())
