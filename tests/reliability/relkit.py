"""Helpers for the reliability suite: run the CLI, check user errors, make bad and odd files."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from flowless.cli import main

CLASSES = ["MoveLeft", "MoveRight"]
DATA = {"clip_len": 8, "size": 32, "stride": 1, "short_side": 32,
        "flow_backend": "farneback", "flow_short_side": 32}
# A tiny training recipe (ResNet-10 at 1/8 width, 8 frames of 32 px, one epoch, one thread).
TRAIN = ["--arch", "resnet10", "--width", "0.125", "--epochs", "1", "--batch-size", "2",
         "--set", "data.clip_len=8", "--set", "data.size=32", "--set", "tensorboard=false",
         "--set", "threads=1", "--workers", "0"]


def run(capsys, *args) -> tuple[int, str, str]:
    """``flowless ARGS`` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code: int, err: str, command: str, *names: object) -> str:
    """Exit 2 and exactly one stderr line ``flowless CMD: error: ...`` that names every
    input in ``names`` and says what to do (after a ';', or as 'expected ...'); no
    traceback."""
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"flowless {command}: error: "), err
    assert "Traceback" not in err and "internal error" not in err, err
    for name in names:
        assert str(name) in err, (name, err)
    assert "; " in err or "expected" in err, f"no fix suggested: {err}"
    return err


# ------------------------------------------------------------------ checkpoints


def save_stream(path: Path, *, input: str = "rgb", arch: str = "resnet10", seed: int = 0,
                config: dict | None = None) -> Path:
    """A randomly initialised tiny stream checkpoint in the contract layout; ``config``
    overrides the recorded ``model_config`` (to make a checkpoint that lies about it)."""
    import torch

    from flowless.checkpoint import save_checkpoint
    from flowless.models import create_model

    torch.manual_seed(seed)
    model = create_model(arch, len(CLASSES), in_channels=3 if input == "rgb" else 2, width=0.125)
    return save_checkpoint(path, {
        "kind": "stream", "model": model.state_dict(), "model_config": config or model.config,
        "stream": input, "input": input, "classes": list(CLASSES), "data": dict(DATA),
    })


class CodePayload:
    """Unpickling it runs ``exec(code)``: what a malicious checkpoint would carry."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('the payload ran')"


def evil_zip_checkpoint(path: Path, marker: Path) -> Path:
    """A torch.save (zip) checkpoint whose unpickling would create ``marker``."""
    import torch

    torch.save({"format": "flowless", "kind": "stream", "model": CodePayload(marker_code(marker))},
               path)
    return path


def evil_pickle_checkpoint(path: Path, marker: Path) -> Path:
    """A plain (legacy) pickle named .pt whose unpickling would create ``marker``."""
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": CodePayload(marker_code(marker))}, fh, protocol=2)
    return path


# ------------------------------------------------------------------ videos


def encode(path: Path, frames: np.ndarray, codec: str = "libx264", pix_fmt: str = "yuv420p",
           fmt: str = "rgb24") -> Path:
    """Encode ``frames`` (T,H,W,3 uint8 RGB, or T,H,W gray / gray16) with any codec."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def ramp(t: int, h: int, w: int, dtype=np.uint8) -> np.ndarray:
    """Smooth moving gradient frames (T,H,W): cheap to encode at any size."""
    top = 255 if dtype == np.uint8 else 65535
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([((x * 3 + y + 7 * i) % (top + 1)).astype(dtype) for i in range(t)])


def rgb_ramp(t: int, h: int, w: int) -> np.ndarray:
    g = ramp(t, h, w)
    return np.stack([g, g[:, ::-1], 255 - g], axis=-1)


def _missing(path: Path, good: Path) -> Path:
    return path


def _empty(path: Path, good: Path) -> Path:
    path.write_bytes(b"")
    return path


def _text(path: Path, good: Path) -> Path:
    path.write_text("These are my holiday notes, not a video.\n" * 20)
    return path


def _truncated(path: Path, good: Path) -> Path:
    data = good.read_bytes()  # mp4 with its index (moov) at the end: cut, it has none
    path.write_bytes(data[: len(data) * 3 // 5])
    return path


def _zero_frames(path: Path, good: Path) -> Path:
    path = path.with_suffix(".avi")  # an AVI keeps its header when no frame is written
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    return path


# name -> (maker(path, good_video) -> path, fragment of the message)
BAD_VIDEOS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "missing": (_missing, "file not found; check the path"),
    "empty": (_empty, "empty (0 bytes); re-download or remove it"),
    "text named mp4": (_text, "not a readable video"),
    "truncated": (_truncated, "re-download or remove it"),
    "zero frames": (_zero_frames, "frames; re-encode or remove it"),
}


def _gray(path: Path) -> Path:
    return encode(path.with_suffix(".mkv"), ramp(6, 24, 40), "ffv1", "gray", "gray")


def _gray16(path: Path) -> Path:
    return encode(path.with_suffix(".mkv"), ramp(6, 24, 40, np.uint16), "ffv1", "gray16le",
                  "gray16le")


def _gray16_png(path: Path) -> Path:
    return encode(path.with_suffix(".mov"), ramp(5, 24, 40, np.uint16), "png", "gray16be",
                  "gray16le")


# name -> (maker(path) -> path, frames, (height, width)): odd but valid videos
ODD_VIDEOS: dict[str, tuple[Callable[[Path], Path], int, tuple[int, int]]] = {
    "one frame": (lambda p: encode(p, rgb_ramp(1, 32, 48)), 1, (32, 48)),
    "1x1": (lambda p: encode(p.with_suffix(".mkv"), rgb_ramp(4, 1, 1), "ffv1", "yuv444p"),
            4, (1, 1)),
    "4000x3000": (lambda p: encode(p, rgb_ramp(2, 3000, 4000)), 2, (3000, 4000)),
    "gray": (_gray, 6, (24, 40)),
    "gray 16-bit": (_gray16, 6, (24, 40)),
    "gray 16-bit png in mov": (_gray16_png, 5, (24, 40)),
}
