"""How the embedded dataset separates: appearance vs motion vs both, with simple classifiers.

Generates a synthetic set, then trains a softmax regression (numpy) on the train split and
reports test accuracy for three feature sets:
  appearance: saturation-weighted hue histogram of ONE frame (the middle one);
  motion:     Farneback flow statistics (object-dominated mean flow, divergence, curl);
  both:       the two concatenated.
Each is scored on the category (colour family), the motion and the full class. The design
goal: appearance -> category but chance on motion; motion -> motion but chance on category;
only both reach the full class.

    python benchmarks/separability.py            # default demo set (10 classes, 64 px, 17 frames)
    python benchmarks/separability.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def appearance_features(frame: np.ndarray, bins: int = 18) -> np.ndarray:
    """Hue histogram of one RGB frame, weighted by chroma^2 (grey pixels ignored)."""
    hue = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)[..., 0].ravel().astype(np.int64)
    rgb = frame.reshape(-1, 3).astype(np.float64) / 255.0
    chroma = rgb.max(1) - rgb.min(1)
    weight = np.where(chroma > 0.12, chroma**2, 0.0)
    hist = np.bincount((hue * bins // 180).clip(0, bins - 1), weights=weight, minlength=bins)
    return hist / (hist.sum() + 1e-6)


def motion_features(frames: np.ndarray) -> np.ndarray:
    """Mean over frame pairs of Farneback flow statistics on grey frames.

    The frame's median flow (background drift, camera jitter) is removed first; the rest is
    averaged with the flow magnitude as weight, so the biggest mover dominates: mean u,
    mean v, and the radial (zoom) and tangential (spin) flow about the weighted centroid.
    """
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    yy, xx = np.mgrid[0 : grey[0].shape[0], 0 : grey[0].shape[1]].astype(np.float32)
    stats = []
    for a, b in zip(grey[:-1], grey[1:]):
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0)
        r = flow - np.median(flow.reshape(-1, 2), axis=0)
        w = np.linalg.norm(r, axis=-1)
        w = w / (w.sum() + 1e-6)
        dx, dy = xx - (w * xx).sum(), yy - (w * yy).sum()
        dist = np.sqrt(dx**2 + dy**2) + 1e-3
        radial = (r[..., 0] * dx + r[..., 1] * dy) / dist
        tangential = (r[..., 1] * dx - r[..., 0] * dy) / dist
        stats.append([(w * r[..., 0]).sum(), (w * r[..., 1]).sum(),
                      (w * radial).sum(), (w * tangential).sum()])
    return np.mean(stats, axis=0)


def softmax_regression(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       steps: int = 500, lr: float = 0.5, l2: float = 1e-3) -> np.ndarray:
    """Multinomial logistic regression by full-batch gradient descent; returns test labels."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    k = int(y_train.max()) + 1
    w, bias = np.zeros((a.shape[1], k)), np.zeros(k)
    onehot = np.eye(k)[y_train]
    for _ in range(steps):
        z = a @ w + bias
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(a)
        w -= lr * (a.T @ g + l2 * w)
        bias -= lr * g.sum(0)
    return np.argmax(b @ w + bias, axis=1)


def dataset_features(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per split: appearance, motion features and labels of a generated dataset."""
    from flowless.data.annotations import load_index
    from flowless.data.video import read_video

    index = load_index(root, "ucf101")
    out = {}
    for split in ("train", "test"):
        app, mot, labels = [], [], []
        for rec in index.split(split):
            frames = read_video(rec.path)
            app.append(appearance_features(frames[len(frames) // 2]))
            mot.append(motion_features(frames))
            labels.append(rec.label)
        out[split] = {"appearance": np.array(app), "motion": np.array(mot),
                      "label": np.array(labels)}
    return out


def separability(root: Path, categories: int) -> dict[str, dict[str, float]]:
    """Test accuracy of each feature set on category, motion and class."""
    feats = dataset_features(root)
    tr, te = feats["train"], feats["test"]
    for d in (tr, te):
        d["both"] = np.concatenate([d["appearance"], d["motion"]], 1)
    targets = {"category": lambda y: y % categories, "motion": lambda y: y // categories,
               "class": lambda y: y}
    result = {}
    for name in ("appearance", "motion", "both"):
        result[name] = {}
        for target, fn in targets.items():
            pred = softmax_regression(tr[name], fn(tr["label"]), te[name])
            result[name][target] = float(np.mean(pred == fn(te["label"])))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny set (seconds)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--motions", type=int, default=5)
    parser.add_argument("--categories", type=int, default=2)
    parser.add_argument("--videos-per-class", type=int, default=60)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.quick:
        args.videos_per_class, args.frames, args.size = 16, 10, 32
    from flowless.data.synth import make_synthetic_dataset

    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            root = make_synthetic_dataset(
                Path(tmp) / "synth", motions=args.motions, categories=args.categories,
                videos_per_class=args.videos_per_class, frames=args.frames, size=args.size,
                seed=seed, quiet=True)
            gen_s = time.perf_counter() - start
            rows.append({"seed": seed, "generate_s": round(gen_s, 2),
                         **separability(root, args.categories)})
    if args.json:
        print(json.dumps(rows))
        return
    chance = {"category": 1 / args.categories, "motion": 1 / args.motions,
              "class": 1 / (args.motions * args.categories)}
    print(f"{args.motions} motions x {args.categories} categories, {args.videos_per_class} "
          f"videos/class, {args.frames} frames, {args.size} px; test accuracy (%)")
    print(f"{'features':<12}{'category':>10}{'motion':>10}{'class':>10}")
    for name in ("appearance", "motion", "both"):
        vals = [np.mean([r[name][t] for r in rows]) * 100 for t in chance]
        print(f"{name:<12}" + "".join(f"{v:>10.1f}" for v in vals))
    print(f"{'chance':<12}" + "".join(f"{v * 100:>10.1f}" for v in chance.values()))
    print("generation seconds per seed:", [r["generate_s"] for r in rows])


if __name__ == "__main__":
    main()
