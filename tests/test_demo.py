"""The demo in --quick mode: report, table and checkpoints exist and agree with each other."""

from __future__ import annotations

import json
import re

import pytest

from flowless.checkpoint import load_checkpoint
from flowless.cli import main
from flowless.demo import METHODS, DemoConfig, format_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    code = main(["demo", "--quick", "--out", str(out), "--threads", "1", "--workers", "1",
                 "--quiet"])
    assert code == 0
    return out


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
        assert r["needs_flow"] == ("Flow" in r["method"] or r["method"] == "Flow")
        # the per-method evaluation folder holds the metrics the table shows
        metrics = json.loads((quick_demo / "eval" / re.sub(r"[^a-z0-9]+", "_",
                                                             r["method"].lower()).strip("_")
                              / "metrics.json").read_text())
        assert metrics["top1"] == pytest.approx(r["top1"])
    for name, path in summary["checkpoints"].items():
        ckpt = load_checkpoint(path)
        assert ckpt["kind"] == ("fusion" if name.startswith("fusion") else "stream")
    # parameter counts: a single stream's row equals its checkpoint's weights
    rgb = next(r for r in rows if r["method"] == "RGB")
    state = load_checkpoint(summary["checkpoints"]["rgb"])["model"]
    count = sum(t.numel() for k, t in state.items()
                if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert rgb["params"] == count
    assert (quick_demo / "figures" / "curves.png").stat().st_size > 0
    assert list((quick_demo / "figures").glob("confusion_*.png"))
    assert json.loads((quick_demo / "demo_config.json").read_text())["quick"] is True


def test_predict_accepts_the_demo_checkpoints(quick_demo, capsys):
    summary = json.loads((quick_demo / "summary.json").read_text())
    video = next((quick_demo / "data").glob("*/*.mp4"))
    capsys.readouterr()
    assert main(["predict", summary["checkpoints"]["ds"], str(video), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    classes = summary["classes"]
    probs = [t["prob"] for t in out["top"]]
    assert out["top"] and all(t["class"] in classes for t in out["top"])
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6


def test_rerun_reuses_finished_stages(quick_demo, capsys):
    before = (quick_demo / "runs" / "rgb" / "last.pt").stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(quick_demo), "--threads", "1",
                 "--workers", "1", "--quiet"]) == 0
    assert (quick_demo / "runs" / "rgb" / "last.pt").stat().st_mtime_ns == before


def test_quick_preset_overrides():
    cfg = DemoConfig.quick_preset(seed=3)
    assert cfg.quick and cfg.seed == 3 and cfg.epochs <= 3
