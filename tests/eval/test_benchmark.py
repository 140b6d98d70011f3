"""`flowless benchmark --quick`: runs the real pipelines and reports consistent figures."""

import json

import pytest

from flowless.cli import main


def test_quick_benchmark_prints_table_and_consistent_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["benchmark", "--quick", "--backends", "farneback,dis", "--threads", "1",
                 "--frames", "17", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "threads: torch 1, opencv 1" in text
    assert "RGB-only (distilled)" in text and "two-stream farneback" in text
    res = json.loads(out.read_text())
    rows = {r["backend"]: r for r in res["rows"]}
    assert set(rows) == {None, "farneback", "dis"}
    base = rows[None]
    assert base["stages_s"]["flow"] == 0 and base["x_rgb_only"] == 1.0
    assert base["clips"] == 2 and base["frames"] == 17  # 17 frames -> 2 clips of 8
    for backend in ("farneback", "dis"):
        row = rows[backend]
        assert row["stages_s"]["flow"] > 0
        assert row["clips"] == 4  # RGB + flow (16 fields -> 2 clips)
        assert row["x_rgb_only"] == pytest.approx(row["latency_s"] / base["latency_s"])
        assert row["videos_per_s"] == pytest.approx(1 / row["latency_s"])
    assert res["network"]["arch"] == "resnet10" and res["machine"]["threads"] == 1


def test_benchmark_uses_given_checkpoint_and_video(tmp_path, make_video, ckpts, capsys):
    video = make_video("given.mp4", num_frames=9)
    out = tmp_path / "b.json"
    assert main(["benchmark", "--video", str(video), "--rgb", str(ckpts["rgb"]), "--backends",
                 "farneback", "--repeats", "1", "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["network"]["weights"] == "checkpoint" and res["network"]["clip"] == [8, 32, 32]
    assert res["video"]["frames"] == 9 and res["video"]["width"] == 64


def test_options_resolve_presets_and_map_every_flag():
    import argparse

    from flowless.benchmark import DEFAULTS, QUICK, BenchmarkOptions
    from flowless.cli.benchmark import add_arguments, options

    quick = BenchmarkOptions(quick=True, frames=17, backends=" dis, ,farneback").resolved()
    assert quick.frames == 17 and quick.arch == QUICK["arch"] and quick.size == QUICK["size"]
    assert quick.backends == ("dis", "farneback") and quick.batch_size == 8
    full = BenchmarkOptions().resolved()
    assert {k: getattr(full, k) for k in DEFAULTS} == DEFAULTS
    assert full.backends == ("tvl1", "dis", "farneback")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    opts = options(parser.parse_args(["--quick", "--clip-len", "4", "--backends", "dis"]))
    assert opts == BenchmarkOptions(quick=True, clip_len=4, backends="dis")
    assert options(parser.parse_args([])).resolved() == full
