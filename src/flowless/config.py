"""Typed run configurations: dataclasses with defaults, YAML load/save, ``--set`` overrides.

A run is fully described by a :class:`TrainConfig` (or :class:`FusionConfig`), saved as
``config.yaml`` in its run folder. Values are checked against the field types; an
unknown key or a wrong type raises :class:`ConfigError` with a one-line message naming
the key (and the YAML file), the expected type and what was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowless.data.holdout import DEFAULT_VAL_FRACTION
from flowless.errors import ConfigError
from flowless.models.resnet3d import MODEL_STAGES, TAPS
from flowless.typed_config import C, apply_overrides, from_dict, to_dict  # noqa: F401

DISTILL_MODES = ("none", "mars", "relation", "relation+mars", "kd", "student")
# train-fusion takes these from the first stream checkpoint; a config may not set them
FUSION_CLIP_KEYS = ("data.clip_len", "data.size", "data.stride", "data.short_side")


@dataclass
class DataConfig:
    """Where the videos (and their flow) are, and how clips are cut."""

    format: str = "ucf101"  # ucf101 | hmdb51 | kinetics | ssv2 | list | rawframes | folder
    root: str = ""  # dataset root folder
    split: int = 1  # official split number (UCF101/HMDB51)
    annotations: str | None = None  # annotation file/folder when not inside root
    flow_root: str | None = None  # flow store (flowless flow) for flow input / teachers
    val_split: str = "auto"  # split used for validation: auto = test, else validation
    # no train/test split (a plain class folder): share of each class held out for validation
    val_fraction: float = DEFAULT_VAL_FRACTION
    clip_len: int = 16
    size: int = 112
    stride: int = 1  # temporal stride between clip frames
    short_side: int | None = None  # resize short side before cropping (None: as decoded)
    workers: int | str = "auto"  # DataLoader worker processes; auto: sized to the cores
    cache: str = "auto"  # decoded videos in memory: auto (when they fit in cache_mb) | on | off
    cache_mb: int = 4096  # memory budget of data.cache=auto (per process)
    # a folder for decoded videos on disk (one .npy per video and input, named by the
    # source file's path, size and mtime): later runs read them instead of decoding
    cache_dir: str | None = None
    flip: bool = True  # random horizontal flip in training (off for left/right classes)
    flow_backend: str | None = None  # recorded in checkpoints (read from the store if None)
    flow_short_side: int | None = None
    # "k/K": train on the training split minus its fold k of K and validate on that fold
    # (cross-fitting, see train-fusion --fit-on crossfit); None: the whole split
    fold: str | None = None


@dataclass
class ModelConfig:
    """Network architecture and initialisation."""

    arch: str = "resnext101"
    width: float = 1.0  # channel-width multiplier
    shortcut: str | None = None  # "A" | "B"; None: the architecture's default
    cardinality: int | None = None  # ResNeXt groups; None: default
    dropout: float = 0.0  # before the classifier
    pretrained: str | None = None  # checkpoint to start from (flowless, Hara/MARS)
    freeze_until: str | None = None  # freeze stages before this one: layer1..layer4 | fc


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (defaults: MARS from scratch)."""

    name: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9
    dampening: float = 0.9  # MARS uses dampening = momentum
    weight_decay: float = 1e-3
    nesterov: bool = False
    schedule: str = "plateau"  # plateau (on val loss) | cosine | none
    warmup_epochs: float = 0.0  # linear warm-up (cosine / none)
    patience: int = 10  # ReduceLROnPlateau patience (epochs)
    factor: float = 0.1  # ReduceLROnPlateau factor
    min_lr: float = 0.0  # cosine floor
    grad_clip: float | None = None  # max gradient norm


@dataclass
class DistillConfig:
    """Teacher and distillation loss: CE + alpha * term(mode)."""

    teacher: str | None = None  # frozen stream checkpoint (usually the flow stream)
    mode: str = "none"  # none | mars | relation | relation+mars | kd | student
    # Unset (None) weights take the mode's defaults (distill/recipe.py): the paper's for
    # mars/relation, the measured recipe for student; the run's config.yaml has the values.
    alpha: float | None = None  # weight of the feature term (the relation term for student)
    taps: list[str] = field(default_factory=lambda: list(TAPS))  # for relation / student
    temperature: float | None = None  # KD temperature (kd, student)
    ensemble: list[str] = field(default_factory=list)  # kd/student: more frozen streams
    kd_weight: float | None = None  # student: weight of the KD term
    normalize: bool | None = None  # relation terms relative to the teacher's, per tap
    warmup_epochs: float | None = None  # distillation weights ramp up linearly over these


@dataclass
class TrainConfig:
    """One training run of a stream (RGB or flow input), optionally distilled."""

    stream: str = "rgb"  # input of the trained network: rgb | flow
    name: str | None = None  # stream name in the checkpoint (default: rgb/flow/mars/ds/...)
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    out: str = "runs/train"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto | off | bf16 | fp16 (CUDA only)
    threads: int = 0  # torch CPU threads (0: leave as is)
    val_every: int = 1  # validate every N epochs (and always at the last)
    tensorboard: bool = True
    resume: str | None = None  # run folder or checkpoint to continue
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class FusionConfig:
    """Attention fusion on top of frozen stream checkpoints (docs/method.md §4)."""

    streams: list[str] = field(default_factory=list)  # stream checkpoint paths
    epochs: int = 30
    batch_size: int = 16
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    train_views: int = 1  # augmented train clips per video whose logits are precomputed
    # attention: the paper's module | weighted: flowless fusion, a weighted logit mean with
    # normalised weights and a temperature (docs/method.md §11)
    kind: str = "attention"
    # what the fusion is fitted on: train (the streams' logits of augmented training clips,
    # as the paper) | crossfit (out-of-fold video logits: each stream is retrained on all
    # folds but one and predicts that one); None: crossfit for weighted, train for attention
    fit_on: str | None = None
    folds: int = 2  # crossfit folds
    crossfit_dir: str | None = None  # where fold runs live (None: OUT/crossfit); share it
    # between fusions of the same streams to train each fold copy once
    per_class: bool = True  # weighted: one weight per stream and class (else per stream)
    l2: float = 1e-2  # weighted: L2 on the log-weights and biases
    seed: int = 0
    out: str = "runs/fusion"
    device: str = "auto"
    threads: int = 0
    data: DataConfig = field(default_factory=DataConfig)


CHOICES: dict[str, tuple[Any, ...]] = {
    "stream": ("rgb", "flow"),
    "amp": ("auto", "off", "bf16", "fp16"),
    "model.shortcut": (None, "A", "B"),
    "model.freeze_until": (None,) + MODEL_STAGES[1:],
    "optim.name": ("sgd", "adamw"),
    "optim.schedule": ("plateau", "cosine", "none"),
    "distill.mode": DISTILL_MODES,
    "data.cache": ("auto", "on", "off"),
    "kind": ("attention", "weighted"),
    "fit_on": (None, "train", "crossfit"),
}

def validate(cfg: Any) -> None:
    """Check value choices and cross-field rules; raise ConfigError on the first problem."""
    data = to_dict(cfg)
    for key, allowed in CHOICES.items():
        value: Any = data
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            if value not in allowed:
                shown = ", ".join("null" if a is None else str(a) for a in allowed)
                raise ConfigError(f"{key}: {value!r} is not one of: {shown}")
    if isinstance(cfg, TrainConfig):
        _validate_train(cfg)
    if isinstance(cfg, FusionConfig):
        if len(cfg.streams) < 2:
            raise ConfigError("streams: fusion needs at least two stream checkpoints")
        if cfg.folds < 2:
            raise ConfigError(f"folds: cross-fitting needs at least 2 folds, got {cfg.folds}")
        if cfg.l2 < 0:
            raise ConfigError(f"l2: must be at least 0, got {cfg.l2}")
    if cfg.data.fold is not None:
        from flowless.data.holdout import parse_fold

        parse_fold(cfg.data.fold)
    for key in ("epochs", "batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {getattr(cfg, key)}")
    if cfg.data.clip_len < 1 or cfg.data.size < 1 or cfg.data.stride < 1:
        raise ConfigError("data.clip_len, data.size and data.stride must be at least 1")
    workers = cfg.data.workers
    if workers != "auto" and (isinstance(workers, str) or workers < 0):
        raise ConfigError(f"data.workers: expected auto or a number of processes (0: load in "
                          f"the training process), got {workers!r}")


def _validate_train(cfg: TrainConfig) -> None:
    d = cfg.distill
    bad_taps = [t for t in d.taps if t not in TAPS]
    if bad_taps:
        raise ConfigError(f"distill.taps: unknown tap {bad_taps[0]!r}; valid taps: {', '.join(TAPS)}")
    if d.mode != "none" and not d.teacher:
        raise ConfigError(
            f"distill.mode: {d.mode} needs a teacher checkpoint; pass --teacher CKPT "
            "(or set distill.teacher)"
        )
    if d.mode == "none" and d.teacher:
        raise ConfigError(
            "distill.teacher is set but distill.mode is none; pass --distill "
            "mars|relation|relation+mars|kd"
        )
    if d.mode in ("relation", "relation+mars") and not d.taps:
        raise ConfigError("distill.taps: relation distillation needs at least one tap")
    if d.ensemble and d.mode not in ("kd", "student"):
        raise ConfigError(f"distill.ensemble: only kd and student distil logits from an "
                          f"ensemble; drop distill.ensemble or pass --distill student "
                          f"(mode is {d.mode})")
    for key in ("alpha", "temperature", "kd_weight", "warmup_epochs"):
        value = getattr(d, key)
        if value is not None and value < 0:
            raise ConfigError(f"distill.{key}: must be at least 0, got {value}")
    if d.temperature is not None and d.temperature <= 0:
        raise ConfigError(f"distill.temperature: must be positive, got {d.temperature}")
    if cfg.optim.schedule == "plateau" and cfg.optim.warmup_epochs > 0:
        raise ConfigError(
            "optim.warmup_epochs: warm-up applies to schedule cosine or none, not plateau"
        )
    if cfg.stream == "flow" and not cfg.data.flow_root:
        raise ConfigError("data.flow_root: the flow stream needs a flow store; set data.flow_root")
    if cfg.val_every < 1:
        raise ConfigError(f"val_every: must be at least 1, got {cfg.val_every}")


def load_yaml(path: str | Path, cls: type[C] = TrainConfig) -> C:  # type: ignore[assignment]
    """Read a YAML config file into ``cls``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; save the config as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else f"{path}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}; fix the YAML syntax") from None
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_yaml(cfg: Any, path: str | Path) -> Path:
    """Write ``cfg`` as YAML atomically (keys in declaration order)."""
    from flowless.io import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return Path(path)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] | None = None,
    cls: type[C] = TrainConfig,  # type: ignore[assignment]
    *,
    flags: Sequence[str] = (),
    resume: str | Path | None = None,
    streams: Sequence[str] | None = None,
) -> C:
    """Resolve a run config; the one path used by the CLI commands, the tests and the API.

    Layers, later wins: the defaults (or, with ``resume`` and no ``path``, the resumed run's
    saved config with ``out`` set to its folder), the YAML file ``path``, ``flags``
    (``key=value`` from command-line flags), ``overrides`` (``--set key=value``). Validated.

    TrainConfig: ``cfg.resume`` is ``resume``, never the file's (the config.yaml of a resumed
    run names its source); a teacher in ``flags`` with no distill mode in ``flags``, the file
    or the resumed run means ``distill.mode=relation``. FusionConfig: ``streams`` replace
    ``cfg.streams``; the clip settings (:data:`FUSION_CLIP_KEYS`) come from the stream
    checkpoints, so a file or an override that sets them is refused.
    """
    train_cfg, fusion_cfg = issubclass(cls, TrainConfig), issubclass(cls, FusionConfig)
    if resume is not None and not train_cfg:
        raise ValueError(f"resume: {cls.__name__} runs cannot be resumed")
    if streams is not None and not fusion_cfg:
        raise ValueError(f"streams: {cls.__name__} has no streams")
    flags, sets = list(flags), list(overrides or [])
    if path:
        cfg = load_yaml(path, cls)
        if fusion_cfg:
            _refuse_clip_settings(cfg, path)
    elif resume:
        cfg = _resumed_config(resume, cls)
    else:
        cfg = cls()
    if fusion_cfg:
        for key in _keys(flags + sets):
            if key in FUSION_CLIP_KEYS:
                raise ConfigError(f"{key}: train-fusion takes clip settings from the stream "
                                  f"checkpoints; drop {key}")
    if train_cfg:
        given = dict(_split(item) for item in flags if "=" in item)
        if given.get("distill.teacher") and "distill.mode" not in given \
                and cfg.distill.mode == "none":
            flags.append("distill.mode=relation")  # a teacher alone means the paper's loss
    cfg = apply_overrides(cfg, flags + sets)
    if train_cfg:
        cfg.resume = None if resume is None else str(resume)
    if streams is not None:
        cfg.streams = list(streams)
    validate(cfg)
    return cfg


def _split(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    return key.strip(), value


def _keys(items: Sequence[str]) -> list[str]:
    return [_split(item)[0] for item in items if "=" in item]


def _resumed_config(resume: str | Path, cls: type[C]) -> C:
    """The config of the run ``resume`` continues (its config.yaml, else its checkpoint's)."""
    from flowless.engine.state import load_resume, resume_path

    ckpt = resume_path(resume)
    saved = ckpt.parent / "config.yaml"
    cfg = load_yaml(saved, cls) if saved.exists() else from_dict(cls, load_resume(ckpt)["config"])
    cfg.out = str(ckpt.parent)  # type: ignore[attr-defined]
    return cfg


def _refuse_clip_settings(cfg: FusionConfig, path: str | Path) -> None:
    """Refuse clip settings in a fusion YAML file; the defaults (which the config.yaml of a
    fusion run holds) are accepted."""
    default = DataConfig()
    for key in FUSION_CLIP_KEYS:
        name = key.split(".", 1)[1]
        if getattr(cfg.data, name) != getattr(default, name):
            raise ConfigError(f"{path}: {key}: train-fusion takes clip settings from the stream "
                              f"checkpoints; drop {key} from the file")
