"""Inference-only rewrites of a trained network: the same logits for less work.

Each function returns a new network and leaves the one it is given untouched, so training
code that holds the plain network (the distillation teacher's taps, fusion training) never
sees a rewritten one. Measured gains: docs/evaluation.md, *Fast inference*.

- :func:`fold_batchnorm`: each eval-mode BatchNorm3d that directly follows a Conv3d is
  folded into that convolution's weight and bias (exact up to float rounding).
- :func:`pointwise_as_linear`: each 1x1x1 stride-1 convolution (two of the three in a
  bottleneck) run as a matrix product over the channels.
- :func:`channels_last`: weights and clips in NDHWC (``torch.channels_last_3d``), the
  layout oneDNN (CPU) and cuDNN convolve without reordering at every layer, and in which
  the matrix products above need no copy.
- :func:`winograd_stems`: the stem by a Winograd transform along time (models/winograd.py).
- :func:`fast_network`: all four; the ``torch`` fast path of ``TorchStream.logits``.

:func:`reuse_freed_memory` is a process setting, not a rewrite: predict, evaluate and
benchmark call it unless the fast path is off.
"""

from __future__ import annotations

import copy
import ctypes
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from flowless.models.winograd import TemporalWinogradConv3d, is_stem


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d)
            and bn.track_running_stats and bn.running_mean is not None
            and bn.num_features == conv.out_channels)


def conv_bn_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """Child names ``(conv, bn)`` of ``parent`` where the BN normalises the conv's output:
    ``convK``/``bnK`` siblings (the stem and blocks of resnet3d, as in Hara et al.) and
    adjacent entries of a Sequential (the type-B shortcut)."""
    children = dict(parent.named_children())
    if isinstance(parent, nn.Sequential):
        names = list(children)
        candidates = list(zip(names, names[1:]))
    else:
        candidates = [(n, "bn" + n[4:]) for n in children if n.startswith("conv")]
    return [(c, b) for c, b in candidates
            if b in children and _foldable(children[c], children[b])]


@torch.no_grad()
def _fold(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> None:
    """Fold ``bn``'s eval statistics into ``conv`` in place (per-channel factors computed
    in float64, one float32 rounding of each weight)."""
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    bias = (bias - bn.running_mean.double()) * scale
    if bn.bias is not None:
        bias = bias + bn.bias.double()
    weight = conv.weight.detach()
    weight.mul_(scale.to(weight.dtype).view(-1, *([1] * (weight.dim() - 1))))
    conv.weight = nn.Parameter(weight, requires_grad=False)
    conv.bias = nn.Parameter(bias.to(weight.dtype), requires_grad=False)


def _fold_all(net: nn.Module) -> nn.Module:
    for parent in list(net.modules()):
        for conv_name, bn_name in conv_bn_pairs(parent):
            _fold(getattr(parent, conv_name), getattr(parent, bn_name))
            setattr(parent, bn_name, nn.Identity())
    return net


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in eval mode with every BatchNorm3d that follows a Conv3d
    (see :func:`conv_bn_pairs`) folded into the convolution and replaced by Identity."""
    return _fold_all(copy.deepcopy(module).eval())


class PointwiseLinear(nn.Module):
    """A 1x1x1 convolution (stride 1, one group) as one matrix product over the channels.

    On NDHWC clips the permutes are free views, so this is a single GEMM (MKL on the CPU),
    where PyTorch's convolution takes a slower path for 1x1x1 kernels (im2col with one
    thread, oneDNN reorders otherwise). Same arithmetic as the convolution.
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().flatten(1).clone(), requires_grad=False)
        bias = conv.bias
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                          requires_grad=False)

    @staticmethod
    def applies(module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv3d) and module.kernel_size == (1, 1, 1)
                and module.stride == (1, 1, 1) and module.padding == (0, 0, 0)
                and module.groups == 1 and module.padding_mode == "zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.permute(0, 2, 3, 4, 1), self.weight, self.bias)
        return y.permute(0, 4, 1, 2, 3)


def _replace(net: nn.Module, applies: Callable[[nn.Module], bool],
             make: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Replace, in place, each submodule of ``net`` that ``applies`` to with ``make(it)``."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if applies(child):
                setattr(parent, name, make(child))
    return net


def _pointwise_all(net: nn.Module) -> nn.Module:
    return _replace(net, PointwiseLinear.applies, PointwiseLinear)


def pointwise_as_linear(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with each 1x1x1 stride-1 Conv3d run as :class:`PointwiseLinear`."""
    return _pointwise_all(copy.deepcopy(module).eval())


class ChannelsLast(nn.Module):
    """Runs ``net`` (converted once) on clips in ``torch.channels_last_3d`` layout."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last_3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last_3d))


def channels_last(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that takes ordinary clips and runs in NDHWC layout."""
    return ChannelsLast(copy.deepcopy(module).eval())


def _winograd_all(net: nn.Module) -> nn.Module:
    return _replace(net, is_stem, TemporalWinogradConv3d)


def winograd_stems(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with each stem (:func:`~flowless.models.winograd.is_stem`) run
    by :class:`~flowless.models.winograd.TemporalWinogradConv3d`."""
    return _winograd_all(copy.deepcopy(module).eval())


def fast_network(module: nn.Module) -> nn.Module:
    """The ``torch`` fast path: a frozen copy with BN folded, 1x1x1 convolutions as GEMMs
    and the stem by a Winograd transform along time (models/winograd.py), run in
    channels_last_3d."""
    net = ChannelsLast(_winograd_all(_pointwise_all(_fold_all(copy.deepcopy(module).eval()))))
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


# glibc's mallopt parameters (malloc.h) and the memory kept for reuse.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
REUSE_BYTES = 1 << 30


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory (up to 1 GiB) for reuse instead of returning it to the
    system. Every batch allocates the same activations again; by default each large one is
    fresh memory that costs a page fault per 4 KiB (10-30 % of ResNeXt-101's time on the
    2-core VM; docs/evaluation.md). Process-wide; returns False (nothing done) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, REUSE_BYTES)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, REUSE_BYTES))
