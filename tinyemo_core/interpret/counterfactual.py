"""Counterfactual image pairs (TinyEmo §V-C steps 2-3, Figs. 13-15, 20): does an edit move the neurons, the
embedding, the decision?

Folder convention for a set of pairs::

    pairs/original/<name>.<ext>             the untouched image
    pairs/edited/<name>.<ext>               its edit (e.g. the watermark removed), or
    pairs/edited/<name>__<variant>.<ext>    several edits of one original (``__`` separates the variant)

For each pair: the chosen neurons' activation before/after, the cosine distance (1 - cos) of the projected
image to every label before/after (Fig. 15's bar charts), the top-1 label before/after. Over a set of pairs
(defaults, all configurable):

- *embedding shift* of a pair: the distance to the target label (default: the original's prediction) moves
  by at least ``distance_threshold`` = 0.02;
- **bias present in the embedding space**: at least ``shift_share`` = 50 % of the pairs shift;
- **the bias changes the decision**: more than ``flip_threshold`` = 10 % of the pairs change their top-1
  label (the paper reads this off the emotion distribution before/after, which is also reported).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinyemo_core.data.images import IMAGE_EXTENSIONS
from tinyemo_core.interpret.probing import unit

VARIANT_SEP = "__"


def find_pairs(folder: Path | str) -> list[tuple[str, Path, Path]]:
    """(pair name, original, edited) for every file under ``edited/`` matched to ``original/`` by stem."""
    root = Path(folder)
    orig_dir, edit_dir = root / "original", root / "edited"
    if not orig_dir.is_dir() or not edit_dir.is_dir():
        raise FileNotFoundError(f"{root} must hold original/ and edited/ folders of images (edited/<name>.jpg"
                                " or edited/<name>__<variant>.jpg pairs with original/<name>.jpg)")

    def images(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)

    originals = {p.stem: p for p in images(orig_dir)}
    pairs, orphans = [], []
    for edited in images(edit_dir):
        stem = edited.stem.split(VARIANT_SEP, 1)[0]
        if stem in originals:
            pairs.append((edited.stem, originals[stem], edited))
        else:
            orphans.append(edited.name)
    if orphans:
        raise FileNotFoundError(f"edited image(s) without an original in {orig_dir}: {', '.join(orphans[:5])}"
                                f" (name the edit <original stem>.ext or <original stem>__<variant>.ext)")
    if not pairs:
        raise FileNotFoundError(f"no image pairs under {root} (edited/ is empty or matches no original)")
    return pairs


def compare_pair(name: str, act_before: np.ndarray, act_after: np.ndarray, proj_before: np.ndarray,
                 proj_after: np.ndarray, labels: Sequence[str], label_vectors: np.ndarray,
                 neurons: Sequence[int], target: str | None = None, *, distance_threshold: float = 0.02
                 ) -> dict:
    """One pair's neuron changes, per-label distances before/after, top-1 labels and shift/flip flags."""
    lab = unit(label_vectors)
    d0 = 1.0 - lab @ unit(proj_before)
    d1 = 1.0 - lab @ unit(proj_after)
    pred0, pred1 = labels[int(np.argmin(d0))], labels[int(np.argmin(d1))]
    tgt = target or pred0
    if tgt not in labels:
        raise ValueError(f"target label {tgt!r} is not among the labels ranked: {', '.join(labels)}")
    t = list(labels).index(tgt)
    return {
        "pair": name,
        "neurons": [{"neuron": int(j), "before": float(act_before[j]), "after": float(act_after[j]),
                     "change": float(act_after[j] - act_before[j])} for j in neurons],
        "distances": [{"label": lab_, "before": float(a), "after": float(b), "change": float(b - a)}
                      for lab_, a, b in zip(labels, d0, d1, strict=True)],
        "prediction_before": pred0,
        "prediction_after": pred1,
        "flipped": pred0 != pred1,
        "target": tgt,
        "target_distance_change": float(d1[t] - d0[t]),
        "embedding_shift": bool(abs(d1[t] - d0[t]) >= distance_threshold),
    }


def summarise_pairs(pairs: Sequence[dict], *, flip_threshold: float = 0.1, shift_share: float = 0.5) -> dict:
    """The §V-C step-3 verdict over a set of compared pairs (thresholds in the module docstring)."""
    if not pairs:
        raise ValueError("no pairs to summarise")
    n = len(pairs)
    flip_rate = sum(p["flipped"] for p in pairs) / n
    shift_rate = sum(p["embedding_shift"] for p in pairs) / n
    neuron_ids = [x["neuron"] for x in pairs[0]["neurons"]]
    neurons = []
    for j in neuron_ids:
        changes = np.array([x["change"] for p in pairs for x in p["neurons"] if x["neuron"] == j])
        neurons.append({"neuron": j, "mean_change": float(changes.mean()),
                        "same_sign_share": float(max((changes > 0).mean(), (changes < 0).mean()))})
    if flip_rate > flip_threshold:
        verdict = "the bias changes the decision"
    elif shift_rate >= shift_share:
        verdict = "bias present in the embedding space; the decision is unchanged"
    else:
        verdict = "no measurable effect on the embedding or the decision"
    return {
        "pairs": n, "flip_rate": flip_rate, "embedding_shift_rate": shift_rate,
        "mean_target_distance_change": float(np.mean([p["target_distance_change"] for p in pairs])),
        "neurons": neurons,
        "distribution_before": dict(Counter(p["prediction_before"] for p in pairs)),
        "distribution_after": dict(Counter(p["prediction_after"] for p in pairs)),
        "embedding_bias": shift_rate >= shift_share, "decision_changed": flip_rate > flip_threshold,
        "verdict": verdict,
        "thresholds": {"flip_threshold": flip_threshold, "shift_share": shift_share},
    }
