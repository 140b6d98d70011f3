"""The default weights of each distillation mode, and ``resolve`` to fill a config with them.

The paper's modes keep the paper's constants (alpha 50 for MARS and the relation loss, KD at
temperature 4). ``student`` is flowless's recommended RGB-only student (docs/method.md §11):
logit distillation (T 4) from the RGB+Flow ensemble plus the paper's relation loss at its
alpha 50, both ramped up over the first two epochs; its recipe also trains twice as many
epochs as the streams (the demo does; on your data pass --epochs). Chosen on development
seeds of the embedded benchmark (docs/distillation.md), where per-tap normalisation of the
relation terms (``normalize``) lost to the paper's raw terms, so it is off by default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

PAPER = {"alpha": 50.0, "temperature": 4.0, "kd_weight": 1.0, "normalize": False,
         "warmup_epochs": 0.0}
STUDENT = {"alpha": 50.0, "temperature": 4.0, "kd_weight": 1.0, "normalize": False,
           "warmup_epochs": 2.0}


def defaults(mode: str) -> dict[str, Any]:
    """The weights an unset field of ``distill`` takes in ``mode``."""
    return dict(STUDENT if mode == "student" else PAPER)


def resolve(distill: Any) -> Any:
    """A copy of a :class:`flowless.config.DistillConfig` with every unset weight filled in."""
    fill = {k: v for k, v in defaults(distill.mode).items() if getattr(distill, k) is None}
    return dataclasses.replace(distill, **fill)
