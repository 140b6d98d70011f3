"""Frame folders: a folder of numbered RGB images stands for one video.

Names are detected (``image_00001.jpg`` from MARS/3D-ResNets, ``img_00001.jpg`` from
mmaction2/denseflow, ``frame000001.jpg`` from the shared UCF101 ``jpegs_256``, ``00001.jpg``;
JPEG or PNG) or set with the environment variable ``FLOWLESS_FRAME_PATTERN`` (e.g.
``img_%05d.jpg``), which reaches every command and worker process. Frames come back as
decoded video frames do: uint8 RGB (H, W, 3). Every problem (no images, a gap in the
numbering, a missing, empty, truncated or corrupt image, mixed sizes) is a
:class:`VideoError` naming the folder.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowless.errors import ConfigError, VideoError

PATTERN_ENV = "FLOWLESS_FRAME_PATTERN"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# RGB frame names by tool, preferred in this order when a folder holds several kinds.
KNOWN_NAMES = {"image_": "image_00001.jpg", "img_": "img_00001.jpg",
               "frame": "frame000001.jpg", "frame_": "frame_00001.jpg", "": "00001.jpg"}
# Numbered images that are flow, not RGB (MARS, mmaction2/denseflow, mmaction2's test data).
FLOW_PREFIXES = ("flow_x_", "flow_y_", "x_", "y_", "TVL1jpg_x_", "TVL1jpg_y_")
FPS = 25.0  # a frame folder stores no rate; UCF101/HMDB51 frames were extracted at 25-30 fps

_NAME = re.compile(r"(.*?)(\d+)(\.(?:jpe?g|png))", re.IGNORECASE)
_FIELD = re.compile(r"%0?\d*d|\{:?0?\d*d?\}")


@dataclass(frozen=True)
class FrameList:
    """The frame images of one folder, in frame order (numbered ``first``, ``first + 1``...)."""

    folder: Path
    names: tuple[str, ...]
    first: int

    def __len__(self) -> int:
        return len(self.names)


def parse_pattern(pattern: str) -> tuple[str, str]:
    """``"img_%05d.jpg"`` or ``"img_{:05d}.jpg"`` -> (prefix, suffix) around the number."""
    parts = _FIELD.split(pattern)
    if (len(parts) != 2 or "/" in pattern or "\\" in pattern
            or not parts[1].lower().endswith(IMAGE_EXTENSIONS)):
        raise ConfigError(f"{PATTERN_ENV}={pattern!r}: expected one image name with one number "
                          "field, e.g. img_%05d.jpg or image_{:05d}.jpg")
    return parts[0], parts[1]


def set_pattern(pattern: str | None) -> None:
    """Set the frame names for this process and the ones it starts (None: keep as is)."""
    if pattern:
        parse_pattern(pattern)
        os.environ[PATTERN_ENV] = pattern


def has_frames(names: list[str]) -> bool:
    """Whether a folder with these file names is a frame folder: numbered RGB images (flow
    images do not count) and no video file (a folder of videos with a thumbnail is not)."""
    from flowless.data.video import VIDEO_EXTENSIONS

    found = False
    for name in names:
        if name.lower().endswith(VIDEO_EXTENSIONS):
            return False
        m = _NAME.fullmatch(name)
        found = found or bool(m and m.group(1) not in FLOW_PREFIXES)
    return found


def frame_list(folder: str | Path) -> FrameList:
    """The frame images of ``folder``: names detected or set by ``FLOWLESS_FRAME_PATTERN``."""
    folder = Path(folder)
    try:
        stamp = folder.stat().st_mtime_ns  # changes when images are added or removed
    except OSError as exc:
        raise VideoError(folder, f"cannot list the folder ({exc.strerror})") from None
    return _cached_list(str(folder), stamp, os.environ.get(PATTERN_ENV, ""))


@functools.lru_cache(maxsize=4096)
def _cached_list(folder: str, stamp: int, pattern: str) -> FrameList:
    path = Path(folder)
    try:
        names = [e.name for e in os.scandir(path) if not e.name.startswith(".") and e.is_file()]
    except OSError as exc:
        raise VideoError(path, f"cannot list the folder ({exc.strerror})") from None
    numbered: dict[tuple[str, str], list[tuple[int, str]]] = {}
    if pattern:
        prefix, suffix = parse_pattern(pattern)
        digits = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
        for name in names:
            if m := digits.fullmatch(name):
                numbered.setdefault((prefix, suffix), []).append((int(m.group(1)), name))
        if not numbered:
            raise VideoError(path, f"holds no image named like {pattern} ({PATTERN_ENV}); "
                             "check the pattern or the folder")
    else:
        for name in names:
            if (m := _NAME.fullmatch(name)) and m.group(1) not in FLOW_PREFIXES:
                numbered.setdefault((m.group(1), m.group(3).lower()), []).append(
                    (int(m.group(2)), name))
    frames = numbered[_choose(path, numbered, names)]
    frames.sort()
    numbers = [n for n, _ in frames]
    first, last = numbers[0], numbers[-1]
    twice = next((a for a, b in zip(frames, frames[1:]) if a[0] == b[0]), None)
    if twice is not None:
        raise VideoError(path, f"two images have the number {twice[0]} ({twice[1]} and "
                         "another); keep one naming and re-extract the frames")
    if last - first + 1 != len(numbers):
        gap = next(first + i for i, n in enumerate(numbers) if n != first + i)
        raise VideoError(path, f"a gap in the frame numbering: no image numbered {gap} "
                         f"(frames {first}..{last}); re-extract the frames")
    return FrameList(path, tuple(name for _, name in frames), first)


def _choose(path: Path, numbered: dict[tuple[str, str], list], names: list[str]) -> tuple[str, str]:
    """The RGB image kind of a folder; an error when there is none or no clear one."""
    if not numbered:
        flow = sorted({m.group(1) for n in names if (m := _NAME.fullmatch(n))})
        found = f"only flow images ({', '.join(p + '00001.jpg' for p in flow)})" if flow \
            else "no frame images"
        raise VideoError(path, f"holds {found}; looked for {', '.join(KNOWN_NAMES.values())} "
                         f"(.jpg/.jpeg/.png), or set {PATTERN_ENV} (e.g. img_%05d.jpg)")
    if len(numbered) == 1:
        return next(iter(numbered))
    known = [k for k in numbered if k[0] in KNOWN_NAMES]
    if len(known) == 1:
        return known[0]
    kinds = ", ".join(f"{p}N{s} ({len(v)})" for (p, s), v in sorted(numbered.items()))
    raise VideoError(path, f"holds several kinds of numbered images ({kinds}); set "
                     f"{PATTERN_ENV} to the frame names, e.g. img_%05d.jpg")


def read_image(folder: Path, name: str) -> np.ndarray:
    """One frame image as uint8 RGB (H, W, 3); grey, 16-bit and RGBA images are converted."""
    path = folder / name
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        raise VideoError(folder, f"image {name} is missing or unreadable; re-extract the "
                         "frames") from None
    if data.size == 0:
        raise VideoError(folder, f"image {name} is empty (0 bytes); re-extract the frames")
    # A cut JPEG still decodes (grey rows); its end-of-image marker is missing.
    if data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in data[-32:].tobytes():
        raise VideoError(folder, f"image {name} is truncated; re-extract the frames")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise VideoError(folder, f"image {name} is not a readable image (corrupt); "
                         "re-extract the frames")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _check_size(frames: FrameList, name: str, img: np.ndarray, ref: tuple[str, tuple]) -> None:
    if img.shape != ref[1]:
        h, w = img.shape[:2]
        raise VideoError(frames.folder, f"mixed image sizes: {name} is {w}x{h} but {ref[0]} is "
                         f"{ref[1][1]}x{ref[1][0]}; re-extract the frames at one size")


def count_folder(folder: str | Path) -> int:
    """Number of frames in a frame folder."""
    return len(frame_list(folder))


def probe_folder(folder: str | Path) -> tuple[int, int, int]:
    """(width, height, frames) of a frame folder, the size read from its first image."""
    frames = frame_list(folder)
    h, w = read_image(frames.folder, frames.names[0]).shape[:2]
    return w, h, len(frames)


def iter_folder(folder: str | Path, short_side: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames in order, one at a time (constant memory)."""
    from flowless.data.video import resize_short_side

    frames = frame_list(folder)
    ref = None
    for name in frames.names:
        img = read_image(frames.folder, name)
        ref = ref or (name, img.shape)
        _check_size(frames, name, img, ref)
        yield resize_short_side(img, short_side)


def read_folder_frames(folder: str | Path, indices: np.ndarray | list[int],
                       short_side: int | None = None) -> np.ndarray:
    """The frames at ``indices`` (0-based; past the end wraps around, as for videos)."""
    from flowless.data.video import resize_short_side

    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0:
        raise ValueError("indices must be a non-empty list of non-negative frame numbers")
    frames = frame_list(folder)
    idx = idx % len(frames)
    kept: dict[int, np.ndarray] = {}
    ref = None
    for i in sorted(set(idx.tolist())):
        img = read_image(frames.folder, frames.names[i])
        ref = ref or (frames.names[i], img.shape)
        _check_size(frames, frames.names[i], img, ref)
        kept[i] = resize_short_side(img, short_side)
    return np.stack([kept[int(i)] for i in idx])
