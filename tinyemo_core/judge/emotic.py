"""Reading EMOTIC answers (LLaVA on EMOTIC poster): the category list and V/A/D words -> bins 1-10.

Categories: every EMOTIC category named anywhere in the answer (the whole-word rules of
:mod:`tinyemo_core.judge.parse`, no synonyms: the 26 names are the vocabulary). V/A/D: the word after
"valence" / "arousal" / "dominance" (optionally followed by ":" or "is"), matched against the 10-word scale
(index + 1 = bin), longest word first; a dimension without a scale word is missing (reported, not imputed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from tinyemo_core.data.emotic_persons import CATEGORIES, DIMENSIONS, VAD_WORDS, person_vad, vad_bin
from tinyemo_core.judge.parse import parse_label_set
from tinyemo_core.judge.plan import EvalItem


def parse_vad(text: str, words: Sequence[str] = VAD_WORDS) -> tuple[int | None, int | None, int | None]:
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


def parse_categories(text: str, categories: Sequence[str] = CATEGORIES) -> list[str]:
    """The EMOTIC categories named in an answer, in order of first mention."""
    return parse_label_set(text, categories, synonyms=False)


def parse_answer(text: str) -> tuple[list[str], tuple[int | None, int | None, int | None]]:
    """``(categories in order of first mention, (valence, arousal, dominance) bins or None)`` of an answer
    in the export's format (:mod:`tinyemo_core.generate.emotic_export`)."""
    return parse_categories(text, CATEGORIES), parse_vad(text, VAD_WORDS)


def person_items(
    dataset: str,
    persons: Sequence[Mapping],
    boxes_root: Path,
    split: str = "test",
    max_items: int | None = None,
) -> tuple[list[EvalItem], list[str]]:
    """The scored items of an EMOTIC split, ONE PER PERSON (the poster's unit), and the 26 categories.

    ``persons``: the rows of the per-person table (:func:`tinyemo_core.stages.emotic.render_persons`); each
    item's ``sample_id`` is the person id (``<image_id>-p<index>``), its image the person's red-box PNG under
    ``boxes_root``, ``labels`` its categories, ``vad`` its ratings (None when not annotated). Items are sorted
    by person id; ``max_items`` keeps the first N."""
    rows = sorted((r for r in persons if r["split"] == split), key=lambda r: r["person_id"])
    if not rows:
        raise ValueError(f"the EMOTIC person table of {dataset!r} has no {split!r} persons")
    items = [
        EvalItem(dataset, r["person_id"], str(Path(boxes_root) / r["rendered"]), r["labels"][0],
                 tuple(r["labels"]), person_vad(r))
        for r in rows
    ]
    return (items[:max_items] if max_items else items), list(CATEGORIES)


__all__ = ["DIMENSIONS", "parse_answer", "parse_categories", "parse_vad", "person_items", "vad_bin"]
