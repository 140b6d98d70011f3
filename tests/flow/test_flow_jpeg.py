"""Export to / import from the MARS and mmaction2 JPEG layouts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from flowless.cli import main
from flowless.errors import ConfigError, FlowError
from flowless.flow import (
    export_jpg,
    extract_flow,
    flow_path,
    import_jpg,
    load_flow_u8,
    read_manifest,
    store_keys,
)


@pytest.fixture
def store(tmp_path, make_videos):
    videos = make_videos(tmp_path / "v", count=2, num_frames=5)
    extract_flow(videos, tmp_path / "store", backend="tvl1", short_side=0, workers=1)
    return tmp_path / "store"


@pytest.mark.parametrize("layout, x_name, y_name", [
    ("mars", "TVL1jpg_x_{:05d}.jpg", "TVL1jpg_y_{:05d}.jpg"),
    ("mmaction2", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg"),
])
def test_export_names_and_round_trip(tmp_path, store, layout, x_name, y_name):
    out = tmp_path / f"jpg_{layout}"
    summary = export_jpg(store, out, layout)
    assert summary.done == 2
    for key in store_keys(store):
        flow = load_flow_u8(flow_path(store, key))
        folder = out / key
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [x_name.format(t) for t in range(1, 5)] + [y_name.format(t) for t in range(1, 5)])
        img = cv2.imread(str(folder / y_name.format(2)), cv2.IMREAD_UNCHANGED)
        assert img.shape == flow.shape[2:] and img.dtype == np.uint8  # grayscale JPEG
        assert np.abs(img.astype(int) - flow[1, 1]).max() <= 8

    back = tmp_path / f"back_{layout}"
    summary = import_jpg(out, back, layout)
    assert (summary.done, summary.failed) == (2, 0)
    assert store_keys(back) == store_keys(store)
    for key in store_keys(store):
        a, b = load_flow_u8(flow_path(store, key)), load_flow_u8(flow_path(back, key))
        assert a.shape == b.shape
        err = np.abs(a.astype(int) - b.astype(int))
        # JPEG quality 95 is lossy: stated tolerance mean <= 0.5 level (0.08 px), max <= 8
        # levels (1.25 px); measured about 0.1 and 3-7.
        assert err.mean() <= 0.5 and err.max() <= 8
    assert read_manifest(back)["backend"] == "unknown"
    assert export_jpg(store, out, layout).skipped == 2  # complete folders are kept


def test_import_reports_inconsistent_folders(tmp_path):
    src = tmp_path / "jpg"
    good, bad = src / "cls/good", src / "cls/bad"
    for folder in (good, bad):
        folder.mkdir(parents=True)
        for t in (1, 2):
            for c in "xy":
                cv2.imwrite(str(folder / f"flow_{c}_{t:05d}.jpg"), np.full((8, 10), 128, np.uint8))
    (bad / "flow_y_00002.jpg").unlink()
    summary = import_jpg(src, tmp_path / "s", "mmaction2", backend="tvl1", short_side=256)
    assert summary.done == 1 and summary.failures[0]["key"] == "cls/bad"
    assert "different number of y images" in summary.failures[0]["error"]
    assert load_flow_u8(flow_path(tmp_path / "s", "cls/good")).shape == (2, 2, 8, 10)
    report = json.loads((tmp_path / "s/flowless-flow-report.json").read_text())
    assert report["failures"][0]["video"] == str(bad)
    manifest = read_manifest(tmp_path / "s")
    assert manifest["backend"] == "tvl1" and manifest["params"]["warps"] == 5


def test_errors_name_the_problem(tmp_path, store):
    with pytest.raises(ConfigError, match="unknown JPEG layout 'brox'"):
        export_jpg(store, tmp_path / "o", "brox")
    with pytest.raises(FlowError, match="no TVL1jpg_x_00001.jpg found"):
        import_jpg(store, tmp_path / "o", "mars")
    with pytest.raises(FlowError, match="no flow files"):
        export_jpg(tmp_path / "empty", tmp_path / "o", "mars")


def test_cli_export_and_import(tmp_path, store, capsys):
    assert main(["flow", str(store), str(tmp_path / "j"), "--export-jpg", "mars", "-q"]) == 0
    assert "2 done" in capsys.readouterr().out
    assert main(["flow", str(tmp_path / "j"), str(tmp_path / "s2"), "--import-jpg", "mars",
                 "-q"]) == 0
    assert store_keys(tmp_path / "s2") == store_keys(store)
