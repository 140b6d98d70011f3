"""3D ResNet/ResNeXt: exact parameter counts, tap shapes, config round-trip, layout, init."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from flowless.errors import ConfigError
from flowless.models import TAPS, count_parameters, create_model
from flowless.models.resnet3d import ZeroPadShortcut

TINY = {"width": 0.25}


def _resnet18_shortcut_a_params(in_ch: int, classes: int) -> int:
    """Independent count: stem conv+BN, 2 BasicBlocks per stage, no shortcut params, FC."""
    total = in_ch * 64 * 7**3 + 2 * 64
    cin = 64
    for planes in (64, 128, 256, 512):
        for _ in range(2):
            total += cin * planes * 27 + 2 * planes + planes * planes * 27 + 2 * planes
            cin = planes
    return total + 512 * classes + classes


def test_resnext101_parameter_counts_match_reference():
    assert count_parameters(create_model("resnext101", 101, 3)) == 47_728_165
    flow = create_model("resnext101", 101, in_channels=2)
    assert count_parameters(flow) == 47_706_213
    assert flow.config["shortcut"] == "B" and flow.config["cardinality"] == 32


def test_resnet18_shortcut_a_400_classes_has_33_24m_parameters():
    model = create_model("resnet18", 400, shortcut="A")
    n = count_parameters(model)
    assert n == _resnet18_shortcut_a_params(3, 400) == 33_235_280
    assert round(n / 1e6, 2) == 33.24
    assert not any("downsample" in k for k in model.state_dict())


def test_resnext101_taps_for_16x112x112_clip():
    model = create_model("resnext101", 101).eval()
    with torch.no_grad():
        taps = model.forward_features(torch.randn(1, 3, 16, 112, 112))
    shapes = {k: tuple(v.shape[1:]) for k, v in taps.items()}
    assert shapes == {
        "stem": (64, 8, 28, 28), "layer1": (256, 8, 28, 28), "layer2": (512, 4, 14, 14),
        "layer3": (1024, 2, 7, 7), "layer4": (2048, 1, 4, 4), "pool": (2048,),
        "logits": (101,),
    }
    assert set(TAPS) | {"logits"} == set(taps)
    assert model.tap_channels == {k: v[0] for k, v in shapes.items() if k != "logits"}


def test_forward_features_runs_once_and_matches_forward():
    model = create_model("resnet10", 5, **TINY).eval()
    calls = []
    model.conv1.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        taps = model.forward_features(x)
        assert len(calls) == 1
        torch.testing.assert_close(model(x), taps["logits"])
    torch.testing.assert_close(taps["pool"], taps["layer4"].mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("frames,height,width", [(7, 32, 32), (1, 33, 47), (13, 40, 64)])
def test_small_model_accepts_any_frame_count_and_size(frames, height, width):
    model = create_model("resnet10", 4, in_channels=2, **TINY).eval()
    with torch.no_grad():
        taps = model.forward_features(torch.randn(2, 2, frames, height, width))
    assert taps["logits"].shape == (2, 4) and taps["pool"].shape == (2, 32 * 4)
    assert taps["stem"].shape[1:3] == (16, math.ceil(frames / 2))


def test_stem_options_dropout_and_training_step():
    model = create_model("resnet18", 3, width=0.25, stem_kernel=(3, 7, 7), stem_stride=1,
                         no_max_pool=True, dropout=0.5, shortcut="a")
    assert tuple(model.conv1.kernel_size) == (3, 7, 7) and tuple(model.conv1.padding) == (1, 3, 3)
    x = torch.randn(2, 3, 4, 32, 32)
    taps = model.forward_features(x)
    assert taps["stem"].shape == (2, 16, 4, 32, 32)  # no stride, no max-pool
    taps["logits"].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_config_rebuilds_same_architecture_and_is_plain_data():
    model = create_model("resnext50", 7, in_channels=2, width=0.25, cardinality=8,
                         stem_kernel=5, dropout=0.2)
    config = model.config
    assert json.loads(json.dumps(config)) == config
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    rebuilt = create_model(**config)
    assert rebuilt.config == config
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    assert model.layer1[0].conv2.groups == 8


def test_parameter_names_follow_hara_mars_layout():
    keys = set(create_model("resnext50", 10, width=0.25).state_dict())
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
                "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                "layer1.0.downsample.1.running_var", "layer4.2.bn3.bias", "fc.weight",
                "fc.bias"):
        assert key in keys
    basic = set(create_model("resnet10", 10, **TINY).state_dict())
    assert "layer2.0.downsample.0.weight" in basic and "layer1.0.downsample.0.weight" not in basic
    assert "layer1.0.conv3.weight" not in basic


def test_width_multiplier_scales_every_stage():
    model = create_model("resnet10", 10, width=0.25)
    assert model.tap_channels == {"stem": 16, "layer1": 16, "layer2": 32, "layer3": 64,
                                  "layer4": 128, "pool": 128}
    assert count_parameters(model) == 914_682
    bottleneck = create_model("resnet50", 10, width=0.5)
    assert bottleneck.tap_channels["layer4"] == 1024 and bottleneck.conv1.out_channels == 32


def test_shortcut_a_subsamples_and_zero_pads():
    x = torch.randn(2, 4, 5, 7, 7)
    out = ZeroPadShortcut(10, 2)(x)
    assert out.shape == (2, 10, 3, 4, 4)
    torch.testing.assert_close(out[:, :4], x[:, :, ::2, ::2, ::2])
    assert torch.count_nonzero(out[:, 4:]) == 0


def test_kaiming_fan_out_init_and_batchnorm_constants():
    torch.manual_seed(0)
    model = create_model("resnet18", 10)
    conv = model.layer4[1].conv2  # 512 * 27 fan-out, 7M weights: std is precise
    expected = math.sqrt(2.0 / (conv.out_channels * 27))
    assert abs(conv.weight.std().item() / expected - 1) < 0.01
    assert torch.all(model.layer2[0].bn1.weight == 1) and torch.all(model.layer2[0].bn1.bias == 0)


def test_stages_cover_all_parameters_in_order():
    model = create_model("resnet10", 10, **TINY)
    stages = model.stages()
    assert list(stages) == ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
    n = sum(p.numel() for mods in stages.values() for m in mods for p in m.parameters())
    assert n == count_parameters(model)


@pytest.mark.parametrize("kwargs,needle", [
    ({"arch": "resnet11"}, "resnext101"),
    ({"arch": "resnet10", "depth": 3}, "unknown model option(s) depth"),
    ({"arch": "resnet50", "cardinality": 32}, "resnext"),
    ({"arch": "resnet10", "shortcut": "C"}, "shortcut"),
    ({"arch": "resnet10", "stem_stride": (1, 2)}, "stem_stride"),
    ({"arch": "resnet10", "num_classes": 0}, "num_classes"),
])
def test_bad_options_raise_config_error(kwargs, needle):
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(ConfigError) as info:
        create_model(**kwargs)
    assert needle in str(info.value)
