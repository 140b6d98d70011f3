"""The stem convolution with a faster weight gradient on the CPU.

A 3D network's first convolution sees 2-3 input channels through a large kernel (7x7x7 in
Hara et al.'s ResNets). oneDNN computes its weight gradient about 4x slower than its
forward pass on the CPU when the stem is narrow (16 output channels at width 0.25): for the
demo's ResNet-10 it was half of every training step.
:class:`StemConv3d` is an ``nn.Conv3d`` (same parameters, state dict and forward) whose
backward on the CPU folds the temporal taps into channels: with the input unfolded along
time, the weight gradient is that of a 2D convolution over ``C * kt`` channels, which oneDNN
computes 3x faster. The gradient is the same sum in another order (float rounding differs,
about 1e-6 relative); on CUDA, under autocast and outside training nothing changes.
Measured: ``benchmarks/models.py`` and docs/models.md, *The stem's weight gradient on the CPU*.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# at most this many bytes of time-unfolded input at once (clips are processed in chunks)
FOLD_BYTES = 256 * 2**20


def folded_weight_grad(x: torch.Tensor, grad: torch.Tensor, weight: torch.Tensor,
                       stride: tuple[int, ...], padding: tuple[int, ...]) -> torch.Tensor:
    """d loss / d weight of ``conv3d(x, weight, stride, padding)`` (one group, no dilation)
    given ``grad`` = d loss / d output, as the weight gradient of a 2D convolution over the
    time-unfolded input (channel ``c * kt + t`` holds input channel c at temporal tap t)."""
    out_ch, in_ch, kt, kh, kw = weight.shape
    st, pt = stride[0], padding[0]
    n, _, _, h, w = x.shape
    w2d = weight.reshape(out_ch, in_ch * kt, kh, kw)
    per_clip = x[0].numel() * kt * x.element_size()
    chunk = max(1, FOLD_BYTES // max(1, per_clip))
    total = torch.zeros_like(w2d)
    for lo in range(0, n, chunk):
        xs = F.pad(x[lo:lo + chunk], (0, 0, 0, 0, pt, pt)).unfold(2, kt, st)  # N,C,To,H,W,kt
        cols = xs.permute(0, 2, 1, 5, 3, 4).reshape(-1, in_ch * kt, h, w)
        g = grad[lo:lo + chunk].transpose(1, 2)
        g = g.reshape(-1, out_ch, g.shape[-2], g.shape[-1])
        total += torch.ops.aten.convolution_backward(
            g, cols, w2d, None, list(stride[1:]), list(padding[1:]), [1, 1], False, [0, 0], 1,
            [False, True, False])[1]
    return total.reshape(weight.shape)


class _StemConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, ...], padding: tuple[int, ...]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv3d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1, 1], False,
                [0, 0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = folded_weight_grad(x, grad, weight, ctx.stride, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None, None


class StemConv3d(nn.Conv3d):
    """``nn.Conv3d`` whose weight gradient on the CPU is computed by
    :func:`folded_weight_grad` (one group, no dilation, zero padding, float32) when it has at
    most :attr:`FOLD_MAX_OUT` output channels: the narrow stems of reduced-width networks,
    where oneDNN is slow. At 32 and 64 output channels (full-width ResNets) oneDNN's own
    weight gradient is as fast or faster, and the plain convolution runs."""

    FOLD_MAX_OUT = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and self.weight.requires_grad and x.device.type == "cpu"
                and self.out_channels <= self.FOLD_MAX_OUT
                and x.dtype == self.weight.dtype == torch.float32
                and not torch.is_autocast_enabled("cpu") and self.groups == 1
                and self.dilation == (1, 1, 1) and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple)):
            return _StemConv.apply(x, self.weight, self.bias, self.stride, self.padding)
        return super().forward(x)
