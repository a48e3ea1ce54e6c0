"""Figures: confusion matrices and the t-SNE of projected images with label embeddings as stars (Fig. 6/8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Write a confusion-matrix PNG (rows true, columns predicted)."""
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(confusion, display_labels=list(labels)).plot(
        ax=ax, colorbar=False, xticks_rotation="vertical", include_values=len(labels) <= 12)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_tsne(points: np.ndarray, point_labels: Sequence[str], label_names: Sequence[str],
              label_vectors: np.ndarray, path: Path, title: str, *, max_points: int = 1000,
              seed: int = 0) -> Path | None:
    """t-SNE of image embeddings (dots, coloured by true label) and label embeddings (stars), fitted jointly.

    Perplexity is adapted to the number of points (sklearn needs perplexity < n); above ``max_points`` images
    a seeded subsample is drawn (t-SNE is slow on CPU). Returns None when there are too few points.
    """
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(points), max_points, replace=False)) if len(points) > max_points \
        else np.arange(len(points))
    pts, labs = np.asarray(points, dtype=np.float32)[keep], [point_labels[i] for i in keep]
    both = np.concatenate([pts, np.asarray(label_vectors, dtype=np.float32)])
    if len(both) < 5:
        return None
    perplexity = float(min(30.0, max(2.0, (len(both) - 1) / 3)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, metric="cosine",
              max_iter=500).fit_transform(both)  # 500 iterations suffice for a picture; halves the CPU time
    img_xy, lab_xy = xy[: len(pts)], xy[len(pts):]
    names = list(label_names)
    cmap = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    colour = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(7, 6))
    for name in names:
        sel = [i for i, lab in enumerate(labs) if lab == name]
        ax.scatter(img_xy[sel, 0], img_xy[sel, 1], s=8, alpha=0.6, color=colour[name], label=name)
    for i, name in enumerate(names):
        ax.scatter(lab_xy[i, 0], lab_xy[i, 1], marker="*", s=320, color=colour[name], edgecolors="black")
        ax.annotate(name, lab_xy[i], fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set_title(title)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_training_curves(history: Sequence[dict], path: Path, title: str = "Projector training") -> Path:
    """Training loss and mean validation accuracy per epoch (the best epoch marked) as one PNG."""
    epochs = [h["epoch"] for h in history]
    fig, ax_loss = plt.subplots(figsize=(6, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], color="tab:blue", marker="o", ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss", color="tab:blue")
    val = [(h["epoch"], h["val_acc"]) for h in history if h.get("val_acc") is not None]
    if val:
        ax_acc = ax_loss.twinx()
        ax_acc.plot(*zip(*val, strict=True), color="tab:orange", marker="s", ms=3)
        ax_acc.set_ylabel("validation accuracy", color="tab:orange")
        best = [h["epoch"] for h in history if h.get("is_best")]
        if best:
            ax_acc.axvline(best[-1], color="tab:gray", ls="--", lw=1)
    ax_loss.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
