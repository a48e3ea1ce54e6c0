"""Reference texts for RefCLIPScore: ``{image_id: [text, ...]}`` JSON, or a LLaVA-format export.

A LLaVA export (list of ``{"id", "image", "conversations"}``) yields its gpt turns per record id, with a
TinyEmo EmoReason answer reduced to its reasoning (the text between ``Reasoning:`` and ``Predicted Label:``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path


def _reasoning(text: str) -> str:
    m = re.search(r"Reasoning:\s*(.+?)\s*(?:\n\s*Predicted Label:|\Z)", text, re.DOTALL)
    return m.group(1).strip() if m else text.strip()


def load_references(path: str | Path) -> dict[str, list[str]]:
    """image id -> reference texts; a malformed file raises naming the offending entry."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            refs = [v] if isinstance(v, str) else v
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise ValueError(f"{path}: references of {k!r} must be a string or a list of strings")
            out[str(k)] = refs
        return out
    if isinstance(data, list):
        out: dict[str, list[str]] = {}
        for i, rec in enumerate(data):
            try:
                turns = [t["value"] for t in rec["conversations"] if t["from"] == "gpt"]
                out.setdefault(str(rec["id"]), []).extend(_reasoning(t) for t in turns)
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path}: record {i} is not a LLaVA record ({exc})") from exc
        return out
    raise ValueError(f"{path}: expected a JSON object {{image_id: [refs]}} or a LLaVA record list")
