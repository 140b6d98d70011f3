"""Loading network weights: flowless checkpoints, Hara/MARS ``.pth`` files, bare state dicts.

Files are read with :func:`flowless.checkpoint.load_checkpoint` (``weights_only=True``), so
loading never executes code from the file. Hara/MARS checkpoints look like
``{'state_dict': {'module.conv1.weight': ...}, 'arch': ..., 'epoch': ...}``; the DataParallel
``module.`` (and ``torch.compile``'s ``_orig_mod.``) prefixes are stripped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowless.checkpoint import is_flowless, load_checkpoint
from flowless.errors import CheckpointError, ConfigError, FlowlessError
from flowless.models.resnet3d import ARCHS, STEM_CHANNELS, VideoResNet, create_model

STEM_KEY = "conv1.weight"
CLASSIFIER_KEYS = ("fc.weight", "fc.bias")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class LoadReport:
    """What :func:`load_weights` did; ``str(report)`` is a short human-readable summary."""

    source: str
    format: str  # "flowless" | "hara" (a {'state_dict': ...} dict) | "state_dict" (bare)
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    replaced_classifier: bool = False
    stem: str | None = None  # e.g. "mean over 3 input channels -> 2"

    @property
    def complete(self) -> bool:
        """True when every model tensor came from the checkpoint (classifier aside)."""
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        parts = [f"{self.source} ({self.format}): loaded {len(self.loaded)} tensors"]
        if self.stem:
            parts.append(f"stem: {self.stem}")
        if self.replaced_classifier:
            parts.append("classifier re-initialised")
        if self.missing:
            parts.append(f"{len(self.missing)} missing (e.g. {', '.join(self.missing[:3])})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected "
                         f"(e.g. {', '.join(self.unexpected[:3])})")
        return "; ".join(parts)


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def extract_state_dict(ckpt: dict[str, Any], source: str = "<state dict>"
                       ) -> tuple[dict[str, torch.Tensor], str]:
    """The network's tensors (prefixes stripped) and the checkpoint format name."""
    if is_flowless(ckpt):
        if ckpt.get("kind") == "fusion":
            raise CheckpointError(f"{source}: is a fusion checkpoint (fusion module weights), not "
                                  "a network; pass a stream checkpoint (kind 'stream')")
        raw, fmt = ckpt.get("model"), "flowless"
    elif isinstance(ckpt.get("state_dict"), dict):
        raw, fmt = ckpt["state_dict"], "hara"
    else:
        raw, fmt = ckpt, "state_dict"
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: checkpoint has no network weights ('model' entry "
                              "missing); it may be truncated or of another format")
    state = {_strip(str(k)): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if STEM_KEY not in state:
        raise CheckpointError(f"{source}: no 3D ResNet weights found (no 'conv1.weight' among "
                              f"{len(state)} tensors); expected a flowless or Hara/MARS checkpoint")
    return state, fmt


def infer_config(state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """Best guess of the :func:`create_model` arguments a state dict was saved from.

    Reads block counts, block kind, groups, widths, input channels, classes and shortcut
    type from the keys and shapes; stem stride and max-pool cannot be seen and are left at
    their defaults. Returns None when the layout matches no known arch.
    """
    state = {_strip(k): v for k, v in state.items()}
    if STEM_KEY not in state or "fc.weight" not in state:
        return None
    counts = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        counts.append(max(idx) + 1 if idx else 0)
    bottleneck = "layer1.0.conv3.weight" in state
    conv2 = state.get("layer1.0.conv2.weight")
    groups = conv2.shape[0] // conv2.shape[1] if conv2 is not None else 1
    kind = "resnext" if groups > 1 else ("bottleneck" if bottleneck else "basic")
    arch = next((a for a, (k, b) in ARCHS.items() if k == kind and list(b) == counts), None)
    if arch is None:
        return None
    stem = state[STEM_KEY]
    config: dict[str, Any] = {
        "arch": arch, "num_classes": int(state["fc.weight"].shape[0]),
        "in_channels": int(stem.shape[1]), "width": stem.shape[0] / STEM_CHANNELS,
        "shortcut": "B" if any(k.endswith("downsample.0.weight") for k in state) else "A",
        "stem_kernel": [int(s) for s in stem.shape[2:]],
    }
    if kind == "resnext":
        config["cardinality"] = int(groups)
    return config


def _describe(state: dict[str, torch.Tensor]) -> str:
    cfg = infer_config(state)
    if cfg is None:
        return "an unknown architecture"
    width = f", width {cfg['width']:g}" if cfg["width"] != 1 else ""
    return (f"{cfg['arch']} (in_channels {cfg['in_channels']}, {cfg['num_classes']} classes, "
            f"shortcut {cfg['shortcut']}{width})")


def _arch_mismatch(source: str, model: nn.Module, state: dict[str, torch.Tensor],
                   problem: str) -> CheckpointError:
    name = getattr(model, "arch", type(model).__name__)
    return CheckpointError(f"{source}: checkpoint does not fit this {name} model: {problem}; "
                           f"the checkpoint looks like {_describe(state)}: create the model "
                           "with that architecture")


def load_weights(
    model: nn.Module,
    path_or_state_dict: str | Path | dict[str, Any],
    *,
    flow_stem: str | bool = "auto",
    replace_classifier: str | bool = "auto",
    strict: bool = True,
    source: str | None = None,
) -> LoadReport:
    """Load weights into ``model`` in place and report what happened.

    - ``flow_stem``: ``"auto"`` maps the stem when the checkpoint's input channel count
      differs from the model's (e.g. an RGB checkpoint into a 2-channel flow network) by
      the mean over the checkpoint's channels, repeated to the model's; ``"mean"`` always
      does so; ``False`` makes a channel mismatch an error.
    - ``replace_classifier``: ``"auto"`` re-initialises ``fc`` when the class count
      differs; ``True`` always; ``False`` makes a class-count mismatch an error.
    - ``strict``: missing or unexpected keys (other than BN's ``num_batches_tracked``)
      raise CheckpointError; with ``strict=False`` the matching part is loaded and the rest
      listed in the report.
    Any other shape mismatch (a different arch or width) raises CheckpointError.
    """
    _check_options(flow_stem, replace_classifier)
    ckpt, source = _read(path_or_state_dict, source)
    state, fmt = extract_state_dict(ckpt, source)
    target = model.state_dict()
    report = LoadReport(source=source, format=fmt)
    replace = _replace_classifier(state, target, replace_classifier, source)
    new_state = _merge(model, state, target, report, flow_stem=flow_stem, replace=replace)
    report.missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")
                      and not (replace and k in CLASSIFIER_KEYS)]
    if strict:
        _check_strict(model, state, report)
    model.load_state_dict(new_state)
    if replace:
        fc = getattr(model, "fc", None)
        if isinstance(fc, nn.Linear):
            fc.reset_parameters()
        report.replaced_classifier = True
    return report


def _check_options(flow_stem: str | bool, replace_classifier: str | bool) -> None:
    if flow_stem not in ("auto", "mean", False):
        raise ConfigError(f"flow_stem={flow_stem!r}: expected 'auto', 'mean' or False")
    if replace_classifier not in ("auto", True, False):
        raise ConfigError(f"replace_classifier={replace_classifier!r}: expected 'auto', True "
                          "or False")


def _read(path_or_state_dict: str | Path | dict[str, Any], source: str | None
          ) -> tuple[dict[str, Any], str]:
    """The checkpoint dict (a file is read safely) and the name messages give it."""
    if isinstance(path_or_state_dict, (str, Path)):
        return load_checkpoint(path_or_state_dict), source or str(path_or_state_dict)
    return path_or_state_dict, source or "<state dict>"


def _replace_classifier(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                        option: str | bool, source: str) -> bool:
    """Whether ``fc`` is re-initialised: always with True, on a class-count change with "auto"."""
    if option is True:
        return True
    if not all(k in state and k in target for k in CLASSIFIER_KEYS):
        return False
    have, want = state["fc.weight"].shape, target["fc.weight"].shape
    if have[1:] != want[1:] or have[0] == want[0]:
        return False  # same classes, or a mismatch reported by _merge
    if option is False:
        raise CheckpointError(f"{source}: checkpoint has {have[0]} classes but the "
                              f"model {want[0]}; pass replace_classifier='auto' to "
                              "re-initialise the classifier")
    return True


def _merge(model: nn.Module, state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
           report: LoadReport, *, flow_stem: str | bool, replace: bool
           ) -> dict[str, torch.Tensor]:
    """``target`` updated with the checkpoint tensors that fit; fills ``report``."""
    new_state = dict(target)
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        if replace and key in CLASSIFIER_KEYS:
            continue
        want = target[key].shape
        if key == STEM_KEY:
            value = _map_stem(value, want, flow_stem, report)
        if value.shape != want:
            if key == STEM_KEY and value.shape[1] != want[1] and flow_stem is False:
                raise CheckpointError(f"{report.source}: checkpoint stem has {value.shape[1]} "
                                      f"input channels but the model {want[1]}; pass "
                                      "flow_stem='auto' to map it by the channel mean")
            raise _arch_mismatch(report.source, model, state, f"{key} has shape "
                                 f"{tuple(value.shape)} in the checkpoint but {tuple(want)} "
                                 "in the model")
        new_state[key] = value
        report.loaded.append(key)
    return new_state


def _map_stem(value: torch.Tensor, want: torch.Size, flow_stem: str | bool,
              report: LoadReport) -> torch.Tensor:
    """The stem averaged over input channels and repeated to the model's, when asked for
    (``"mean"``) or needed (``"auto"`` and another channel count) and the rest fits."""
    if not (flow_stem == "mean" or (flow_stem == "auto" and value.shape[1] != want[1])):
        return value
    if value.shape[:1] + value.shape[2:] != want[:1] + want[2:]:
        return value  # another arch or width: reported by _merge
    report.stem = f"mean over {value.shape[1]} input channels -> {want[1]}"
    return value.float().mean(dim=1, keepdim=True).repeat(1, want[1], 1, 1, 1)


def _check_strict(model: nn.Module, state: dict[str, torch.Tensor], report: LoadReport) -> None:
    """Missing or unexpected keys are an error naming the first of each."""
    problem = []
    if report.missing:
        problem.append(f"{len(report.missing)} missing keys (e.g. {report.missing[0]})")
    if report.unexpected:
        problem.append(f"{len(report.unexpected)} unexpected keys "
                       f"(e.g. {report.unexpected[0]})")
    if problem:
        raise _arch_mismatch(report.source, model, state, " and ".join(problem)
                             + " (strict=False loads the matching part)")


def model_from_checkpoint(ckpt_or_path: str | Path | dict[str, Any],
                          source: str | Path | None = None) -> VideoResNet:
    """Rebuild a flowless stream network from its checkpoint (``model_config`` + ``model``).

    Returns the network in eval mode on the CPU. Foreign (Hara/MARS), fusion and broken
    checkpoints raise CheckpointError saying what to do instead; ``source`` (the file a
    loaded dict came from) is the name those messages give.
    """
    if isinstance(ckpt_or_path, (str, Path)):
        source = str(ckpt_or_path)
        ckpt = load_checkpoint(ckpt_or_path)
    else:
        source, ckpt = str(source or "<checkpoint>"), ckpt_or_path
    if not is_flowless(ckpt):
        state, _ = extract_state_dict(ckpt, source)
        raise CheckpointError(f"{source}: not a flowless stream checkpoint (it looks like a "
                              f"{_describe(state)} state dict); build the network with "
                              "create_model(...) and load it with load_weights(model, path)")
    if ckpt.get("kind", "stream") != "stream":
        raise CheckpointError(f"{source}: is a {ckpt.get('kind')!r} checkpoint, not a stream "
                              "network; pass a stream checkpoint (e.g. a run's best.pt)")
    config = ckpt.get("model_config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{source}: has no model_config; it was not written by flowless "
                              "training or is damaged")
    try:
        model = create_model(**config)
    except (FlowlessError, TypeError) as exc:
        raise CheckpointError(f"{source}: invalid model_config ({exc})") from exc
    load_weights(model, ckpt, flow_stem=False, replace_classifier=False, strict=True,
                 source=source)
    return model.eval()
