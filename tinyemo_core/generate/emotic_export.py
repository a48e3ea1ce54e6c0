"""LLaVA-format EMOTIC records as the LLaVA-on-EMOTIC poster trains them: one record per PERSON, the image
with that person's box in red, the question about "the person in the red box", and as the answer every
annotated category plus (variant ``emotions_vad``) Valence / Arousal / Dominance as words from "very low" (1)
to "very high" (10); variant ``emotions`` is the poster's ablation without V/A/D (docs/recipes.md).

Answer format (what :func:`tinyemo_core.judge.emotic.parse_answer` reads back)::

    Emotions: engagement, happiness. Valence: fairly high. Arousal: slightly high. Dominance: high.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from tinyemo_core.data.emotic_persons import (
    CATEGORIES,
    CATEGORY_NAMES,
    DIMENSIONS,
    EMOTIONS_PROMPT,
    PERSON_PROMPT,
    VAD_WORDS,
    vad_bin,
    vad_word,
)
from tinyemo_core.generate.export import _record

Variant = Literal["emotions_vad", "emotions"]
VARIANTS: tuple[Variant, ...] = ("emotions_vad", "emotions")


def prompt(variant: Variant) -> str:
    """The question of a variant, ``{labels}`` filled with the 26 categories (the evaluation asks the same:
    the ``emotions_vad`` wording is :data:`tinyemo_core.data.emotic_persons.PERSON_PROMPT`)."""
    template = PERSON_PROMPT if variant == "emotions_vad" else EMOTIONS_PROMPT
    if variant not in VARIANTS:
        raise ValueError(f"unknown EMOTIC export variant {variant!r}; use one of {VARIANTS}")
    return template.replace("{labels}", ", ".join(CATEGORIES))


def answer(categories: Sequence[str], vad: Sequence[float] | None, variant: Variant) -> str:
    """The target text: categories in the official order, then the V/A/D words (variant ``emotions_vad`` and
    V/A/D known)."""
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"not EMOTIC categories: {unknown}; expected the normalised names {CATEGORIES}")
    if not categories:
        raise ValueError("a person without categories has no target text")
    text = "Emotions: " + ", ".join(c for c in CATEGORIES if c in set(categories)) + "."
    if variant == "emotions_vad" and vad is not None:
        text += "".join(f" {d.capitalize()}: {vad_word(v)}." for d, v in zip(DIMENSIONS, vad, strict=True))
    return text


def person_record(record_id: str, image: str, categories: Sequence[str], vad: Sequence[float] | None,
                  variant: Variant) -> dict:
    """One validated LLaVA record (``image`` relative to the rendered-boxes root)."""
    return _record(record_id, image, [prompt(variant), answer(categories, vad, variant)])


__all__ = ["CATEGORIES", "CATEGORY_NAMES", "DIMENSIONS", "VAD_WORDS", "VARIANTS", "answer", "person_record",
           "prompt", "vad_bin", "vad_word"]
