"""The attention fusion checkpoint side of :func:`flowless.eval.streams.load_streams`: its
trained module as a fusion rule, the stream checkpoints it names (found again when the run
tree moved) and the order it was trained with (rgb and flow must not be swapped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowless.errors import CheckpointError
from flowless.eval.scoring import AttentionRule
from flowless.eval.streams import _named


def attention_from_checkpoint(ckpt: dict[str, Any], source: str) -> AttentionRule:
    """Build the trained attention fusion module of a ``kind: fusion`` checkpoint."""
    from flowless.models import fusion_from_checkpoint

    try:
        module = fusion_from_checkpoint(ckpt)
    except CheckpointError as exc:
        raise CheckpointError(_named(exc, source)) from exc
    return AttentionRule(module, name=f"{ckpt.get('fusion', 'attention')}:{Path(source).name}",
                         weights_of=_attention_weights)


def _attention_weights(module: Any, tensors: list[Any]) -> Any:
    weights = getattr(module, "stream_weights", None)
    return weights(tensors) if callable(weights) else None


def _resolve(entry: Any, relative: Any, fusion_path: Path) -> Path:
    """Where a stream listed in a fusion checkpoint lives: as recorded, relative to the
    fusion checkpoint's folder (``streams_relative``: a moved run tree), or beside it."""
    raw = entry.get("path") if isinstance(entry, dict) else entry
    if not isinstance(raw, str) or not raw:
        raise CheckpointError(f"{fusion_path}: invalid stream entry {entry!r} in 'streams'")
    candidates = [Path(raw)]
    if isinstance(relative, str) and relative:
        candidates.append(fusion_path.parent / relative)
    candidates += [fusion_path.parent / raw, fusion_path.parent / Path(raw).name]
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != fusion_path.resolve():
            return candidate
    raise CheckpointError(
        f"{fusion_path}: stream checkpoint {raw} not found (also looked next to the fusion "
        "checkpoint); pass the stream checkpoints explicitly before it"
    )


def fusion_streams(fusion: tuple[dict[str, Any], Path],
                    stream_ckpts: list[tuple[dict[str, Any], str]]
                    ) -> tuple[list[tuple[dict[str, Any], str]], AttentionRule]:
    """The stream checkpoints of an attention fusion (given, or the ones it names), in the
    order it was trained with, and its rule."""
    from flowless.checkpoint import load_checkpoint

    fckpt, fpath = fusion
    if not stream_ckpts:
        entries = list(fckpt.get("streams") or [])
        relative = list(fckpt.get("streams_relative") or [])
        relative += [None] * (len(entries) - len(relative))
        paths = [_resolve(e, r, fpath) for e, r in zip(entries, relative)]
        stream_ckpts = [(load_checkpoint(p), str(p)) for p in paths]
    rule = attention_from_checkpoint(fckpt, str(fpath))
    wanted = fckpt.get("model_config", {}).get("num_streams", len(stream_ckpts))
    if wanted != len(stream_ckpts):
        raise CheckpointError(f"{fpath}: the fusion was trained on {wanted} streams, "
                              f"{len(stream_ckpts)} given")
    return _fusion_order(stream_ckpts, fckpt.get("inputs"), fpath), rule


def _fusion_order(stream_ckpts: list[tuple[dict[str, Any], str]], inputs: Any,
                  fusion_path: Path) -> list[tuple[dict[str, Any], str]]:
    """Put the streams in the order the fusion was trained with (its ``inputs`` list):
    the attention weights are per position, so rgb and flow must not be swapped."""
    if not isinstance(inputs, list) or len(inputs) != len(stream_ckpts):
        return stream_ckpts
    given = [c.get("input", "rgb") for c, _ in stream_ckpts]
    if given == inputs:
        return stream_ckpts
    if sorted(given) != sorted(inputs):
        raise CheckpointError(f"{fusion_path}: the fusion was trained on {'+'.join(inputs)} "
                              f"streams, {'+'.join(given)} given")
    pool = list(stream_ckpts)
    ordered = []
    for kind in inputs:
        j = next(i for i, (c, _) in enumerate(pool) if c.get("input", "rgb") == kind)
        ordered.append(pool.pop(j))
    return ordered
