"""Training-loop parts with small stand-ins: loop, validation, schedules, freezing, RNG, logs."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from flowless.config import OptimConfig
from flowless.engine.data import ShardSampler, dataset_stream, resolve_workers
from flowless.engine.distributed import DistEnv
from flowless.engine.loop import Distiller, StepOptions, Taps, train_epoch, val_epoch
from flowless.engine.metrics import MetricsLog, format_record, read_metrics
from flowless.engine.optim import Schedule, build_optimizer, freeze_until, stage_of
from flowless.engine.state import rng_state, set_rng_state
from flowless.models import create_model

ENV = DistEnv()
CPU = StepOptions(device=torch.device("cpu"), quiet=True)


class TinyNet(nn.Module):
    """Stand-in with the forward_features API: conv -> pool -> fc."""

    def __init__(self, cin: int = 3, classes: int = 2):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, 4, 1)
        self.fc = nn.Linear(4, classes)

    def forward_features(self, x):
        stem = torch.relu(self.conv1(x))
        pool = stem.mean(dim=(2, 3, 4))
        return {"stem": stem, "pool": pool, "logits": self.fc(pool)}

    def forward(self, x):
        return self.forward_features(x)["logits"]


def toy_batches(n_batches=4, bs=8, seed=0):
    """Class = sign of the mean of channel 0; every item also has a 'flow' input."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(n_batches):
        y = torch.randint(0, 2, (bs // 2,), generator=g).repeat_interleave(2)  # 2 clips/video
        x = torch.randn(bs, 3, 2, 4, 4, generator=g)
        x[:, 0] += (y.float() * 2 - 1)[:, None, None, None] * 1.5
        out.append({"clip": x, "flow": x[:, :2].clone(), "label": y,
                    "video": torch.arange(bs) // 2 + b * bs // 2})
    return out


def test_train_epoch_learns_a_toy_problem_and_counts_clips():
    torch.manual_seed(0)
    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    data = toy_batches()
    first = train_epoch(Taps(net), data, opt, CPU, ENV)
    for _ in range(20):
        last = train_epoch(Taps(net), data, opt, CPU, ENV)
    assert last["train_loss"] < 0.5 * first["train_loss"]
    assert last["train_acc"] > 0.9 and last["train_clips"] == 32
    assert last["train_clips_per_s"] > 0


def test_distillation_adds_alpha_times_the_term_and_leaves_the_teacher_alone():
    torch.manual_seed(0)
    student, teacher = TinyNet(), TinyNet(cin=2)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distiller = Distiller(teacher, "mars", alpha=7.0, input_key="flow")
    opt = torch.optim.SGD(student.parameters(), lr=0.0)  # lr 0: weights fixed, losses comparable
    data = toy_batches(2)
    out = train_epoch(Taps(student), data, opt, CPU, ENV, distiller=distiller)
    assert out["train_loss"] == pytest.approx(out["train_ce"] + 7.0 * out["train_distill"])
    with torch.no_grad():
        expected = np.mean([float(torch.nn.functional.mse_loss(
            student.forward_features(b["clip"])["pool"],
            teacher.forward_features(b["flow"])["pool"])) for b in data])
    assert out["train_mse"] == pytest.approx(expected, rel=1e-5)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())


def test_student_mode_is_kd_to_the_ensemble_plus_normalised_relation_times_the_ramp():
    torch.manual_seed(0)
    student, teacher, rgb = TinyNet(), TinyNet(cin=2), TinyNet()
    distiller = Distiller(teacher, "student", alpha=0.7, taps=("stem", "pool"), temperature=2.0,
                          input_key="flow", ensemble=[(rgb, "clip")], kd_weight=1.5,
                          normalize=True, ramp=0.25)
    opt = torch.optim.SGD(student.parameters(), lr=0.0)
    data = toy_batches(2)
    out = train_epoch(Taps(student), data, opt, CPU, ENV, distiller=distiller)
    kds, rels = [], []
    with torch.no_grad():
        for b in data:
            s, t = student.forward_features(b["clip"]), teacher.forward_features(b["flow"])
            target = (t["logits"] + rgb(b["clip"])) / 2  # the ensemble: mean of the logits
            q = torch.softmax(target / 2.0, 1)
            log_p = torch.log_softmax(s["logits"] / 2.0, 1)
            kds.append(float((q * (q.log() - log_p)).sum(1).mean() * 4.0))
            rel = 0.0
            for tap in ("stem", "pool"):
                fs, ft = s[tap].reshape(8, s[tap].shape[1], -1), t[tap].reshape(8, t[tap].shape[1], -1)
                gs = fs @ fs.transpose(1, 2) / (fs.shape[1] * fs.shape[2])
                gt = ft @ ft.transpose(1, 2) / (ft.shape[1] * ft.shape[2])
                rel += float((gs - gt).abs().mean() / gt.abs().mean())
                rel += float((fs - ft).abs().mean() / ft.abs().mean())
            rels.append(rel / 2)  # the mean over taps of (gram + feat)
    assert out["train_kd"] == pytest.approx(np.mean(kds), rel=1e-5)
    term = 1.5 * np.mean(kds) + 0.7 * np.mean(rels)
    assert out["train_distill"] == pytest.approx(term, rel=1e-5)
    assert out["train_loss"] == pytest.approx(out["train_ce"] + 0.25 * term, rel=1e-5)


def test_student_mode_without_alpha_is_kd_alone_and_kd_uses_the_ensemble():
    torch.manual_seed(0)
    student, teacher, rgb = TinyNet(), TinyNet(cin=2), TinyNet()
    opt = torch.optim.SGD(student.parameters(), lr=0.0)
    data = toy_batches(2)
    kd_only = train_epoch(Taps(student), data, opt, CPU, ENV, distiller=Distiller(
        teacher, "student", alpha=0.0, input_key="flow", ensemble=[(rgb, "clip")]))
    assert "train_gram" not in kd_only and kd_only["train_distill"] == kd_only["train_kd"]
    paper_kd = train_epoch(Taps(student), data, opt, CPU, ENV, distiller=Distiller(
        teacher, "kd", alpha=1.0, input_key="flow", ensemble=[(rgb, "clip")]))
    assert paper_kd["train_kd"] == pytest.approx(kd_only["train_kd"], rel=1e-6)
    alone = train_epoch(Taps(student), data, opt, CPU, ENV, distiller=Distiller(
        teacher, "kd", alpha=1.0, input_key="flow"))
    assert alone["train_kd"] != pytest.approx(paper_kd["train_kd"], rel=1e-3)
    assert not rgb.training and not any(p.requires_grad for p in rgb.parameters())


def test_validate_clip_and_video_accuracy_match_a_direct_computation():
    torch.manual_seed(1)
    net = TinyNet().eval()
    data = toy_batches(3, bs=6, seed=4)
    got = val_epoch(Taps(net), data, CPU, ENV, num_videos=9, num_classes=2)
    x = torch.cat([b["clip"] for b in data])
    y = torch.cat([b["label"] for b in data])
    v = torch.cat([b["video"] for b in data])
    with torch.no_grad():
        logits = net(x)
    assert got["val_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)))
    assert got["val_acc"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    correct = []
    for vid in v.unique():
        m = v == vid
        correct.append(int(logits[m].mean(0).argmax()) == int(y[m][0]))
    assert got["val_video_acc"] == pytest.approx(sum(correct) / len(correct))
    assert got["val_clips"] == 18


def test_freeze_until_layer4_is_mars_ft_begin_index_4():
    net = create_model("resnet10", 3, width=0.25)
    frozen = freeze_until(net, "layer4")
    assert frozen and all(stage_of(n) in ("stem", "layer1", "layer2", "layer3") for n in frozen)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("layer4.", "fc.")) for n in trainable)
    opt = build_optimizer(net, OptimConfig())
    assert sum(len(g["params"]) for g in opt.param_groups) == len(trainable)
    g = opt.param_groups[0]
    assert (g["momentum"], g["dampening"], g["weight_decay"]) == (0.9, 0.9, 1e-3)
    assert freeze_until(create_model("resnet10", 3, width=0.25), None) == []


def test_cosine_schedule_with_warmup_follows_the_formula():
    p = nn.Parameter(torch.zeros(1))
    cfg = OptimConfig(name="sgd", lr=0.1, schedule="cosine", warmup_epochs=1, min_lr=0.01)
    opt = build_optimizer(nn.Linear(1, 1), cfg)
    sched = Schedule(opt, cfg, epochs=3, steps_per_epoch=4)
    lrs = []
    for _ in range(12):
        lrs.append(sched.lr)
        opt.step()
        sched.step_batch()
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    for step in range(4, 12):
        progress = (step - 4) / 8
        want = 0.1 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        assert lrs[step] == pytest.approx(want)
    del p


def test_plateau_schedule_reduces_after_patience_and_round_trips():
    cfg = OptimConfig(lr=0.1, patience=2, factor=0.1)
    opt = build_optimizer(nn.Linear(1, 1), cfg)
    sched = Schedule(opt, cfg, epochs=10, steps_per_epoch=3)
    for loss in (1.0, 1.0, 1.0):
        sched.step_epoch(loss)
    assert sched.lr == pytest.approx(0.1)
    sched.step_epoch(1.0)  # 3rd epoch without improvement > patience 2
    assert sched.lr == pytest.approx(0.01)
    state = sched.state_dict()
    opt2 = build_optimizer(nn.Linear(1, 1), cfg)
    other = Schedule(opt2, cfg, epochs=10, steps_per_epoch=3)
    other.load_state_dict(state)
    assert other.plateau.num_bad_epochs == sched.plateau.num_bad_epochs
    sched.step_epoch(None)  # epochs without validation do not count
    assert sched.plateau.num_bad_epochs == other.plateau.num_bad_epochs


def test_rng_state_round_trip_through_a_safe_checkpoint(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    torch.save(rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_metrics_log_rewrites_history_and_skips_torn_lines(tmp_path):
    lines = [{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text(json.dumps(lines[0]) + "\n" + '{"epoch": 2, "tra')
    assert read_metrics(tmp_path) == lines[:1]
    seen = []
    log = MetricsLog(tmp_path, tensorboard=True, history=lines[:1], echo=seen.append)
    log.log(dict(lines[1], epochs=2, weights=[0.5, 1.0]))
    log.close()
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2]
    assert seen and seen[0].startswith("epoch 2/2  train loss 0.5000")
    assert "stream weights 0.500 1.000" in seen[0]
    assert list((tmp_path / "tensorboard").glob("events.*"))
    assert format_record({"epoch": 3, "val_loss": 0.25, "val_acc": 0.5}) == \
        "epoch 3/?  val loss 0.2500 acc 50.0%"


def test_shard_sampler_covers_each_item_once():
    shards = [list(ShardSampler(11, r, 3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))


def test_dataset_stream_pairs_inputs():
    assert dataset_stream("rgb", None) == ("rgb", "clip", None)
    assert dataset_stream("rgb", "flow") == ("rgbflow", "clip", "flow")
    assert dataset_stream("flow", "flow") == ("flow", "clip", "clip")
    assert dataset_stream("flow", "rgb") == ("rgbflow", "flow", "clip")
    # a student ensemble: the RGB stream beside a flow teacher, or a flow one beside RGB
    assert dataset_stream("rgb", "flow", ("rgb",)) == ("rgbflow", "clip", "flow")
    assert dataset_stream("rgb", "rgb", ("flow",)) == ("rgbflow", "clip", "clip")
    assert dataset_stream("rgb", "rgb", ("rgb",)) == ("rgb", "clip", "clip")


def test_train_epoch_reports_the_share_of_time_spent_waiting_for_data():
    import time

    def slow(batches):  # a loader that takes 50 ms per batch
        for b in batches:
            time.sleep(0.05)
            yield b

    net = TinyNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    fast = train_epoch(Taps(net), toy_batches(), opt, CPU, ENV)["train_data_wait"]
    waited = train_epoch(Taps(net), slow(toy_batches()), opt, CPU, ENV)["train_data_wait"]
    assert 0 <= fast < 0.5 < waited < 1
    line = format_record({"epoch": 1, "train_loss": 1.0, "train_data_wait": waited})
    assert f"(data wait {100 * waited:.1f}%)" in line


def test_auto_workers_are_sized_to_the_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(6)), raising=False)
    cuda = DistEnv(device=torch.device("cuda"))
    assert resolve_workers("auto", ENV) == 5 and resolve_workers(3, ENV) == 3  # 1 core: model
    assert resolve_workers("auto", cuda, in_memory=True) == 5
    assert resolve_workers("auto", ENV, in_memory=True) == 0  # the model needs the cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resolve_workers("auto", DistEnv(world_size=4)) == 0  # 1 core per rank
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(256)), raising=False)
    assert resolve_workers("auto", DistEnv(world_size=4)) == 16
