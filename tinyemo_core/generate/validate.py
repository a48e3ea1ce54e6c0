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

#: Failures of the answer's content (a rerun keeps them unless ``retry_failed``).
CONTENT_REASONS = ("empty", "truncated", "refusal", "format", "placeholder", "special_token", "too_long")
#: Failures of the exchange (a rerun re-sends them): see RequestFailed and docs/generation.md.
REQUEST_REASONS = ("request_error", "connection", "timeout", "http_status", "bad_json", "bad_shape")
REASONS = CONTENT_REASONS + REQUEST_REASONS
#: The image placeholder of LLaVA records (export.py): an answer that contains it would make its record
#: carry two, so such an answer fails with reason "placeholder" (it costs that answer only).
PLACEHOLDER = "<image>"
#: Chat-template control tokens of the templates in use (ChatML/Qwen, Llama-2/Mistral, Llama-3, GPT-2/Phi,
#: Zephyr/TinyLlama/Phi-3, Gemma, Vicuna/LLaVA sentencepiece, BERT): an answer that contains one leaked the
#: server's template (wrong stop tokens, raw decoding) and would teach the model to emit it.
SPECIAL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|startoftext|>", "<|end_of_text|>", "<|begin_of_text|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|user|>",
    "<|assistant|>", "<|system|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "[INST]", "[/INST]",
    "<<SYS>>", "<</SYS>>", "<s>", "</s>", "<unk>", "<pad>", "<start_of_turn>", "<end_of_turn>", "<bos>",
    "<eos>", "[CLS]", "[SEP]", "[PAD]", "[MASK]",
)
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
#: Upper bound on the UTF-8 bytes one token decodes to (the longest tokens of the GPT-2/Phi and Llama
#: vocabularies are runs of 128 bytes or less); an answer longer than max_tokens times this is not a
#: completion of that request.
MAX_BYTES_PER_TOKEN = 128


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


def special_token_detail(text: str) -> str | None:
    """Why ``text`` leaks a chat-template control token, or None."""
    m = _SPECIAL.search(text)
    if m is None:
        return None
    return f"the answer contains the special token {m.group(0)!r} at character {m.start()}"


def hostile_detail(text: str, completion_tokens: int, max_tokens: int | None) -> tuple[str, str] | None:
    """``(reason, detail)`` for an answer no well-behaved server sends: template control tokens
    (``special_token``) or more than ``max_tokens`` could produce (``too_long``); else None."""
    if max_tokens is not None:
        if completion_tokens > max_tokens:
            return "too_long", f"{completion_tokens} completion tokens reported for max_tokens {max_tokens}"
        size = len(text.encode("utf-8", "replace"))
        if size > max_tokens * MAX_BYTES_PER_TOKEN:
            limit = max_tokens * MAX_BYTES_PER_TOKEN
            return "too_long", f"{size} bytes for max_tokens {max_tokens} (limit {limit} bytes)"
    if (detail := special_token_detail(text)) is not None:
        return "special_token", detail
    return None


def export_blocker(text: str) -> tuple[str, str] | None:
    """Why an answer (cached before a check existed, say) must not reach an export, or None."""
    if (detail := placeholder_detail(text)) is not None:
        return "placeholder", detail
    if (detail := special_token_detail(text)) is not None:
        return "special_token", detail
    return None


def validate_answer(
    kind: str, answer: Answer, spec: ValidationSpec, max_tokens: int | None = None
) -> tuple[str, str] | None:
    """Return ``(reason, detail)`` when ``answer`` fails for a prompt of ``kind``, else None.

    Reasons: ``empty``, ``truncated`` (finish_reason == "length"), ``refusal``, ``format``,
    ``placeholder`` (the answer contains the literal ``<image>``), ``special_token``, ``too_long``.
    """
    text = answer.text.strip()
    if (verdict := hostile_detail(answer.text, answer.completion_tokens, max_tokens)) is not None:
        return verdict
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
