"""MARS flow quantisation: clip to +-20 px, u8 = round((f + 20) / 40 * 255), x and y alike.

The same convention is used by MARS and by denseflow/mmaction2 JPEG flow, so quantised
fields can be exchanged with those tools byte for byte. One step is 40/255 = 0.157 px;
zero flow maps to 128 (127.5 rounded), i.e. +0.078 px after dequantisation.
"""

from __future__ import annotations

import numpy as np

BOUND = 20.0  # px, MARS/denseflow
LEVELS = 255
STEP = 2 * BOUND / LEVELS  # px per u8 level


def quantize(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """Float flow (any shape, pixels) -> uint8 with the MARS formula (ties round to even)."""
    flow = np.asarray(flow, dtype=np.float32)
    scaled = (np.clip(flow, -bound, bound) + bound) * np.float32(LEVELS / (2 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(u8: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """uint8 quantised flow -> float32 pixels (inverse of :func:`quantize` up to STEP/2)."""
    u8 = np.asarray(u8)
    if u8.dtype != np.uint8:
        raise TypeError(f"dequantize expects uint8, got {u8.dtype}")
    return u8.astype(np.float32) * np.float32(2 * bound / LEVELS) - np.float32(bound)
