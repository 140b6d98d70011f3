"""Attention fusion (docs/method.md §4) and the averaging baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from flowless.checkpoint import save_checkpoint
from flowless.errors import CheckpointError
from flowless.models import AttentionFusion, count_parameters, fusion_from_checkpoint


def test_parameter_count_for_101_classes():
    fusion = AttentionFusion(101)
    assert count_parameters(fusion) == 2 * 101 * 50 + 50 + 50 * 2 + 2 == 10_252
    assert fusion.fc1.in_features == 202 and fusion.fc2.out_features == 2


def test_matches_independent_computation():
    torch.manual_seed(0)
    fusion = AttentionFusion(6)
    a, b = torch.randn(4, 6) * 5, torch.randn(4, 6)
    xa, xb = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    hidden = torch.cat([xa, xb], 1) @ fusion.fc1.weight.T + fusion.fc1.bias
    w = torch.sigmoid(hidden @ fusion.fc2.weight.T + fusion.fc2.bias)
    expected = w[:, :1] * xa + w[:, 1:] * xb
    y, weights = fusion.forward_with_weights([a, b])
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(weights, w)
    torch.testing.assert_close(fusion(torch.stack([a, b], 1)), expected)


def test_equal_logits_give_convex_like_combination():
    torch.manual_seed(1)
    fusion = AttentionFusion(10, num_streams=3)
    x = torch.randn(5, 10)
    y, w = fusion.forward_with_weights([x, x, x])
    assert w.shape == (5, 3) and torch.all((w > 0) & (w < 1))
    torch.testing.assert_close(y, w.sum(1, keepdim=True) * F.normalize(x, dim=1))
    torch.testing.assert_close(fusion.stream_weights(torch.stack([x, x, x], 1)), w)


def test_gradients_reach_fusion_only_when_streams_are_frozen():
    torch.manual_seed(2)
    streams = [torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)]
    for s in streams:
        s.requires_grad_(False)
    clip = torch.randn(6, 8, requires_grad=True)
    fusion = AttentionFusion(4)
    logits = [s(clip).detach() for s in streams]
    loss = F.cross_entropy(fusion(logits), torch.tensor([0, 1, 2, 3, 0, 1]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fusion.parameters())
    assert clip.grad is None and all(p.grad is None for s in streams for p in s.parameters())


def test_config_rebuild_and_checkpoint_round_trip(tmp_path):
    fusion = AttentionFusion(5, num_streams=3)
    assert AttentionFusion(**fusion.config).config == {"num_classes": 5, "num_streams": 3}
    path = save_checkpoint(tmp_path / "fusion.pt", {"kind": "fusion", "model": fusion.state_dict(),
                                                    "model_config": fusion.config})
    loaded = fusion_from_checkpoint(path)
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(loaded(x), fusion(x))
    stream = save_checkpoint(tmp_path / "s.pt", {"kind": "stream", "model": {}})
    with pytest.raises(CheckpointError, match="not a flowless fusion checkpoint"):
        fusion_from_checkpoint(stream)
    wrong = save_checkpoint(tmp_path / "w.pt", {"kind": "fusion", "model": fusion.state_dict(),
                                                "model_config": {"num_classes": 7, "num_streams": 3}})
    with pytest.raises(CheckpointError, match="fusion weights do not fit"):
        fusion_from_checkpoint(wrong)


def test_wrong_stream_count_is_rejected():
    with pytest.raises(ValueError, match="expected 2 streams, got 3"):
        AttentionFusion(4)(torch.randn(2, 3, 4))


def test_weighted_fusion_starts_as_the_logit_mean_and_keeps_weights_normalised():
    from flowless.models import WeightedFusion

    torch.manual_seed(0)
    rgb, flow = torch.randn(6, 5), torch.randn(6, 5)
    for per_class in (True, False):
        f = WeightedFusion(5, 2, per_class=per_class)
        assert torch.allclose(f([rgb, flow]), (rgb + flow) / 2)
        with torch.no_grad():
            f.logit_w.normal_()
            f.log_t.fill_(0.5)
        w = f.weights()
        assert torch.allclose(w.sum(0), torch.ones(w.shape[1]))
        expected = (w[0] * rgb + w[1] * flow) / math.exp(0.5)
        assert torch.allclose(f([rgb, flow]), expected, atol=1e-6)
        scores, sw = f.forward_with_weights(torch.stack([rgb, flow], 1))
        assert sw.shape == (6, 2) and torch.allclose(sw[0], w.mean(1))


def test_fusion_checkpoint_names_its_kind(tmp_path):
    from flowless.checkpoint import save_checkpoint
    from flowless.errors import CheckpointError
    from flowless.models import WeightedFusion, fusion_from_checkpoint

    f = WeightedFusion(3, 2, per_class=False)
    with torch.no_grad():
        f.logit_w.fill_(0.3)
    ckpt = {"format": "flowless", "kind": "fusion", "fusion": "weighted",
            "model_config": f.config, "model": f.state_dict()}
    save_checkpoint(tmp_path / "w.pt", ckpt)
    back = fusion_from_checkpoint(tmp_path / "w.pt")
    assert isinstance(back, WeightedFusion) and torch.equal(back.logit_w, f.logit_w)
    save_checkpoint(tmp_path / "x.pt", {**ckpt, "fusion": "stacking"})
    with pytest.raises(CheckpointError, match=r"x\.pt: unknown fusion kind 'stacking'"):
        fusion_from_checkpoint(tmp_path / "x.pt")
