"""Dual TV-L1 optical flow in PyTorch, batched over frame pairs, on CPU or CUDA.

The algorithm of Zach, Pock and Bischof as described by Sánchez Pérez et al. (IPOL 2013),
following the choices of OpenCV's ``DualTVL1OpticalFlow`` so that the flow matches the
MARS teacher's: images on a 0-255 scale without pre-smoothing; a pyramid made by bilinear
resizing by ``scale_step`` that stops before a side drops under 16 px; at each scale
``warps`` warps of the second image and its centred gradient with bicubic interpolation
(zero outside the image); per warp at most ``outer_iterations`` x ``inner_iterations``
primal-dual steps, a median filter of the flow before each outer iteration, and a stop
when the summed squared change of the flow falls to ``epsilon**2 * H * W``. Each pair of a
batch stops on its own (a converged pair leaves the batch), so a pair's flow does not
depend on the others in its batch. ``gamma`` (illumination term) is not implemented: it must be 0.
Differences to OpenCV are listed in docs/flow.md ("tvl1-torch").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

_MIN_SIDE = 16  # OpenCV stops building the pyramid before a side gets smaller than this
_FLT_EPSILON = 1.1920929e-07  # float32 machine epsilon: OpenCV's test for a flat image


@dataclass(frozen=True)
class TVL1Options:
    """OpenCV's DualTVL1 parameters (defaults are OpenCV's; ``lambda_`` is ``lambda``)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TVL1Options:
        """From flowless' parameter names (``lambda``, ``inner_iterations``, ...)."""
        names = {f.name for f in fields(cls)}
        return cls(**{("lambda_" if k == "lambda" else k): v for k, v in params.items()
                      if k in names or k == "lambda"})


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) is CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TorchTVL1:
    """A reusable tvl1-torch flow object on one device: uint8 batches in, pixels out."""

    def __init__(self, params: dict[str, Any] | None = None,
                 device: str | torch.device | None = "auto"):
        self.options = TVL1Options.from_params(params or {})
        self.device = pick_device(device)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow of N grey pairs (N, H, W) uint8: float32 (N, 2, H, W) px (x, then y)."""
        with torch.inference_mode():
            a = torch.from_numpy(np.ascontiguousarray(first)).to(self.device)
            b = torch.from_numpy(np.ascontiguousarray(second)).to(self.device)
            return tvl1_flow(a, b, self.options).cpu().numpy()


def tvl1_flow(first: torch.Tensor, second: torch.Tensor,
              options: TVL1Options = TVL1Options()) -> torch.Tensor:
    """Flow from ``first`` to ``second`` (N, H, W), grey levels 0-255: (N, 2, H, W) px."""
    if first.shape != second.shape or first.dim() != 3:
        raise ValueError(f"expected two (N, H, W) batches, got {tuple(first.shape)} and "
                         f"{tuple(second.shape)}")
    if options.gamma != 0:
        raise ValueError("tvl1-torch implements gamma = 0 only (OpenCV's default)")
    i0 = [first.float().unsqueeze(1)]
    i1 = [second.float().unsqueeze(1)]
    for _ in range(1, options.nscales):
        h, w = i0[-1].shape[-2:]
        size = (round(h * options.scale_step), round(w * options.scale_step))
        if min(size) < _MIN_SIDE:
            break
        i0.append(_shrink(i0[-1], size, options.scale_step))
        i1.append(_shrink(i1[-1], size, options.scale_step))
    u = first.new_zeros((len(first), 2, *i0[-1].shape[-2:]), dtype=torch.float32)
    for level in range(len(i0) - 1, -1, -1):
        u = _one_scale(i0[level], i1[level], u, options)
        if level:
            u = F.interpolate(u, size=i0[level - 1].shape[-2:], mode="bilinear",
                              align_corners=False) / options.scale_step
    return u


def _shrink(img: torch.Tensor, size: tuple[int, int], step: float) -> torch.Tensor:
    """Bilinear resize by exactly ``step`` (as cv2.resize with fx=fy=step), edge replicated."""
    h, w = img.shape[-2:]
    ys = (torch.arange(size[0], device=img.device, dtype=torch.float64) + 0.5) / step - 0.5
    xs = (torch.arange(size[1], device=img.device, dtype=torch.float64) + 0.5) / step - 0.5
    gy, gx = torch.meshgrid(2 * ys / (h - 1) - 1, 2 * xs / (w - 1) - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1).float().expand(img.shape[0], -1, -1, -1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _centred_gradient(img: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 2, H, W): half the central difference, one-sided at the edges."""
    pad = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2])
    gy = 0.5 * (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1])
    return torch.cat([gx, gy], 1)


def _warp(img: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (N, C, H, W) at x + u bicubically; taps outside the image are 0."""
    n, _, h, w = u.shape
    ys = torch.arange(h, device=u.device, dtype=u.dtype).view(1, h, 1)
    xs = torch.arange(w, device=u.device, dtype=u.dtype).view(1, 1, w)
    x = (xs + u[:, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + u[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([x, y], -1)
    return F.grid_sample(img, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def median_filter(u: torch.Tensor, size: int) -> torch.Tensor:
    """Median of each channel of (N, C, H, W) over ``size`` x ``size`` windows, edges
    replicated (as cv2.medianBlur). Exact either way: a sort of the windows on CUDA, a
    min/max selection network on the CPU (10x faster there)."""
    h, w = u.shape[-2:]
    r = size // 2
    pad = F.pad(u, (r, r, r, r), mode="replicate")
    return (_median_sort if u.is_cuda else _median_network)(pad, size, h, w)


def _median_sort(pad: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    n, c = pad.shape[:2]
    windows = F.unfold(pad.reshape(n * c, 1, h + size - 1, w + size - 1), size)
    return windows.median(dim=1).values.view(n, c, h, w)


def _median_network(pad: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """Min/max network exploiting the overlap of neighbouring windows: columns of ``size``
    pixels are sorted once, neighbouring sorted columns merged in pairs once; a window
    merges its pairs and takes the median with its last column. 90 operations for 5 x 5."""
    n, c = pad.shape[:2]
    r, t = size // 2, size * size // 2  # t: the median's rank
    plans = _median_plans(size)
    column: list[torch.Tensor | None] = [pad[..., i:i + h, :].reshape(n, c, -1)
                                         for i in range(size)]
    column += [None] * (_pow2(size) - size)
    _run_plan(plans["column"], column)
    cols = [column[i] for i in plans["column_slots"]]
    # Windows as shifts along the flattened rows: every operand stays contiguous.
    length = h * (w + 2 * r) - 2 * r
    pair = _group_wires([[x[..., :-1] for x in cols], [x[..., 1:] for x in cols]], _pow2(size))
    _run_plan(plans["pair"], pair)
    pairs = [pair[i] for i in plans["pair_slots"]]
    if r == 1:
        merged = {t - size + j: pairs[j] for j in range(len(pairs))}
    else:
        blocks = _group_wires([[x[..., 2 * j:2 * j + length] for x in pairs] for j in range(r)],
                              _pow2(2 * size))
        _run_plan(plans["blocks"], blocks)
        merged = {t - size + j: blocks[i] for j, i in enumerate(plans["blocks_slots"])}
    # The t-th of (merged pairs) and (last column, sorted): min over i of max(P[t-i], Q[i-1]).
    last = [x[..., size - 1:size - 1 + length] for x in cols]
    median = merged[t][..., :length]
    for i in range(1, size + 1):
        median = torch.minimum(median, torch.maximum(merged[t - i][..., :length], last[i - 1]))
    return F.pad(median, (0, 2 * r)).view(n, c, h, w + 2 * r)[..., :w].contiguous()


def _group_wires(groups: list[list[torch.Tensor]], run: int) -> list[torch.Tensor | None]:
    """Lay sorted groups out as a network's wires: ``run`` wires per group (missing = +inf),
    a power of 2 of groups."""
    wires: list[torch.Tensor | None] = [None] * (_pow2(len(groups)) * run)
    for g, group in enumerate(groups):
        wires[g * run:g * run + len(group)] = group
    return wires


def _run_plan(plan: list[tuple[int, int, bool, bool]], w: list) -> None:
    for a, b, lo, hi in plan:
        x, y = w[a], w[b]
        if lo:
            w[a] = torch.minimum(x, y)
        if hi:
            w[b] = torch.maximum(x, y)


def _pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def _batcher(n: int, run: int = 1) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort comparators for ``n`` (a power of 2) wires whose
    consecutive runs of ``run`` wires are already sorted."""
    pairs, p = [], run
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _compile(pairs: list[tuple[int, int]], n: int, real: set[int], targets: list[int]
             ) -> tuple[list[tuple[int, int, bool, bool]], list[int]]:
    """Drop comparators with a missing (+inf) input and those no target depends on; keep
    only the min or max side that is used. Returns the steps and the targets' slots."""
    slot, inf, steps = list(range(n)), [i not in real for i in range(n)], []
    for a, b in pairs:
        if inf[b]:
            continue
        if inf[a]:  # min(inf, x) = x: just relabel
            slot[a], slot[b], inf[a], inf[b] = slot[b], slot[a], False, True
            continue
        steps.append((slot[a], slot[b]))
    need, kept = {slot[t] for t in targets}, []
    for a, b in reversed(steps):
        if a in need or b in need:
            kept.append((a, b, a in need, b in need))
            need |= {a, b}
    return kept[::-1], [slot[t] for t in targets]


@functools.lru_cache(maxsize=4)
def _median_plans(size: int) -> dict[str, Any]:
    """The comparator plans of :func:`_median_network` for an odd ``size`` (3 or 5)."""
    r, t = size // 2, size * size // 2
    col_run, pair_run = _pow2(size), _pow2(2 * size)
    plans: dict[str, Any] = {}
    plans["column"], plans["column_slots"] = _compile(
        _batcher(col_run), col_run, set(range(size)), list(range(size)))
    pair_targets = list(range(2 * size)) if r > 1 else list(range(t - size, t + 1))
    plans["pair"], plans["pair_slots"] = _compile(
        _batcher(2 * col_run, col_run), 2 * col_run,
        set(range(size)) | set(range(col_run, col_run + size)), pair_targets)
    if r > 1:
        n = _pow2(r) * pair_run
        real = {g * pair_run + i for g in range(r) for i in range(2 * size)}
        plans["blocks"], plans["blocks_slots"] = _compile(
            _batcher(n, pair_run), n, real, list(range(t - size, t + 1)))
    return plans


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor,
               o: TVL1Options) -> torch.Tensor:
    """Refine the flow ``u`` (N, 2, H, W) at one pyramid level."""
    n, _, h, w = u.shape
    i1_and_grad = torch.cat([i1, _centred_gradient(i1)], 1)
    q = u.new_zeros((n, 2, 2, h, w))  # theta x dual variables (x/y component, of u_x/u_y)
    for _ in range(o.warps):
        warped = _warp(i1_and_grad, u)
        _solve_warp(i0, warped, u, q, o)
    return u


def _solve_warp(i0: torch.Tensor, warped: torch.Tensor, u: torch.Tensor, q: torch.Tensor,
                o: TVL1Options) -> None:
    """Iterate on the linearisation at the current ``u``; updates ``u`` and ``q`` in place.

    A pair whose flow changed by at most ``epsilon**2 * H * W`` (summed squares) stops;
    the others go on in a smaller batch, as if each pair were solved alone.
    """
    n, _, h, w = u.shape
    stop = o.epsilon * o.epsilon * h * w
    l_t, taut = o.lambda_ * o.theta, o.tau / o.theta
    grad_i = warped[:, 1:].contiguous()  # gradient of I1 at x + u0
    grad2 = (grad_i * grad_i).sum(1, keepdim=True)
    rho_c = warped[:, :1] - (grad_i * u).sum(1, keepdim=True) - i0
    # Where |grad|^2 <= FLT_EPSILON OpenCV moves by 0 or +-lambda*theta*grad (< 2e-5 px);
    # dividing by the clamped |grad|^2 instead differs from that by less than 2e-5 px.
    neg_inv_grad2 = -1.0 / grad2.clamp_min(_FLT_EPSILON)
    idx = torch.arange(n, device=u.device)
    state = [u.clone(), q.clone(), grad_i, rho_c, neg_inv_grad2]
    g = u.new_zeros((n, 2, 2, h, w))  # forward differences of u; last column/row stay 0
    for _ in range(o.outer_iterations):
        if o.median_filtering > 1:
            state[0] = median_filter(state[0], o.median_filtering)
        for _ in range(o.inner_iterations):
            change = _step(*state, g, l_t, o.theta, taut)
            done = change <= stop
            if bool(done.any()):
                u[idx[done]], q[idx[done]] = state[0][done], state[1][done]
                keep = ~done
                if not bool(keep.any()):
                    return
                idx, state, g = idx[keep], [t[keep] for t in state], g[keep]
    u[idx], q[idx] = state[0], state[1]


def _step(u: torch.Tensor, q: torch.Tensor, grad_i: torch.Tensor, rho_c: torch.Tensor,
          neg_inv_grad2: torch.Tensor, g: torch.Tensor, l_t: float, theta: float, taut: float
          ) -> torch.Tensor:
    """One primal-dual iteration in place on ``u`` and ``q`` (theta times the dual
    variable); returns the summed squared change of ``u`` per pair, in float64 so that it
    does not depend on how the batch is laid out."""
    rho = torch.addcmul(rho_c, grad_i[:, :1], u[:, :1]).addcmul_(grad_i[:, 1:], u[:, 1:])
    # Thresholding: move by -rho/|grad I|^2 along grad I, at most lambda*theta.
    coef = rho.mul_(neg_inv_grad2).clamp_(-l_t, l_t)
    div = q[:, 0] + q[:, 1]  # backward-difference divergence, zero outside the image
    div[..., 1:] -= q[:, 0, :, :, :-1]
    div[..., 1:, :] -= q[:, 1, :, :-1, :]
    delta = div.addcmul_(coef, grad_i)
    change = (delta * delta).sum((1, 2, 3), dtype=torch.float64)
    u += delta
    torch.sub(u[..., 1:], u[..., :-1], out=g[:, 0, :, :, :-1])
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=g[:, 1, :, :-1, :])
    # Dual projection p <- (p + tau/theta grad u) / (1 + tau/theta |grad u|), on q = theta p.
    norm = (g[:, 0] * g[:, 0]).addcmul_(g[:, 1], g[:, 1]).sqrt_().mul_(taut).add_(1.0)
    q.add_(g, alpha=theta * taut).div_(norm.unsqueeze(1))
    return change
