"""3D ResNet / ResNeXt (Hara et al.) with named feature taps.

The networks follow the definitions of Hara et al.'s 3D-ResNets-PyTorch, which MARS also
uses: a 7x7x7 stem with stride (1, 2, 2), a 3x3x3 max-pool with stride 2, four stages of
BasicBlocks (ResNet-10/18/34), Bottlenecks with expansion 4 (ResNet-50 and deeper) or
grouped ResNeXt bottlenecks with expansion 2 (cardinality 32), global average pooling and
a linear classifier. Parameter names match theirs (``conv1``, ``layer1.0.downsample.0``,
``fc``), so their checkpoints load (see :mod:`flowless.models.weights`).

Additions, all off by default: a width multiplier for CPU-sized members of the family, a
configurable stem, no max-pool, dropout before the classifier, and an adaptive pool so any
clip length and any frame size (>= 32 px) works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flowless.errors import ConfigError
from flowless.models.stem import StemConv3d

# arch -> (block kind, blocks per stage)
ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet10": ("basic", (1, 1, 1, 1)),
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
    "resnet200": ("bottleneck", (3, 24, 36, 3)),
    "resnext50": ("resnext", (3, 4, 6, 3)),
    "resnext101": ("resnext", (3, 4, 23, 3)),
    "resnext152": ("resnext", (3, 8, 36, 3)),
}
# Stage widths ("planes") before expansion, and the expansion of each block kind.
PLANES = {"basic": (64, 128, 256, 512), "bottleneck": (64, 128, 256, 512),
          "resnext": (128, 256, 512, 1024)}
EXPANSION = {"basic": 1, "bottleneck": 4, "resnext": 2}
STEM_CHANNELS = 64

TAPS = ("stem", "layer1", "layer2", "layer3", "layer4", "pool")
MODEL_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "fc")


def conv3x3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: subsample (stride) and zero-pad the channels; no parameters."""

    def __init__(self, out_channels: int, stride: int):
        super().__init__()
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            # == avg_pool3d(kernel_size=1, stride) as in Hara et al.
            x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        extra = self.out_channels - x.shape[1]
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra)) if extra > 0 else x


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with a residual connection (ResNet-10/18/34)."""

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = conv3x3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3 (grouped for ResNeXt) with the stride, 1x1x1 expand."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, groups: int,
                 downsample: nn.Module | None):
        super().__init__()
        self.conv1 = conv1x1x1(cin, mid)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = conv3x3x3(mid, mid, stride, groups)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = conv1x1x1(mid, cout)
        self.bn3 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, value)
    try:
        out = tuple(int(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or min(out) < 1:
        raise ConfigError(f"model option {name}={value!r}: expected a positive int or 3 ints (t, h, w)")
    return out  # type: ignore[return-value]


class VideoResNet(nn.Module):
    """A 3D ResNet/ResNeXt; ``forward`` gives logits, ``forward_features`` all taps.

    Build it with :func:`create_model`; ``model.config`` holds the arguments that rebuild it.
    """

    def __init__(
        self,
        arch: str,
        num_classes: int,
        in_channels: int = 3,
        *,
        width: float = 1.0,
        shortcut: str = "B",
        cardinality: int | None = None,
        stem_kernel: int | Sequence[int] = 7,
        stem_stride: int | Sequence[int] = (1, 2, 2),
        no_max_pool: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        arch = str(arch).lower()
        if arch not in ARCHS:
            raise ConfigError(f"unknown model arch {arch!r}; choose one of {', '.join(ARCHS)}")
        kind, blocks = ARCHS[arch]
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ConfigError(f"num_classes={num_classes!r}: expected a positive integer")
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ConfigError(f"in_channels={in_channels!r}: expected a positive integer")
        if not width > 0:
            raise ConfigError(f"model option width={width!r}: expected a number > 0")
        shortcut = str(shortcut).upper()
        if shortcut not in ("A", "B"):
            raise ConfigError(f"model option shortcut={shortcut!r}: expected 'A' or 'B'")
        if cardinality is None:
            cardinality = 32 if kind == "resnext" else 1
        if kind != "resnext" and cardinality != 1:
            raise ConfigError(f"cardinality applies to resnext archs only, not {arch}; "
                              "use resnext50/101/152")
        if cardinality < 1:
            raise ConfigError(f"model option cardinality={cardinality!r}: expected >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model option dropout={dropout!r}: expected 0 <= dropout < 1")
        kernel = _triple(stem_kernel, "stem_kernel")
        stride = _triple(stem_stride, "stem_stride")

        self.arch, self.kind = arch, kind
        self.num_classes, self.in_channels = num_classes, in_channels
        self._config: dict[str, Any] = {
            "arch": arch, "num_classes": num_classes, "in_channels": in_channels,
            "width": float(width), "shortcut": shortcut, "cardinality": int(cardinality),
            "stem_kernel": list(kernel), "stem_stride": list(stride),
            "no_max_pool": bool(no_max_pool), "dropout": float(dropout),
        }

        def scaled(c: int) -> int:
            return max(1, int(round(c * width)))

        stem_out = scaled(STEM_CHANNELS)
        # an nn.Conv3d with a faster weight gradient on the CPU (models/stem.py)
        self.conv1 = StemConv3d(in_channels, stem_out, kernel, stride=stride,
                                padding=tuple(k // 2 for k in kernel), bias=False)
        self.bn1 = nn.BatchNorm3d(stem_out)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if no_max_pool else nn.MaxPool3d(3, stride=2, padding=1)

        channels = stem_out
        self.tap_channels: dict[str, int] = {"stem": stem_out}
        for i, (planes, count) in enumerate(zip(PLANES[kind], blocks), start=1):
            layer = self._make_layer(kind, channels, scaled(planes), count,
                                     stride=1 if i == 1 else 2, shortcut=shortcut,
                                     cardinality=cardinality)
            setattr(self, f"layer{i}", layer)
            channels = scaled(planes) * EXPANSION[kind]
            self.tap_channels[f"layer{i}"] = channels
        self.tap_channels["pool"] = channels
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    @staticmethod
    def _make_layer(kind: str, cin: int, planes: int, count: int, *, stride: int,
                    shortcut: str, cardinality: int) -> nn.Sequential:
        cout = planes * EXPANSION[kind]
        blocks: list[nn.Module] = []
        for b in range(count):
            s = stride if b == 0 else 1
            downsample: nn.Module | None = None
            if s != 1 or cin != cout:
                if shortcut == "A":
                    downsample = ZeroPadShortcut(cout, s)
                else:
                    downsample = nn.Sequential(conv1x1x1(cin, cout, s), nn.BatchNorm3d(cout))
            if kind == "basic":
                blocks.append(BasicBlock(cin, planes, s, downsample))
            elif kind == "bottleneck":
                blocks.append(Bottleneck(cin, planes, cout, s, 1, downsample))
            else:  # Hara's ResNeXt: group width planes // 32, i.e. mid == planes at C = 32
                mid = cardinality * max(1, planes // 32)
                blocks.append(Bottleneck(cin, mid, cout, s, cardinality, downsample))
            cin = cout
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments of :func:`create_model` that rebuild this architecture."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    def stages(self) -> dict[str, list[nn.Module]]:
        """Modules of each stage in input-to-output order (for freezing up to a stage)."""
        return {"stem": [self.conv1, self.bn1], "layer1": [self.layer1],
                "layer2": [self.layer2], "layer3": [self.layer3], "layer4": [self.layer4],
                "fc": [self.fc]}

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """All taps in one pass: stem (after max-pool), layer1..4 (B,C,T,H,W), pool (B,C), logits."""
        if x.dim() != 5:
            raise ValueError(f"expected a clip batch (B, C, T, H, W), got shape {tuple(x.shape)}")
        out: dict[str, torch.Tensor] = {}
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out["stem"] = x
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            out[name] = x
        pooled = torch.flatten(self.avgpool(x), 1)
        out["pool"] = pooled
        out["logits"] = self.fc(self.dropout(pooled))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["logits"]


def create_model(arch: str, num_classes: int, in_channels: int = 3, **options: Any) -> VideoResNet:
    """Build a 3D ResNet/ResNeXt: ``arch`` in :data:`ARCHS`; options as :class:`VideoResNet`.

    ``create_model(**model.config)`` rebuilds the same architecture.
    """
    allowed = {"width", "shortcut", "cardinality", "stem_kernel", "stem_stride", "no_max_pool",
               "dropout"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown model option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(sorted(allowed))}")
    return VideoResNet(arch, num_classes, in_channels, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (conv + BN + FC; buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
