"""LLaVA-format records -> training items for the LLaVA layout: loss only on the assistant tokens.

A record (``tinyemo_core.generate.export``) is tokenised turn by turn in the LLaVA-1.5 "v1" conversation
(:data:`tinyemo_core.finetune.model.SYSTEM` ``USER: <image>\\n... ASSISTANT: ...</s>``): system text, user
turns and the image placeholders get label -100, each answer and its eos token are the targets.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyemo_core.data.images import load_rgb
from tinyemo_core.finetune.model import IMAGE_TOKEN, SYSTEM, image_token_count
from tinyemo_core.generate.export import RECORDS

IGNORE = -100


def load_export(path: Path) -> list[dict]:
    """Read and validate an export file; a missing file names what to run."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"export {path} is missing: run the generate-qa flow (it writes the LLaVA "
            "exports), or point reasoning.<stage>.export at an existing file"
        )
    return [r.model_dump(by_alias=True) for r in RECORDS.validate_json(path.read_bytes())]


def order_records(records: Sequence[dict], *, shuffle: bool, seed: int, limit: int | None) -> list[dict]:
    """§III-A: tasks in random order (seeded, so a rerun sees the same order), then the first ``limit``."""
    out = list(records)
    if shuffle:
        random.Random(seed).shuffle(out)
    return out[:limit] if limit else out


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def encode_prompt(tok, human: str, n_image: int, history: Sequence[tuple[str, str]] = ()) -> list[int]:
    """Token ids of a generation prompt (inference): previous turns, then ``USER: human ASSISTANT:``."""
    ids, _ = encode_conversation(
        tok, [*[t for pair in history for t in pair], human], n_image, prompt_only=True
    )
    return ids


def encode_conversation(
    tok, turns: Sequence[str], n_image: int, *, prompt_only: bool = False, record: str = "?"
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of alternating user/assistant ``turns``; ``<image>`` expands to ``n_image``."""
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    ids = [tok.bos_token_id] if tok.bos_token_id is not None else []
    labels = [IGNORE] * len(ids)

    def user(text: str, prefix: str) -> None:
        # the whole turn in one tokenizer call, as the processor tokenises the chat-templated prompt at
        # inference (CHAT_TEMPLATE renders this exact text), so prompt ids are identical in training,
        # generation and likelihood scoring; the <image> special token then expands to n_image ids
        chunk = _ids(tok, f"{prefix}USER: {text} ASSISTANT:")
        if chunk.count(image_id) != text.count(IMAGE_TOKEN):
            raise ValueError(f"record {record!r}: the tokenizer splits {IMAGE_TOKEN!r} (add it as a special "
                             "token)")
        for t in chunk:
            ids.extend([image_id] * n_image if t == image_id else [t])
        labels.extend([IGNORE] * (len(ids) - len(labels)))

    for i, text in enumerate(turns):
        if i % 2 == 0:
            user(text, SYSTEM + " " if i == 0 else "")
        else:
            if not text.strip():
                raise ValueError(f"record {record!r}: assistant turn {i} is empty; fix or drop the record")
            answer = _ids(tok, " " + text.strip()) + [tok.eos_token_id]
            ids.extend(answer)
            labels.extend(answer)
    if prompt_only and len(turns) % 2 == 0:
        raise ValueError("a prompt must end with the user's turn")
    return ids, labels


class LlavaDataset(torch.utils.data.Dataset):
    """Records -> ``{"input_ids", "labels", "pixel_values"}`` (pixels from the image, or cached patch
    tokens ``(tokens, width)`` when ``patches`` maps the record's image path to them)."""

    def __init__(
        self,
        records: Sequence[dict],
        processor,
        image_root: Path,
        *,
        max_length: int = 2048,
        patches: Mapping[str, np.ndarray] | Callable[[str], np.ndarray] | None = None,
    ) -> None:
        tok = processor.tokenizer
        if tok.pad_token_id is None:
            raise ValueError(
                "the tokenizer has no pad token: set reasoning.model.pad_token or use a tokenizer "
                "with one (batches are right-padded)"
            )
        if tok.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token: answers must end in eos")
        self.records, self.processor, self.root = list(records), processor, Path(image_root)
        self.max_length, self.patches = max_length, patches
        self.n_image = image_token_count(processor)
        for r in self.records:
            turns = r["conversations"]
            for i, t in enumerate(turns):
                if i % 2 and not t["value"].strip():
                    raise ValueError(
                        f"record {r['id']!r}: assistant turn {i} is empty; fix or drop the record"
                    )
            if patches is None and not (self.root / r["image"]).is_file():
                raise FileNotFoundError(
                    f"record {r['id']!r}: image {self.root / r['image']} not found "
                    "(is the export's image root right?)"
                )

    def __len__(self) -> int:
        return len(self.records)

    def _pixels(self, rec: dict) -> torch.Tensor:
        if self.patches is not None:
            get = self.patches if callable(self.patches) else self.patches.__getitem__
            return torch.as_tensor(np.asarray(get(rec["image"]), dtype=np.float32))
        img = load_rgb(self.root / rec["image"])
        return self.processor.image_processor(images=img, return_tensors="pt")["pixel_values"][0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        turns = [t["value"] for t in rec["conversations"]]
        ids, labels = encode_conversation(self.processor.tokenizer, turns, self.n_image, record=rec["id"])
        if len(ids) > self.max_length:
            ids, labels = ids[: self.max_length], labels[: self.max_length]
            if all(x == IGNORE for x in labels):
                raise ValueError(
                    f"record {rec['id']!r}: {len(turns)} turns exceed max_length="
                    f"{self.max_length} before any answer token; raise reasoning.model.max_length"
                )
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "pixel_values": self._pixels(rec),
            "id": rec["id"],
        }


class LlavaCollator:
    """Right-pads ``input_ids`` (pad id) and ``labels`` (-100), builds ``attention_mask``, stacks pixels."""

    def __init__(self, processor) -> None:
        self.pad_id = processor.tokenizer.pad_token_id
        if self.pad_id is None:
            raise ValueError("the tokenizer has no pad token: set reasoning.model.pad_token")

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for i, x in enumerate(items):
            k = len(x["input_ids"])
            ids[i, :k], labels[i, :k], mask[i, :k] = x["input_ids"], x["labels"], 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "pixel_values": torch.stack([x["pixel_values"] for x in items]),
        }
