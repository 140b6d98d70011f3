"""Evaluation outputs: per-video predictions (JSON lines), per-class accuracy (CSV),
confusion matrix (CSV and PNG). Every file is written atomically."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowless.eval.metrics import per_class_accuracy, ranked_classes
from flowless.io import atomic_path, write_text


def top_entries(probs: np.ndarray, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one (K,) probability row, best first."""
    order = ranked_classes(np.asarray(probs)[None], k)[0]
    return [{"index": int(i), "class": classes[i], "prob": round(float(probs[i]), 6)} for i in order]


def prediction_line(key: str, label: int, classes: Sequence[str], probs: np.ndarray,
                    stream_probs: dict[str, np.ndarray], k: int = 5) -> dict[str, Any]:
    """One video's row of ``predictions.jsonl``: final prediction + each stream's."""
    top = top_entries(probs, classes, k)
    return {
        "key": key,
        "label": int(label),
        "class": classes[label] if label >= 0 else None,
        "predicted": top[0]["index"],
        "predicted_class": top[0]["class"],
        "correct": bool(top[0]["index"] == label),
        "top5": top,
        "streams": {
            name: {"predicted": int(np.argmax(p)), "top5": top_entries(p, classes, k)}
            for name, p in stream_probs.items()
        },
    }


def write_predictions(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(line) + "\n" for line in lines))


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read back a ``predictions.jsonl`` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_per_class(path: Path, classes: Sequence[str], confusions: dict[str, np.ndarray]) -> None:
    """CSV: class index, name, videos, then the accuracy of each result (stream or fusion)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = list(confusions)
    writer.writerow(["index", "class", "videos", *[f"{n}_acc" for n in names]])
    accs = {n: per_class_accuracy(cm) for n, cm in confusions.items()}
    totals = next(iter(confusions.values())).sum(axis=1)
    for i, name in enumerate(classes):
        row = [i, name, int(totals[i])]
        row += ["" if np.isnan(accs[n][i]) else f"{accs[n][i]:.6f}" for n in names]
        writer.writerow(row)
    write_text(path, buf.getvalue())


def write_confusion_csv(path: Path, classes: Sequence[str], confusion: np.ndarray) -> None:
    """Rows = true class, columns = predicted class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, confusion):
        writer.writerow([name, *[int(v) for v in row]])
    write_text(path, buf.getvalue())


def plot_confusion(path: Path, classes: Sequence[str], confusion: np.ndarray, title: str) -> None:
    """Row-normalised confusion matrix as a PNG (class names shown up to 60 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    totals = confusion.sum(axis=1, keepdims=True)
    norm = np.divide(confusion, np.maximum(totals, 1), dtype=np.float64)
    side = min(24.0, max(4.0, 0.3 * k + 2.5))
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    try:
        im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
        if k <= 60:
            ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
            ax.set_yticks(range(k), classes, fontsize=7)
            if k <= 20:
                for i in range(k):
                    for j in range(k):
                        if confusion[i, j]:
                            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center",
                                    fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
