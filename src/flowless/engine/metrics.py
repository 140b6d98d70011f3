"""Per-epoch metrics: JSON lines (``metrics.jsonl``), TensorBoard when installed, a console line."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowless.io import append_jsonl, write_text

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a ``metrics.jsonl`` file (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by a kill; the checkpoint history rewrites it
                continue
    return out


class MetricsLog:
    """Writes each epoch's metrics to ``<run>/metrics.jsonl`` and ``<run>/tensorboard/``.

    ``history`` (the records of completed epochs, as stored in the checkpoint) is written
    back first, so a resumed run's log holds exactly one record per epoch.
    """

    def __init__(self, run_dir: Path, *, tensorboard: bool = True,
                 history: list[dict[str, Any]] | None = None,
                 echo: Callable[[str], None] | None = None):
        self.path = Path(run_dir) / METRICS_FILE
        self.echo = echo
        history = history or []
        write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in history))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSON lines only
                SummaryWriter = None  # noqa: N806
            if SummaryWriter is not None:
                start = int(history[-1]["epoch"]) + 1 if history else 1
                self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start)

    def log(self, record: dict[str, Any]) -> None:
        """Append one epoch's record (must contain "epoch")."""
        append_jsonl(self.path, record)
        if self.writer is not None:
            step = int(record["epoch"])
            for key, value in record.items():
                if key == "epoch" or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    group, _, name = key.partition("_")
                    self.writer.add_scalar(f"{group}/{name or group}", value, step)
                elif isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
                    for i, v in enumerate(value):
                        self.writer.add_scalar(f"{key}/{i}", v, step)
            self.writer.flush()
        if self.echo is not None:
            self.echo(format_record(record))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_record(r: dict[str, Any]) -> str:
    """One console line per epoch."""
    parts = [f"epoch {r['epoch']}/{r.get('epochs', '?')}"]
    if "train_loss" in r:
        parts.append(f"train loss {r['train_loss']:.4f} acc {_pct(r.get('train_acc'))} "
                     f"{r.get('train_clips_per_s', 0):.1f} clips/s"
                     + (f" (data wait {_pct(r['train_data_wait'])})"
                        if r.get("train_data_wait") is not None else ""))
    if r.get("val_loss") is not None:
        video = r.get("val_video_acc")
        parts.append(f"val loss {r['val_loss']:.4f} acc {_pct(r.get('val_acc'))}"
                     + (f" (video {_pct(video)})" if video is not None else ""))
    if "weights" in r:
        parts.append("stream weights " + " ".join(f"{w:.3f}" for w in r["weights"]))
    if "lr" in r:
        parts.append(f"lr {r['lr']:.3g}")
    if "time_s" in r:
        parts.append(f"{r['time_s']:.1f}s")
    return "  ".join(parts)
