"""Read a label out of a generated answer (rules documented in docs/judging.md, "Label parsing").

1. **Answer field.** If the answer contains the recipe's field marker (TinyEmo ``Predicted Label:``, EmoVIT
   ``Predict emotion:`` / ``Predicted emotion:``), only the text after the *first* marker up to the end of
   that line is searched; otherwise the whole answer is searched and ``field_missing`` is set.
2. **Terms.** Each candidate label is matched by its own words, its spelling aliases (``LABEL_ALIASES``,
   e.g. "sad" -> sadness), its Appendix C synonyms (``SYNONYMS``) and, for a label with a slash
   ("doubt/confusion"), each part. A term that would point at two different labels of the *same* label set
   (e.g. "love" for both affection and lust in WEBEmo) is dropped for both: it names no single label.
3. **Matching.** Case-insensitive, whole words: a term matches only where it is not preceded or followed by
   a letter ("sad" does not match inside "sadness", "joy" not inside "joyful"). Where terms overlap, the
   longest one at the earliest position wins ("self-esteem" over "esteem"). A label and its synonyms count
   as one label.
4. **First mention.** The predicted label is the label whose earliest match comes first in the searched text.
5. **Several.** An answer *names several labels* when its searched text matches two or more distinct labels.
   It keeps its first-mention prediction, flagged ``several``; scoring decides whether that counts (see
   :func:`tinyemo_core.judge.metrics.score_single_label`, policy ``several``).
6. **None.** An answer matching no label has ``label = None`` and status ``none``: it is counted wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from tinyemo_core.data.taxonomy import LABEL_ALIASES, SYNONYMS

#: Answer-field markers per recipe (matched case-insensitively, first occurrence).
FIELD_MARKERS: dict[str, tuple[str, ...]] = {
    "tinyemo": ("Predicted Label:", "Label:"),
    "emovit": ("Predict emotion:", "Predicted emotion:"),
    "llava-emotic": (),
}


@dataclass(frozen=True)
class Parsed:
    """One answer read against one label set. ``mentions`` = distinct labels in order of first mention."""

    label: str | None
    status: str  # "ok" (exactly one label), "several", "none"
    mentions: tuple[str, ...] = ()
    field_missing: bool = False
    spans: tuple[tuple[int, int, str], ...] = field(default=(), compare=False)


def label_terms(labels: Sequence[str], *, synonyms: bool = True) -> dict[str, str]:
    """term (lower case) -> label for one label set; ambiguous terms (two labels) are dropped."""
    owners: dict[str, set[str]] = {}
    labels = [str(lb).lower() for lb in labels]
    for lb in labels:
        terms = {lb, lb.replace("_", " ")}
        if "/" in lb:
            terms.update(p.strip() for p in lb.split("/") if p.strip())
        terms.update(alias.replace("_", " ") for alias, target in LABEL_ALIASES.items() if target == lb)
        if synonyms:
            terms.update(SYNONYMS.get(lb, []))
        for t in terms:
            owners.setdefault(t, set()).add(lb)
    # a label's own word always means that label, even if another label lists it as a synonym
    for lb in labels:
        owners[lb] = {lb}
    return {t: next(iter(o)) for t, o in owners.items() if len(o) == 1}


@lru_cache(maxsize=256)
def _matcher(labels: tuple[str, ...], synonyms: bool) -> tuple[re.Pattern[str], dict[str, str]]:
    terms = label_terms(labels, synonyms=synonyms)
    ordered = sorted(terms, key=lambda t: (-len(t), t))  # longest first: the alternation prefers it
    pattern = re.compile(
        r"(?<![a-z])(" + "|".join(re.escape(t) for t in ordered) + r")(?![a-z])", re.IGNORECASE
    )
    return pattern, terms


def answer_field(text: str, markers: Sequence[str]) -> str | None:
    """Text after the earliest marker up to the end of its line, or None when no marker occurs."""
    best: tuple[int, int] | None = None
    low = text.lower()
    for m in markers:
        i = low.find(m.lower())
        if i >= 0 and (best is None or i < best[0]):
            best = (i, i + len(m))
    if best is None:
        return None
    return text[best[1] :].split("\n", 1)[0]


def find_mentions(text: str, labels: Sequence[str], *, synonyms: bool = True) -> list[tuple[int, int, str]]:
    """Every non-overlapping (start, end, label) match in ``text``, left to right."""
    if not labels:
        return []
    pattern, terms = _matcher(tuple(str(lb).lower() for lb in labels), synonyms)
    return [(m.start(), m.end(), terms[m.group(1).lower()]) for m in pattern.finditer(text)]


def parse_label(text: str, labels: Sequence[str], *, recipe: str = "emovit", synonyms: bool = True) -> Parsed:
    """Apply the rules of this module's docstring to one answer."""
    markers = FIELD_MARKERS.get(recipe, ())
    scope = answer_field(text, markers) if markers else None
    missing = bool(markers) and scope is None
    spans = find_mentions(text if scope is None else scope, labels, synonyms=synonyms)
    mentions = tuple(dict.fromkeys(lb for _, _, lb in spans))
    if not mentions:
        return Parsed(None, "none", (), missing, tuple(spans))
    return Parsed(mentions[0], "ok" if len(mentions) == 1 else "several", mentions, missing, tuple(spans))


def parse_label_set(text: str, labels: Sequence[str], *, synonyms: bool = False) -> list[str]:
    """Every label named anywhere in ``text`` (multi-label answers, EMOTIC), in order of first mention."""
    return list(dict.fromkeys(lb for _, _, lb in find_mentions(text, labels, synonyms=synonyms)))
