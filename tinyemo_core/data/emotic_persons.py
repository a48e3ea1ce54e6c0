"""The EMOTIC person vocabulary shared by the exports, the judge and the stages (LLaVA on EMOTIC poster).

One module every EMOTIC consumer imports: the 26 categories, the V/A/D dimensions and their 10-word scale
("very low" = bin 1 ... "very high" = bin 10), the rating -> bin rule and the two person questions. What to
write (``tinyemo_core.generate.emotic_export``), how to read an answer back (``tinyemo_core.judge.emotic``)
and the per-person table (``tinyemo_core.stages.emotic``) build on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from tinyemo_core.data.taxonomy import EMOTIC26

#: The 26 categories in the official EMOTIC order (Kosti et al.; alphabetical), normalised spelling.
CATEGORIES: tuple[str, ...] = EMOTIC26
#: The same in the dataset's own spelling (capitalised, "Doubt/Confusion"), for display.
CATEGORY_NAMES: tuple[str, ...] = tuple(c.title() for c in EMOTIC26)
DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")

#: V/A/D bins 1..10 as words ("very low" = 1 and "very high" = 10 are the poster's; the eight between ours,
#: symmetric around the scale's middle 5.5: bins 5 and 6 are "slightly low" / "slightly high").
VAD_WORDS: tuple[str, ...] = (
    "very low", "low", "fairly low", "somewhat low", "slightly low",
    "slightly high", "somewhat high", "fairly high", "high", "very high",
)  # fmt: skip

#: The person question of the ``emotions_vad`` export, also the evaluation's default instruction for the
#: llava-emotic recipe (``{labels}``: the 26 categories). The wording is ours.
PERSON_PROMPT = (
    "What emotions does the person in the red box feel? List every emotion that applies from: {labels}. "
    "Then rate the person's valence, arousal and dominance from very low to very high."
)
#: The question of the ``emotions`` export (the poster's ablation without V/A/D).
EMOTIONS_PROMPT = (
    "What emotions does the person in the red box feel? List every emotion that applies from: {labels}."
)


def vad_bin(value: float) -> int:
    """A 1-10 rating as its bin: rounded half up, clipped to 1..10 (val/test ratings are means, e.g. 5.5)."""
    return int(min(10, max(1, int(float(value) + 0.5))))


def vad_word(value: float) -> str:
    return VAD_WORDS[vad_bin(value) - 1]


def person_vad(row: Mapping) -> tuple[float, float, float] | None:
    """(valence, arousal, dominance) of a person row, or None unless all three are annotated."""
    vals = [row.get(k) for k in DIMENSIONS]
    return None if any(v is None for v in vals) else tuple(float(v) for v in vals)  # type: ignore[return-value]
