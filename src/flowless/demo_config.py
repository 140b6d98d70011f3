"""The demo's configuration: :class:`DemoConfig` and the named dataset variants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DemoConfig:
    """Everything the demo does; defaults are the README's main job (about 11 min, 2 cores)."""

    out: str = "runs/demo"
    seed: int = 0
    variant: str = "context"  # the dataset: a key of VARIANTS (see docs/dataset.md)
    # dataset (flowless synth); the defaults are the "context" variant's
    motions: int = 5
    categories: int = 1
    context: float = 0.5
    videos_per_class: int = 144
    test_per_class: int | None = 80  # 400 test videos: one video is 0.25 points
    frames: int = 17
    render_size: int = 64
    # objects move 1.6x the synth default (chosen once, seed 0, with RGB and Flow streams only:
    # at 1.0 camera jitter and background drift drown the object's flow at 64 px)
    motion_scale: float = 1.6
    nuisance: float = 1.0  # background drift, camera jitter and pixel noise (synth's scale)
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
    size: int = 32
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
        ``overrides["variant"]`` (default "context"); ``overrides`` win."""
        variant = overrides.get("variant", "context")
        kind = {"context": dict(categories=1, context=0.5),
                "appearance-motion": dict(categories=2, context=0.0),
                "motion-only": dict(categories=1, context=0.0)}
        if variant not in kind:
            cls.for_variant(variant)  # raises the one-line error naming the variants
        base = dict(motions=3 if variant != "appearance-motion" else 2, **kind[variant],
                    videos_per_class=6, test_per_class=2, frames=9,
                    render_size=32, flow_backend="farneback", flow_preset=None,
                    flow_short_side=32,
                    clip_len=8, size=32, epochs=2, batch_size=8, fusion_epochs=3,
                    timing_videos=2, arch="resnet10", width=0.125)
        base.update(overrides)
        return cls(**base)


# Dataset variants. "context" (the default since it was calibrated, docs/dataset.md): classes
# are motions and a scene-context colour hints at the class half the time, so Flow is the
# stronger stream and appearance still adds, as on UCF101/HMDB51. "appearance-motion" (the
# default before): a class is a (motion, colour) pair, so the flow teacher is blind to half
# of every label. "motion-only": classes are motions, colour is random.
VARIANTS: dict[str, dict[str, Any]] = {
    "context": {"motions": 5, "categories": 1, "context": 0.5, "videos_per_class": 144,
                "test_per_class": 80},
    "appearance-motion": {"motions": 5, "categories": 2, "context": 0.0,
                          "videos_per_class": 48, "test_per_class": None},
    "motion-only": {"motions": 5, "categories": 1, "context": 0.0, "videos_per_class": 60,
                    "test_per_class": None},
}
