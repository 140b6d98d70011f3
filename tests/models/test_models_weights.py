"""Loading weights: Hara/MARS layout, flowless checkpoints, RGB->flow stem, classifier, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flowless.checkpoint import save_checkpoint
from flowless.errors import CheckpointError
from flowless.models import create_model, infer_config, load_weights, model_from_checkpoint

TINY = {"width": 0.25}


def _trained_like(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every tensor (BN statistics included) distinctive values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=gen) * 0.1 + ("running_var" in name))
    return model.eval()


def _hara_file(tmp_path: Path, model: torch.nn.Module, prefix: str = "module.",
               drop_batches_tracked: bool = True) -> Path:
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()
             if not (drop_batches_tracked and k.endswith("num_batches_tracked"))}
    path = tmp_path / "hara.pth"
    torch.save({"epoch": 200, "arch": "resnext-50", "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}, path)
    return path


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_hara_mars_checkpoint_loads_and_gives_identical_outputs(tmp_path, prefix):
    source = _trained_like(create_model("resnext50", 6, width=0.25, cardinality=8))
    path = _hara_file(tmp_path, source, prefix)
    target = create_model("resnext50", 6, width=0.25, cardinality=8).eval()
    report = load_weights(target, path)
    assert report.format == "hara" and report.complete and not report.replaced_classifier
    assert report.source == str(path) and "conv1.weight" in report.loaded
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x), rtol=0, atol=0)


def test_bare_state_dict_and_flowless_checkpoint_load(tmp_path):
    source = _trained_like(create_model("resnet10", 5, in_channels=2, **TINY))
    target = create_model("resnet10", 5, in_channels=2, **TINY)
    assert load_weights(target, source.state_dict()).format == "state_dict"
    path = save_checkpoint(tmp_path / "best.pt", {
        "kind": "stream", "model": source.state_dict(), "model_config": source.config,
        "stream": "flow", "input": "flow", "classes": list("abcde")})
    rebuilt = model_from_checkpoint(path)
    assert not rebuilt.training and rebuilt.config == source.config
    assert load_weights(create_model(**source.config), path).format == "flowless"
    x = torch.randn(1, 2, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), source(x), rtol=0, atol=0)


def test_rgb_checkpoint_inflates_into_flow_stem_by_channel_mean(tmp_path):
    rgb = _trained_like(create_model("resnet10", 5, **TINY))
    path = _hara_file(tmp_path, rgb)
    flow = create_model("resnet10", 5, in_channels=2, **TINY)
    report = load_weights(flow, path)
    assert report.stem == "mean over 3 input channels -> 2" and report.complete
    w = rgb.conv1.weight
    assert flow.conv1.weight.shape == (16, 2, 7, 7, 7)
    for c in range(2):
        torch.testing.assert_close(flow.conv1.weight[:, c], w.mean(dim=1))
    torch.testing.assert_close(flow.layer3[0].conv2.weight, rgb.layer3[0].conv2.weight)
    assert flow.eval()(torch.randn(1, 2, 8, 32, 32)).shape == (1, 5)

    with pytest.raises(CheckpointError, match="stem has 3 input channels but the model 2"):
        load_weights(create_model("resnet10", 5, in_channels=2, **TINY), path, flow_stem=False)
    gray = create_model("resnet10", 5, **TINY)
    assert load_weights(gray, path, flow_stem="mean").stem is not None
    torch.testing.assert_close(gray.conv1.weight[:, 2], w.mean(dim=1))


def test_classifier_is_replaced_when_class_count_differs(tmp_path):
    kinetics = _trained_like(create_model("resnet10", 400, **TINY))
    path = _hara_file(tmp_path, kinetics)
    ucf = create_model("resnet10", 101, **TINY)
    report = load_weights(ucf, path)
    assert report.replaced_classifier and report.complete
    assert "fc.weight" not in report.loaded and "layer4.0.bn2.running_mean" in report.loaded
    assert ucf.fc.weight.shape == (101, 128)
    assert ucf.fc.weight.abs().max() <= 1 / 128**0.5  # nn.Linear's default init range
    torch.testing.assert_close(ucf.layer4[0].conv1.weight, kinetics.layer4[0].conv1.weight)
    assert "re-initialised" in str(report)

    with pytest.raises(CheckpointError, match="400 classes but the model 101"):
        load_weights(create_model("resnet10", 101, **TINY), path, replace_classifier=False)
    same = create_model("resnet10", 400, **TINY)
    assert load_weights(same, path, replace_classifier=True).replaced_classifier
    assert not torch.equal(same.fc.weight, kinetics.fc.weight)


def test_checkpoint_of_another_architecture_raises_one_line_error(tmp_path):
    path = _hara_file(tmp_path, create_model("resnet10", 5, width=0.5))
    with pytest.raises(CheckpointError) as info:
        load_weights(create_model("resnet10", 5, **TINY), path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert "conv1.weight has shape (32, 3, 7, 7, 7) in the checkpoint but (16, 3, 7, 7, 7)" in message
    assert "resnet10 (in_channels 3, 5 classes, shortcut B, width 0.5)" in message
    assert "create the model with that architecture" in message

    deeper = _hara_file(tmp_path, create_model("resnet18", 5, **TINY))
    with pytest.raises(CheckpointError, match=r"unexpected keys \(e\.g\. layer1\.1\.conv1\.weight\)"
                       r".*looks like resnet18"):
        load_weights(create_model("resnet10", 5, **TINY), deeper)
    report = load_weights(create_model("resnet10", 5, **TINY), deeper, strict=False)
    assert not report.complete and "layer1.1.conv1.weight" in report.unexpected
    assert not report.missing


def test_model_from_checkpoint_rejects_foreign_fusion_and_broken(tmp_path):
    hara = _hara_file(tmp_path, create_model("resnet10", 5, **TINY))
    with pytest.raises(CheckpointError, match="not a flowless stream checkpoint.*load_weights"):
        model_from_checkpoint(hara)
    fusion = save_checkpoint(tmp_path / "fusion.pt", {"kind": "fusion", "model": {},
                                                      "model_config": {"num_classes": 5}})
    with pytest.raises(CheckpointError, match="'fusion' checkpoint"):
        model_from_checkpoint(fusion)
    with pytest.raises(CheckpointError, match="is a fusion checkpoint"):
        load_weights(create_model("resnet10", 5, **TINY), fusion)
    broken = save_checkpoint(tmp_path / "broken.pt", {"kind": "stream", "model": {}})
    with pytest.raises(CheckpointError, match="has no model_config"):
        model_from_checkpoint(broken)
    bad_cfg = save_checkpoint(tmp_path / "bad.pt", {"kind": "stream", "model": {},
                                                    "model_config": {"arch": "vgg", "num_classes": 2}})
    with pytest.raises(CheckpointError, match="invalid model_config.*unknown model arch"):
        model_from_checkpoint(bad_cfg)


def test_files_with_code_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "opts": Path("x")}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_weights(create_model("resnet10", 5, **TINY), path)


def test_infer_config_recovers_architecture():
    model = create_model("resnext50", 9, in_channels=2, width=0.25, cardinality=8)
    config = infer_config({"module." + k: v for k, v in model.state_dict().items()})
    assert config == {"arch": "resnext50", "num_classes": 9, "in_channels": 2, "width": 0.25,
                      "shortcut": "B", "stem_kernel": [7, 7, 7], "cardinality": 8}
    assert infer_config(create_model("resnet34", 3, shortcut="A", **TINY).state_dict())["arch"] \
        == "resnet34"
