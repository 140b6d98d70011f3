"""Helpers for evaluation tests: tiny random stream and fusion checkpoints."""

from __future__ import annotations

from pathlib import Path

CLASSES = ["MoveLeft", "MoveRight"]
DATA = {"clip_len": 8, "size": 32, "stride": 1, "short_side": 32,
        "flow_backend": "farneback", "flow_short_side": 32}


def save_stream(path: Path, *, input: str = "rgb", classes=CLASSES, seed: int = 0,
                arch: str = "resnet10", width: float = 0.125, data: dict | None = None,
                stream: str | None = None) -> Path:
    """A randomly initialised tiny stream checkpoint in the contract layout."""
    import torch

    from flowless.checkpoint import save_checkpoint
    from flowless.models import create_model

    torch.manual_seed(seed)
    model = create_model(arch, len(classes), in_channels=3 if input == "rgb" else 2, width=width)
    # Random BN statistics so different seeds give clearly different logits.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        model.fc.weight.normal_(0, 1.0)
    return save_checkpoint(path, {
        "kind": "stream", "model": model.state_dict(), "model_config": model.config,
        "stream": stream or input, "input": input, "classes": list(classes),
        "data": dict(DATA if data is None else data),
    })


def save_fusion(path: Path, streams: list[Path], classes=CLASSES, seed: int = 0,
                inputs: tuple[str, ...] = ("rgb", "flow")) -> Path:
    import torch

    from flowless.checkpoint import save_checkpoint
    from flowless.models import AttentionFusion

    torch.manual_seed(seed)
    fusion = AttentionFusion(len(classes), num_streams=len(streams))
    return save_checkpoint(path, {
        "kind": "fusion", "model": fusion.state_dict(), "model_config": fusion.config,
        "streams": [str(p) for p in streams], "inputs": list(inputs), "classes": list(classes),
    })
