"""JPEG flow layouts: x_/y_, u/ v/ trees, detection, and errors that name the options."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowless.cli import main
from flowless.errors import FlowError
from flowless.flow import export_jpg, flow_path, import_jpg, load_flow_u8, read_manifest, store_keys
from flowless.flow.store import open_flow_writer

FIELD = np.stack([np.full((8, 10), 100, np.uint8), np.full((8, 10), 160, np.uint8)])


@pytest.fixture
def store(tmp_path):
    """A store of two videos ("cls/a" 3 fields, "cls/b" 2 fields) of flat levels."""
    root = tmp_path / "store"
    for key, n in (("cls/a", 3), ("cls/b", 2)):
        with open_flow_writer(flow_path(root, key)) as writer:
            for t in range(n):
                writer.add(FIELD + t)
    return root


def jpegs(folder, x_name, y_name, count=2):
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(1, count + 1):
        cv2.imwrite(str(folder / x_name.format(t)), FIELD[0])
        cv2.imwrite(str(folder / y_name.format(t)), FIELD[1])


@pytest.mark.parametrize("layout, files", [
    ("xy", ["cls/a/x_00003.jpg", "cls/a/y_00003.jpg"]),
    ("uv", ["u/cls/a/frame000003.jpg", "v/cls/a/frame000003.jpg"]),
    ("denseflow", ["cls/a/flow_x_00003.jpg", "cls/a/flow_y_00003.jpg"]),
])
def test_export_then_detect_and_import_every_layout(tmp_path, store, layout, files):
    out = tmp_path / layout
    assert export_jpg(store, out, layout).done == 2
    assert all((out / f).is_file() for f in files)
    assert not (out / files[0].replace("00003", "00004")).exists()
    back = tmp_path / f"back_{layout}"
    summary = import_jpg(out, back)  # auto: the layout is detected
    assert (summary.done, summary.failed) == (2, 0) and store_keys(back) == ["cls/a", "cls/b"]
    for key in store_keys(store):
        a, b = load_flow_u8(flow_path(store, key)), load_flow_u8(flow_path(back, key))
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 2
    detected = {"xy": "mmaction2", "denseflow": "mmaction2", "uv": "uv"}[layout]
    assert read_manifest(back)["imported_from"] == {"layout": detected}
    assert export_jpg(store, out, layout).skipped == 2


def test_an_interrupted_uv_export_is_redone(tmp_path, store):
    out = tmp_path / "uv"
    export_jpg(store, out, "uv")
    for p in (out / "v/cls/a").iterdir():
        p.unlink()
    (out / "v/cls/a").rmdir()  # killed between renaming u/ and v/
    summary = export_jpg(store, out, "uv")
    assert (summary.done, summary.skipped) == (1, 1) and (out / "v/cls/a/frame000003.jpg").is_file()


def test_mmaction2_reads_x_y_names_from_the_command_line(tmp_path, capsys):
    # the names of mmaction2's own test data: this failed with "no flow_x_00001.jpg found"
    jpegs(tmp_path / "jpg/vid", "x_{:05d}.jpg", "y_{:05d}.jpg", count=3)
    assert main(["flow", str(tmp_path / "jpg"), str(tmp_path / "s"), "--import-jpg",
                 "mmaction2", "-q"]) == 0
    assert "1 done" in capsys.readouterr().out
    assert load_flow_u8(flow_path(tmp_path / "s", "vid")).shape == (3, 2, 8, 10)
    assert main(["flow", str(tmp_path / "jpg"), str(tmp_path / "s2"), "--import-jpg", "-q"]) == 0


def test_tvl1_flow_tree_and_mars_folders_are_detected(tmp_path):
    jpegs(tmp_path / "tvl1_flow/u/v_YoYo_g01_c01", "frame{:06d}.jpg", "frame{:06d}.jpg")
    jpegs(tmp_path / "tvl1_flow/v/v_YoYo_g01_c01", "frame{:06d}.jpg", "frame{:06d}.jpg")
    summary = import_jpg(tmp_path / "tvl1_flow", tmp_path / "s_uv")
    assert summary.done_keys == ["v_YoYo_g01_c01"]
    jpegs(tmp_path / "mars/YoYo/v_YoYo_g01_c01", "TVL1jpg_x_{:05d}.jpg", "TVL1jpg_y_{:05d}.jpg")
    assert import_jpg(tmp_path / "mars", tmp_path / "s_mars").done_keys == [
        "YoYo/v_YoYo_g01_c01"]
    assert read_manifest(tmp_path / "s_mars")["imported_from"] == {"layout": "mars"}


def test_errors_name_the_layouts_and_the_names_looked_for(tmp_path, capsys):
    (tmp_path / "rgb/v").mkdir(parents=True)
    (tmp_path / "rgb/v/img_00001.jpg").write_bytes(b"")
    assert main(["flow", str(tmp_path / "rgb"), str(tmp_path / "s"), "--import-jpg"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no TVL1jpg_x_00001.jpg or flow_x_00001.jpg or " \
        "x_00001.jpg or u/<video>/frame000001.jpg found" in err
    for option in ("mars (TVL1jpg_x_00001.jpg)", "mmaction2 (flow_x_00001.jpg or x_00001.jpg)",
                   "uv (u/<video>/frame000001.jpg)", "denseflow", "xy", "--import-jpg LAYOUT"):
        assert option in err
    with pytest.raises(FlowError, match="no x_00001.jpg found; JPEG flow layouts: mars"):
        import_jpg(tmp_path / "rgb", tmp_path / "s", "xy")
    jpegs(tmp_path / "mixed/a", "TVL1jpg_x_{:05d}.jpg", "TVL1jpg_y_{:05d}.jpg")
    jpegs(tmp_path / "mixed/b", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")
    with pytest.raises(FlowError, match=r"several JPEG flow layouts \(TVL1jpg_x_00001.jpg \(1 "
                       r"folders\), flow_x_00001.jpg \(1 folders\)\)"):
        import_jpg(tmp_path / "mixed", tmp_path / "s")


def test_bad_flow_folders_are_listed_and_the_others_imported(tmp_path):
    jpegs(tmp_path / "j/good", "x_{:05d}.jpg", "y_{:05d}.jpg", count=3)
    jpegs(tmp_path / "j/gap", "x_{:05d}.jpg", "y_{:05d}.jpg", count=3)
    (tmp_path / "j/gap/x_00002.jpg").unlink()
    jpegs(tmp_path / "j/nov", "x_{:05d}.jpg", "y_{:05d}.jpg", count=2)
    (tmp_path / "j/nov/y_00002.jpg").unlink()
    summary = import_jpg(tmp_path / "j", tmp_path / "s", "xy")
    assert summary.done_keys == ["good"]
    errors = {f["key"]: f["error"] for f in summary.failures}
    assert "a gap in the x image numbering after x_00001.jpg" in errors["gap"]
    assert "2 x images but a different number of y images" in errors["nov"]


def test_export_into_rgb_frame_folders_adds_the_flow_beside_them(tmp_path, store):
    rgb = tmp_path / "rawframes/cls/a"
    rgb.mkdir(parents=True)
    (rgb / "img_00001.jpg").write_bytes(b"rgb")  # mmaction2 keeps RGB and flow in one folder
    summary = export_jpg(store, tmp_path / "rawframes", "mmaction2")
    assert summary.done == 2 and (rgb / "img_00001.jpg").read_bytes() == b"rgb"
    assert sorted(p.name for p in rgb.iterdir())[-1] == "img_00001.jpg"
    assert (rgb / "flow_y_00003.jpg").is_file() and not list(rgb.parent.glob(".*tmpdir"))
    assert export_jpg(store, tmp_path / "rawframes", "mmaction2").skipped == 2
