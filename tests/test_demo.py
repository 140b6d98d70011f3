"""The demo in --quick mode: report, table and checkpoints exist and agree with each other."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from flowless.checkpoint import load_checkpoint
from flowless.cli import main
from flowless.demo import METHODS, DemoConfig, factor_accuracy
from flowless.demo_report import check_claims, format_claims, format_factor_table, format_table
from flowless.engine import read_metrics

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--quick", "--controls", "--out", str(out), "--threads", "1",
                 "--workers", "1", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def quick_pairs_demo(tmp_path_factory):
    """The quick demo on the appearance x motion variant (a class is a motion-colour pair)."""
    out = tmp_path_factory.mktemp("demo_am") / "out"
    code = main(["demo", "--quick", "--variant", "appearance-motion", "--out", str(out),
                 "--threads", "1", "--workers", "1", "--quiet"])
    assert code == 0
    return out


def _slug(method):
    return re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")


def test_report_table_and_checkpoints_are_consistent(quick_demo):
    summary = json.loads((quick_demo / "summary.json").read_text())
    rows = summary["rows"]
    assert [r["method"] for r in rows] == [m.name for m in METHODS]
    report = (quick_demo / "report.md").read_text()
    # the report carries exactly the table computed from the summary
    assert format_table(rows) in report
    for r in rows:
        assert 0.0 <= r["top1"] <= 1.0
        assert r["ms_per_video"] > 0
        assert r["needs_flow"] == ("Flow" in r["method"])
        # the per-method evaluation folder holds the metrics the table shows
        metrics = json.loads((quick_demo / "eval" / _slug(r["method"]) / "metrics.json")
                             .read_text())
        assert metrics["top1"] == pytest.approx(r["top1"])
        # and its confusion matrix is in the report
        figure = f"figures/confusion_{_slug(r['method'])}.png"
        assert (quick_demo / figure).stat().st_size > 0 and f"]({figure})" in report
    # one timing per pipeline: the single RGB networks share RGB's, the attention fusions of
    # an RGB and a Flow network share one, the rest are timed on their own
    timed = {r["method"]: r["timed_as"] for r in rows}
    single_rgb = ["RGB", "MARS", "DS", "RGB (2x epochs)", "DS (2x epochs)", "flowless student"]
    assert all(timed[m] == "RGB" for m in single_rgb)
    assert timed["DS+Flow (attention)"] == "RGB+Flow (attention)"
    alone = ["Flow", "RGB+Flow (mean)", "RGB+Flow (attention)", "RGB+Flow (flowless fusion)",
             "DS+RGB (attention)"]
    assert all(timed[m] == m for m in alone)
    by = {r["method"]: r for r in rows}
    assert all(by[m]["ms_each"] == by[timed[m]]["ms_each"] for m in timed)
    for name, path in summary["checkpoints"].items():
        ckpt = load_checkpoint(path)
        assert ckpt["kind"] == ("fusion" if name.startswith("fusion") else "stream")
    assert (quick_demo / "figures" / "curves.png").stat().st_size > 0
    # the run used the quick preset with the command line's flags, and says so
    expected = dataclasses.asdict(DemoConfig.quick_preset(out=str(quick_demo), threads=1,
                                                          workers=1, controls=True))
    saved = json.loads((quick_demo / "demo_config.json").read_text())
    assert saved.pop("versions") and saved == expected == summary["config"]


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_prefilled_logits_are_the_ones_each_row_would_compute(quick_demo, tmp_path):
    """The demo fills the logits cache with a few multi-network passes; a row evaluated on
    its own, without any cache, predicts exactly what the table used."""
    from flowless.eval.report import read_predictions
    from flowless.eval.runner import evaluate

    summary = json.loads((quick_demo / "summary.json").read_text())
    ckpt = summary["checkpoints"]
    assert sorted(p.name for p in (quick_demo / "eval" / ".prefill").iterdir()) == [
        "aligned", "rgb"]
    for method, streams, fusion in (("DS", ["ds"], None),
                                    ("RGB+Flow (mean)", ["rgb", "flow"], "logit-mean"),
                                    ("DS+Flow (attention)", ["ds", "flow"],
                                     ckpt["fusion_ds_flow"])):
        out = tmp_path / _slug(method)
        evaluate([ckpt[s] for s in streams], quick_demo / "data", "ucf101", protocol="mars",
                 fusion=fusion, flow_root=quick_demo / "flow", out=out, quiet=True)
        # the same probabilities (6 decimals), fused and per stream, for every test video
        alone = {p["key"]: (p["top5"], p.get("streams"))
                 for p in read_predictions(out / "predictions.jsonl")}
        table = {p["key"]: (p["top5"], p.get("streams")) for p in read_predictions(
            quick_demo / "eval" / _slug(method) / "predictions.jsonl")}
        assert alone == table


def test_parameter_counts_are_the_networks_weights(quick_demo):
    """Every row, fusions included: the networks rebuilt from the demo's settings and
    counted here (parameters only: BatchNorm running statistics are buffers)."""
    from flowless.models import AttentionFusion, WeightedFusion, create_model

    summary = json.loads((quick_demo / "summary.json").read_text())
    cfg, k = summary["config"], len(summary["classes"])
    # the demo's stream runs validate every cfg["val_every"] epochs and at the last
    saved = yaml.safe_load((quick_demo / "runs" / "rgb" / "config.yaml").read_text())
    assert saved["val_every"] == cfg["val_every"] == DemoConfig().val_every == 4
    rgb = _count(create_model(cfg["arch"], k, 3, width=cfg["width"]))
    flow = _count(create_model(cfg["arch"], k, 2, width=cfg["width"]))
    attention = _count(AttentionFusion(k, num_streams=2))
    weighted = _count(WeightedFusion(k, num_streams=2, per_class=True))
    assert rgb != flow and attention > 0 and weighted == 3 * k + 1
    assert {r["method"]: r["params"] for r in summary["rows"]} == {
        "RGB": rgb, "Flow": flow, "RGB+Flow (mean)": rgb + flow,
        "RGB+Flow (attention)": rgb + flow + attention,
        "RGB+Flow (flowless fusion)": rgb + flow + weighted, "flowless student": rgb,
        "RGB (2x epochs)": rgb, "DS (2x epochs)": rgb,
        "MARS": rgb, "DS": rgb,
        "DS+RGB (attention)": 2 * rgb + attention, "DS+Flow (attention)": rgb + flow + attention,
    }


def test_factor_columns_match_the_confusion_matrix(quick_pairs_demo):
    """Motion / category accuracy recomputed from confusion.csv and the class names."""
    import csv

    quick_demo = quick_pairs_demo
    summary = json.loads((quick_demo / "summary.json").read_text())
    # without --controls the DS (2x epochs) control is neither trained nor a row
    assert [r["method"] for r in summary["rows"]] == [
        m.name for m in METHODS if m.name != "DS (2x epochs)"]
    assert "ds_long" not in summary["checkpoints"] and not (quick_demo / "runs" / "ds_long").exists()
    synth = json.loads((quick_demo / "data" / "synth.json").read_text())["classes"]
    assert len(synth) == 4 and {c["category"] for c in synth} == {"Red", "Blue"}
    motion = {c["name"]: c["motion"] for c in synth}
    category = {c["name"]: c["category"] for c in synth}
    assert format_factor_table(summary["rows"]) in (quick_demo / "report.md").read_text()
    for r in summary["rows"]:
        with open(f"{r['eval_dir']}/confusion.csv") as f:
            table = list(csv.reader(f))
        names = table[0][1:]
        total = same_motion = same_category = 0
        for row in table[1:]:
            for pred, n in zip(names, map(int, row[1:])):
                total += n
                same_motion += n * (motion[row[0]] == motion[pred])
                same_category += n * (category[row[0]] == category[pred])
        assert r["motion_acc"] == pytest.approx(same_motion / total)
        assert r["category_acc"] == pytest.approx(same_category / total)
        assert min(r["motion_acc"], r["category_acc"]) >= r["top1"] - 1e-9


def test_factor_accuracy_counts_each_half_of_the_label(tmp_path):
    classes = [{"motion": m, "category": c} for m in ("L", "R") for c in ("red", "blue")]
    preds = [(0, 0), (0, 1), (0, 2), (3, 1), (2, 3)]  # (label, predicted)
    (tmp_path / "predictions.jsonl").write_text(
        "".join(json.dumps({"label": a, "predicted": b}) + "\n" for a, b in preds))
    acc = factor_accuracy(tmp_path, classes)
    # same motion: (0,0) (0,1) (2,3); same category: (0,0) (0,2) (3,1)
    assert acc == {"motion": pytest.approx(3 / 5), "category": pytest.approx(3 / 5)}


def test_claims_in_the_report_follow_the_table(quick_demo):
    from flowless.eval.report import read_predictions
    from flowless.eval.stats import verdict

    summary = json.loads((quick_demo / "summary.json").read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    claims = {c["claim"]: c for c in summary["claims"]}
    assert format_claims(summary["claims"]) in (quick_demo / "report.md").read_text()
    for r in rows.values():  # the per-video results behind the intervals are the evaluation's
        lines = read_predictions(f"{r['eval_dir']}/predictions.jsonl")
        assert r["correct"] == {p["key"]: int(p["correct"]) for p in lines}
        assert sum(r["correct"].values()) / len(r["correct"]) == pytest.approx(r["top1"])
    for a, b in (("DS", "RGB"), ("DS", "MARS")):
        c = claims[f"{a} beats {b}"]
        assert c["value"] == pytest.approx(100 * (rows[a]["top1"] - rows[b]["top1"]))
        assert c["low"] <= c["value"] + 1e-9 and c["value"] <= c["high"] + 1e-9
        assert c["verdict"] == verdict(c["low"], c["high"], 0.0)
        assert c["held"] == (c["verdict"] == "held") and c["videos"] == len(rows[a]["correct"])
    fusion = next(c for c in summary["claims"] if c["claim"].startswith("fusion"))
    gain = 100 * (rows["RGB+Flow (attention)"]["top1"]
                  - max(rows["RGB"]["top1"], rows["Flow"]["top1"]))
    assert fusion["value"] == pytest.approx(gain)
    speed = next(c for c in summary["claims"] if c["claim"].startswith("RGB-only"))
    ratio = (min(r["ms_per_video"] for r in rows.values() if r["needs_flow"])
             / max(r["ms_per_video"] for r in rows.values() if not r["needs_flow"]))
    assert f"{ratio:.1f}x" in speed["figures"] and speed["value"] == pytest.approx(ratio)
    assert speed["verdict"] == verdict(speed["low"], speed["high"], 10.0, strict=False)
    assert all(len(r["ms_each"]) == 2 for r in rows.values())  # the quick preset times 2
    # beyond the paper: the student against RGB and the half-way mark, flowless fusion
    student = claims["flowless student beats RGB"]
    assert student["value"] == pytest.approx(100 * (rows["flowless student"]["top1"]
                                                    - rows["RGB"]["top1"]))
    half = next(c for c in summary["claims"] if "50 % of the gap" in c["claim"])
    best = max(rows[m]["top1"] for m in rows if m.startswith("RGB+Flow"))
    mark = (rows["RGB"]["top1"] + best) / 2
    assert half["value"] == pytest.approx(100 * (rows["flowless student"]["top1"] - mark))
    assert half["verdict"] == verdict(half["low"], half["high"], 0.0, strict=False)
    mine = claims["RGB+Flow (flowless fusion) beats RGB+Flow (mean)"]
    assert mine["value"] == pytest.approx(100 * (rows["RGB+Flow (flowless fusion)"]["top1"]
                                                 - rows["RGB+Flow (mean)"]["top1"]))
    control = claims["flowless student beats RGB (2x epochs) (the same schedule, no teacher)"]
    assert control["value"] == pytest.approx(100 * (rows["flowless student"]["top1"]
                                                    - rows["RGB (2x epochs)"]["top1"]))
    ds_control = claims["flowless student beats DS (2x epochs) (the paper's DS on the same "
                        "schedule)"]
    assert ds_control["value"] == pytest.approx(100 * (rows["flowless student"]["top1"]
                                                       - rows["DS (2x epochs)"]["top1"]))
    epochs = {name: len(read_metrics(Path(summary["checkpoints"][name]).parent))
              for name in ("rgb", "rgb_long", "student", "ds", "ds_long")}
    assert epochs["rgb_long"] == epochs["student"] == epochs["ds_long"] == 2 * epochs["rgb"]
    assert load_checkpoint(summary["checkpoints"]["ds_long"])["config"]["distill"]["mode"] \
        == "relation"
    fused = load_checkpoint(summary["checkpoints"]["fusion_rgb_flow_flowless"])
    assert fused["fusion"] == "weighted" and fused["fit_on"] == "crossfit"
    student_ckpt = load_checkpoint(summary["checkpoints"]["student"])
    assert student_ckpt["config"]["distill"]["mode"] == "student"
    assert student_ckpt["config"]["distill"]["ensemble"] == [summary["checkpoints"]["rgb"]]


def _row(method, top1, ms, needs_flow):
    return {"method": method, "top1": top1, "ms_per_video": ms, "needs_flow": needs_flow}


def test_check_claims_on_hand_made_rows():
    rows = [_row("RGB", 0.70, 10.0, False), _row("Flow", 0.40, 150.0, True),
            _row("RGB+Flow (attention)", 0.85, 160.0, True), _row("MARS", 0.72, 10.0, False),
            _row("DS", 0.71, 10.0, False), _row("DS+RGB (attention)", 0.8, 16.0, False)]
    claims = {c["claim"]: c for c in check_claims(rows)}
    # without per-video results a claim is checked on the point value (a zero-width interval)
    assert claims["DS beats RGB"]["held"] and "71.0 vs 70.0 (+1.0)" in claims["DS beats RGB"]["figures"]
    assert claims["DS beats MARS"]["verdict"] == "not held"
    fusion = next(c for c in claims.values() if c["claim"].startswith("fusion"))
    assert fusion["held"] and "+15.0 over RGB, +45.0 over Flow" in fusion["figures"]
    speed = next(c for c in claims.values() if c["claim"].startswith("RGB-only"))
    assert not speed["held"] and speed["figures"].startswith("9.4x (DS+RGB (attention) 16.0 ms")
    flow = next(c for c in claims.values() if c["claim"].startswith("benchmark: the flow"))
    assert flow["verdict"] == "not held" and flow["value"] == pytest.approx(-30.0)
    rows[0]["top1"] = 0.76  # fusion only 9 points above RGB: not held
    fusion = next(c for c in check_claims(rows) if c["claim"].startswith("fusion"))
    assert not fusion["held"]
    # the student closes (81 - 76) / (90 - 76) = 36 % of the gap to the best fusion
    rows += [_row("flowless student", 0.81, 10.0, False),
             _row("RGB+Flow (flowless fusion)", 0.90, 160.0, True)]
    claims = {c["claim"]: c for c in check_claims(rows)}
    half = next(c for c in claims.values() if "50 % of the gap" in c["claim"])
    assert half["verdict"] == "not held" and half["value"] == pytest.approx(81 - 83)
    assert half["figures"].startswith("36 % closed")
    assert claims["flowless student beats RGB"]["held"]
    assert not any("beats RGB+Flow (mean)" in c for c in claims)  # no mean row given


def test_claim_verdicts_follow_the_paired_interval():
    keys = [f"v{i}" for i in range(400)]

    def row(method, wrong):
        return {**_row(method, 1 - len(wrong) / 400, 10.0, False),
                "correct": {k: int(i not in wrong) for i, k in enumerate(keys)}}

    rgb = row("RGB", set(range(100)))                       # 75.0 %
    clear = row("DS", set(range(60)))                       # 85.0 %: +10 on 40 videos
    close = row("MARS", set(range(99)))                     # 75.25 %: +0.25, one video
    claims = {c["claim"]: c for c in check_claims([rgb, clear, close])}
    ds = claims["DS beats RGB"]
    assert ds["verdict"] == "held" and ds["value"] == pytest.approx(10.0)
    assert 6 < ds["low"] < 10 < ds["high"] < 14  # 40 of 400 videos differ, all one way
    assert claims["DS beats MARS"]["verdict"] == "held"
    # DS vs a MARS one video behind RGB: held; a single-video lead is inconclusive
    close["correct"] = dict(rgb["correct"], v0=1)
    close["top1"] = 301 / 400
    flip = dict(rgb, method="DS", correct=dict(rgb["correct"], v1=1), top1=301 / 400)
    c = {x["claim"]: x for x in check_claims([rgb, flip, close])}["DS beats RGB"]
    assert c["verdict"] == "inconclusive" and c["low"] <= 0 < c["high"]


def test_factor_table_shows_a_dash_when_no_video_was_scored():
    rows = [{"method": "RGB", "top1": 0.5, "motion_acc": None, "category_acc": None}]
    assert "| RGB | 50.0 | - | - |" in format_factor_table(rows)


def test_predict_accepts_the_demo_checkpoints(quick_demo, capsys):
    summary = json.loads((quick_demo / "summary.json").read_text())
    video = next((quick_demo / "data").glob("*/*.mp4"))
    capsys.readouterr()
    assert main(["predict", summary["checkpoints"]["ds"], str(video), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    classes = summary["classes"]
    probs = [t["prob"] for t in out["top"]]
    assert out["top"] and all(t["class"] in classes for t in out["top"])
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) <= 1.0 + len(probs) * 5e-7 + 1e-9  # each printed to 6 decimals


def _mtimes(folder, pattern):
    return {p: p.stat().st_mtime_ns for p in folder.rglob(pattern) if p.is_file()}


def test_rerun_reuses_finished_stages(quick_demo, monkeypatch):
    """A rerun trains nothing and rewrites no video, flow file or checkpoint, and evaluates
    the same checkpoints to the same rows."""
    import flowless.engine

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(flowless.engine, "train", refuse)
    monkeypatch.setattr(flowless.engine, "train_fusion", refuse)
    first = json.loads((quick_demo / "summary.json").read_text())["rows"]
    outputs = {"data": "*.mp4", "flow": "*.npz", "runs": "*"}  # (index files are rewritten)
    before = {name: _mtimes(quick_demo / name, pattern) for name, pattern in outputs.items()}
    assert all(before.values())
    assert main(["demo", "--quick", "--controls", "--out", str(quick_demo), "--threads", "1",
                 "--workers", "1", "--quiet"]) == 0
    assert {name: _mtimes(quick_demo / name, pattern)
            for name, pattern in outputs.items()} == before
    again = json.loads((quick_demo / "summary.json").read_text())["rows"]
    for row in (*first, *again):
        row.pop("ms_per_video"), row.pop("ms_each")
    assert again == first


def test_quick_preset_overrides_win_over_the_preset():
    default, quick = DemoConfig(), DemoConfig.quick_preset()
    assert quick.epochs < default.epochs and quick.videos_per_class < default.videos_per_class
    cfg = DemoConfig.quick_preset(seed=3, epochs=5, flow_backend="tvl1")
    assert (cfg.seed, cfg.epochs, cfg.flow_backend) == (3, 5, "tvl1")
    # the rest of the preset stays
    assert dataclasses.replace(cfg, seed=0, epochs=quick.epochs, flow_backend="farneback") == quick


def test_cli_builds_the_config_from_its_flags(monkeypatch, tmp_path):
    import flowless.demo

    seen = []
    monkeypatch.delenv("FLOWLESS_QUIET", raising=False)
    monkeypatch.setattr(flowless.demo, "run_demo",
                        lambda cfg, quiet=None: seen.append((cfg, quiet)))
    out = str(tmp_path / "demo")
    assert main(["demo", "--quick", "--out", out, "--seed", "2", "--epochs", "5",
                 "--quiet"]) == 0
    assert main(["demo", "--out", out, "--alpha", "8", "--workers", "3"]) == 0
    assert main(["demo", "--out", out, "--variant", "motion-only", "--baselines-only"]) == 0
    assert main(["demo", "--out", out, "--context", "0.3", "--motion-scale", "1.2",
                 "--nuisance", "1.5", "--test-per-class", "40"]) == 0
    assert main(["demo", "--out", out, "--controls", "--spin-scale", "0.5", "--zoom-scale",
                 "2", "--zoom-max", "4", "--size", "24"]) == 0
    assert main(["demo", "--out", out, "--variant", "context", "--motions", "8",
                 "--videos-per-class", "102", "--test-per-class", "50"]) == 0
    assert seen == [(DemoConfig.quick_preset(out=out, seed=2, epochs=5), True),
                    (DemoConfig(out=out, alpha=8.0, workers=3), None),
                    (DemoConfig.for_variant("motion-only", out=out, baselines_only=True), None),
                    (DemoConfig(out=out, context=0.3, motion_scale=1.2, nuisance=1.5,
                                test_per_class=40), None),
                    (DemoConfig(out=out, controls=True, spin_scale=0.5, zoom_scale=2.0,
                                zoom_max=4.0, size=24), None),
                    (DemoConfig.for_variant("context", out=out, motions=8, videos_per_class=102,
                                            test_per_class=50), None)]


def test_default_is_the_frozen_context8_variant_and_old_variants_keep_their_settings():
    from flowless.demo_config import VARIANTS

    assert DemoConfig() == DemoConfig.for_variant("context8")  # defaults = the default variant
    c8 = DemoConfig()
    assert (c8.motions, c8.context, c8.videos_per_class, c8.test_per_class, c8.nuisance,
            c8.size) == (8, 0.5, 102, 50, 1.25, 24)  # frozen by the fourth calibration
    assert c8.motions * c8.test_per_class == 400
    old = DemoConfig.for_variant("context")  # the calibrated default of 0.3, reproducible
    assert (old.motions, old.videos_per_class, old.test_per_class, old.nuisance, old.size) == \
        (5, 144, 80, 1.0, 32)
    # every variant sets every field in which any variant differs, so none inherits the
    # default's dataset by accident
    keys = set().union(*VARIANTS.values())
    assert all(set(v) == keys for v in VARIANTS.values())


def test_seeds_runs_each_seed_and_aggregates(monkeypatch, tmp_path):
    import flowless.demo
    from flowless.cli.demo import parse_seeds

    assert parse_seeds("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(Exception, match="not a list of seeds"):
        parse_seeds("a-b")
    seen = []

    def fake_run(cfg, quiet=None):
        seen.append((cfg.seed, cfg.out))
        gain = {0: 0.05, 1: 0.10, 2: -0.02}[cfg.seed]
        rows = [_row("RGB", 0.70, 10.0, False), _row("Flow", 0.80, 150.0, True),
                _row("RGB+Flow (attention)", 0.90, 160.0, True),
                _row("MARS", 0.60, 10.0, False), _row("DS", 0.70 + gain, 10.0, False)]
        return {"config": {"seed": cfg.seed}, "rows": rows}

    monkeypatch.setattr(flowless.demo, "run_demo", fake_run)
    out = tmp_path / "seeds"
    assert main(["demo", "--seeds", "0-2", "--out", str(out), "--quiet"]) == 0
    assert seen == [(s, str(out / f"seed_{s}")) for s in (0, 1, 2)]
    agg = json.loads((out / "seeds.json").read_text())
    ds = next(c for c in agg["claims"] if c["claim"] == "DS beats RGB")
    assert ds["values"] == pytest.approx([5.0, 10.0, -2.0])
    assert ds["mean"] == pytest.approx(13 / 3) and ds["clears"] == 2
    sd = float(np.std([5.0, 10.0, -2.0], ddof=1))
    assert ds["sd"] == pytest.approx(sd)
    half = 4.302652729911275 * sd / np.sqrt(3)  # Student t, 2 d.o.f., 97.5 %
    assert (ds["low"], ds["high"]) == pytest.approx((13 / 3 - half, 13 / 3 + half))
    text = (out / "seeds.md").read_text()
    assert "| DS | no | 75.0 | 80.0 | 68.0 | 74.3 ± 6.0 |" in text


def test_baselines_only_trains_no_student(tmp_path):
    out = tmp_path / "calib"
    assert main(["demo", "--quick", "--baselines-only", "--out", str(out), "--threads", "1",
                 "--workers", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == [
        "RGB", "Flow", "RGB+Flow (mean)", "RGB+Flow (attention)"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["flow", "fusion_rgb_flow", "rgb"]
    claims = [c["claim"] for c in summary["claims"]]
    assert not any("DS" in c or "MARS" in c for c in claims)
    assert any(c.startswith("benchmark: the flow stream") for c in claims)
    assert "no student was trained" in (out / "report.md").read_text()


def test_parallel_training_gives_the_sequential_results(quick_demo, tmp_path):
    """--jobs 2 with 2 threads trains each network with one thread in its own process: the
    same networks, losses and table as the sequential run with one thread."""
    out = tmp_path / "parallel"
    assert main(["demo", "--quick", "--controls", "--out", str(out), "--threads", "2",
                 "--jobs", "2", "--workers", "1", "--quiet"]) == 0
    seq = json.loads((quick_demo / "summary.json").read_text())
    par = json.loads((out / "summary.json").read_text())
    assert [(r["method"], r["top1"]) for r in par["rows"]] == \
        [(r["method"], r["top1"]) for r in seq["rows"]]
    for name in seq["checkpoints"]:
        a = read_metrics(Path(seq["checkpoints"][name]).parent)
        b = read_metrics(out / "runs" / name)
        assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b], name
        assert (out / "runs" / name / "done").exists()


def test_ablation_scripts_run_on_a_demo_run(quick_demo, tmp_path):
    """benchmarks/student_ablation.py and fusion_ablation.py (the docs' tables) on a copy of
    the quick demo: each trains its variant, evaluates it and prints the table."""
    import shutil
    import subprocess
    import sys

    run = tmp_path / "seed"
    shutil.copytree(quick_demo, run)
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    out = subprocess.run([sys.executable, str(bench / "student_ablation.py"), str(run),
                          "--variants", "kd, fused teacher", "--epochs", "1",
                          "--out", str(tmp_path / "s.md")],
                         capture_output=True, text=True, check=True).stdout
    table = (tmp_path / "s.md").read_text()
    assert "| kd, fused teacher |" in table and table.strip() in out
    ckpt = load_checkpoint(run / "ablation" / "kd__fused_teacher_e1" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["config"]["distill"]["ensemble"] == \
        [str(run / "runs/rgb/last.pt")]
    out = subprocess.run([sys.executable, str(bench / "fusion_ablation.py"), str(run),
                          "--variants", "weighted per stream, training logits"],
                         capture_output=True, text=True, check=True).stdout
    assert "| weighted per stream, training logits |" in out and "| logit mean |" in out
    bad = subprocess.run([sys.executable, str(bench / "fusion_ablation.py"), str(run),
                          "--variants", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown variant 'nope'" in bad.stderr
    # the flow teacher per backend (#15): DIS flow extracted, a Flow stream trained on it
    out = subprocess.run([sys.executable, str(bench / "teacher_backends.py"), str(run),
                          "--variants", "farneback;dis"], capture_output=True, text=True,
                         check=True).stdout  # the quick demo's store is Farneback
    assert "| dis |" in out and "| farneback | (the demo's store) |" in out
    assert load_checkpoint(run / "backends/dis/flow_stream/last.pt")["data"]["flow_backend"] \
        == "dis"


@pytest.mark.parametrize("flags,message", [
    (["--zoom-max", "0.5"], "synthetic dataset: zoom_max must be above 1"),
    (["--context", "1.5"], "synthetic dataset: context must be between 0 and 1"),
    (["--size", "0"], "data.clip_len, data.size and data.stride must be at least 1"),
    (["--epochs", "0"], "epochs: must be at least 1, got 0"),
    (["--motions", "9"], "context needs one colour family per motion (motions <= 8)"),
])
def test_bad_settings_fail_in_one_line_before_any_work(tmp_path, capsys, flags, message):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowless demo: error: ") and message in err and "\n" not in err
    assert not out.exists()
