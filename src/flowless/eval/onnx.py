"""ONNX streams: a flowless ONNX export run by onnxruntime, with its settings from the
model's metadata (key ``flowless``: classes, clip settings, input kind)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flowless.errors import CheckpointError
from flowless.eval.streams import DataSettings, Stream


class OnnxStream(Stream):
    """A stream run by onnxruntime (CPU), with its settings from the model's metadata."""

    def __init__(self, session: Any, input_name: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.session, self.input_name = session, input_name

    def logits(self, clips: Any) -> np.ndarray:
        x = clips.numpy() if hasattr(clips, "numpy") else np.asarray(clips)
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0]


META_KEY = "flowless"
META_FORMAT = "flowless-onnx/1"


def load_onnx_stream(path: str | Path) -> OnnxStream:
    """Open an ONNX model exported by flowless; one-line errors for anything else."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX model not found; check the path")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        import torch

        opts.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path}: not a readable ONNX model ({first}); export one with "
                              "flowless export CKPT --onnx OUT.onnx") from exc
    raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    try:
        meta = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise CheckpointError(f"{path}: ONNX model has no flowless metadata (classes, clip "
                              "settings); export it with flowless export")
    source = str(path)
    inp = session.get_inputs()[0]
    return OnnxStream(
        session, inp.name, name=str(meta.get("name", "onnx")), source=source,
        input=str(meta["input"]), classes=[str(c) for c in meta["classes"]],
        data=DataSettings.from_dict(meta["data"], source), in_channels=int(meta["in_channels"]),
    )
