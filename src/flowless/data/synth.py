"""Embedded action dataset: each class is a (motion, object colour family) pair.

A video shows a textured object of one colour family doing one motion over a drifting
textured background, with distractor objects, camera jitter and pixel noise. Everything
except (motion, family) is drawn independently of the class, and object colours are
chosen at a luminance drawn independently of the family, so one frame tells the category
(colour) but not the motion, optical flow (computed on grey levels) tells the motion but
not the category, and only both name the class. Videos are H.264 mp4 files in the UCF101
layout; each is a pure function of (config, class, group, clip), so a seed gives the same
videos whatever the number of worker processes or the order of rendering.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from flowless.errors import ConfigError

GENERATOR_VERSION = 2  # bump when a change alters the pixels of a given config


@dataclass(frozen=True)
class Motion:
    """A motion class: ``name`` is the CamelCase class-name prefix; ``mirror`` the motion
    it becomes when the video is flipped left-right."""

    name: str
    doc: str
    mirror: str = ""  # "" = itself


# Ordered: ``motions=M`` takes the first M. The first five are the default set.
MOTIONS: tuple[Motion, ...] = (
    Motion("TranslateLeft", "the object slides left at a constant speed", "TranslateRight"),
    Motion("TranslateRight", "the object slides right at a constant speed", "TranslateLeft"),
    Motion("RotateClockwise", "the object spins clockwise (on screen) about its centre",
           "RotateCounterclockwise"),
    Motion("RotateCounterclockwise", "the object spins counter-clockwise about its centre",
           "RotateClockwise"),
    Motion("ZoomIn", "the object grows at a constant rate (comes towards the camera)"),
    Motion("TranslateUp", "the object slides up at a constant speed"),
    Motion("TranslateDown", "the object slides down at a constant speed"),
    Motion("ZoomOut", "the object shrinks at a constant rate (moves away)"),
    Motion("Oscillate", "the object swings left and right (one sine period of 8-12 frames)"),
    Motion("Approach", "two objects of the family move towards each other"),
    Motion("Separate", "two objects of the family move away from each other"),
)

# (name, hue in degrees). Ordered so that any prefix has well separated hues.
FAMILIES: tuple[tuple[str, float], ...] = (
    ("Red", 0.0), ("Blue", 220.0), ("Green", 120.0), ("Yellow", 58.0),
    ("Magenta", 300.0), ("Cyan", 180.0), ("Orange", 28.0), ("Purple", 265.0),
)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that defines a generated dataset (saved as ``synth.json``).

    Sizes and speeds are fractions of the frame size, so ``size`` changes resolution only.
    Difficulty knobs: ``motion_scale`` multiplies object speeds, spin and zoom rates
    (smaller = subtler motion, harder for both streams); ``nuisance`` multiplies background
    drift, camera jitter and pixel noise; ``distractors`` is the most distractor objects
    per video (each video draws 0..distractors); ``spin_scale`` multiplies the spin of the
    Rotate motions on top of ``motion_scale``, ``zoom_scale`` the zoom rate; ``zoom_max``
    caps how far a zoom goes over the whole video (the size ratio of its last and first
    frames). ``context`` (motion-only classes,
    ``categories=1``) is the chance that a video's object has its class's own colour family
    (motion m: family m), as a scene hints at an action in real video; otherwise, and
    always at 0, the family is drawn at random.
    """

    motions: int = 5
    categories: int = 2
    videos_per_class: int = 60
    test_fraction: float = 0.25
    test_per_class: int | None = None
    clips_per_group: int = 4
    frames: int = 17
    size: int = 64
    seed: int = 0
    motion_scale: float = 1.0
    nuisance: float = 1.0
    distractors: int = 2
    fps: int = 25
    context: float = 0.0
    spin_scale: float = 1.0
    zoom_scale: float = 1.0
    zoom_max: float = 2.5

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid option."""
        checks = [
            (1 <= self.motions <= len(MOTIONS), f"motions must be 1..{len(MOTIONS)}"),
            (1 <= self.categories <= len(FAMILIES), f"categories must be 1..{len(FAMILIES)}"),
            (self.videos_per_class >= 2, "videos_per_class must be at least 2 (train + test)"),
            (0.0 < self.test_fraction < 1.0, "test_fraction must be between 0 and 1"),
            (self.test_per_class is None or 1 <= self.test_per_class < self.videos_per_class,
             "test_per_class must be 1..videos_per_class-1"),
            (1 <= self.clips_per_group <= 99, "clips_per_group must be 1..99"),
            (self.frames >= 2, "frames must be at least 2"),
            (16 <= self.size <= 1024, "size must be 16..1024 pixels"),
            (self.motion_scale > 0, "motion_scale must be positive"),
            (self.nuisance >= 0, "nuisance must be >= 0"),
            (self.spin_scale > 0, "spin_scale must be positive"),
            (self.zoom_scale > 0, "zoom_scale must be positive"),
            (self.zoom_max > 1, "zoom_max must be above 1 (the size ratio a zoom reaches)"),
            (self.distractors >= 0, "distractors must be >= 0"),
            (1 <= self.fps <= 240, "fps must be 1..240"),
            (self.seed >= 0, "seed must be >= 0"),
            (0.0 <= self.context <= 1.0, "context must be between 0 and 1"),
            (self.context == 0.0 or self.categories == 1,
             "context applies to motion-only classes (categories 1)"),
            (self.context == 0.0 or self.motions <= len(FAMILIES),
             f"context needs one colour family per motion (motions <= {len(FAMILIES)})"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"synthetic dataset: {msg}")

    def num_test(self) -> int:
        """Test videos per class."""
        if self.test_per_class is not None:
            return self.test_per_class
        return min(self.videos_per_class - 1, max(1, round(self.videos_per_class * self.test_fraction)))

    def class_names(self) -> list[str]:
        """Class names in label order: motion-major, e.g. TranslateLeftRed, TranslateLeftBlue."""
        if self.categories == 1:
            return [m.name for m in MOTIONS[: self.motions]]
        return [m.name + f for m in MOTIONS[: self.motions] for f, _ in FAMILIES[: self.categories]]


def hflip_labels(cfg: SynthConfig) -> list[int]:
    """Label each class takes when its video is flipped left-right (flip augmentation must
    remap labels: a mirrored TranslateLeft is a TranslateRight)."""
    names = [m.name for m in MOTIONS[: cfg.motions]]
    out = []
    for label in range(len(cfg.class_names())):
        motion, category = divmod(label, cfg.categories)
        mirror = MOTIONS[motion].mirror or MOTIONS[motion].name
        # -1: the mirrored video is of no class in this set (e.g. motions=1): do not flip it.
        out.append(names.index(mirror) * cfg.categories + category if mirror in names else -1)
    return out


@dataclass(frozen=True)
class VideoSpec:
    """One video to generate: where it goes and what it shows."""

    rel: str  # POSIX path relative to the dataset root
    label: int
    split: str  # "train" | "test"
    motion: int
    category: int
    group: int  # 1-based, as in gNN
    clip: int  # 1-based, as in cNN


def plan_videos(cfg: SynthConfig) -> list[VideoSpec]:
    """All videos of a config. Test videos fill the first groups, train videos the next
    ones, so no group (scene) is shared between train and test, as in UCF101."""
    names, g = cfg.class_names(), cfg.clips_per_group
    n_test = cfg.num_test()
    specs = []
    for label, name in enumerate(names):
        motion, category = divmod(label, cfg.categories)
        first_train_group = math.ceil(n_test / g)
        for i in range(cfg.videos_per_class):
            split = "test" if i < n_test else "train"
            j = i if split == "test" else i - n_test
            group = j // g + 1 + (0 if split == "test" else first_train_group)
            clip = j % g + 1
            rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.mp4"
            specs.append(VideoSpec(rel, label, split, motion, category, group, clip))
    return specs


# ----------------------------------------------------------------------------- writing
@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` did."""

    root: Path
    classes: list[str]
    train: int
    test: int
    written: int
    skipped: int  # already present (resumed run)
    seconds: float


def render_video(cfg: SynthConfig, spec: VideoSpec) -> np.ndarray:
    """Render one video as uint8 RGB frames (T, S, S, 3); a pure function of (cfg, spec)."""
    from flowless.data.synth_render import render

    return render(cfg, spec)


def _write_one(job: tuple[SynthConfig, VideoSpec, str]) -> str:
    from flowless.data.video import write_video

    cfg, spec, root = job
    # Lossless H.264 (crf 0, yuv420p): the x264 build in PyAV wheels does not give the same
    # bitstream for the same frames every time (measured), so lossy files of one seed could
    # decode differently; lossless ones always decode to the same frames. The "ultrafast"
    # preset (no CABAC) decodes ~1.5x faster (7 vs 10.5 ms for 17 frames of 64x64), which
    # matters when timing the RGB-only path; the decoded frames are the same.
    write_video(Path(root) / spec.rel, render_video(cfg, spec), fps=cfg.fps, crf=0,
                preset="ultrafast")
    return spec.rel


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _default_jobs(n: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if n < 64 else max(1, min(cpus or 1, 8))


def _check_out(root: Path, cfg: SynthConfig, overwrite: bool) -> None:
    """Refuse a non-empty folder unless it holds this very config (resume) or ``overwrite``."""
    from flowless.errors import FlowlessError

    if root.exists() and not root.is_dir():
        raise FlowlessError(f"{root}: exists and is not a folder; choose another output path")
    if overwrite or not root.exists() or not any(root.iterdir()):
        return
    manifest = root / "synth.json"
    if not manifest.is_file():
        raise FlowlessError(f"{root}: folder is not empty; choose an empty folder or pass "
                            "--overwrite to write the dataset into it")
    import json

    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FlowlessError(f"{manifest}: unreadable ({exc}); pass --overwrite to regenerate") from exc
    # a field added since the folder was made has its default there
    old_cfg = {**asdict(SynthConfig()), **old.get("config", {})}
    if old_cfg != asdict(cfg) or old.get("generator") != GENERATOR_VERSION:
        diff = ", ".join(f"{k} {old_cfg.get(k)!r} -> {v!r}"
                         for k, v in asdict(cfg).items() if old_cfg.get(k) != v)
        raise FlowlessError(f"{root}: holds a synthetic dataset made with other settings "
                            f"({diff or 'another generator version'}); pass --overwrite or "
                            "choose another folder")


def generate(out: str | Path, cfg: SynthConfig, *, jobs: int | None = None,
             overwrite: bool = False, quiet: bool | None = None) -> SynthSummary:
    """Write the dataset of ``cfg`` to ``out``; resumes a partial run of the same config.

    Videos are written atomically; the split files are written last, so a folder with
    ``testlist01.txt`` is complete. ``overwrite`` rewrites every file and deletes nothing.
    """
    from flowless.io import writable_dir, write_json, write_text
    from flowless.progress import progress

    cfg.validate()
    root = Path(out)
    _check_out(root, cfg, overwrite)
    start = time.perf_counter()
    specs, names = plan_videos(cfg), cfg.class_names()
    writable_dir(root)  # an unwritable OUT is a one-line error before any work
    flips = hflip_labels(cfg)
    manifest = {"generator": GENERATOR_VERSION, "config": asdict(cfg), "complete": False,
                "classes": [{"label": i, "name": n, "motion": MOTIONS[i // cfg.categories].name,
                             "category": "Any" if cfg.categories == 1
                             else FAMILIES[i % cfg.categories][0], "hflip_label": flips[i]}
                            for i, n in enumerate(names)]}
    write_json(root / "synth.json", manifest)
    todo = [s for s in specs if overwrite or not (root / s.rel).is_file()]
    jobs = _default_jobs(len(todo)) if jobs is None else max(1, int(jobs))
    work = [(cfg, s, str(root)) for s in todo]
    with progress(total=len(todo), desc="synth", unit="video", quiet=quiet) as bar:
        if jobs == 1 or len(todo) <= 1:
            for job in work:
                _write_one(job)
                bar.update()
        else:
            import multiprocessing
            import sys
            from concurrent.futures import ProcessPoolExecutor

            # fork on Linux: works from scripts without a __main__ guard; workers only use
            # numpy, OpenCV and PyAV. Elsewhere spawn (fork is unsafe on macOS). No
            # cv2.setNumThreads in a forked child: it hangs once the parent used OpenCV.
            fork = sys.platform.startswith("linux")
            with ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
                initializer=None if fork else _init_worker,
            ) as pool:
                for _ in pool.map(_write_one, work, chunksize=8):
                    bar.update()
    write_text(root / "classInd.txt", "".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    write_text(root / "trainlist01.txt",
               "".join(f"{s.rel} {s.label + 1}\n" for s in specs if s.split == "train"))
    write_text(root / "testlist01.txt", "".join(f"{s.rel}\n" for s in specs if s.split == "test"))
    write_json(root / "synth.json", {**manifest, "complete": True})
    n_test = sum(s.split == "test" for s in specs)
    return SynthSummary(root, names, len(specs) - n_test, n_test, len(todo),
                        len(specs) - len(todo), time.perf_counter() - start)


def make_synthetic_dataset(
    out: str | Path,
    *,
    motions: int = 5,
    categories: int = 2,
    videos_per_class: int = 60,
    frames: int = 17,
    size: int = 64,
    seed: int = 0,
    jobs: int | None = None,
    overwrite: bool = False,
    quiet: bool | None = None,
    **options: object,
) -> Path:
    """Write the embedded dataset (UCF101 layout) to ``out`` and return ``out`` as a Path.

    ``options`` are the other :class:`SynthConfig` fields (test_fraction, test_per_class,
    clips_per_group, motion_scale, nuisance, distractors, fps). Read it back with
    ``flowless.data.annotations.load_index(out, "ucf101")``.
    """
    try:
        cfg = SynthConfig(motions=motions, categories=categories,
                          videos_per_class=videos_per_class, frames=frames, size=size, seed=seed,
                          **options)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"synthetic dataset: {exc}") from exc
    return generate(out, cfg, jobs=jobs, overwrite=overwrite, quiet=quiet).root
