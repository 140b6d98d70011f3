"""Training: stream networks (optionally distilled from a flow teacher) and attention fusion.

``train(cfg) -> run folder`` and ``train_fusion(cfg) -> run folder``; both can be called
repeatedly in one process. Single process or ``torchrun`` (DDP) alike.
"""

from flowless.engine.fusion import train_fusion
from flowless.engine.metrics import read_metrics
from flowless.engine.trainer import stream_name, train, train_once

__all__ = ["read_metrics", "stream_name", "train", "train_fusion", "train_once"]
