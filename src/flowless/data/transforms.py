"""Clip transforms: crops in fractional coordinates, flip, normalisation (MARS conventions).

Frames are handled channels-last: RGB ``(T, H, W, 3)`` and flow ``(T, H, W, 2)`` uint8
(flow files store ``(T, 2, H, W)``; :func:`flow_to_hwc` converts). A :class:`Crop` is a box
in fractions of the frame, so one crop applied to an RGB clip and to a flow clip of another
resolution covers the same part of the scene. Flow values are not rescaled when a crop is
resized (as in MARS): they stay in the pixel units of the resolution flow was computed at.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

# ActivityNet mean of RGB on a 0-255 scale (MARS/Hara); std 1.
RGB_MEAN = (114.7748, 107.7354, 99.4750)
# Quantised flow (u8 = round((f + 20) / 40 * 255)) is centred by subtracting 127.5; std 1.
FLOW_MEAN = 127.5
# MARS multi-scale corner crop: side = scale x short side, at the centre or a corner.
SCALES = (1.0, 2**-0.25, 2**-0.5, 2**-0.75, 0.5)
POSITIONS = ("center", "top_left", "top_right", "bottom_left", "bottom_right")


@dataclass(frozen=True)
class Crop:
    """A box in fractions of the frame: top, left, height, width (all in [0, 1])."""

    top: float
    left: float
    height: float
    width: float

    def pixels(self, height: int, width: int) -> tuple[int, int, int, int]:
        """Integer (top, left, height, width) of this box in a ``height x width`` frame."""
        h = min(height, max(1, round(self.height * height)))
        w = min(width, max(1, round(self.width * width)))
        top = min(max(0, round(self.top * height)), height - h)
        left = min(max(0, round(self.left * width)), width - w)
        return top, left, h, w


def square_crop(height: int, width: int, scale: float = 1.0, position: str = "center") -> Crop:
    """A square of side ``scale`` x short side at ``position`` (one of :data:`POSITIONS`)."""
    side = scale * min(height, width)
    fh, fw = side / height, side / width
    vert, horiz = {
        "center": (0.5, 0.5),
        "top_left": (0.0, 0.0),
        "top_right": (0.0, 1.0),
        "bottom_left": (1.0, 0.0),
        "bottom_right": (1.0, 1.0),
    }[position]
    return Crop(vert * (1.0 - fh), horiz * (1.0 - fw), fh, fw)


def three_crops(height: int, width: int) -> list[Crop]:
    """Short-side squares at the start, centre and end of the long side (left/centre/right
    for landscape, top/centre/bottom for portrait): the 10x3 test protocol's crops."""
    side = min(height, width)
    fh, fw = side / height, side / width
    if height > width:
        return [Crop(a * (1.0 - fh), 0.0, fh, fw) for a in (0.0, 0.5, 1.0)]
    return [Crop(0.0, a * (1.0 - fw), fh, fw) for a in (0.0, 0.5, 1.0)]


def random_crop(height: int, width: int, rng: np.random.Generator) -> Crop:
    """MARS training crop: a random scale from :data:`SCALES` at a random position."""
    scale = SCALES[int(rng.integers(len(SCALES)))]
    return square_crop(height, width, scale, POSITIONS[int(rng.integers(len(POSITIONS)))])


def crop_resize(frames: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """Cut ``crop`` from channels-last frames (T, H, W, C) and resize to (T, size, size, C)
    float32 (bilinear; area averaging when shrinking)."""
    t, h, w, c = frames.shape
    top, left, ch, cw = crop.pixels(h, w)
    box = frames[:, top : top + ch, left : left + cw].astype(np.float32)  # one conversion
    if (ch, cw) == (size, size):
        return box
    interp = cv2.INTER_AREA if size < min(ch, cw) else cv2.INTER_LINEAR
    out = np.empty((t, size, size, c), np.float32)
    for i in range(t):
        out[i] = cv2.resize(box[i], (size, size), interpolation=interp).reshape(size, size, c)
    return out


def hflip(frames: np.ndarray, kind: str) -> np.ndarray:
    """Mirror left-right; for flow on the u8 scale also negate x (x -> 255 - x)."""
    out = frames[:, :, ::-1].copy()
    if kind == "flow":
        out[..., 0] = 255 - out[..., 0]
    return out


def normalize(frames: np.ndarray, kind: str) -> np.ndarray:
    """RGB 0-255 minus :data:`RGB_MEAN`; flow u8 minus :data:`FLOW_MEAN` (std 1, float32)."""
    x = frames.astype(np.float32, copy=True)
    if kind == "rgb":
        # one channel at a time: 10x faster than broadcasting a 3-vector (same values)
        for ch, mean in enumerate(RGB_MEAN):
            x[..., ch] -= np.float32(mean)
    elif kind == "flow":
        x -= FLOW_MEAN
    else:
        raise ValueError(f"kind must be 'rgb' or 'flow', got {kind!r}")
    return x


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, S, S, C) float array -> contiguous (C, T, S, S) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)))


def flow_to_hwc(flow: np.ndarray) -> np.ndarray:
    """Flow as stored ``(T, 2, H, W)`` -> channels-last ``(T, H, W, 2)``."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (T, 2, H, W), got {flow.shape}")
    return flow.transpose(0, 2, 3, 1)


def transform_clip(frames: np.ndarray, kind: str, crop: Crop, size: int,
                   flip: bool = False) -> torch.Tensor:
    """Crop, resize, optionally flip, normalise: channels-last uint8 -> (C, T, S, S) tensor."""
    x = crop_resize(frames, crop, size)
    if flip:
        x = hflip(x, kind)
    return to_tensor(normalize(x, kind))
