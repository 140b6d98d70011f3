"""Distillation losses (MARS, internal relationship, KD) usable on plain tensors."""

from flowless.distill.losses import (
    TAPS,
    distill_loss,
    gram_matrix,
    kd_loss,
    mars_loss,
    relation_loss,
    relation_terms,
)

__all__ = [
    "TAPS",
    "distill_loss",
    "gram_matrix",
    "kd_loss",
    "mars_loss",
    "relation_loss",
    "relation_terms",
]
