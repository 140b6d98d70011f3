"""Frame pairs with known flow, for tests and benchmarks.

A smooth random texture is the second frame; the first is made by sampling it at
``x + f(x)`` (cv2.remap), so the exact forward flow from frame 1 to frame 2 at every pixel
of frame 1 is ``f`` (brightness constancy holds by construction, up to interpolation).
"""

from __future__ import annotations

import cv2
import numpy as np


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (H, W) texture: noise blurred at several scales (fine detail and large blobs)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width), np.float32)
    for sigma, weight in ((1.0, 0.5), (2.5, 1.0), (6.0, 1.0)):
        noise = rng.standard_normal((height, width)).astype(np.float32)
        layer = cv2.GaussianBlur(noise, (0, 0), sigma)
        img += weight * layer / (layer.std() + 1e-6)
    img = (img - img.min()) / (img.max() - img.min() + 1e-6)
    return np.round(img * 235 + 10).astype(np.uint8)


def translation_field(height: int, width: int, dx: float, dy: float) -> np.ndarray:
    """Constant flow (H, W, 2)."""
    flow = np.empty((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def rotation_field(height: int, width: int, degrees: float, scale: float = 1.0) -> np.ndarray:
    """Flow of a rotation (and zoom) about the image centre: (H, W, 2)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a = np.deg2rad(degrees)
    xr = scale * (np.cos(a) * (x - cx) - np.sin(a) * (y - cy)) + cx
    yr = scale * (np.sin(a) * (x - cx) + np.cos(a) * (y - cy)) + cy
    return np.stack([xr - x, yr - y], axis=-1).astype(np.float32)


def smooth_random_field(height: int, width: int, max_px: float, seed: int = 0) -> np.ndarray:
    """A smooth random flow (H, W, 2) with values within about +-max_px."""
    rng = np.random.default_rng(seed)
    sigma = max(height, width) / 6
    flow = np.empty((height, width, 2), np.float32)
    for c in range(2):
        field = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32),
                                 (0, 0), sigma)
        flow[..., c] = field / (np.abs(field).max() + 1e-6) * max_px
    return flow


def warp_pair(second: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, second) such that the forward flow first -> second is ``flow`` (H, W, 2)."""
    h, w = second.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    first = cv2.remap(second, x + flow[..., 0], y + flow[..., 1], cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_REFLECT)
    return first, second


def end_point_error(pred: np.ndarray, truth: np.ndarray, margin: float = 0.1) -> float:
    """Mean Euclidean distance between flows (H, W, 2), ignoring a border of ``margin``."""
    h, w = truth.shape[:2]
    my, mx = int(h * margin), int(w * margin)
    diff = pred[my:h - my, mx:w - mx] - truth[my:h - my, mx:w - mx]
    return float(np.sqrt((diff**2).sum(-1)).mean())
