"""Trained streams: checkpoint (or ONNX model) -> network + the data settings it expects.

This is the one way a trained network is loaded: the distillation teacher, fusion training,
evaluation, prediction, export, the benchmark and the demo all call :func:`load_stream` or
:func:`load_streams`. A :class:`Stream` hides whether the network is a PyTorch module or an
ONNX session: it maps a batch of clips (N, C, T, S, S) to logits (N, K), and its
:class:`DataSettings` say how its clips are cut. :func:`load_streams` turns the paths a
user gives (stream checkpoints and/or one attention fusion checkpoint) into streams plus a
fusion rule, with one-line errors for anything that does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flowless.data.plan import ClipPlan
from flowless.errors import CheckpointError, ConfigError
from flowless.eval.scoring import FUSION_RULES, AttentionRule

INPUTS = ("rgb", "flow")
# How a TorchStream's logits run its network: "torch" (BN folded into the convolutions,
# 1x1x1 convolutions as GEMMs, channels_last_3d; flowless.models.fast), "onnxruntime" (the
# BN-folded network exported to ONNX in memory, CPU only; flowless.eval.onnx) or "off" (the
# network as trained). Measured by benchmarks/inference.py (docs/evaluation.md, Fast
# inference).
FAST_MODES = ("torch", "onnxruntime", "off")
DEFAULT_FAST = "torch"


def check_fast(mode: str) -> str:
    """``mode`` if it is one of :data:`FAST_MODES`, else a one-line ConfigError."""
    if mode not in FAST_MODES:
        raise ConfigError(f"fast={mode!r}: choose one of {', '.join(FAST_MODES)}")
    return mode


@dataclass(frozen=True)
class DataSettings:
    """How a stream's clips are made (the checkpoint's ``data`` section)."""

    clip_len: int
    size: int
    stride: int = 1
    short_side: int | None = None
    flow_backend: str | None = None  # None: the training flow's backend is not known
    flow_short_side: int | None = None
    flow_params: dict[str, Any] = field(default_factory=dict)  # backend parameters (store's)

    @classmethod
    def from_dict(cls, data: Any, source: str) -> DataSettings:
        if not isinstance(data, dict) or "clip_len" not in data or "size" not in data:
            raise CheckpointError(
                f"{source}: checkpoint has no data settings (data.clip_len, data.size); "
                "it was not saved by flowless train"
            )
        try:
            return cls(
                clip_len=int(data["clip_len"]),
                size=int(data["size"]),
                stride=int(data.get("stride") or 1),
                short_side=_opt_int(data.get("short_side")),
                flow_backend=_opt_str(data.get("flow_backend")),
                flow_short_side=_opt_int(data.get("flow_short_side")),
                flow_params=dict(data.get("flow_params") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: invalid data settings {data!r} ({exc})") from exc

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def plan(self, protocol: str = "mars") -> ClipPlan:
        """The clips this stream sees under a test protocol."""
        return ClipPlan(self.clip_len, self.stride, protocol)

    def backend_for(self, override: str | None, source: str) -> str:
        """The flow backend to compute this stream's flow with: ``override`` or the one
        its training flow came from; an error when neither is known."""
        backend = override or self.flow_backend
        if backend is None:
            raise ConfigError(f"{source}: the checkpoint does not record which flow backend "
                              "its training flow came from; pass --flow-backend "
                              "tvl1|dis|farneback")
        return backend


def _opt_int(value: Any) -> int | None:
    return None if value in (None, "", 0) else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class Stream:
    """One trained network and the input it consumes; ``logits`` runs a batch of clips."""

    def __init__(self, name: str, source: str, input: str, classes: list[str],
                 data: DataSettings, in_channels: int):
        self.name = name
        self.source = source
        self.input = input
        self.classes = list(classes)
        self.data = data
        self.in_channels = in_channels

    def logits(self, clips: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": self.source, "input": self.input,
                "data": self.data.as_dict()}


class TorchStream(Stream):
    """A PyTorch network in eval mode with frozen weights; inference without autograd.

    ``module`` stays the network as trained: training code uses it (the distillation
    teacher's taps) and so does :meth:`forward`. :meth:`logits`, the inference path, runs
    a copy made on its first batch as ``fast`` says (:data:`FAST_MODES`): ``torch``
    (:func:`~flowless.models.fast.fast_network`), ``onnxruntime``
    (:class:`~flowless.eval.onnx.OnnxRuntimeNet`) or ``off``, ``module`` itself. The logits
    agree within 1e-4 of the logits' scale (the Winograd stem
    rounds differently from the direct convolution; docs/evaluation.md).
    """

    def __init__(self, module: Any, *, fast: str = DEFAULT_FAST, **kwargs: Any):
        super().__init__(**kwargs)
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.fast = fast

    @property
    def fast(self) -> str:
        """How :meth:`logits` runs the network; setting it drops the prepared copy."""
        return self._fast

    @fast.setter
    def fast(self, mode: str) -> None:
        self._fast = check_fast(mode)
        self._runner: Any = None

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device

    def to(self, device: Any) -> TorchStream:
        """Move the network to ``device`` (in place); returns self."""
        self.module.to(device)
        self._runner = None
        return self

    def runner(self, clips: Any) -> Any:
        """The callable :meth:`logits` runs (made on the first call; ``clips`` is traced
        by the ONNX export)."""
        if self._fast == "off":
            return self.module
        if self._runner is None:
            if self._fast == "onnxruntime":
                from flowless.eval.onnx import OnnxRuntimeNet

                if self.device.type != "cpu":
                    raise ConfigError(f"{self.source}: fast=onnxruntime runs on the CPU only, "
                                      f"the network is on {self.device}; use fast=torch")
                self._runner = OnnxRuntimeNet(self.module, clips)
            else:
                from flowless.models.fast import fast_network

                self._runner = fast_network(self.module)
        return self._runner

    def logits(self, clips: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = clips.to(self.device).float()
            return self.runner(x)(x).float().cpu().numpy()

    def forward(self, clips: Any) -> Any:
        """Logits of ``module`` itself as a tensor on its device (no autograd)."""
        import torch

        with torch.inference_mode():
            return self.module(clips.to(self.device).float())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "fast": self.fast}


def load_stream(path: str | Path, device: Any = None, *, fast: str = DEFAULT_FAST) -> Stream:
    """One stream from a flowless stream checkpoint (a PyTorch network on ``device``,
    default CPU, whose logits run as ``fast`` says) or a flowless ONNX model (``.onnx``,
    onnxruntime on the CPU)."""
    if Path(path).suffix.lower() == ".onnx":
        from flowless.eval.onnx import load_onnx_stream

        return load_onnx_stream(path)
    from flowless.checkpoint import is_flowless, load_checkpoint

    ckpt = load_checkpoint(path)
    if not is_flowless(ckpt):
        raise CheckpointError(f"{path}: not a flowless checkpoint (no format/model_config); "
                              "train or fine-tune it with flowless train first")
    if ckpt.get("kind", "stream") != "stream":
        raise CheckpointError(f"{path}: is a {ckpt.get('kind')!r} checkpoint, not a stream "
                              "network; pass a stream checkpoint (e.g. a run's best.pt)")
    stream = stream_from_checkpoint(ckpt, str(path), fast=fast)
    return stream.to(device) if device is not None else stream


def _check_input(value: Any, source: str) -> str:
    if value not in INPUTS:
        raise CheckpointError(f"{source}: unknown stream input {value!r}; expected rgb or flow")
    return str(value)


def stream_from_checkpoint(ckpt: dict[str, Any], source: str, *,
                           fast: str = DEFAULT_FAST) -> TorchStream:
    """Build a :class:`TorchStream` from a loaded ``kind: stream`` checkpoint."""
    for key in ("model", "model_config", "classes"):
        if key not in ckpt:
            raise CheckpointError(f"{source}: stream checkpoint has no {key!r}; "
                                  "it was not saved by flowless train")
    input_kind = _check_input(ckpt.get("input", "rgb"), source)
    module = build_network(ckpt, source)
    in_channels = int(ckpt["model_config"].get("in_channels", 3 if input_kind == "rgb" else 2))
    expected = 3 if input_kind == "rgb" else 2
    if in_channels != expected:
        raise CheckpointError(f"{source}: a {input_kind} stream needs {expected} input channels, "
                              f"the network has {in_channels}")
    return TorchStream(
        module,
        name=str(ckpt.get("stream") or input_kind),
        source=source,
        input=input_kind,
        classes=[str(c) for c in ckpt["classes"]],
        data=DataSettings.from_dict(ckpt.get("data"), source),
        in_channels=in_channels,
        fast=fast,
    )


def build_network(ckpt: dict[str, Any], source: str) -> Any:
    """``model_from_checkpoint`` with a one-line CheckpointError naming what does not fit."""
    from flowless.models import model_from_checkpoint

    try:
        return model_from_checkpoint(ckpt)
    except CheckpointError as exc:
        raise CheckpointError(_named(exc, source)) from exc
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        cfg = ckpt.get("model_config")
        detail = _mismatch(ckpt) or _first_line(exc)
        raise CheckpointError(
            f"{source}: the weights do not fit the architecture in model_config {cfg!r} "
            f"({detail}); use a checkpoint saved with its own model_config"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _named(exc: BaseException, source: str) -> str:
    """The message of an error raised on an in-memory checkpoint, naming the file instead."""
    msg = " ".join(str(exc).split()).replace("<checkpoint>", source)
    return msg if source in msg else f"{source}: {msg}"


def _mismatch(ckpt: dict[str, Any]) -> str:
    """Summarise missing/unexpected/mis-shaped weights of a stream checkpoint."""
    try:
        from flowless.models import create_model

        expected = create_model(**ckpt["model_config"]).state_dict()
    except Exception:  # noqa: BLE001 - best effort: the caller has a fallback message
        return ""
    got = ckpt.get("model") or {}
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [k for k in expected if k in got and tuple(expected[k].shape) != tuple(got[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing weights, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weights, e.g. {unexpected[0]}")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatches, e.g. {k}: checkpoint "
                     f"{tuple(got[k].shape)} vs model {tuple(expected[k].shape)}")
    return "; ".join(parts)


def load_streams(
    checkpoints: Sequence[str | Path], fusion: str | None = None, *, device: Any = None,
    fast: str = DEFAULT_FAST,
) -> tuple[list[Stream], str | AttentionRule | None]:
    """Load streams and pick the fusion rule.

    ``checkpoints`` may hold stream checkpoints, flowless ONNX models (``.onnx``) and at most
    one fusion checkpoint; a fusion checkpoint alone brings its own streams. ``fusion`` is a
    rule name, a fusion checkpoint path, or None (softmax-mean when there are several
    streams). PyTorch streams are put on ``device`` (default CPU) and run their logits as
    ``fast`` says (:data:`FAST_MODES`; ``off``: the networks as trained).
    """
    from flowless.checkpoint import is_flowless, load_checkpoint
    from flowless.eval.fusion_ckpt import fusion_streams

    check_fast(fast)
    stream_ckpts: list[tuple[dict[str, Any], str]] = []
    fusion_ckpts: list[tuple[dict[str, Any], Path]] = []
    onnx = [Path(p) for p in checkpoints if Path(p).suffix.lower() == ".onnx"]
    for raw in checkpoints:
        if Path(raw) in onnx:
            continue
        ckpt = load_checkpoint(raw)
        if not is_flowless(ckpt):
            raise CheckpointError(f"{raw}: not a flowless checkpoint (no format/model_config); "
                                  "train or fine-tune it with flowless train first")
        kind = ckpt.get("kind")
        if kind == "stream":
            stream_ckpts.append((ckpt, str(raw)))
        elif kind == "fusion":
            fusion_ckpts.append((ckpt, Path(raw)))
        else:
            raise CheckpointError(f"{raw}: unknown checkpoint kind {kind!r}")
    if fusion is not None and fusion not in FUSION_RULES:
        fusion_ckpts.append((load_checkpoint(fusion), Path(fusion)))
        if fusion_ckpts[-1][0].get("kind") != "fusion":
            raise CheckpointError(f"{fusion}: --fusion takes {', '.join(FUSION_RULES)} or a "
                                  "fusion checkpoint (kind 'fusion')")
    if len(fusion_ckpts) > 1:
        raise CheckpointError("more than one fusion checkpoint given; pass exactly one")
    if fusion_ckpts and onnx:
        raise ConfigError("ONNX models cannot join an attention fusion checkpoint; use a "
                          "fusion rule (e.g. --fusion logprob-sum)")
    rule: str | AttentionRule | None = fusion if fusion in FUSION_RULES else None
    if fusion_ckpts:
        stream_ckpts, rule = fusion_streams(fusion_ckpts[0], stream_ckpts)
    if not stream_ckpts and not onnx:
        raise CheckpointError("no stream checkpoint given")
    streams: list[Stream] = [stream_from_checkpoint(c, s, fast=fast) for c, s in stream_ckpts]
    if device is not None:
        streams = [s.to(device) for s in streams]  # type: ignore[attr-defined]
    if onnx:
        from flowless.eval.onnx import load_onnx_stream

        streams += [load_onnx_stream(p) for p in onnx]
    check_classes(streams)
    _unique_names(streams)
    if rule is None and len(streams) > 1:
        rule = "softmax-mean"
    return streams, rule


def check_classes(streams: Sequence[Stream]) -> None:
    """All streams must predict the same classes in the same order."""
    first = streams[0]
    for s in streams[1:]:
        if s.classes != first.classes:
            raise CheckpointError(f"{s.source}: its {len(s.classes)} classes differ from those of "
                                  f"{first.source} ({len(first.classes)}); fuse streams trained "
                                  "on the same dataset")


def _unique_names(streams: Sequence[Stream]) -> None:
    seen: dict[str, int] = {}
    for s in streams:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}-{seen[s.name]}"
