"""ONNX export: parity with PyTorch, metadata for `predict --onnx`, one-line errors."""

import json

import numpy as np
import onnx
import pytest
from evalkit import CLASSES, DATA

from flowless.cli import main
from flowless.errors import CheckpointError
from flowless.eval import load_streams
from flowless.eval.onnx import META_KEY, load_onnx_stream
from flowless.export import ExportMismatchError, export_onnx, random_clips, verify_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory, ckpts):
    out = tmp_path_factory.mktemp("onnx") / "rgb.onnx"
    report = export_onnx(ckpts["rgb"], out)
    return out, report


def test_onnxruntime_matches_pytorch_on_random_clips_with_dynamic_batch(exported, ckpts):
    path, report = exported
    assert report["max_error"] <= 1e-4 and report["input_shape"][0] == "batch"
    (torch_stream,), _ = load_streams([ckpts["rgb"]], fast="off")  # the network as trained
    onnx_stream = load_onnx_stream(path)
    for batch in (1, 5):  # batch sizes other than the export's
        clips = random_clips(torch_stream, batch, seed=7)
        want, got = torch_stream.logits(clips), onnx_stream.logits(clips)
        assert got.shape == (batch, len(CLASSES))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_metadata_carries_classes_and_clip_settings(exported):
    path, _ = exported
    model = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in model.metadata_props}[META_KEY])
    assert meta["classes"] == CLASSES and meta["input"] == "rgb"
    assert meta["data"]["clip_len"] == DATA["clip_len"] and meta["data"]["size"] == DATA["size"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [3, 8, 32, 32]


def test_predict_with_onnx_alone_equals_the_checkpoint(exported, ckpts, make_video, capsys):
    path, _ = exported
    video = make_video("o.mp4", num_frames=20)
    assert main(["predict", str(ckpts["rgb"]), str(video), "--json"]) == 0
    from_ckpt = json.loads(capsys.readouterr().out)
    assert main(["predict", "--onnx", str(path), str(video), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert [t["index"] for t in from_onnx["top"]] == [t["index"] for t in from_ckpt["top"]]
    for a, b in zip(from_onnx["top"], from_ckpt["top"]):
        assert a["prob"] == pytest.approx(b["prob"], abs=1e-4)


def test_export_cli_reports_and_writes_the_file(tmp_path, ckpts, capsys):
    out = tmp_path / "flow.onnx"
    assert main(["export", str(ckpts["flow"]), "--onnx", str(out)]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    assert load_onnx_stream(out).input == "flow"


def test_a_mismatch_is_detected_and_nothing_is_written(tmp_path, ckpts, exported, monkeypatch,
                                                       capsys):
    path, _ = exported
    (other,), _ = load_streams([ckpts["rgb2"]])  # different weights, same architecture
    with pytest.raises(ExportMismatchError, match="differ"):
        verify_onnx(path, other)
    from flowless import export

    def broken(path, stream, batch=3, tolerance=1e-4):
        raise ExportMismatchError(f"{path}: logits differ by 1.0e-01")

    monkeypatch.setattr(export, "verify_onnx", broken)
    out = tmp_path / "bad.onnx"
    assert main(["export", str(ckpts["rgb"]), "--onnx", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowless export: error:") and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_onnx_is_a_one_line_error(tmp_path, make_video, capsys):
    fake = tmp_path / "model.onnx"
    fake.write_text("definitely not protobuf")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        load_onnx_stream(fake)
    code = main(["predict", "--onnx", str(fake), str(make_video("v.mp4"))])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "model.onnx: not a readable ONNX model" in err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_without_flowless_metadata_is_refused(tmp_path):
    import torch

    path = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(path), dynamo=False)
    with pytest.raises(CheckpointError, match="no flowless metadata"):
        load_onnx_stream(path)


def test_fusion_checkpoint_cannot_be_exported(tmp_path, ckpts, capsys):
    code = main(["export", str(ckpts["fusion"]), "--onnx", str(tmp_path / "f.onnx")])
    assert code == 2 and "export takes one stream checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_dynamo_exporter_also_passes_the_parity_check(tmp_path, ckpts):
    report = export_onnx(ckpts["rgb"], tmp_path / "d.onnx", exporter="dynamo")
    assert report["exporter"] == "dynamo" and report["max_error"] <= 1e-4
    assert load_onnx_stream(tmp_path / "d.onnx").classes == CLASSES
