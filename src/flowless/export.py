"""Export a stream checkpoint to ONNX (dynamic batch axis), verified against PyTorch.

The ONNX file carries what inference needs in its ``metadata_props`` (key ``flowless``:
classes, clip settings, input kind), so ``flowless predict --onnx MODEL.onnx VIDEO`` runs
it alone. The export is written only if onnxruntime reproduces the PyTorch logits on
random clips (batch > 1, so the dynamic axis is exercised).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from flowless.errors import CheckpointError
from flowless.eval.onnx import META_FORMAT, META_KEY, load_onnx_stream
from flowless.eval.streams import Stream, TorchStream, load_streams
from flowless.io import atomic_path, writable_dir


class ExportMismatchError(RuntimeError):
    """onnxruntime and PyTorch disagree: a bug (exit code 1), not a user error."""


def random_clips(stream: Stream, batch: int, seed: int = 0) -> Any:
    """Clips in the range real inputs have (RGB 0-255 minus the mean, flow u8 - 127.5)."""
    import torch

    from flowless.data.transforms import FLOW_MEAN, RGB_MEAN

    g = torch.Generator().manual_seed(seed)
    d = stream.data
    x = torch.rand(batch, stream.in_channels, d.clip_len, d.size, d.size, generator=g) * 255
    if stream.input == "rgb":
        return x - torch.tensor(RGB_MEAN).view(1, 3, 1, 1, 1)
    return x - FLOW_MEAN


def max_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Largest difference relative to the logits' scale (absolute when logits are <= 1)."""
    scale = max(1.0, float(np.abs(reference).max()))
    return float(np.abs(reference - other).max()) / scale


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    opset: int = 17,
    check_batch: int = 3,
    tolerance: float = 1e-4,
    exporter: str = "auto",
) -> dict[str, Any]:
    """Export ``checkpoint`` to ``out``; raise ExportMismatchError when the check fails.

    ``exporter``: "legacy" (TorchScript-based, fast), "dynamo" (torch.export-based, needs
    onnxscript) or "auto" (legacy, falling back to dynamo where legacy is unavailable).
    """
    import onnx
    import torch

    torch.set_flush_denormal(True)
    streams, rule = load_streams([checkpoint], fast="off")  # check against the trained net
    if rule is not None or len(streams) != 1 or not isinstance(streams[0], TorchStream):
        raise CheckpointError(f"{checkpoint}: export takes one stream checkpoint; export the "
                              "streams of a fusion one by one")
    stream = streams[0]
    module = stream.module.eval()
    out = Path(out)
    writable_dir(out.parent)
    meta = {"format": META_FORMAT, "name": stream.name, "input": stream.input,
            "classes": stream.classes, "data": stream.data.as_dict(),
            "in_channels": stream.in_channels, "source": str(checkpoint),
            "model_config": _plain(getattr(module, "config", None))}
    with atomic_path(out, suffix=".onnx") as tmp:
        used = _export(module, random_clips(stream, 1, seed=1), tmp, opset, exporter)
        model = onnx.load(str(tmp))
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        err = verify_onnx(tmp, stream, check_batch, tolerance)
    return {"onnx": str(out), "checkpoint": str(checkpoint), "opset": opset, "exporter": used,
            "check_batch": check_batch, "max_error": err, "tolerance": tolerance,
            "bytes": out.stat().st_size, "classes": len(stream.classes),
            "input_shape": ["batch", stream.in_channels, stream.data.clip_len,
                            stream.data.size, stream.data.size]}


def _export(module: Any, dummy: Any, path: Path, opset: int, exporter: str) -> str:
    """Run torch.onnx.export with a dynamic batch axis; return the exporter used."""
    import torch

    if exporter not in ("auto", "legacy", "dynamo"):
        raise ValueError(f"unknown exporter {exporter!r}")
    names = {"input_names": ["clips"], "output_names": ["logits"]}
    if exporter in ("auto", "legacy"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (dummy,), str(path), opset_version=opset, dynamo=False,
                                  dynamic_axes={"clips": {0: "batch"}, "logits": {0: "batch"}},
                                  **names)
            return "legacy"
        except (TypeError, RuntimeError, NotImplementedError):
            if exporter == "legacy":
                raise
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (dummy,), str(path), opset_version=max(opset, 18), dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False,
                          **names)
    return "dynamo"


def verify_onnx(path: str | Path, stream: TorchStream, batch: int = 3,
                tolerance: float = 1e-4) -> float:
    """Compare onnxruntime with PyTorch on random clips; return the error or raise."""
    clips = random_clips(stream, batch, seed=2)
    reference = stream.logits(clips)
    onnx_stream = load_onnx_stream(path)
    got = onnx_stream.logits(clips)
    if got.shape != reference.shape:
        raise ExportMismatchError(f"{path}: ONNX output shape {got.shape} != PyTorch "
                                  f"{reference.shape}")
    err = max_error(reference, got)
    if not err <= tolerance:
        raise ExportMismatchError(f"{path}: onnxruntime and PyTorch logits differ by {err:.2e} "
                                  f"(tolerance {tolerance:.0e}); the export is wrong, report it")
    return err


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str)) if obj is not None else None
