"""LLaVA-format EMOTIC records as the LLaVA-on-EMOTIC poster trains them: one record per PERSON, the image
with that person's box in red, the question about "the person in the red box", and as the answer every
annotated category plus (variant ``emotions_vad``) Valence / Arousal / Dominance as words from "very low" (1)
to "very high" (10); variant ``emotions`` is the poster's ablation without V/A/D (docs/recipes.md).

Answer format (what :func:`parse_answer` reads back)::

    Emotions: engagement, happiness. Valence: fairly high. Arousal: slightly high. Dominance: high.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from tinyemo_core.data.taxonomy import EMOTIC26
from tinyemo_core.judge import emotic as _judge

Variant = Literal["emotions_vad", "emotions"]
VARIANTS: tuple[Variant, ...] = ("emotions_vad", "emotions")

#: The 26 categories in the official EMOTIC order (Kosti et al.; alphabetical), normalised spelling.
CATEGORIES: tuple[str, ...] = EMOTIC26
#: The same in the dataset's own spelling (capitalised, "Doubt/Confusion"), for display.
CATEGORY_NAMES: tuple[str, ...] = tuple(c.title() for c in EMOTIC26)

#: V/A/D bins 1..10 as words ("very low" = 1 and "very high" = 10 are the poster's; the eight between ours,
#: symmetric around the scale's middle 5.5: bins 5 and 6 are "slightly low" / "slightly high").
VAD_WORDS: tuple[str, ...] = (
    "very low", "low", "fairly low", "somewhat low", "slightly low",
    "slightly high", "somewhat high", "fairly high", "high", "very high",
)  # fmt: skip
DIMENSIONS = ("valence", "arousal", "dominance")

EMOTIONS_PROMPT = (
    "What emotions does the person in the red box feel? List every emotion that applies from: {labels}."
)


def prompt(variant: Variant) -> str:
    """The question of a variant, ``{labels}`` filled with the 26 categories (the evaluation asks the same:
    the ``emotions_vad`` wording is :data:`tinyemo_core.judge.prompts.EMOTIC_PERSON_PROMPT`)."""
    from tinyemo_core.judge.prompts import EMOTIC_PERSON_PROMPT

    template = EMOTIC_PERSON_PROMPT if variant == "emotions_vad" else EMOTIONS_PROMPT
    if variant not in VARIANTS:
        raise ValueError(f"unknown EMOTIC export variant {variant!r}; use one of {VARIANTS}")
    return template.replace("{labels}", ", ".join(CATEGORIES))


def vad_bin(value: float) -> int:
    """A 1-10 rating as its bin: rounded half up, clipped to 1..10 (val/test ratings are means, e.g. 5.5)."""
    return _judge.vad_bin(value)


def vad_word(value: float) -> str:
    return VAD_WORDS[vad_bin(value) - 1]


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


def parse_answer(text: str) -> tuple[list[str], tuple[int | None, int | None, int | None]]:
    """``(categories in order of first mention, (valence, arousal, dominance) bins or None)`` of an answer,
    by the judge's whole-word rules (:mod:`tinyemo_core.judge.emotic`)."""
    return _judge.parse_categories(text, CATEGORIES), _judge.parse_vad(text, VAD_WORDS)


def person_record(record_id: str, image: str, categories: Sequence[str], vad: Sequence[float] | None,
                  variant: Variant) -> dict:
    """One validated LLaVA record (``image`` relative to the rendered-boxes root)."""
    from tinyemo_core.generate.export import _record

    return _record(record_id, image, [prompt(variant), answer(categories, vad, variant)])
