"""ONNX streams: a flowless ONNX export run by onnxruntime, with its settings from the
model's metadata (key ``flowless``: classes, clip settings, input kind); and
:class:`OnnxRuntimeNet`, the ``onnxruntime`` fast path of a PyTorch stream."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowless.errors import CheckpointError, ConfigError
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


def cpu_session(model: str | bytes) -> Any:
    """An onnxruntime CPU session of ``model`` (a path or the serialised model) with as
    many threads as torch uses."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def load_onnx_stream(path: str | Path) -> OnnxStream:
    """Open an ONNX model exported by flowless; one-line errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: ONNX model not found; check the path")
    try:
        session = cpu_session(str(path))
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


CLIP_AXES = {0: "batch", 2: "time", 3: "height", 4: "width"}  # (N, C, T, H, W): C is fixed


class OnnxRuntimeNet:
    """A PyTorch network with BN folded, exported to ONNX in memory and run by onnxruntime
    on the CPU: the ``onnxruntime`` fast path of a TorchStream. The export traces one clip
    of ``example``'s shape (a few seconds for ResNeXt-101); every clip axis but the
    channels stays dynamic. onnxruntime then fuses convolution, bias and ReLU."""

    def __init__(self, module: Any, example: Any, opset: int = 17):
        import torch

        from flowless.models.fast import fold_batchnorm

        buf = io.BytesIO()
        net = fold_batchnorm(module).cpu().float()
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (example[:1].detach().cpu().float(),), buf,
                                  opset_version=opset, dynamo=False, input_names=["clips"],
                                  output_names=["logits"],
                                  dynamic_axes={"clips": CLIP_AXES, "logits": {0: "batch"}})
        except (TypeError, RuntimeError, NotImplementedError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError(f"fast=onnxruntime: the in-memory ONNX export failed ({first}); "
                              "use --fast torch") from exc
        self.session = cpu_session(buf.getvalue())

    def __call__(self, clips: Any) -> Any:
        import torch

        x = np.ascontiguousarray(clips.detach().cpu().numpy(), np.float32)
        return torch.from_numpy(self.session.run(None, {"clips": x})[0])
