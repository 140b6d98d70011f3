"""The clip plan: which frames and which crops make the clips of a video.

One :class:`ClipPlan` answers for every consumer of clips: training (a random start and
crop), validation during training, ``flowless evaluate``, streaming inference, fusion logit
caching and flow-store reads. So a validation accuracy logged in training and a later
evaluation of the same weights see the same clips (docs/method.md §5).

Protocols: ``mars`` = every non-overlapping clip (starts every ``clip_len * stride``
frames; one looped clip when the video is shorter than a clip) and the short-side centre
square; ``10x3`` = ten clips spread evenly (mmaction2 offsets) x three short-side squares.
A clip covers frames ``start, start + stride, ...``; indices past the end wrap around (the
MARS loop for short videos).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from flowless.data.transforms import Crop, flow_to_hwc, square_crop, three_crops, transform_clip
from flowless.errors import ConfigError

PROTOCOLS = ("mars", "10x3")
TEN_CLIPS = 10


@dataclass(frozen=True)
class ClipPlan:
    """Clip length, temporal stride and test protocol; the start and crop of every clip."""

    clip_len: int
    stride: int = 1
    protocol: str = "mars"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown test protocol {self.protocol!r}; use one of "
                              f"{', '.join(PROTOCOLS)}")
        if self.clip_len < 1 or self.stride < 1:
            raise ConfigError("clip_len and stride must be positive")

    @property
    def span(self) -> int:
        """Frames from a clip's first to its last frame, both included."""
        return (self.clip_len - 1) * self.stride + 1

    @property
    def step(self) -> int:
        """Frames between the starts of two consecutive MARS clips (no overlap)."""
        return self.clip_len * self.stride

    @property
    def offsets(self) -> np.ndarray:
        """Frame offsets of a clip's frames from its start."""
        return self.stride * np.arange(self.clip_len)

    @property
    def num_crops(self) -> int:
        return 1 if self.protocol == "mars" else 3

    @property
    def streamable(self) -> bool:
        """True when clips can be cut while decoding (their starts do not need the length)."""
        return self.protocol == "mars"

    def starts(self, num_frames: int) -> list[int]:
        """Start frame of every test clip of a video of ``num_frames`` frames."""
        if self.protocol == "mars":
            if num_frames < self.span:
                return [0]
            return [i * self.step for i in range((num_frames - self.span) // self.step + 1)]
        room = max(0, num_frames - self.span + 1)
        return [int(room * (i + 0.5) / TEN_CLIPS) for i in range(TEN_CLIPS)]

    def start(self, clip: int, num_frames: int) -> int:
        """Start of test clip ``clip``. A MARS clip counted on a longer stated length than
        ``num_frames`` (a truncated file) keeps its start and wraps around."""
        if self.protocol == "mars":
            return clip * self.step
        return self.starts(num_frames)[clip]

    def train_start(self, num_frames: int, rng: np.random.Generator) -> int:
        """A uniformly random start whose clip fits in the video (0 when none fits)."""
        return int(rng.integers(0, max(1, num_frames - self.span + 1)))

    def indices(self, num_frames: int, start: int) -> np.ndarray:
        """Frame indices of the clip starting at ``start``; looped past the end."""
        if num_frames <= 0:
            raise ValueError("num_frames must be positive")
        return (start + self.offsets) % num_frames

    def crops(self, height: int, width: int) -> list[Crop]:
        """Spatial test crops: the short-side centre square, or three squares (10x3)."""
        if self.protocol == "mars":
            return [square_crop(height, width)]
        return three_crops(height, width)

    def windows(self, num_frames: int) -> list[tuple[int, int | None]]:
        """Frame ranges ``[lo, hi)`` to read for the clips (a store read per range): one
        range per MARS clip, or the whole video (``hi`` None) for 10x3 and looped clips."""
        if self.protocol == "mars" and num_frames >= self.span:
            return [(s, s + self.span) for s in self.starts(num_frames)]
        return [(0, None)]

    def clips(self, frames: np.ndarray, kind: str, size: int,
              length: int | None = None) -> torch.Tensor:
        """All test clips of one video: float (N, C, clip_len, size, size), clip-major
        (clip 0 x its crops, clip 1, ...).

        ``frames``: uint8 RGB (T, H, W, 3) or flow (T, 2, H, W). ``length`` limits the clips
        to the first ``length`` frames, so RGB and flow clips of a video start together.
        """
        hwc = flow_to_hwc(frames) if kind == "flow" else frames
        total = len(hwc) if length is None else min(length, len(hwc))
        crops = self.crops(hwc.shape[1], hwc.shape[2])
        out = []
        for start in self.starts(total):
            clip = hwc[self.indices(total, start)]
            out += [transform_clip(clip, kind, crop, size) for crop in crops]
        return torch.stack(out)
