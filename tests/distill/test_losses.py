"""Distillation losses against independent (loop / einsum) computations."""

from __future__ import annotations

import math

import pytest
import torch

from flowless.distill import (
    TAPS,
    distill_loss,
    gram_matrix,
    kd_loss,
    mars_loss,
    relation_loss,
    relation_terms,
)

SHAPES = {
    "stem": (2, 4, 4, 8, 8),
    "layer1": (2, 4, 4, 8, 8),
    "layer2": (2, 8, 2, 4, 4),
    "layer3": (2, 16, 1, 2, 2),
    "layer4": (2, 32, 1, 1, 1),
    "pool": (2, 32),
}


def random_taps(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(*s, generator=g, dtype=torch.float64) for k, s in SHAPES.items()}


def loop_gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix entry by entry: G[b, i, j] = sum_n F[b,i,n] F[b,j,n] / (C * N)."""
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    n = f.shape[2]
    out = torch.zeros(b, c, c, dtype=torch.float64)
    for bi in range(b):
        for i in range(c):
            for j in range(c):
                out[bi, i, j] = sum(float(f[bi, i, k] * f[bi, j, k]) for k in range(n)) / (c * n)
    return out


@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 3), (1, 5, 1, 1, 4), (3, 4), (2, 6, 3, 1, 2)])
def test_gram_matrix_matches_loop(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    assert torch.allclose(gram_matrix(x).double(), loop_gram(x), atol=1e-5)


def test_gram_matrix_is_symmetric_and_scaled_by_c_thw():
    x = torch.ones(1, 4, 2, 3, 3)
    g = gram_matrix(x)
    # every entry: sum of 18 ones / (4 * 18)
    assert torch.allclose(g, torch.full((1, 4, 4), 0.25))


def test_relation_loss_matches_independent_computation():
    s, t = random_taps(0), random_taps(1)
    gram_terms, feat_terms = [], []
    for name in TAPS:
        fs = s[name].reshape(s[name].shape[0], s[name].shape[1], -1)
        ft = t[name].reshape(t[name].shape[0], t[name].shape[1], -1)
        c, n = fs.shape[1], fs.shape[2]
        gs = torch.einsum("bcn,bdn->bcd", fs, fs) / (c * n)
        gt = torch.einsum("bcn,bdn->bcd", ft, ft) / (c * n)
        gram_terms.append(float((gs - gt).abs().sum()) / gs.numel())
        feat_terms.append(float((fs - ft).abs().sum()) / fs.numel())
    expected = sum(gram_terms) / len(TAPS) + sum(feat_terms) / len(TAPS)
    got = relation_loss(s, t, TAPS)
    assert math.isclose(float(got), expected, rel_tol=1e-5)
    gram, feat = relation_terms(s, t, TAPS)
    assert math.isclose(float(gram), sum(gram_terms) / 6, rel_tol=1e-5)
    assert math.isclose(float(feat), sum(feat_terms) / 6, rel_tol=1e-5)


def test_relation_loss_subset_of_taps_and_zero_for_identical():
    s, t = random_taps(2), random_taps(3)
    sub = ("layer4", "pool")
    f4 = (s["layer4"] - t["layer4"]).abs().mean()
    fp = (s["pool"] - t["pool"]).abs().mean()
    g4 = (loop_gram(s["layer4"]) - loop_gram(t["layer4"])).abs().mean()
    gp = (loop_gram(s["pool"]) - loop_gram(t["pool"])).abs().mean()
    expected = (g4 + gp) / 2 + (f4 + fp) / 2
    assert math.isclose(float(relation_loss(s, t, sub)), float(expected), rel_tol=1e-5)
    assert float(relation_loss(s, s, TAPS)) == 0.0


def test_relation_loss_gradient_reaches_student_only():
    s = {k: v.float().requires_grad_(True) for k, v in random_taps(4).items()}
    t = {k: v.float().requires_grad_(True) for k, v in random_taps(5).items()}
    relation_loss(s, t).backward()
    assert all(s[k].grad is not None and s[k].grad.abs().sum() > 0 for k in TAPS)
    assert all(t[k].grad is None for k in TAPS)


def test_relation_loss_shape_mismatch_names_the_tap():
    s, t = random_taps(0), random_taps(1)
    t["layer2"] = torch.randn(2, 16, 2, 4, 4)
    with pytest.raises(ValueError, match="tap 'layer2'"):
        relation_loss(s, t)


@pytest.mark.parametrize("shape", [(4, 32), (3, 7), (2, 5, 1, 1, 1)])
def test_mars_loss_is_mse_over_batch_and_channels(shape):
    s, t = torch.randn(*shape), torch.randn(*shape)
    sf, tf = s.reshape(shape[0], -1), t.reshape(shape[0], -1)
    expected = sum(
        float(sf[b, c] - tf[b, c]) ** 2 for b in range(sf.shape[0]) for c in range(sf.shape[1])
    ) / sf.numel()
    assert math.isclose(float(mars_loss(s, t)), expected, rel_tol=1e-5)


def test_kd_loss_matches_explicit_kl():
    s, t = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    temp = 2.0
    total = 0.0
    for b in range(3):
        p = torch.softmax(t[b] / temp, 0)
        q = torch.softmax(s[b] / temp, 0)
        total += float((p * (p.log() - q.log())).sum())
    expected = total / 3 * temp * temp
    assert math.isclose(float(kd_loss(s, t, temp)), expected, rel_tol=1e-5)
    assert abs(float(kd_loss(s, s, temp))) < 1e-6


def test_distill_loss_modes_sum_their_parts():
    s, t = random_taps(6), random_taps(7)
    s["logits"], t["logits"] = torch.randn(2, 3), torch.randn(2, 3)
    rel, parts = distill_loss("relation", s, t, taps=TAPS)
    assert set(parts) == {"gram", "feat"}
    assert math.isclose(float(rel), float(relation_loss(s, t)), rel_tol=1e-6)
    mars, parts = distill_loss("mars", s, t)
    assert set(parts) == {"mse"} and math.isclose(float(mars), float(mars_loss(s["pool"], t["pool"])), rel_tol=1e-6)
    both, _ = distill_loss("relation+mars", s, t)
    assert math.isclose(float(both), float(rel) + float(mars), rel_tol=1e-6)
    kd, _ = distill_loss("kd", s, t, temperature=3.0)
    assert math.isclose(float(kd), float(kd_loss(s["logits"], t["logits"], 3.0)), rel_tol=1e-6)
    with pytest.raises(ValueError, match="unknown distillation mode"):
        distill_loss("bogus", s, t)
