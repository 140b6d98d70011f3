"""The stem convolution by a Winograd transform along time (inference, CPU).

A 3D network's stem (7x7x7 in Hara et al.'s ResNets, temporal stride 1) is a third of
ResNeXt-101's inference time on the CPU, and oneDNN already runs it near the core's peak.
Fewer multiplications are the only way to make it faster. Along time the stem is a
stride-1 correlation, so the minimal filtering algorithm F(m, r) of Winograd (the one
Lavin & Gray use in 2D) applies to that axis alone: ``m`` output frames of an ``r``-tap
kernel from ``m + r - 1`` products instead of ``m * r``. Each "product" is a 2D
convolution of a transformed frame with a transformed kernel slice.

- input transform: ``V = B^T d`` over each window of ``m + r - 1`` frames (a 3D
  convolution with an (n, 1, 1) kernel and temporal stride m);
- ``n`` 2D convolutions (one grouped call), each with its own kernel ``U_i = (G g)_i``;
- output transform: ``y = A^T M`` (a small matrix product per window).

For the 7-tap stem of a 16-frame clip, m = 8 gives 14 2D convolutions per 8 frames instead
of 56: 4x fewer multiply-adds. The result is the same convolution up to float rounding
(about 1e-4 of the output's scale for m = 8, 1e-5 for m = 4; the transforms are built in
float64). Measured gain and error:
docs/evaluation.md, *Fast inference*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Interpolation points (besides infinity). Small, symmetric points keep the transforms'
# entries, and so the rounding error, small: F(4, r) uses a prefix of POINTS; F(8, 7) uses
# POINTS_13, which a search over simple fractions found 2.5x more accurate than the prefix
# (1.6e-5 against 4e-5 of the output's scale in float32 on random data).
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1.5, -1.5, 3.0, -3.0)
POINTS_13 = (0.0,) + tuple(s * v for v in (0.25, 2 / 3, 0.75, 4 / 3, 1.5, 3.0) for s in (1, -1))
WINDOWS = (2, 4, 8)  # m: output frames per window, chosen per clip length
MAX_TAPS = 7  # F(8, 7) is the largest transform whose rounding error was measured
CHUNK_BYTES = 128 * 2**20  # at most this much of the 2D convolutions' output at once


def has_points(count: int) -> bool:
    """Whether :func:`points` defines ``count`` interpolation points."""
    return count <= len(POINTS) or count == len(POINTS_13)


def points(count: int) -> tuple[float, ...]:
    """The ``count`` finite interpolation points used for a transform of that size."""
    if not has_points(count):
        raise ValueError(f"no interpolation points are defined for {count} points")
    return POINTS_13 if count == len(POINTS_13) else POINTS[:count]


def winograd_matrices(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A^T, G, B^T)`` of F(m, r) in float64, with :func:`points` and infinity,
    such that ``y = A^T ((G g) * (B^T d))`` is the correlation ``y_i = sum_k g_k d_(i+k)``
    of an r-tap kernel g with m + r - 1 inputs d.

    A^T and G are the Vandermonde forms of Toom-Cook; B^T is solved for from the identity
    itself (a linear system that is exactly determined for distinct points)."""
    n = m + r - 1
    pts = torch.tensor(points(n - 1), dtype=torch.float64)
    at = torch.zeros(m, n, dtype=torch.float64)
    g = torch.zeros(n, r, dtype=torch.float64)
    for j, a in enumerate(pts):
        others = torch.cat([pts[:j], pts[j + 1:]])
        f = torch.prod(a - others)
        at[:, j] = a ** torch.arange(m, dtype=torch.float64)
        g[j] = a ** torch.arange(r, dtype=torch.float64) / f
    at[m - 1, n - 1] = 1.0
    g[n - 1, r - 1] = 1.0
    # sum_l AT[i,l] G[l,k] BT[l,j] = [j == i + k] for all i, k, j: one equation per
    # (i, k, j), unknowns BT[l, j]; for fixed j the system is (AT*G)[(i,k), l] @ BT[:, j].
    coef = (at[:, None, :] * g.T[None, :, :]).reshape(m * r, n)  # [(i,k), l]
    target = torch.zeros(m * r, n, dtype=torch.float64)
    for i in range(m):
        for k in range(r):
            target[i * r + k, i + k] = 1.0
    bt = torch.linalg.lstsq(coef, target).solution
    if (coef @ bt - target).abs().max() > 1e-9:  # cannot happen for distinct points
        raise ValueError(f"F({m}, {r}): the transforms do not satisfy the identity")
    return at, g, bt


class TemporalWinogradConv3d(nn.Module):
    """An eval-mode replacement of a Conv3d with temporal stride 1: the same outputs,
    computed by F(m, kt) along time (see the module docstring), with the window ``m`` in
    ``WINDOWS`` that needs the fewest 2D convolutions for the clip's length.

    Only float32 CPU clips take that path; others (CUDA, other dtypes, clips too short to
    gain) run the original convolution, which the module keeps.
    """

    def __init__(self, conv: nn.Conv3d):
        super().__init__()
        if not self.applies(conv):
            raise ValueError(f"not a stride-1-in-time, one-group, undilated Conv3d: {conv}")
        self.conv = conv
        self.taps = conv.kernel_size[0]
        # the windows whose transforms have points (F(8, 6) has none)
        self.window_sizes = tuple(m for m in WINDOWS if has_points(m + self.taps - 2))
        for m in self.window_sizes:
            u, bk, at = self._transforms(conv, m)
            self.register_buffer(f"u{m}", u)
            self.register_buffer(f"bk{m}", bk)
            self.register_buffer(f"at{m}", at)

    @staticmethod
    def _transforms(conv: nn.Conv3d, m: int) -> tuple[torch.Tensor, ...]:
        out_ch, in_ch, kt, kh, kw = conv.weight.shape
        n = m + kt - 1
        at, g, bt = winograd_matrices(m, kt)
        weight = conv.weight.detach().double()
        u = torch.einsum("ik,ockhw->iochw", g, weight).reshape(n * out_ch, in_ch, 1, kh, kw)
        # the input transform as a 3D convolution: output channel i*C + c reads channel c
        bk = torch.zeros(n * in_ch, in_ch, n, 1, 1, dtype=torch.float64)
        for c in range(in_ch):
            bk[c::in_ch, c, :, 0, 0] = bt
        # 5-D (u has a unit time axis) so that Module.to(memory_format=...) accepts them
        cl, dtype = torch.channels_last_3d, conv.weight.dtype
        return (u.to(dtype).contiguous(memory_format=cl),
                bk.to(dtype).contiguous(memory_format=cl), at.to(dtype))

    @staticmethod
    def applies(module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv3d) and module.stride[0] == 1
                and module.dilation == (1, 1, 1) and module.groups == 1
                and 2 <= module.kernel_size[0] <= MAX_TAPS and module.padding_mode == "zeros"
                and isinstance(module.padding, tuple))

    def window(self, out_len: int) -> int | None:
        """The window for ``out_len`` output frames, or None where the direct convolution
        needs at most 4/3 as many 2D convolutions (the transforms are not free)."""
        cost = {m: -(-out_len // m) * (m + self.taps - 1) for m in self.window_sizes}
        best = min(self.window_sizes, key=lambda m: (cost[m], m))
        return best if 4 * cost[best] < 3 * out_len * self.taps else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        pt = conv.padding[0]  # type: ignore[index]
        out_len = x.shape[2] + 2 * pt - self.taps + 1
        m = self.window(out_len) if out_len > 0 else None
        if x.device.type != "cpu" or x.dtype != self.conv.weight.dtype or m is None:
            return conv(x)
        n = m + self.taps - 1
        windows = -(-out_len // m)
        h, w = ((size + 2 * p - k) // s + 1 for size, p, k, s in
                zip(x.shape[3:], conv.padding[1:], conv.kernel_size[1:], conv.stride[1:]))  # type: ignore[index]
        per_clip = windows * n * conv.out_channels * h * w * x.element_size()
        chunk = max(1, CHUNK_BYTES // per_clip)
        y = torch.empty(x.shape[0], windows * m, h, w, conv.out_channels, dtype=x.dtype,
                        device=x.device)
        for lo in range(0, x.shape[0], chunk):
            self._windows(x[lo:lo + chunk], m, n, windows, y[lo:lo + chunk])
        if conv.bias is not None:
            y.add_(conv.bias)
        return y[:, :out_len].permute(0, 4, 1, 2, 3)

    def _windows(self, x: torch.Tensor, m: int, n: int, windows: int,
                 out: torch.Tensor) -> None:
        """The convolution of clips ``x`` into ``out`` (N, windows * m, h, w, O)."""
        conv = self.conv
        u, bk, at = getattr(self, f"u{m}"), getattr(self, f"bk{m}"), getattr(self, f"at{m}")
        batch, _, length, height, width = x.shape
        pt = conv.padding[0]  # type: ignore[index]
        # frames in: windows * m + taps - 1, with the convolution's zeros around the clip
        back = windows * m + self.taps - 1 - length - pt
        xp = F.pad(x, (0, 0, 0, 0, pt, back)).contiguous(memory_format=torch.channels_last_3d)
        v = F.conv3d(xp, bk, None, stride=(m, 1, 1))  # N, n*C, windows, H, W
        v = v.permute(0, 2, 1, 3, 4).reshape(batch * windows, -1, height, width)
        prod = F.conv2d(v, u.squeeze(2), None, conv.stride[1:], conv.padding[1:],  # type: ignore[index]
                        1, n).contiguous(memory_format=torch.channels_last)  # NP, n*O, h, w
        per = prod.permute(0, 2, 3, 1).reshape(batch * windows, -1, n, conv.out_channels)
        flat = out.view(batch * windows, m, -1)
        for k in range(batch * windows):  # one window at a time: in cache
            torch.mm(at, per[k].transpose(0, 1).reshape(n, -1), out=flat[k])


def is_stem(module: nn.Module, max_in_channels: int = 4) -> bool:
    """Whether ``module`` is a stem (of an RGB or flow network: at most ``max_in_channels``
    inputs, a temporal kernel of 3 or more) that :class:`TemporalWinogradConv3d` applies to."""
    return (TemporalWinogradConv3d.applies(module) and module.in_channels <= max_in_channels
            and module.kernel_size[0] >= 3)
