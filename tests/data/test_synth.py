"""The embedded dataset: files, splits, determinism, motion semantics and separability."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from flowless.cli import main
from flowless.data.annotations import load_index
from flowless.data.synth import (
    FAMILIES,
    MOTIONS,
    SynthConfig,
    generate,
    hflip_labels,
    make_synthetic_dataset,
    plan_videos,
    render_video,
)
from flowless.data.synth_render import HUE_JITTER, HUE_RESERVED, colour
from flowless.data.video import read_video
from flowless.errors import ConfigError, FlowlessError

TINY = dict(motions=2, categories=2, videos_per_class=4, frames=6, size=32, test_per_class=2,
            clips_per_group=2)


def _separability_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "separability.py"
    spec = importlib.util.spec_from_file_location("separability", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth") / "tiny", **TINY, quiet=True)


def test_writes_ucf101_layout_that_load_index_reads(tiny: Path):
    names = ["TranslateLeftRed", "TranslateLeftBlue", "TranslateRightRed", "TranslateRightBlue"]
    assert (tiny / "classInd.txt").read_text() == "".join(
        f"{i + 1} {n}\n" for i, n in enumerate(names))
    index = load_index(tiny, "ucf101")
    assert index.classes == names
    train, test = index.split("train"), index.split("test")
    assert (len(train), len(test)) == (8, 8)
    for rec in train + test:
        assert rec.path.is_file() and rec.class_name == names[rec.label]
        assert rec.path.parent.name == rec.class_name
        assert rec.path.name.startswith(f"v_{rec.class_name}_g")
    # UCF101 rule: a group (gNN) of a class is never in both splits.
    def groups(recs):
        return {(r.class_name, r.path.stem.split("_")[-2]) for r in recs}
    assert groups(train).isdisjoint(groups(test))
    # testlist01 lines are paths only, trainlist01 lines end with the 1-based label.
    assert all(len(line.split()) == 1 for line in (tiny / "testlist01.txt").read_text().splitlines())
    first = (tiny / "trainlist01.txt").read_text().splitlines()[0].split()
    assert first[0].startswith("TranslateLeftRed/") and first[1] == "1"


def test_videos_decode_with_plain_pyav_and_opencv(tiny: Path):
    path = next(tiny.glob("TranslateRightBlue/*.mp4"))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 6 and frames[0].shape == (32, 32, 3)
    cap = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        assert img.shape == (32, 32, 3)
        count += 1
    cap.release()
    assert count == 6
    # Lossless H.264: the decoded video is the rendered one up to 4:2:0 chroma sampling.
    spec = next(s for s in plan_videos(SynthConfig(**TINY)) if tiny / s.rel == path)
    rendered = render_video(SynthConfig(**TINY), spec)
    assert np.abs(np.stack(frames).astype(int) - rendered).mean() < 4
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(int) for f in (frames[0], rendered[0])]
    # Luma survives (up to limited-range YUV rounding), so flow sees what was rendered.
    assert np.abs(grey[0] - grey[1]).mean() < 2.5 and np.abs(grey[0] - grey[1]).max() <= 6


def test_same_seed_gives_identical_files_and_frames(tiny: Path, tmp_path: Path):
    again = make_synthetic_dataset(tmp_path / "again", **TINY, quiet=True, jobs=2)
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        assert (again / name).read_bytes() == (tiny / name).read_bytes()
    for rel in (tiny / "testlist01.txt").read_text().split()[:3]:
        assert np.array_equal(read_video(again / rel), read_video(tiny / rel))


def test_different_seeds_give_different_videos():
    cfg0, cfg1 = SynthConfig(**TINY, seed=0), SynthConfig(**TINY, seed=1)
    spec = plan_videos(cfg0)[0]
    assert not np.array_equal(render_video(cfg0, spec), render_video(cfg1, spec))
    # ... and videos of one seed differ from each other.
    assert not np.array_equal(render_video(cfg0, spec), render_video(cfg0, plan_videos(cfg0)[1]))


def test_categories_one_gives_motion_only_classes_in_all_colours():
    cfg = SynthConfig(motions=3, categories=1, videos_per_class=12, frames=2, size=32,
                      distractors=0)
    assert cfg.class_names() == ["TranslateLeft", "TranslateRight", "RotateClockwise"]
    specs = plan_videos(cfg)
    assert len(specs) == 36 and {s.label for s in specs} == {0, 1, 2}
    hues = set()
    for spec in specs[:12]:
        hsv = cv2.cvtColor(render_video(cfg, spec)[0], cv2.COLOR_RGB2HSV)
        strong = hsv[..., 1] > 150
        hues.add(int(np.median(hsv[..., 0][strong])) // 15)
    assert len(hues) >= 3  # several families among 12 videos of one class


def test_split_plan_counts_and_groups():
    cfg = SynthConfig(videos_per_class=10, test_per_class=3, clips_per_group=4, motions=1,
                      categories=1)
    specs = plan_videos(cfg)
    test = [s for s in specs if s.split == "test"]
    train = [s for s in specs if s.split == "train"]
    assert len(test) == 3 and len(train) == 7
    assert {s.group for s in test} == {1} and {s.group for s in train} == {2, 3}
    assert SynthConfig(videos_per_class=60).num_test() == 15


def test_hflip_labels_swap_mirrored_motions():
    cfg = SynthConfig(motions=8, categories=2)
    flips = hflip_labels(cfg)
    names = cfg.class_names()
    mirrored = {names[i]: names[j] for i, j in enumerate(flips)}
    assert mirrored["TranslateLeftBlue"] == "TranslateRightBlue"
    assert mirrored["RotateClockwiseRed"] == "RotateCounterclockwiseRed"
    assert mirrored["TranslateUpRed"] == "TranslateUpRed" and mirrored["ZoomInBlue"] == "ZoomInBlue"
    assert hflip_labels(SynthConfig(motions=1)) == [-1, -1]


def test_colours_keep_the_grey_level_so_flow_cannot_see_the_family():
    luma = np.array([0.299, 0.587, 0.114])
    for _, hue in FAMILIES:
        for y in (0.12, 0.35, 0.55, 0.8):
            c = colour(hue, y, 0.9)
            assert c.min() >= -1e-9 and c.max() <= 1 + 1e-9
            assert c @ luma == pytest.approx(y, abs=1e-9)


def _hue_distance(h: np.ndarray, target: float) -> np.ndarray:
    return np.abs((h - target + 180.0) % 360.0 - 180.0)


def test_only_the_object_uses_its_family_hue():
    cfg = SynthConfig(motions=5, categories=2, videos_per_class=6, frames=3, size=64,
                      distractors=3)
    for spec in plan_videos(cfg)[::5]:
        rgb = render_video(cfg, spec)[1].reshape(-1, 3).astype(np.float64) / 255
        hsv = cv2.cvtColor(render_video(cfg, spec)[1], cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)
        hue = hsv[:, 0].astype(np.float64) * 360 / 256
        vivid = (rgb.max(1) - rgb.min(1)) > 0.25
        own, other = FAMILIES[spec.category][1], FAMILIES[1 - spec.category][1]
        near_own = _hue_distance(hue, own) < HUE_JITTER + 6
        assert vivid.sum() > 50 and near_own[vivid].sum() > 40  # the object is there
        # No vivid pixel anywhere (background, distractors) takes the other family's hue.
        assert (_hue_distance(hue[vivid], other) < HUE_RESERVED - 10).sum() == 0


@pytest.mark.parametrize("motion,feature,sign", [
    ("TranslateLeft", 0, -1), ("TranslateRight", 0, 1), ("TranslateUp", 1, -1),
    ("TranslateDown", 1, 1), ("RotateClockwise", 3, 1), ("RotateCounterclockwise", 3, -1),
    ("ZoomIn", 2, 1), ("ZoomOut", 2, -1), ("Approach", 2, -1), ("Separate", 2, 1),
])
def test_motion_names_match_the_optical_flow(motion: str, feature: int, sign: int):
    """Without nuisance, Farneback flow statistics have the sign each class name promises:
    [mean u (right +), mean v (down +), radial (outwards +), tangential (clockwise +)]."""
    sep = _separability_module()
    cfg = SynthConfig(motions=len(MOTIONS), categories=1, videos_per_class=3, frames=7,
                      size=64, nuisance=0, distractors=0)
    index = [m.name for m in MOTIONS].index(motion)
    for spec in [s for s in plan_videos(cfg) if s.motion == index]:
        stats = sep.motion_features(render_video(cfg, spec))
        assert sign * stats[feature] > 0.05, (spec.rel, stats)


def test_oscillate_changes_direction():
    cfg = SynthConfig(motions=9, categories=1, videos_per_class=2, frames=17, size=64,
                      nuisance=0, distractors=0)
    spec = next(s for s in plan_videos(cfg) if s.motion == 8)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in render_video(cfg, spec)]
    u = [cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0)[..., 0]
         for a, b in zip(grey[:-1], grey[1:])]
    means = [x[np.abs(x) > 0.2].mean() if (np.abs(x) > 0.2).any() else 0.0 for x in u]
    assert max(means) > 0.3 and min(means) < -0.3


def test_one_frame_tells_category_flow_tells_motion_both_tell_class(tmp_path: Path):
    """The design goal, checked with simple classifiers on a generated set."""
    sep = _separability_module()
    root = make_synthetic_dataset(tmp_path / "sep", motions=5, categories=2,
                                  videos_per_class=24, test_fraction=0.5, frames=10, size=48,
                                  seed=0, quiet=True)
    acc = sep.separability(root, categories=2)
    # chance: category 0.5, motion 0.2, class 0.1; the test split has 120 videos.
    assert acc["appearance"]["category"] >= 0.9
    assert acc["appearance"]["motion"] <= 0.4
    assert acc["motion"]["motion"] >= 0.6
    assert acc["motion"]["category"] <= 0.65
    best_single = max(acc["appearance"]["class"], acc["motion"]["class"])
    assert acc["both"]["class"] >= best_single + 0.15, acc


def test_refuses_a_non_empty_folder_and_resumes_its_own(tiny: Path, tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FlowlessError, match="not empty.*--overwrite"):
        make_synthetic_dataset(other, **TINY, quiet=True)
    with pytest.raises(FlowlessError, match=r"other settings \(seed 0 -> 5\)"):
        make_synthetic_dataset(tiny, **{**TINY, "seed": 5}, quiet=True)
    # Resume: a missing video is written again, identical; the others are kept.
    copy = make_synthetic_dataset(tmp_path / "copy", **TINY, quiet=True)
    victim = copy / (copy / "testlist01.txt").read_text().split()[0]
    before = read_video(victim)
    victim.unlink()
    summary = generate(copy, SynthConfig(**TINY), quiet=True)
    assert (summary.written, summary.skipped) == (1, 15)
    assert np.array_equal(read_video(victim), before)


def test_invalid_options_raise_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="motions must be 1..11"):
        SynthConfig(motions=12).validate()
    with pytest.raises(ConfigError, match="categories must be 1..8"):
        make_synthetic_dataset(tmp_path / "x", categories=0)
    with pytest.raises(ConfigError, match="test_per_class"):
        make_synthetic_dataset(tmp_path / "x", videos_per_class=3, test_per_class=3)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        make_synthetic_dataset(tmp_path / "x", speed=3)
    assert not (tmp_path / "x").exists()


def test_cli_prints_what_it_wrote_and_errors_in_one_line(tmp_path: Path, capsys):
    out = tmp_path / "cli"
    args = ["synth", str(out), "--motions", "3", "--categories", "1", "--videos-per-class", "3",
            "--test-per-class", "1", "--frames", "4", "--size", "32", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "3 classes (3 motions x any colour), 9 videos (6 train, 3 test)" in printed
    assert "9 written" in printed
    assert len(list(out.glob("*/*.mp4"))) == 9
    assert main(args) == 0
    assert "0 written, 9 already present" in capsys.readouterr().out
    assert main([*args, "--seed", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowless synth: error:") and "seed 0 -> 2" in err
    assert len(err.splitlines()) == 1
    assert main(["synth", str(tmp_path / "bad"), "--motions", "0"]) == 2
    assert "motions must be" in capsys.readouterr().err


def test_context_colours_the_object_with_its_class_family_at_the_set_rate():
    import numpy as np

    from flowless.data.synth import FAMILIES, SynthConfig, plan_videos
    from flowless.data.synth_render import object_family

    for context, own_rate in ((1.0, 1.0), (0.5, 0.5 + 0.5 / len(FAMILIES))):
        cfg = SynthConfig(motions=5, categories=1, context=context)
        specs = plan_videos(cfg)
        own = [object_family(cfg, s, np.random.default_rng([i, 7])) == s.motion
               for i, s in enumerate(specs * 10)]
        assert np.mean(own) == pytest.approx(own_rate, abs=0.03)
    # context 0 draws exactly what the motion-only set always drew (no extra coin)
    cfg = SynthConfig(motions=5, categories=1)
    spec = plan_videos(cfg)[0]
    for seed in range(20):
        got = object_family(cfg, spec, np.random.default_rng(seed))
        assert got == np.random.default_rng(seed).integers(len(FAMILIES))


def test_context_needs_motion_only_classes():
    from flowless.data.synth import SynthConfig
    from flowless.errors import ConfigError

    with pytest.raises(ConfigError, match="context applies to motion-only classes"):
        SynthConfig(categories=2, context=0.5).validate()
    with pytest.raises(ConfigError, match="context must be between 0 and 1"):
        SynthConfig(categories=1, context=1.5).validate()


def test_spin_and_zoom_knobs_scale_only_their_motion():
    """spin_scale multiplies the Rotate spin, zoom_scale the zoom rate and zoom_max caps the
    size ratio a zoom reaches over the video; the other motions are drawn as before."""
    from flowless.data.synth_render import _actors

    def actor(motion: str, **knobs):
        cfg = SynthConfig(categories=1, frames=17, size=64, motion_scale=1.6, **knobs)
        return _actors(np.random.default_rng(7), cfg, motion, 0.0)[0]

    spin = [np.diff(actor("RotateClockwise", spin_scale=s).angle) for s in (1.0, 0.5)]
    assert np.all(spin[0] < 0) and np.allclose(spin[1], 0.5 * spin[0])
    for motion in ("ZoomIn", "ZoomOut"):
        ratio = {}
        for knobs in ({}, {"zoom_scale": 0.5}, {"zoom_scale": 0.5, "zoom_max": 1.5},
                      {"zoom_scale": 2.0, "zoom_max": 4.0}):
            d = actor(motion, **knobs).diameter
            ratio[tuple(knobs.values())] = max(d[-1] / d[0], d[0] / d[-1])
        # at motion_scale 1.6 the default rate hits the default cap, 2.5 over the video
        assert ratio[()] == pytest.approx(2.5)
        assert 1.0 < ratio[(0.5,)] < 2.5 and ratio[(0.5, 1.5)] == pytest.approx(1.5)
        assert 2.5 < ratio[(2.0, 4.0)] <= 4.0 + 1e-9
    moved = [actor("TranslateLeft", **k).centre for k in ({}, {"spin_scale": 0.3, "zoom_max": 9})]
    assert np.array_equal(*moved)
    with pytest.raises(ConfigError, match="zoom_max must be above 1"):
        SynthConfig(zoom_max=1.0).validate()
    with pytest.raises(ConfigError, match="spin_scale must be positive"):
        SynthConfig(spin_scale=0).validate()


def test_a_folder_made_before_a_knob_existed_is_still_resumed(tiny: Path):
    """synth.json files written before a SynthConfig field existed hold its default."""
    import json

    manifest = json.loads((tiny / "synth.json").read_text())
    for knob in ("spin_scale", "zoom_scale", "zoom_max"):
        del manifest["config"][knob]
    (tiny / "synth.json").write_text(json.dumps(manifest))
    assert generate(tiny, SynthConfig(**TINY), quiet=True).skipped == 16
    with pytest.raises(FlowlessError, match=r"zoom_max 2.5 -> 3.0"):
        generate(tiny, SynthConfig(**TINY, zoom_max=3.0), quiet=True)
