"""Typed configs: YAML round trip, --set overrides, one-line errors for bad keys and types."""

from __future__ import annotations

import pytest

from flowless.config import (
    DataConfig,
    FusionConfig,
    TrainConfig,
    apply_overrides,
    load_config,
    load_yaml,
    save_yaml,
    validate,
)
from flowless.errors import ConfigError


def test_defaults_follow_mars_and_the_paper():
    cfg = TrainConfig()
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.dampening) == ("sgd", 0.1, 0.9, 0.9)
    assert cfg.optim.schedule == "plateau" and cfg.optim.patience == 10
    assert cfg.distill.alpha == 50.0
    assert cfg.distill.taps == ["stem", "layer1", "layer2", "layer3", "layer4", "pool"]
    assert FusionConfig().lr == 0.1 and FusionConfig().batch_size == 16


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["data.root=/data/ucf", "optim.lr=0.003", "model.width=0.25",
                                          "distill.taps=layer4,pool", "model.freeze_until=layer4"])
    path = save_yaml(cfg, tmp_path / "cfg.yaml")
    back = load_yaml(path)
    assert back == cfg
    assert back.distill.taps == ["layer4", "pool"] and back.optim.lr == 0.003


def test_yaml_scientific_notation_and_int_for_float(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 1e-3\n  weight_decay: 0\nepochs: 5\n")
    cfg = load_yaml(p)
    assert cfg.optim.lr == 0.001 and isinstance(cfg.optim.weight_decay, float) and cfg.epochs == 5


def test_overrides_parse_to_field_types():
    cfg = apply_overrides(
        TrainConfig(),
        ["epochs=3", "optim.lr=1e-2", "tensorboard=false", "data.short_side=128",
         "data.short_side=null", "model.pretrained=k400.pth", "name=123", "distill.taps=[pool]"],
    )
    assert cfg.epochs == 3 and cfg.optim.lr == 0.01 and cfg.tensorboard is False
    assert cfg.data.short_side is None and cfg.model.pretrained == "k400.pth"
    assert cfg.name == "123" and cfg.distill.taps == ["pool"]


def test_overrides_do_not_modify_the_input():
    base = TrainConfig()
    apply_overrides(base, ["epochs=3"])
    assert base.epochs == 30


def test_unknown_key_names_it_and_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        apply_overrides(TrainConfig(), ["optim.lrr=0.1"])
    msg = str(err.value)
    assert msg.startswith("optim.lrr: unknown key; valid keys:") and "optim.lr," in msg
    assert "\n" not in msg


def test_wrong_type_names_key_expected_and_value():
    with pytest.raises(ConfigError, match=r"^epochs: expected int, got 'ten'$"):
        apply_overrides(TrainConfig(), ["epochs=ten"])
    with pytest.raises(ConfigError, match=r"^optim\.lr: expected float, got 'fast'$"):
        apply_overrides(TrainConfig(), ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"data\.short_side: expected int or null"):
        apply_overrides(TrainConfig(), ["data.short_side=big"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(TrainConfig(), ["epochs"])
    with pytest.raises(ConfigError, match="is a section; set one of its keys: optim.name"):
        apply_overrides(TrainConfig(), ["optim=3"])


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("data:\n  fromat: ucf101\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(p)
    assert str(err.value).startswith(f"{p}: data.fromat: unknown key; valid keys: format, root")
    p.write_text("batch_size: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: batch_size: expected int, got \[1, 2\]"):
        load_yaml(p)
    p.write_text("epochs: 3\n  oops: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: .*fix the YAML syntax"):
        load_yaml(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(p)
    p.write_bytes("epochs: 3 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not a UTF-8"):
        load_yaml(p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_validate_choices_and_rules():
    with pytest.raises(ConfigError, match="^stream: 'depth' is not one of: rgb, flow$"):
        load_config(None, ["stream=depth"])
    with pytest.raises(ConfigError, match="optim.name: 'adam' is not one of: sgd, adamw"):
        load_config(None, ["optim.name=adam"])
    with pytest.raises(ConfigError, match="needs a teacher checkpoint"):
        load_config(None, ["distill.mode=mars"])
    with pytest.raises(ConfigError, match="distill.mode is none"):
        load_config(None, ["distill.teacher=t.pt"])
    with pytest.raises(ConfigError, match="distill.taps: unknown tap 'layer9'"):
        load_config(None, ["distill.mode=relation", "distill.teacher=t.pt", "distill.taps=layer9"])
    with pytest.raises(ConfigError, match="data.flow_root"):
        load_config(None, ["stream=flow"])
    with pytest.raises(ConfigError, match="model.freeze_until: 'layer5'"):
        load_config(None, ["model.freeze_until=layer5"])
    with pytest.raises(ConfigError, match="warm-up applies"):
        load_config(None, ["optim.warmup_epochs=1"])
    with pytest.raises(ConfigError, match="epochs: must be at least 1"):
        load_config(None, ["epochs=0"])
    with pytest.raises(ConfigError, match="at least two stream"):
        validate(FusionConfig(streams=["a.pt"]))
    ok = load_config(None, ["distill.mode=relation+mars", "distill.teacher=t.pt", "model.freeze_until=layer4"])
    assert ok.distill.mode == "relation+mars"


def test_fusion_config_yaml(tmp_path):
    cfg = FusionConfig(streams=["a.pt", "b.pt"], data=DataConfig(root="/d"))
    back = load_yaml(save_yaml(cfg, tmp_path / "f.yaml"), FusionConfig)
    assert back == cfg
