"""3D ResNet/ResNeXt networks with named feature taps, weight loading, and late fusion."""

from __future__ import annotations

from flowless.models.fusion import AttentionFusion, WeightedFusion, fusion_from_checkpoint
from flowless.models.resnet3d import (
    ARCHS,
    MODEL_STAGES,
    TAPS,
    VideoResNet,
    count_parameters,
    create_model,
)
from flowless.models.weights import (
    LoadReport,
    extract_state_dict,
    infer_config,
    load_weights,
    model_from_checkpoint,
)

__all__ = [
    "ARCHS",
    "MODEL_STAGES",
    "TAPS",
    "AttentionFusion",
    "WeightedFusion",
    "LoadReport",
    "VideoResNet",
    "count_parameters",
    "create_model",
    "extract_state_dict",
    "fusion_from_checkpoint",
    "infer_config",
    "load_weights",
    "model_from_checkpoint",
]
