"""Typed configs: YAML round trip, --set overrides, one-line errors for bad keys and types."""

from __future__ import annotations

import dataclasses

import pytest

from flowless.config import (
    FUSION_CLIP_KEYS,
    DataConfig,
    FusionConfig,
    TrainConfig,
    apply_overrides,
    load_config,
    load_yaml,
    save_yaml,
    validate,
)
from flowless.errors import ConfigError, FlowlessError


def test_defaults_follow_mars_and_the_paper():
    cfg = TrainConfig()
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.dampening) == ("sgd", 0.1, 0.9, 0.9)
    assert cfg.optim.schedule == "plateau" and cfg.optim.patience == 10
    from flowless.distill.recipe import resolve

    assert cfg.distill.alpha is None  # the mode's default, filled in by resolve
    assert resolve(cfg.distill).alpha == 50.0 and resolve(cfg.distill).temperature == 4.0
    relation = resolve(dataclasses.replace(cfg.distill, mode="relation"))
    assert (relation.alpha, relation.normalize, relation.warmup_epochs) == (50.0, False, 0.0)
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


def test_load_config_layers_defaults_file_flags_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 5\nseed: 3\noptim:\n  lr: 0.5\n")
    cfg = load_config(path, ["epochs=7"], flags=["epochs=6", "optim.lr=0.2", "out=o"])
    assert (cfg.epochs, cfg.seed, cfg.optim.lr, cfg.out) == (7, 3, 0.2, "o")
    assert cfg.batch_size == TrainConfig().batch_size and cfg.resume is None


def test_a_teacher_flag_alone_means_relation(tmp_path):
    assert load_config(flags=["distill.teacher=t.pt"]).distill.mode == "relation"
    assert load_config(flags=["distill.teacher=t.pt", "distill.mode=mars"]).distill.mode == "mars"
    assert load_config(None, ["distill.mode=kd"], flags=["distill.teacher=t.pt"]).distill.mode \
        == "kd"
    path = tmp_path / "kd.yaml"
    path.write_text("distill:\n  mode: kd\n")
    assert load_config(path, flags=["distill.teacher=t.pt"]).distill.mode == "kd"
    with pytest.raises(ConfigError, match="distill.mode is none"):  # --set is not a flag
        load_config(None, ["distill.teacher=t.pt"])
    with pytest.raises(ConfigError, match="distill.mode is none"):
        load_config(None, ["distill.mode=none"], flags=["distill.teacher=t.pt"])


def _run_folder(tmp_path, cfg: TrainConfig, with_yaml: bool = True):
    from flowless.checkpoint import save_checkpoint
    from flowless.config import to_dict

    run = tmp_path / "run"
    if with_yaml:
        save_yaml(cfg, run / "config.yaml")
    save_checkpoint(run / "last.pt", {"model": {}, "optimizer": {}, "scheduler": {}, "epoch": 1,
                                      "rng": {}, "config": to_dict(cfg)})
    return run


@pytest.mark.parametrize("with_yaml", [True, False], ids=["config.yaml", "checkpoint"])
def test_resume_reads_the_run_config(with_yaml, tmp_path):
    saved = apply_overrides(TrainConfig(), ["epochs=4", "model.width=0.25", "out=elsewhere",
                                            "resume=older/run"])
    run = _run_folder(tmp_path, saved, with_yaml)
    cfg = load_config(None, ["epochs=6"], resume=run)
    assert (cfg.epochs, cfg.model.width, cfg.out, cfg.resume) == (6, 0.25, str(run), str(run))
    assert load_config(resume=run / "last.pt", flags=["out=new"]).out == "new"
    # a file given with --config wins over the run's config; the run is still resumed
    path = save_yaml(TrainConfig(epochs=9), tmp_path / "other.yaml")
    cfg = load_config(path, resume=run)
    assert (cfg.epochs, cfg.out, cfg.resume) == (9, TrainConfig().out, str(run))
    # a saved config names the run it resumed; loading it again does not resume
    if with_yaml:
        assert load_config(run / "config.yaml").resume is None
    with pytest.raises(FlowlessError, match="no last.pt in this folder"):
        load_config(resume=tmp_path)


def test_fusion_streams_replace_the_files(tmp_path):
    path = save_yaml(FusionConfig(streams=["x.pt"], epochs=3), tmp_path / "fusion.yaml")
    cfg = load_config(path, ["lr=0.5"], FusionConfig, flags=["epochs=4"], streams=["a.pt", "b.pt"])
    assert (cfg.streams, cfg.epochs, cfg.lr) == (["a.pt", "b.pt"], 4, 0.5)
    with pytest.raises(ValueError, match="cannot be resumed"):
        load_config(None, None, FusionConfig, resume="run")
    with pytest.raises(ValueError, match="has no streams"):
        load_config(streams=["a.pt", "b.pt"])


@pytest.mark.parametrize("key", FUSION_CLIP_KEYS)
def test_fusion_refuses_clip_settings(key, tmp_path):
    streams = ["a.pt", "b.pt"]
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"{key}=8"], FusionConfig, streams=streams)
    assert str(err.value) == (f"{key}: train-fusion takes clip settings from the stream "
                              f"checkpoints; drop {key}")
    section, name = key.split(".")
    path = tmp_path / "fusion.yaml"
    path.write_text(f"{section}:\n  {name}: 8\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, None, FusionConfig, streams=streams)
    assert str(err.value) == (f"{path}: {key}: train-fusion takes clip settings from the "
                              f"stream checkpoints; drop {key} from the file")
    # the config.yaml that train-fusion writes holds the defaults: it can be passed back
    saved = save_yaml(FusionConfig(streams=streams), tmp_path / "config.yaml")
    assert load_config(saved, None, FusionConfig, streams=streams).data == DataConfig()
