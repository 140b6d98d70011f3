"""Optical flow backends: OpenCV's TV-L1 as in MARS, DIS and Farneback as fast options,
and ``tvl1-torch`` (the same TV-L1 in PyTorch, batched, on CPU or CUDA; flow/tvl1_torch.py).

A backend is created once and reused for every frame pair of a video (creating an
OpenCV TV-L1 object is costly). Every OpenCV parameter is exposed under a snake_case
name; presets are named parameter sets. Flow is computed on grayscale frames i -> i+1
and returned as float32 pixels (H, W, 2) = (dx, dy).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import cv2
import numpy as np

from flowless.errors import ConfigError, FlowError

BACKENDS = ("tvl1", "dis", "farneback", "tvl1-torch")

# OpenCV's DualTVL1 defaults (the MARS setting); names map to the create() keywords.
# Note the OpenCV keyword ``innnerIterations`` (three n) and ``lambda_``.
TVL1_DEFAULTS: dict[str, Any] = {
    "tau": 0.25,
    "lambda": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "inner_iterations": 30,
    "outer_iterations": 10,
    "scale_step": 0.8,
    "gamma": 0.0,
    "median_filtering": 5,
}
_TVL1_KEYWORDS = {
    "tau": "tau",
    "lambda": "lambda_",
    "theta": "theta",
    "nscales": "nscales",
    "warps": "warps",
    "epsilon": "epsilon",
    "inner_iterations": "innnerIterations",
    "outer_iterations": "outerIterations",
    "scale_step": "scaleStep",
    "gamma": "gamma",
    "median_filtering": "medianFiltering",
}

# DIS: a preset picks OpenCV's parameter set; the other keys (None = keep the preset's
# value) override it through the setters.
_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
DIS_DEFAULTS: dict[str, Any] = {
    "preset": "medium",
    "finest_scale": None,
    "patch_size": None,
    "patch_stride": None,
    "gradient_descent_iterations": None,
    "variational_refinement_iterations": None,
    "variational_refinement_alpha": None,
    "variational_refinement_delta": None,
    "variational_refinement_gamma": None,
    "use_mean_normalization": None,
    "use_spatial_propagation": None,
}
_DIS_TYPES = {
    "finest_scale": int,
    "patch_size": int,
    "patch_stride": int,
    "gradient_descent_iterations": int,
    "variational_refinement_iterations": int,
    "variational_refinement_alpha": float,
    "variational_refinement_delta": float,
    "variational_refinement_gamma": float,
    "use_mean_normalization": bool,
    "use_spatial_propagation": bool,
}

# Farneback: the parameters of OpenCV's sample/tutorial (no library defaults exist).
FARNEBACK_DEFAULTS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "gaussian": False,
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "tvl1": TVL1_DEFAULTS,
    "dis": DIS_DEFAULTS,
    "farneback": FARNEBACK_DEFAULTS,
    "tvl1-torch": TVL1_DEFAULTS,  # the same names, defaults and presets as tvl1
}

# Named parameter sets. tvl1 "fast" stops the inner solver earlier (epsilon 0.05 instead of
# 0.01) with 3 warps: about 5x faster, EPE within ~0.02 px on smooth motion (benchmarks/flow.py).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tvl1": {"default": {}, "fast": {"warps": 3, "epsilon": 0.05}},
    "dis": {name: {"preset": name} for name in _DIS_PRESETS},
    "farneback": {"default": {}},
}
PRESETS["tvl1-torch"] = PRESETS["tvl1"]
DEFAULT_PRESET = {"tvl1": "default", "dis": "medium", "farneback": "default",
                  "tvl1-torch": "default"}

# Valid ranges: OpenCV does not check all of them (DIS patch_size 1 crashes the process).
_POS = (lambda v: v > 0, "> 0")
_ONE = (lambda v: v >= 1, ">= 1")
_NONNEG = (lambda v: v >= 0, ">= 0")
_FRACTION = (lambda v: 0 < v < 1, "between 0 and 1 (exclusive)")
_RULES: dict[str, dict[str, tuple]] = {
    "tvl1": {"tau": _POS, "lambda": _POS, "theta": _POS, "epsilon": _POS, "nscales": _ONE,
             "warps": _ONE, "inner_iterations": _ONE, "outer_iterations": _ONE,
             "scale_step": _FRACTION, "gamma": _NONNEG,
             "median_filtering": (lambda v: v in (0, 1) or (v > 1 and v % 2 == 1),
                                  "0, 1 (off) or an odd number")},
    "dis": {"finest_scale": _NONNEG, "patch_size": (lambda v: v >= 2, ">= 2"),
            "patch_stride": _ONE, "gradient_descent_iterations": _NONNEG,
            "variational_refinement_iterations": _NONNEG,
            "variational_refinement_alpha": _NONNEG, "variational_refinement_delta": _NONNEG,
            "variational_refinement_gamma": _NONNEG},
    "farneback": {"pyr_scale": _FRACTION, "levels": _NONNEG, "winsize": _ONE,
                  "iterations": _ONE, "poly_n": (lambda v: v in (5, 7), "5 or 7"),
                  "poly_sigma": _POS},
}
_RULES["tvl1-torch"] = {**_RULES["tvl1"], "gamma": (lambda v: v == 0, "0 (tvl1-torch has "
                                                    "no illumination term; use tvl1)")}
DEVICES = ("auto", "cpu", "cuda")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown flow backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _coerce(backend: str, key: str, value: Any) -> Any:
    """Convert a (possibly string) value to the type of the parameter's default."""
    default = DEFAULTS[backend][key]
    kind = _DIS_TYPES.get(key, str) if backend == "dis" else type(default)
    if value is None and default is None:
        return None
    try:
        if kind is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return low in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        if kind is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ConfigError(
            f"flow parameter {key}={value!r} for backend {backend}: expected {kind.__name__}"
        ) from exc


def resolve_params(
    backend: str, params: Mapping[str, Any] | None = None, preset: str | None = None
) -> dict[str, Any]:
    """Full parameter dict of a backend: defaults, then the preset, then ``params``."""
    _check_backend(backend)
    preset = preset or DEFAULT_PRESET[backend]
    if preset not in PRESETS[backend]:
        raise ConfigError(
            f"unknown preset {preset!r} for backend {backend}; "
            f"choose one of {', '.join(PRESETS[backend])}"
        )
    full = dict(DEFAULTS[backend])
    full.update(PRESETS[backend][preset])
    for key, value in (params or {}).items():
        if key not in full:
            raise ConfigError(
                f"unknown parameter {key!r} for flow backend {backend}; "
                f"known: {', '.join(DEFAULTS[backend])}"
            )
        full[key] = _coerce(backend, key, value)
    for key, (ok, text) in _RULES[backend].items():
        if full[key] is not None and not ok(full[key]):
            raise ConfigError(f"flow parameter {key}={full[key]!r} for backend {backend}: "
                              f"must be {text}")
    if backend == "dis" and full["preset"] not in _DIS_PRESETS:
        raise ConfigError(
            f"unknown DIS preset {full['preset']!r}; choose one of {', '.join(_DIS_PRESETS)}"
        )
    return full


def parse_param_args(items: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings (CLI ``--param``) into a dict of strings."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE, e.g. --param warps=3")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _make_tvl1(p: dict[str, Any]) -> Any:
    kwargs = {_TVL1_KEYWORDS[k]: v for k, v in p.items()}
    return cv2.optflow.DualTVL1OpticalFlow_create(**kwargs)


def _make_dis(p: dict[str, Any]) -> Any:
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[p["preset"]])
    for key, value in p.items():
        if key != "preset" and value is not None:
            setter = "set" + "".join(part.capitalize() for part in key.split("_"))
            getattr(dis, setter)(value)
    if dis.getPatchStride() > dis.getPatchSize():  # OpenCV would crash
        raise ConfigError(f"DIS patch_stride {dis.getPatchStride()} is larger than patch_size "
                          f"{dis.getPatchSize()}; choose patch_stride <= patch_size")
    return dis


def check_device(device: str | None, backend: str) -> str:
    """``auto``/``cpu``/``cuda`` (None = auto); only tvl1-torch runs on CUDA."""
    device = device or "auto"
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and backend != "tvl1-torch":
        raise ConfigError(f"device cuda needs --backend tvl1-torch ({backend} runs on the CPU "
                          "through OpenCV)")
    return device


class FlowBackend:
    """A reusable flow object: ``backend(prev_gray, next_gray) -> (H, W, 2) float32``;
    ``backend.many(prevs, nexts)`` computes a batch (N, H, W) -> (N, 2, H, W)."""

    def __init__(self, name: str = "tvl1", params: Mapping[str, Any] | None = None,
                 preset: str | None = None, device: str | None = "auto"):
        self.name = name
        self.params = resolve_params(name, params, preset)
        check_device(device, name)
        if name == "tvl1":
            self._impl = _make_tvl1(self.params)
        elif name == "dis":
            self._impl = _make_dis(self.params)
        elif name == "tvl1-torch":
            from flowless.flow.tvl1_torch import TorchTVL1

            self._impl = TorchTVL1(self.params, device)
        else:
            self._impl = None
        self.device = str(self._impl.device) if name == "tvl1-torch" else "cpu"

    def many(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow of N grey pairs (N, H, W) uint8 of one size: float32 (N, 2, H, W) px."""
        prev, nxt = np.asarray(prev), np.asarray(nxt)
        if prev.shape != nxt.shape or prev.ndim != 3 or prev.dtype != np.uint8:
            raise FlowError(f"expected two uint8 (N, H, W) batches of grey frames, got "
                            f"{prev.dtype} {prev.shape} and {nxt.dtype} {nxt.shape}")
        if self.name == "tvl1-torch":
            return self._impl(prev, nxt)
        return np.stack([self(a, b).transpose(2, 0, 1) for a, b in zip(prev, nxt)])

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        prev, nxt = to_gray(prev), to_gray(nxt)
        if prev.shape != nxt.shape:
            raise FlowError(f"frame sizes differ: {prev.shape} vs {nxt.shape}")
        if self.name == "tvl1-torch":
            return self._impl(prev[None], nxt[None])[0].transpose(1, 2, 0)
        try:
            if self.name == "farneback":
                p = self.params
                flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p["gaussian"] else 0
                flow = cv2.calcOpticalFlowFarneback(
                    prev, nxt, None, p["pyr_scale"], p["levels"], p["winsize"],
                    p["iterations"], p["poly_n"], p["poly_sigma"], flags,
                )
            else:
                if self.name == "tvl1":  # OpenCV lowers nscales for good after a small image
                    self._impl.setScalesNumber(self.params["nscales"])
                flow = self._impl.calc(prev, nxt, None)
        except cv2.error as exc:
            # Keep OpenCV's reason, drop its source-file prefix.
            msg = re.sub(r"^OpenCV\([^)]*\) \S+ error: (\([^)]*\) )?", "", str(exc).strip())
            raise FlowError(f"{self.name} flow failed on {prev.shape[1]}x{prev.shape[0]} "
                            f"frames: {msg or 'OpenCV error'}") from exc
        return np.asarray(flow, dtype=np.float32)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grayscale (H, W) from an RGB (H, W, 3) or grayscale frame."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise FlowError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[:, :, 0])
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    raise FlowError(f"expected an (H, W) or (H, W, 3) frame, got shape {frame.shape}")


def resize_gray(gray: np.ndarray, short_side: int | None) -> np.ndarray:
    """Resize so the shorter side is ``short_side`` (INTER_AREA down, linear up)."""
    from flowless.data.video import resize_short_side

    if not short_side:
        return gray
    return resize_short_side(gray, short_side)


_cache = threading.local()


def get_backend(name: str = "tvl1", device: str | None = "auto", **params: Any
                ) -> FlowBackend:
    """A per-thread cached :class:`FlowBackend` for these parameters (created once)."""
    full = resolve_params(name, params)
    key = (name, device, tuple(sorted(full.items())))
    store = getattr(_cache, "backends", None)
    if store is None:
        store = _cache.backends = {}
    if key not in store:
        store.clear()  # keep one object per thread: parameters rarely change
        store[key] = FlowBackend(name, full, device=device)
    return store[key]


def compute_flow(prev: np.ndarray, nxt: np.ndarray, backend: str = "tvl1", **params: Any
                 ) -> np.ndarray:
    """Flow from frame ``prev`` to ``nxt`` (uint8 RGB or gray): float32 (H, W, 2) pixels."""
    return get_backend(backend, **params)(prev, nxt)


def video_flow(
    frames: np.ndarray, backend: str = "tvl1", short_side: int | None = None,
    batch_size: int = 32, **params: Any
) -> np.ndarray:
    """Flow of consecutive frames (T, H, W[, 3]) uint8: float32 (T-1, 2, H', W').

    tvl1-torch computes ``batch_size`` pairs at a time (pass ``device=`` to choose)."""
    frames = np.asarray(frames)
    if len(frames) < 2:
        raise FlowError(f"need at least 2 frames for optical flow, got {len(frames)}")
    flow_of = get_backend(backend, **params)
    grays = np.stack([resize_gray(to_gray(f), short_side) for f in frames])
    out = np.empty((len(grays) - 1, 2, *grays.shape[1:]), dtype=np.float32)
    for t in range(0, len(grays) - 1, max(1, batch_size)):
        stop = min(t + max(1, batch_size), len(grays) - 1)
        out[t:stop] = flow_of.many(grays[t:stop], grays[t + 1:stop + 1])
    return out
