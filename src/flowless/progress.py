"""Progress bars (tqdm) that go quiet with ``--quiet``, ``FLOWLESS_QUIET=1`` or when not a TTY log."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def quiet_by_default() -> bool:
    """Quiet when FLOWLESS_QUIET is set or stderr is not a terminal (logs, CI)."""
    if os.environ.get("FLOWLESS_QUIET", "") not in ("", "0"):
        return True
    return not sys.stderr.isatty()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    quiet: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar showing rate and ETA; disabled when ``quiet`` (default: see above)."""
    disable = quiet_by_default() if quiet is None else quiet
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=disable,
        dynamic_ncols=True,
        leave=False,
        **kwargs,
    )
