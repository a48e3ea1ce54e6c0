"""Emotion taxonomies, the label-normalisation table and the WEBEmo synonym table, as plain data.

Every label word in tinyemo goes through :func:`normalise_label`, so the same emotion is the same string (and
later the same label id) in every dataset: one shared vocabulary across taxonomies (TinyEmo §IV-A, joint
training over EmotionROI + EmoSet + WEBEmo).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LABEL_ALIASES",
    "SYNONYMS",
    "TAXONOMIES",
    "VOCABULARY",
    "Taxonomy",
    "UnknownLabelError",
    "get_taxonomy",
    "label_ids",
    "normalise_label",
]


@dataclass(frozen=True)
class Taxonomy:
    """A named, ordered label set. ``strict`` taxonomies reject words outside ``labels``."""

    name: str
    labels: tuple[str, ...]
    strict: bool = True

    def __contains__(self, word: object) -> bool:
        return word in self.labels


class UnknownLabelError(ValueError):
    """A label word is not part of a strict taxonomy."""


# TinyEmo §IV-A: '6' = Ekman (EmotionROI, Emotion6, Abstract, ArtPhoto in the paper's text).
EKMAN6 = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
# '8a' = Mikels (EmoSet, FI; ArtPhoto and Abstract are distributed with these 8 classes, TinyEmo Table VIII).
MIKELS8 = ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")
# WEBEmo's 25 leaf classes of Parrott's hierarchy (TinyEmo Appendix C, Table X), correctly spelled.
PARROTT25 = (
    "affection", "cheerfulness", "confusion", "contentment", "disappointment", "disgust", "enthrallment",
    "envy", "exasperation", "gratitude", "horror", "irritability", "lust", "neglect", "nervousness",
    "optimism", "pride", "rage", "relief", "sadness", "shame", "suffering", "surprise", "sympathy", "zest",
)  # fmt: skip
# UnbiasedEmo (Panda et al. 2018): the 6 second-level Parrott emotions ('love' instead of 'disgust').
UNBIASED6 = ("anger", "fear", "joy", "love", "sadness", "surprise")
# EMOTIC's 26 discrete categories (Kosti et al.); "Doubt/Confusion" is one category and keeps its slash.
EMOTIC26 = (
    "affection", "anger", "annoyance", "anticipation", "aversion", "confidence", "disapproval",
    "disconnection", "disquietment", "doubt/confusion", "embarrassment", "engagement", "esteem",
    "excitement", "fatigue", "fear", "happiness", "pain", "peace", "pleasure", "sadness", "sensitivity",
    "suffering", "surprise", "sympathy", "yearning",
)  # fmt: skip

TAXONOMIES: dict[str, Taxonomy] = {
    t.name: t
    for t in (
        Taxonomy("ekman6", EKMAN6),
        Taxonomy("mikels8", MIKELS8),
        Taxonomy("parrott25", PARROTT25),
        Taxonomy("unbiased6", UNBIASED6),
        Taxonomy("emotic26", EMOTIC26),
        Taxonomy("open", (), strict=False),  # generic datasets: any normalised word is accepted
    )
}

# Explicit spelling table, applied after lower-casing. Keys are the words found in the published folder
# names / CSV headers; values are the canonical vocabulary words.
LABEL_ALIASES: dict[str, str] = {
    # WEBEmo folder misspellings; the reference code embeds them as-is (a defect), we correct them.
    "cheerfullness": "cheerfulness",
    "irritabilty": "irritability",
    # ArtPhoto file-name prefixes and Abstract CSV headers use short forms.
    "sad": "sadness",
    "content": "contentment",
    # EMOTIC spellings seen in public annotation dumps.
    "doubt_confusion": "doubt/confusion",
    "doubt confusion": "doubt/confusion",
    "doubtconfusion": "doubt/confusion",
    # Common inflections in hand-made CSV/ImageFolder datasets.
    "angry": "anger",
    "afraid": "fear",
    "scared": "fear",
    "disgusted": "disgust",
    "surprised": "surprise",
}

_SPACES = re.compile(r"[\s_]+")


def _clean(word: str) -> str:
    return _SPACES.sub(" ", word.strip().strip("'\"").lower()).strip()


def get_taxonomy(name: str) -> Taxonomy:
    """Return the registered taxonomy ``name`` or raise a ValueError listing the known ones."""
    try:
        return TAXONOMIES[name]
    except KeyError:
        raise ValueError(
            f"unknown taxonomy {name!r}; known: {sorted(TAXONOMIES)} (use 'open' for a free label set)"
        ) from None


def normalise_label(word: str, taxonomy: str | None = None) -> str:
    """Lower-case ``word``, collapse spaces/underscores and apply :data:`LABEL_ALIASES`.

    With a strict ``taxonomy`` the result must belong to it, else :class:`UnknownLabelError` names the word,
    the taxonomy and how to fix it.
    """
    if not isinstance(word, str) or not _clean(word):
        raise UnknownLabelError(f"empty or non-string label {word!r}")
    raw = _clean(word)
    canonical = LABEL_ALIASES.get(raw, LABEL_ALIASES.get(raw.replace(" ", "_"), raw))
    if taxonomy is not None:
        tax = get_taxonomy(taxonomy)
        if tax.strict and canonical not in tax:
            raise UnknownLabelError(
                f"label {word!r} (normalised {canonical!r}) is not in taxonomy {tax.name!r} "
                f"{list(tax.labels)}; add a spelling to LABEL_ALIASES in tinyemo_core/data/taxonomy.py "
                "or ingest with taxonomy='open'"
            )
    return canonical


# TinyEmo Appendix C, Table X: 3 synonyms per WEBEmo label (100 label strings with the originals), used for
# the 50% label-replacement augmentation of §IV-C. Lower-cased; "Self-esteem" keeps its hyphen.
SYNONYMS: dict[str, list[str]] = {
    "affection": ["love", "fondness", "tenderness"],
    "cheerfulness": ["happiness", "joy", "gladness"],
    "confusion": ["perplexity", "bewilderment", "puzzlement"],
    "contentment": ["satisfaction", "fulfillment", "serenity"],
    "disappointment": ["letdown", "frustration", "regret"],
    "disgust": ["revulsion", "loathing", "aversion"],
    "enthrallment": ["fascination", "enchantment", "allurement"],
    "envy": ["jealousy", "resentment", "covetousness"],
    "exasperation": ["irritation", "aggravation", "annoyance"],
    "gratitude": ["thankfulness", "appreciation", "recognition"],
    "horror": ["terror", "dread", "fear"],
    "irritability": ["grumpiness", "testiness", "edginess"],
    "lust": ["desire", "passion", "love"],
    "neglect": ["abandonment", "disregard", "negligence"],
    "nervousness": ["anxiety", "tension", "apprehension"],
    "optimism": ["hopefulness", "confidence", "positivity"],
    "pride": ["self-esteem", "dignity", "vanity"],
    "rage": ["fury", "wrath", "outrage"],
    "relief": ["comfort", "ease", "reassurance"],
    "sadness": ["sorrow", "grief", "despair"],
    "shame": ["embarrassment", "humiliation", "guilt"],
    "suffering": ["pain", "distress", "agony"],
    "surprise": ["astonishment", "amazement", "startlement"],
    "sympathy": ["compassion", "empathy", "understanding"],
    "zest": ["enthusiasm", "energy", "vigor"],
}

# The shared vocabulary: every word of every registered taxonomy, sorted, one entry per word.
VOCABULARY: tuple[str, ...] = tuple(sorted({w for t in TAXONOMIES.values() for w in t.labels}))


def label_ids(words: Iterable[str]) -> dict[str, int]:
    """One id per distinct normalised word, sorted alphabetically: "sadness" has the same id whichever
    dataset or taxonomy it came from (the paper's joint label space, TinyEmo §IV-A)."""
    return {w: i for i, w in enumerate(sorted({normalise_label(w) for w in words}))}
