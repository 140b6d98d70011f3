"""The demo's configuration: :class:`DemoConfig`, the named dataset variants, and what the
demo trains and tabulates (:data:`METHODS`, :data:`STREAM_RUNS`, :data:`FUSIONS`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DemoConfig:
    """Everything the demo does; defaults are the README's main job (about 8 min, 2 cores)."""

    out: str = "runs/demo"
    seed: int = 0
    variant: str = "context8"  # the dataset: a key of VARIANTS (see docs/dataset.md)
    # dataset (flowless synth); the defaults are the "context8" variant's
    motions: int = 8
    categories: int = 1
    context: float = 0.5
    videos_per_class: int = 102
    test_per_class: int | None = 50  # 400 test videos: one video is 0.25 points
    frames: int = 17
    render_size: int = 64
    # objects move 1.6x the synth default (chosen once, seed 0, with RGB and Flow streams only:
    # at 1.0 camera jitter and background drift drown the object's flow at 64 px)
    motion_scale: float = 1.6
    nuisance: float = 1.25  # background drift, camera jitter and pixel noise (x synth's)
    spin_scale: float = 1.0  # the Rotate motions' spin, on top of motion_scale
    zoom_scale: float = 1.0  # the Zoom motions' rate, on top of motion_scale
    zoom_max: float = 2.5  # the largest size ratio a zoom reaches over the video
    distractors: int = 2  # each video has 0..distractors distractor objects
    # flow (flowless flow): TV-L1 as in the paper, on the rendered frames; the "fast" preset
    # (3 warps, epsilon 0.05) is ~5x cheaper than OpenCV's defaults at ~the same error
    flow_backend: str = "tvl1"
    flow_preset: str | None = "fast"
    flow_short_side: int = 64
    flow_params: dict[str, Any] = field(default_factory=dict)
    workers: int = 0  # flow processes (0: all cores)
    # networks and the one recipe every stream and student gets
    arch: str = "resnet10"
    width: float = 0.25
    clip_len: int = 16
    size: int = 24  # the clip size every network sees (flow is computed at 64 px)
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    alpha: float = 50.0  # the paper's default for both MARS and relation
    # validate (on the test split, for the curves only: rows use the last epoch) every N
    # epochs and at the last; validation does not change the weights, and every epoch
    # would cost a third of the training time
    val_every: int = 4
    fusion_epochs: int = 30
    timing_videos: int = 20  # test videos timed end to end per method (median reported)
    threads: int = 0  # torch threads (0: all cores)
    jobs: int = 0  # trainings run side by side (0: one per core, up to 4; 1: one at a time)
    baselines_only: bool = False  # calibration: RGB, Flow and their fusions only
    controls: bool = False  # also the DS (2x epochs) row: the paper's DS on the student's schedule

    @classmethod
    def for_variant(cls, variant: str, **overrides: Any) -> DemoConfig:
        """The demo on a named dataset variant (:data:`VARIANTS`); ``overrides`` win."""
        if variant not in VARIANTS:
            from flowless.errors import ConfigError

            raise ConfigError(f"unknown demo variant {variant!r}; choose one of "
                              f"{', '.join(VARIANTS)}")
        return cls(**{"variant": variant, **VARIANTS[variant], **overrides})

    @classmethod
    def quick_preset(cls, **overrides: Any) -> DemoConfig:
        """Seconds-scale data and epochs, for tests and a smoke run, on the dataset variant
        ``overrides["variant"]`` (default "context8"); ``overrides`` win."""
        variant = overrides.get("variant", DemoConfig.variant)
        if variant not in VARIANTS:
            cls.for_variant(variant)  # raises the one-line error naming the variants
        kind = VARIANTS[variant]  # the variant's kind of classes, at a seconds scale
        base = dict(motions=2 if kind["categories"] > 1 else 3, categories=kind["categories"],
                    context=kind["context"], nuisance=kind["nuisance"],
                    videos_per_class=6, test_per_class=2, frames=9,
                    render_size=32, flow_backend="farneback", flow_preset=None,
                    flow_short_side=32,
                    clip_len=8, size=32, epochs=2, batch_size=8, fusion_epochs=3,
                    timing_videos=2, arch="resnet10", width=0.125)
        base.update(overrides)
        return cls(**base)


# Dataset variants (docs/dataset.md). "context8" (the default since the fourth calibration):
# classes are 8 motions and a scene-context colour hints at the class half the time, so Flow
# is the stronger stream and appearance still adds, as on UCF101/HMDB51. "context": the same
# on 5 motions at 32 px (the default before, calibrated first). "appearance-motion" (the
# default before): a class is a (motion, colour) pair, so the flow teacher is blind to half
# of every label. "motion-only": classes are motions, colour is random. Each lists every
# field in which it differs from another, so that each reproduces its own runs.
VARIANTS: dict[str, dict[str, Any]] = {
    "context8": {"motions": 8, "categories": 1, "context": 0.5, "videos_per_class": 102,
                 "test_per_class": 50, "nuisance": 1.25, "size": 24},
    "context": {"motions": 5, "categories": 1, "context": 0.5, "videos_per_class": 144,
                "test_per_class": 80, "nuisance": 1.0, "size": 32},
    "appearance-motion": {"motions": 5, "categories": 2, "context": 0.0,
                          "videos_per_class": 48, "test_per_class": None, "nuisance": 1.0,
                          "size": 32},
    "motion-only": {"motions": 5, "categories": 1, "context": 0.0, "videos_per_class": 60,
                    "test_per_class": None, "nuisance": 1.0, "size": 32},
}


# --- what the demo trains and tabulates -----------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One row of the table: streams (run names) and how they are fused."""

    name: str
    streams: tuple[str, ...]
    fusion: str | None = None  # None (single), "logit-mean" or a fusion run name


METHODS = (
    Method("RGB", ("rgb",)),
    Method("Flow", ("flow",)),
    Method("RGB+Flow (mean)", ("rgb", "flow"), "logit-mean"),
    Method("RGB+Flow (attention)", ("rgb", "flow"), "fusion_rgb_flow"),
    Method("RGB+Flow (flowless fusion)", ("rgb", "flow"), "fusion_rgb_flow_flowless"),
    Method("MARS", ("mars",)),
    Method("DS", ("ds",)),
    Method("RGB (2x epochs)", ("rgb_long",)),  # the student's schedule without a teacher
    Method("DS (2x epochs)", ("ds_long",)),  # the paper's DS on the student's schedule
    Method("flowless student", ("student",)),
    Method("DS+RGB (attention)", ("ds", "rgb"), "fusion_ds_rgb"),
    Method("DS+Flow (attention)", ("ds", "flow"), "fusion_ds_flow"),
)


@dataclass(frozen=True)
class StreamRun:
    """One trained network: run name, input (``rgb`` / ``flow``), teacher run, distillation."""

    name: str
    input: str
    teacher: str | None = None
    mode: str = "none"
    ensemble: tuple[str, ...] = ()  # more frozen runs in the KD target (student)
    epochs_scale: int = 1  # epochs = the recipe's epochs x this


# trained in this order (the students need the Flow teacher and the RGB stream)
STREAM_RUNS = (
    StreamRun("rgb", "rgb"),
    StreamRun("flow", "flow"),
    StreamRun("mars", "rgb", teacher="flow", mode="mars"),
    StreamRun("ds", "rgb", teacher="flow", mode="relation"),
    # the flowless student: its recipe includes a schedule twice as long (docs/distillation.md),
    # so the RGB stream trained as long is its control
    StreamRun("student", "rgb", teacher="flow", mode="student", ensemble=("rgb",),
              epochs_scale=2),
    StreamRun("rgb_long", "rgb", epochs_scale=2),
    # and the paper's DS trained as long: what the ensemble KD adds to the relation loss
    StreamRun("ds_long", "rgb", teacher="flow", mode="relation", epochs_scale=2),
)


@dataclass(frozen=True)
class FusionRun:
    """One trained fusion: the runs it fuses and the module (attention | weighted)."""

    streams: tuple[str, ...]
    kind: str = "attention"


FUSIONS = {"fusion_rgb_flow": FusionRun(("rgb", "flow")),
           "fusion_rgb_flow_flowless": FusionRun(("rgb", "flow"), "weighted"),
           "fusion_ds_rgb": FusionRun(("ds", "rgb")),
           "fusion_ds_flow": FusionRun(("ds", "flow"))}

BASELINE_STREAMS = {"rgb", "flow"}  # what a benchmark is calibrated with (never a student)
BEYOND_PAPER = {"fusion_rgb_flow_flowless"}  # flowless's own methods: not calibration rows
CONTROLS = {"ds_long"}  # trained only with DemoConfig.controls (1-2 minutes more)
