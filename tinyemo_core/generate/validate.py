"""Answer validation: every failure has a reason; the runner records and counts it, never drops it."""

from __future__ import annotations

import re
from functools import lru_cache

from .backends.base import Answer
from .spec import ValidationSpec

#: Prompt kinds whose answers are questions (TinyEmo Appendix A-A question prompts).
QUESTION_KINDS = frozenset({"visual_question", "sentiment_question"})
#: Prompt kinds whose answers must contain Question:/Answer: pairs (EmoVIT §3.2, Supplementary §7.2).
QA_KINDS = {"emovit_conversation": 3, "emovit_reasoning": 1}

REASONS = ("empty", "truncated", "refusal", "format", "placeholder", "request_error")
#: The image placeholder of LLaVA records (export.py): an answer that contains it would make its record
#: carry two, so such an answer fails with reason "placeholder" (it costs that answer only).
PLACEHOLDER = "<image>"


@lru_cache(maxsize=32)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None


def check_emoreason(text: str) -> str | None:
    """EmoReason target format ``Reasoning: ...\\nPredicted Label: ...``; returns a failure detail or None."""
    m = re.fullmatch(r"Reasoning:\s*(?P<r>.+?)\s*\n\s*Predicted Label:\s*(?P<l>\S.*?)\s*", text, re.DOTALL)
    if m is None:
        return "expected 'Reasoning: <text>\\nPredicted Label: <label>'"
    return None


def parse_qa_pairs(text: str) -> list[tuple[str, str]]:
    """Split ``Question: ... Answer: ...`` blocks into (question, answer) pairs."""
    pairs = re.findall(r"Question:\s*(.+?)\s*Answer:\s*(.+?)(?=\s*Question:|\Z)", text, re.DOTALL)
    return [(q.strip(), a.strip()) for q, a in pairs if q.strip() and a.strip()]


def placeholder_detail(text: str) -> str | None:
    """Why ``text`` cannot go into a LLaVA record (it contains ``<image>``), or None."""
    at = text.find(PLACEHOLDER)
    if at < 0:
        return None
    return f"the answer contains the image placeholder {PLACEHOLDER!r} at character {at}"


def validate_answer(kind: str, answer: Answer, spec: ValidationSpec) -> tuple[str, str] | None:
    """Return ``(reason, detail)`` when ``answer`` fails for a prompt of ``kind``, else None.

    Reasons: ``empty``, ``truncated`` (finish_reason == "length"), ``refusal``, ``format``,
    ``placeholder`` (the answer contains the literal ``<image>``).
    """
    text = answer.text.strip()
    if len(text) < max(spec.min_chars, 1):
        return "empty", f"{len(text)} characters (< {max(spec.min_chars, 1)})"
    if (detail := placeholder_detail(text)) is not None:
        return "placeholder", detail
    if spec.reject_truncated and answer.finish_reason == "length":
        return "truncated", f"stopped at max_tokens after {answer.completion_tokens} tokens"
    refusal = _compile(tuple(spec.refusal_patterns))
    if refusal is not None and (m := refusal.search(text)):
        return "refusal", f"matched {m.group(0)!r}"
    if kind in QUESTION_KINDS and spec.require_question_mark and "?" not in text:
        return "format", "a generated question must contain '?'"
    if kind in QA_KINDS and len(parse_qa_pairs(text)) < QA_KINDS[kind]:
        return "format", f"expected at least {QA_KINDS[kind]} 'Question: ... Answer: ...' pair(s)"
    if kind == "emoreason" and (detail := check_emoreason(text)):
        return "format", detail
    return None
