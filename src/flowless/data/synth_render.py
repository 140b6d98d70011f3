"""Rendering of one synthetic video (see :mod:`flowless.data.synth` for the dataset).

Layers, back to front: a desaturated smooth-noise background that drifts, distractor
objects, then the class object(s). The camera jitters every frame and pixel noise is
added last. Object colours are set at a random grey level (luma), so the grey image that
optical flow sees carries no trace of the colour family.

:func:`moving_square_frames` renders the much simpler video of the tests and of
``flowless benchmark``: one textured square moving at a constant speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from flowless.data.synth import FAMILIES, MOTIONS, SynthConfig, VideoSpec

HUE_JITTER = 8.0  # object hue = family hue +- this (degrees)
HUE_RESERVED = 25.0  # distractor hues stay this far from every family in play
SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross")
TEXTURES = ("stripes", "checker", "noise")
_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601, as cv2.COLOR_RGB2GRAY


# ----------------------------------------------------------------------------- colours
def _hue_rgb(hue: float) -> np.ndarray:
    """Fully saturated RGB (0..1) of a hue in degrees."""
    k = (np.array([5.0, 3.0, 1.0]) + (hue % 360.0) / 60.0) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def colour(hue: float, luma: float, sat: float = 1.0) -> np.ndarray:
    """RGB (0..1) of a hue at a given grey level (BT.601 luma); ``sat`` < 1 mixes in grey.

    Setting the luma directly keeps the grey image (hence optical flow) blind to the hue.
    """
    p = _hue_rgb(hue)
    yp = float(p @ _LUMA)
    c = p * luma / yp if luma <= yp else p + (1.0 - p) * (luma - yp) / (1.0 - yp)
    return luma + sat * (c - luma)


def _distractor_hue(rng: np.random.Generator, reserved: list[float]) -> float | None:
    """A hue at least HUE_RESERVED from every reserved family hue; None if there is none."""
    grid = np.arange(0.0, 360.0, 1.0)
    dist = np.min([np.abs((grid - h + 180.0) % 360.0 - 180.0) for h in reserved], axis=0)
    free = grid[dist > HUE_RESERVED]
    return float(rng.choice(free)) if free.size else None


# ----------------------------------------------------------------------------- sprites
def _shape_mask(shape: str, res: int) -> np.ndarray:
    """Anti-aliased float mask (res, res) of a shape with circumradius ~res/2."""
    k = np.arange(48 if shape == "circle" else 0)
    if shape == "circle":
        pts = np.stack([np.cos(2 * np.pi * k / 48), np.sin(2 * np.pi * k / 48)], 1)
    elif shape in ("square", "triangle", "hexagon"):
        n = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
        a = 2 * np.pi * np.arange(n) / n + np.pi / 4 * (shape == "square")
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    elif shape == "star":
        a = np.pi * np.arange(10) / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    else:  # cross: a plus sign of arm half-width 0.38
        w = 0.38
        pts = np.array([(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
                        (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)], float)
    centre, radius = (res - 1) / 2.0, res / 2.0 - 1.0
    poly = np.round((centre + radius * pts) * 16).astype(np.int32)
    mask = np.zeros((res, res), np.uint8)
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _texture(rng: np.random.Generator, res: int) -> np.ndarray:
    """Two-tone texture in [0, 1]: stripes, checker or blobs (makes spin visible in flow)."""
    kind = TEXTURES[rng.integers(len(TEXTURES))]
    yy, xx = (np.mgrid[0:res, 0:res] + 0.5) / res - 0.5
    phi = rng.uniform(0, np.pi)
    u, v = xx * np.cos(phi) + yy * np.sin(phi), -xx * np.sin(phi) + yy * np.cos(phi)
    period = rng.uniform(0.25, 0.45)
    if kind == "stripes":
        w = np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))
    elif kind == "checker":
        w = np.sin(2 * np.pi * u / period + rng.uniform(0, 6.3)) * np.sin(
            2 * np.pi * v / period + rng.uniform(0, 6.3)) * 2
    else:
        cells = int(rng.integers(3, 6))
        g = rng.standard_normal((cells, cells)).astype(np.float32)
        w = cv2.resize(g, (res, res), interpolation=cv2.INTER_CUBIC)
        w = (w - w.mean()) / (w.std() + 1e-6)
    return np.clip(0.5 + 1.5 * w, 0.0, 1.0).astype(np.float32)


def _sprite(rng: np.random.Generator, res: int, hue: float | None) -> np.ndarray:
    """Premultiplied RGBA float sprite (res, res, 4): random shape, texture and two tones.

    ``hue`` None gives a grey object. Tones: a light and a dark grey level, random.
    """
    mask = _shape_mask(SHAPES[rng.integers(len(SHAPES))], res)
    tex = _texture(rng, res)[..., None]
    light, dark = rng.uniform(0.55, 0.8), rng.uniform(0.12, 0.35)
    sat = rng.uniform(0.8, 1.0) if hue is not None else 0.0
    h = 0.0 if hue is None else hue
    rgb = colour(h, dark, sat) * (1 - tex) + colour(h, light, sat) * tex
    return np.concatenate([rgb * mask[..., None], mask[..., None]], -1).astype(np.float32)


def _background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Desaturated smooth-noise texture (n, n, 3), blobs of ~size/10 and ~size/4."""
    field = np.zeros((n, n), np.float32)
    for cells, weight in ((max(2, round(4 * n / size)), 1.0), (max(2, round(10 * n / size)), 0.7)):
        g = rng.standard_normal((cells, cells)).astype(np.float32)
        field += weight * cv2.resize(g, (n, n), interpolation=cv2.INTER_CUBIC)
    field = (field - field.mean()) / (field.std() + 1e-6)
    luma = np.clip(rng.uniform(0.35, 0.6) + rng.uniform(0.1, 0.2) * field, 0.05, 0.95)
    p = _hue_rgb(rng.uniform(0, 360))
    tint = rng.uniform(0.0, 0.08) * (p - p @ _LUMA)  # zero-luma chroma: grey level kept
    return np.clip(luma[..., None] + tint, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- rendering
@dataclass
class _Layer:
    sprite: np.ndarray  # premultiplied RGBA (res, res, 4)
    centre: np.ndarray  # (T, 2) x, y in frame pixels
    angle: np.ndarray  # (T,) degrees, positive = counter-clockwise on screen (OpenCV)
    diameter: np.ndarray  # (T,) pixels


def _unit(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi)
    return np.array([np.cos(a), np.sin(a)])


def _object(rng: np.random.Generator, hue: float, centre: np.ndarray, angle: np.ndarray,
            diameter: np.ndarray) -> _Layer:
    res = max(8, math.ceil(float(diameter.max())) + 2)
    return _Layer(_sprite(rng, res, hue), centre, angle, diameter)


def _actors(rng: np.random.Generator, cfg: SynthConfig, motion: str, hue: float) -> list[_Layer]:
    """The object(s) of the class colour doing the class motion (sizes, places, speeds random).

    Object size and place are drawn for the middle frame, the same way for every motion, so a
    still frame does not give the motion away.
    """
    s, t_len, k = cfg.size, cfg.frames, cfg.motion_scale
    tau = np.arange(t_len) - (t_len - 1) / 2.0
    travel_cap = 0.35 * s / max(1, t_len - 1)  # keeps the object in view for long videos
    speed = min(rng.uniform(0.012, 0.022) * s * k, travel_cap)
    angle = rng.uniform(0, 360) + 0 * tau
    if motion in ("Approach", "Separate"):
        d_mid = rng.uniform(0.2, 0.28) * s
        axis, mid = _unit(rng), s / 2 + rng.uniform(-0.05, 0.05, 2) * s
        step = 0.6 * speed * (-1 if motion == "Approach" else 1)
        half_gap = 0.6 * d_mid + 0.6 * speed * (t_len - 1) / 2 + step * tau
        diam = d_mid + 0 * tau
        hue2 = hue + rng.uniform(-HUE_JITTER, HUE_JITTER)
        return [_object(rng, hue, mid + half_gap[:, None] * axis, angle, diam),
                _object(rng, hue2, mid - half_gap[:, None] * axis,
                        rng.uniform(0, 360) + 0 * tau, diam)]
    d_mid = rng.uniform(0.28, 0.42) * s
    mid = s / 2 + rng.uniform(-0.12, 0.12, 2) * s
    centre, diam = mid + 0 * tau[:, None], d_mid + 0 * tau
    direction = {"TranslateLeft": (-1, 0), "TranslateRight": (1, 0),
                 "TranslateUp": (0, -1), "TranslateDown": (0, 1)}.get(motion)
    if direction is not None:
        centre = mid + speed * tau[:, None] * np.array(direction, float)
    elif motion.startswith("Rotate"):
        spin = rng.uniform(4.0, 8.0) * k * cfg.spin_scale
        angle = angle + (-spin if motion == "RotateClockwise" else spin) * tau
    elif motion.startswith("Zoom"):
        rate = min(rng.uniform(0.035, 0.055) * k * cfg.zoom_scale, math.log(cfg.zoom_max) / max(1, t_len - 1))
        diam = d_mid * np.exp((rate if motion == "ZoomIn" else -rate) * tau)
    elif motion == "Oscillate":
        amp, period = rng.uniform(0.05, 0.08) * s * k, rng.uniform(8.0, 12.0)
        phase = 2 * np.pi * np.arange(t_len) / period + rng.uniform(0, 2 * np.pi)
        centre = centre + np.stack([amp * np.sin(phase), 0 * tau], 1)
    return [_object(rng, hue, centre, angle, diam)]


def _distractors(rng: np.random.Generator, cfg: SynthConfig, reserved: list[float]) -> list[_Layer]:
    """0..cfg.distractors small objects, grey or of a hue no family in play uses, each
    drifting in its own random direction and spinning slowly."""
    s, t_len = cfg.size, cfg.frames
    tau = np.arange(t_len) - (t_len - 1) / 2.0
    layers = []
    for _ in range(int(rng.integers(0, cfg.distractors + 1))):
        hue = _distractor_hue(rng, reserved) if rng.random() < 0.6 else None
        d = rng.uniform(0.12, 0.22) * s + 0 * tau
        velocity = _unit(rng) * rng.uniform(0.3, 1.0) * 0.022 * s * cfg.motion_scale
        centre = rng.uniform(0, s, 2) + tau[:, None] * velocity
        angle = rng.uniform(0, 360) + rng.uniform(-3, 3) * cfg.motion_scale * tau
        res = max(8, math.ceil(float(d.max())) + 2)
        layers.append(_Layer(_sprite(rng, res, hue), centre, angle, d))
    return layers


def object_family(cfg: SynthConfig, spec: VideoSpec, rng: np.random.Generator) -> int:
    """The colour family of a motion-only video's object: its class's own (family m for
    motion m) with chance ``cfg.context``, else one drawn at random. The context coin is
    drawn only when context is on, so context 0 keeps the pixels of the motion-only set made
    before the option existed."""
    if cfg.context > 0 and rng.random() < cfg.context:
        return spec.motion
    return int(rng.integers(len(FAMILIES)))


def render(cfg: SynthConfig, spec: VideoSpec) -> np.ndarray:
    """Render one video as uint8 RGB frames (T, S, S, 3); a pure function of (cfg, spec).

    The scene (background) is seeded by the group, everything else by the clip, so videos of
    one group share a background, like UCF101 groups share a setting.
    """
    s, t_len = cfg.size, cfg.frames
    base = [cfg.seed, spec.motion, spec.category, spec.group]
    scene, rng = np.random.default_rng([*base, 0]), np.random.default_rng([*base, spec.clip])
    if cfg.categories == 1:
        hue0, reserved = FAMILIES[object_family(cfg, spec, rng)][1], [h for _, h in FAMILIES]
    else:
        hue0, reserved = FAMILIES[spec.category][1], [h for _, h in FAMILIES[: cfg.categories]]
    hue = hue0 + rng.uniform(-HUE_JITTER, HUE_JITTER)
    layers = _distractors(rng, cfg, reserved) + _actors(rng, cfg, MOTIONS[spec.motion].name, hue)

    # Camera: background drift (constant velocity) plus per-frame jitter that moves everything.
    tau = np.arange(t_len) - (t_len - 1) / 2.0
    drift = _unit(rng) * rng.uniform(0.0, 0.008) * s * cfg.nuisance
    jitter = rng.normal(0.0, 0.005 * s * cfg.nuisance, (t_len, 2))
    pad = math.ceil(np.abs(drift).max() * t_len / 2 + np.abs(jitter).max() + 2)
    bg = _background(scene, s + 2 * pad, s)
    noise = rng.standard_normal((t_len, s, s, 1), dtype=np.float32) * (0.012 * cfg.nuisance)

    video = np.empty((t_len, s, s, 3), np.uint8)
    for t in range(t_len):
        off = pad + drift * tau[t] + jitter[t]
        m = np.array([[1.0, 0.0, off[0]], [0.0, 1.0, off[1]]])
        frame = cv2.warpAffine(bg, m, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        for layer in layers:
            res = layer.sprite.shape[0]
            c = (res - 1) / 2.0
            m = cv2.getRotationMatrix2D((c, c), float(layer.angle[t]),
                                        float(layer.diameter[t]) / (res - 2))
            m[:, 2] += layer.centre[t] - jitter[t] - c
            w = cv2.warpAffine(layer.sprite, m, (s, s), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            frame = frame * (1.0 - w[..., 3:]) + w[..., :3]
        video[t] = np.clip((frame + noise[t]) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return video


# ----------------------------------------------------------------------------- moving square
def moving_square_frames(num_frames: int = 8, height: int = 48, width: int = 64, dx: int = 2,
                         dy: int = 0, seed: int = 0, *, side: int = 16,
                         start: tuple[int, int] | None = None,
                         scroll: int | None = None) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) of a random-texture square of ``side`` px moving
    (dx, dy) px per frame from ``start`` (y, x; default centred), wrapping at the borders.

    The background is flat grey (96), or with ``scroll`` a random texture shifting
    ``scroll`` px right per frame. A pure function of its arguments.
    """
    rng = np.random.default_rng(seed)
    background = None
    if scroll is not None:  # drawn before the square: the benchmark video depends on it
        background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    square = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    y0, x0 = start if start is not None else (height // 2 - side // 2, width // 2 - side // 2)
    frames = np.full((num_frames, height, width, 3), 96, np.uint8)
    for t in range(num_frames):
        if background is not None:
            frames[t] = np.roll(background, scroll * t, axis=1)
        y, x = (y0 + dy * t) % (height - side), (x0 + dx * t) % (width - side)
        frames[t, y : y + side, x : x + side] = square
    return frames
