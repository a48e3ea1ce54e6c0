"""Figures for the interpretability tools: captioned image grids (Figs. 12-14, 18-19), before/after label
distances (Fig. 15) and the per-neuron ablation bars (Fig. 17)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tinyemo_core.data.images import ImageDecodeError, load_rgb


def _thumb(path: Path | str | None, size: int = 160) -> np.ndarray | None:
    from PIL import Image

    if path is None:
        return None
    try:
        img = load_rgb(Path(path))
    except (ImageDecodeError, OSError):
        return None
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img)


def image_grid(paths: Sequence[Path | str | None], captions: Sequence[str], out: Path, title: str = "",
               *, cols: int = 8) -> Path:
    """A grid of thumbnails, each captioned (e.g. its distance or activation); unreadable images are grey."""
    n = max(len(paths), 1)
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.2 * rows + (0.4 if title else 0)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (path, cap) in enumerate(zip(paths, captions, strict=True)):
        ax = axes.ravel()[i]
        thumb = _thumb(path)
        ax.imshow(thumb if thumb is not None else np.full((8, 8, 3), 200, np.uint8))
        ax.set_title(cap, fontsize=7, y=-0.2)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def distance_bars(pair: dict, out: Path) -> Path:
    """Fig. 15: each label's distance before and after the edit, ranked ascending (the shortest is the
    prediction), with the chosen neurons' activations in the titles."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.3 * len(pair["distances"]) + 1.6), sharex=True)
    neurons = ", ".join(f"n{x['neuron']}: {x['before']:.2f}" for x in pair["neurons"])
    neurons_after = ", ".join(f"n{x['neuron']}: {x['after']:.2f}" for x in pair["neurons"])
    for ax, key, what in ((axes[0], "before", f"original {neurons}"), (axes[1], "after",
                                                                        f"edited {neurons_after}")):
        items = sorted(pair["distances"], key=lambda d: d[key])
        colours = ["tab:red" if d["label"] == pair["target"] else "tab:blue" for d in items]
        ax.barh([d["label"] for d in items][::-1], [d[key] for d in items][::-1], color=colours[::-1])
        ax.set_title(what, fontsize=8)
        ax.set_xlabel("cosine distance")
    fig.suptitle(f"{pair['pair']}: {pair['prediction_before']} -> {pair['prediction_after']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def ablation_bars(neurons: np.ndarray, delta: np.ndarray, out: Path, title: str) -> Path:
    """Fig. 17: accuracy change (percentage points) when each neuron alone is zeroed."""
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(neurons, 100 * delta, width=1.0, color=np.where(delta < 0, "tab:red", "tab:green"))
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("neuron")
    ax.set_ylabel("accuracy change (pp)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
