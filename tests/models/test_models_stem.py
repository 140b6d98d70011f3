"""StemConv3d: the same forward and gradients as nn.Conv3d, its weight gradient computed
over the time-unfolded input on the CPU."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import flowless.models.stem as stem
from flowless.models import create_model
from flowless.models.stem import StemConv3d


@pytest.mark.parametrize("cin,kernel,stride,padding,bias,shape", [
    (3, (7, 7, 7), (1, 2, 2), (3, 3, 3), False, (2, 3, 9, 20, 17)),   # the resnet stem
    (2, (3, 7, 7), (2, 2, 2), (1, 3, 3), True, (3, 2, 8, 16, 16)),    # temporal stride, bias
    (3, (5, 3, 3), (1, 1, 1), (0, 1, 1), True, (1, 3, 7, 9, 11)),     # no temporal padding
])
def test_gradients_match_the_plain_convolution(cin, kernel, stride, padding, bias, shape,
                                               monkeypatch):
    torch.manual_seed(0)
    mine = StemConv3d(cin, 4, kernel, stride=stride, padding=padding, bias=bias)
    plain = nn.Conv3d(cin, 4, kernel, stride=stride, padding=padding, bias=bias)
    plain.load_state_dict(mine.state_dict())
    for chunk_bytes in (stem.FOLD_BYTES, 1):  # all clips at once, and one clip per chunk
        monkeypatch.setattr(stem, "FOLD_BYTES", chunk_bytes)
        for needs_input_grad in (False, True):
            x = torch.randn(shape)
            xa, xb = x.clone().requires_grad_(needs_input_grad), x.clone().requires_grad_(
                needs_input_grad)
            ya, yb = mine(xa), plain(xb)
            assert torch.equal(ya, yb)  # the forward is the convolution itself
            g = torch.randn_like(ya)
            ya.backward(g)
            yb.backward(g)
            torch.testing.assert_close(mine.weight.grad, plain.weight.grad, rtol=1e-4,
                                       atol=1e-4)
            assert mine.weight.grad.abs().max() > 1.0  # the check means something
            if bias:
                torch.testing.assert_close(mine.bias.grad, plain.bias.grad)
            if needs_input_grad:
                torch.testing.assert_close(xa.grad, xb.grad)
            mine.zero_grad()
            plain.zero_grad()


def test_the_networks_use_it_and_keep_their_parameter_names():
    net = create_model("resnet10", 5, in_channels=2, width=0.25)
    assert type(net.conv1) is StemConv3d and isinstance(net.conv1, nn.Conv3d)
    assert "conv1.weight" in net.state_dict()
    x = torch.randn(2, 2, 8, 32, 32)
    with torch.no_grad():  # inference takes the plain path (ONNX export traces it)
        torch.testing.assert_close(net.eval()(x), net(x))


def test_wide_stems_keep_onednn_s_gradient(monkeypatch):
    """Folding wins for narrow stems only (docs/models.md): a 64-channel stem runs the plain
    convolution, a 16-channel one the folded gradient."""
    calls = []
    real = stem._StemConv.apply
    monkeypatch.setattr(stem._StemConv, "apply", lambda *a: calls.append(a[1].shape) or real(*a))
    for out in (64, 16):
        conv = StemConv3d(3, out, 7, stride=(1, 2, 2), padding=3, bias=False)
        conv(torch.randn(1, 3, 4, 16, 16)).sum().backward()
        assert conv.weight.grad is not None
    assert [c[0] for c in calls] == [16]


def test_the_weight_gradient_by_hand():
    """A 1-channel, 1x1x1-output case computed independently: d(sum w*x)/dw = x."""
    conv = StemConv3d(1, 1, (3, 3, 3), stride=(1, 1, 1), padding=(0, 0, 0), bias=False)
    x = torch.arange(27, dtype=torch.float32).reshape(1, 1, 3, 3, 3)
    conv(x).sum().backward()
    assert torch.equal(conv.weight.grad, x)
    assert F.conv3d(x, conv.weight).shape == (1, 1, 1, 1, 1)
