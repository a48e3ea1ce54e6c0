"""Reading EMOTIC answers (LLaVA on EMOTIC poster): the category list and V/A/D words -> bins 1-10.

Categories: every EMOTIC category named anywhere in the answer (the whole-word rules of
:mod:`tinyemo_core.judge.parse`, no synonyms: the 26 names are the vocabulary). V/A/D: the word after
"valence" / "arousal" / "dominance" (optionally followed by ":" or "is"), matched against the 10-word scale
(index + 1 = bin), longest word first; a dimension without a scale word is missing (reported, not imputed).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from tinyemo_core.judge.parse import parse_label_set

DIMENSIONS = ("valence", "arousal", "dominance")


def vad_scale() -> tuple[str, ...] | None:
    """The 10 V/A/D words of the EMOTIC exports ("very low" = 1 ... "very high" = 10), or None when the
    EMOTIC export module does not provide them (then V/A/D is not scored)."""
    try:
        from tinyemo_core.generate import emotic_export  # type: ignore[attr-defined]
    except ImportError:
        return None
    words = getattr(emotic_export, "VAD_WORDS", None)
    return tuple(words) if words else None


def parse_vad(text: str, words: Sequence[str]) -> tuple[int | None, int | None, int | None]:
    """Bins (1-10) of valence, arousal, dominance named in ``text``; None where a dimension has no word."""
    if len(words) != 10:
        raise ValueError(f"the V/A/D scale must have 10 words (bins 1-10), got {len(words)}")
    alt = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    index = {w.lower(): i + 1 for i, w in enumerate(words)}
    out = []
    for dim in DIMENSIONS:
        m = re.search(rf"\b{dim}\b\s*(?::|is|=)?\s*({alt})(?![a-z])", text, re.IGNORECASE)
        out.append(index[m.group(1).lower()] if m else None)
    return tuple(out)  # type: ignore[return-value]


def vad_bin(value: float) -> int:
    """A 1-10 EMOTIC rating as its bin (rounded half up, clipped to 1-10)."""
    return int(min(10, max(1, int(float(value) + 0.5))))


def parse_categories(text: str, categories: Sequence[str]) -> list[str]:
    """The EMOTIC categories named in an answer, in order of first mention."""
    return parse_label_set(text, categories, synonyms=False)


def person_items(
    dataset: str,
    manifest: Path,
    dataset_root: Path,
    storage_root: Path,
    split: str = "test",
    max_items: int | None = None,
) -> tuple[list, list[str]]:
    """The scored items of an EMOTIC split, ONE PER PERSON (the poster's unit), and the 26 categories.

    Drop-in for :func:`tinyemo_core.judge.plan.load_items` when ``recipe == "llava-emotic"``: makes (or
    reuses: idempotent, cached by fingerprint) the per-person table and red-box images of
    :func:`tinyemo_core.stages.emotic.render_persons`; each item's ``sample_id`` is the person id
    (``<image_id>-p<index>``), its image the person's red-box PNG, ``labels`` its categories, ``vad`` its
    ratings (None when not annotated). Items are sorted by person id; ``max_items`` keeps the first N."""
    from tinyemo_core.stages.emotic import person_eval_items, render_persons

    summary = render_persons(dataset, Path(manifest), Path(dataset_root), Path(storage_root))
    items, categories = person_eval_items(dataset, Path(summary["dir"]), Path(storage_root), split)
    return (items[:max_items] if max_items else items), categories
