"""LLaVA-format exports: TinyEmo pre-training and EmoReason records, EmoVIT records; schema-validated.

Record format (LLaVA-Instruct-150K, used by TinyEmo §III-A): ``{"id", "image": <path relative to the image
root>, "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": ...}, ...]}``.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from tinyemo_core.store.atomic import write_atomic

from . import prompts as P
from .chains import COUNTERFACTUAL
from .runner import ChainResult
from .validate import check_emoreason, parse_qa_pairs

IMAGE_PREFIX = "<image>\n"


class LlavaTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Literal["human", "gpt"] = Field(..., alias="from")
    value: str = Field(..., min_length=1)


class LlavaRecord(BaseModel):
    """One LLaVA conversation: alternating human/gpt turns, one ``<image>`` at the start of the first turn."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., min_length=1)
    image: str = Field(..., min_length=1)
    conversations: list[LlavaTurn] = Field(..., min_length=2)

    @field_validator("image")
    @classmethod
    def _relative(cls, v: str) -> str:
        if os.path.isabs(v) or v.split("/")[0] == "..":
            raise ValueError(f"image path {v!r} must be relative to the image root and inside it")
        return v

    @model_validator(mode="after")
    def _turns(self) -> LlavaRecord:
        for i, t in enumerate(self.conversations):
            if t.from_ != ("human" if i % 2 == 0 else "gpt"):
                raise ValueError(f"turn {i} is {t.from_!r}: turns must alternate human, gpt, ...")
        if len(self.conversations) % 2:
            raise ValueError("the last turn must be the gpt answer")
        if not self.conversations[0].value.startswith(IMAGE_PREFIX):
            raise ValueError("the first human turn must start with '<image>\\n'")
        if sum(t.value.count(P.IMAGE_TAG) for t in self.conversations) != 1:
            raise ValueError("a record must contain exactly one '<image>' placeholder")
        return self


RECORDS = TypeAdapter(list[LlavaRecord])


def _record(rid: str, image: str, turns: Sequence[str]) -> dict[str, Any]:
    conv = [{"from": "human" if i % 2 == 0 else "gpt", "value": v.strip()} for i, v in enumerate(turns)]
    conv[0]["value"] = IMAGE_PREFIX + conv[0]["value"]
    return LlavaRecord.model_validate({"id": rid, "image": image, "conversations": conv}).model_dump(
        by_alias=True
    )


def _rel(path: str, image_root: str | Path) -> str:
    rel = os.path.relpath(path, image_root)
    if rel.startswith(".."):
        raise ValueError(f"image {path} is outside the image root {image_root}; pass the root that holds it")
    return Path(rel).as_posix()


Meta = dict[str, str]


def pretrain_records(results: Sequence[ChainResult], image_root: str | Path) -> list[tuple[dict, Meta]]:
    """TinyEmo pre-training records (§III-A): caption, visual Q/A and sentiment Q/A, plan order."""
    out = []
    for r in results:
        if r.status != "ok" or r.chain.task not in ("caption", "visual", "sentiment"):
            continue
        row = r.chain.row
        human = P.strip_image_tag(P.CAPTION_PROMPT) if r.chain.task == "caption" else r.texts[0]
        rec = _record(f"{row.image_id}-{r.chain.task}", _rel(row.path, image_root), [human, r.texts[-1]])
        out.append((rec, {"split": row.split, "label": row.label, "dataset": row.dataset}))
    return out


def emoreason_records(
    results: Sequence[ChainResult],
    labels: dict[str, list[str]],
    image_root: str | Path,
    conditional: bool = False,
) -> list[tuple[dict, Meta]]:
    """Appendix A-B EmoReason records from the sentiment answers (Fig. 1B: no new generation)."""
    out = []
    for r in results:
        told_other = r.chain.task == COUNTERFACTUAL  # only with its label in the prompt
        if r.status != "ok" or r.chain.task != "sentiment" and not (told_other and conditional):
            continue
        row = r.chain.row
        human = P.strip_image_tag(
            P.emoreason_instruction(labels[row.dataset], row.label if conditional else None)
        )
        rec = _record(
            f"{row.image_id}-emoreason" + (f"-told-{row.label}" if told_other else ""),
            _rel(row.path, image_root),
            [human, P.emoreason_answer(r.texts[-1], row.label)],
        )
        out.append((rec, {"split": row.split, "label": row.label, "dataset": row.dataset}))
    return out


def emovit_records(
    results: Sequence[ChainResult], labels: dict[str, list[str]], image_root: str | Path
) -> list[tuple[dict, Meta]]:
    """EmoVIT §3.2 Categorical (template, for every planned image), Conversation (multi-turn Q/A) and
    Reasoning (one Q/A) records; a data type whose chain failed is left out for that image only."""
    by_image: dict[tuple[str, str], dict[str, ChainResult]] = {}
    for r in results:
        if r.chain.task == "emovit":
            row = r.chain.row
            by_image.setdefault((row.dataset, row.image_id), {})[r.chain.steps[-1].kind] = r
    out = []
    for chains in by_image.values():
        row = next(iter(chains.values())).chain.row
        image = _rel(row.path, image_root)
        meta = {"split": row.split, "label": row.label, "dataset": row.dataset}
        q, a = P.emovit_categorical(labels[row.dataset], row.label)
        out.append((_record(f"{row.image_id}-categorical", image, [q, a]), meta))
        conv = chains.get("emovit_conversation")
        if conv is not None and conv.status == "ok":
            turns = [x for pair in parse_qa_pairs(conv.texts[-1]) for x in pair]
            out.append((_record(f"{row.image_id}-conversation", image, turns), meta))
        reason = chains.get("emovit_reasoning")
        if reason is not None and reason.status == "ok":
            pair = list(parse_qa_pairs(reason.texts[-1])[0])
            out.append((_record(f"{row.image_id}-reasoning", image, pair), meta))
    return out


def load_external(path: str | Path, *, emoreason: bool = True) -> list[dict]:
    """Load and validate an external LLaVA JSON set (e.g. the paper's 1,500 high-quality samples)."""
    records = RECORDS.validate_json(Path(path).read_bytes())
    if emoreason:
        bad = [(r.id, d) for r in records if (d := check_emoreason(r.conversations[-1].value))]
        if bad:
            raise ValueError(
                f"{path}: {len(bad)} record(s) do not end in the EmoReason format, e.g. {bad[:3]}"
            )
    return [r.model_dump(by_alias=True) for r in records]


def write_json(records: Sequence[dict], path: str | Path) -> Path:
    """Validate and write records atomically (``store.atomic``: temporary file, fsync, rename)."""
    RECORDS.validate_python(list(records))
    return write_atomic(Path(path), lambda tmp: tmp.write_text(
        json.dumps(list(records), ensure_ascii=False, indent=1), encoding="utf-8"))


def statistics(
    items: Sequence[tuple[dict, Meta]], count_tokens: Callable[[str], int] | None = None
) -> dict[str, dict[str, Any]]:
    """Per split: records, tokens of all turns (whitespace unless ``count_tokens``), labels."""
    count = count_tokens or (lambda s: len(s.split()))
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"records": 0, "tokens": 0, "labels": Counter()})
    for rec, meta in items:
        s = stats[meta["split"]]
        s["records"] += 1
        s["tokens"] += sum(count(t["value"]) for t in rec["conversations"])
        s["labels"][meta["label"]] += 1
    return {k: {**v, "labels": dict(sorted(v["labels"].items()))} for k, v in sorted(stats.items())}


def export_all(
    results: Sequence[ChainResult],
    out_dir: str | Path,
    image_root: str | Path,
    labels: dict[str, list[str]],
    *,
    mode: str = "tinyemo",
    conditional: bool = False,
    external: str | Path | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> dict[str, Any]:
    """Write ``<kind>_<split>.json`` files; return paths, per-split statistics and chains left out.

    With ``conditional`` the ``emoreason`` files carry the conditional-reasoning line with the image's TRUE
    label (TinyEmo Appendix A-B; at inference the projector's top-1 label takes its place, Eq. 5) and
    ``emoreason_normal`` files hold the same records without it (Fig. 9's "normal" model trains on those).
    The external set (if any) is merged into every EmoReason file's ``train`` split.
    """
    kinds = (
        {
            "pretrain": pretrain_records(results, image_root),
            "emoreason": emoreason_records(results, labels, image_root, conditional),
        }
        if mode == "tinyemo"
        else {"emovit": emovit_records(results, labels, image_root)}
    )
    if mode == "tinyemo" and conditional:
        kinds["emoreason_normal"] = emoreason_records(results, labels, image_root, False)
    for kind in [k for k in ("emoreason", "emoreason_normal") if external is not None and k in kinds]:
        kinds[kind] += [
            (
                r,
                {
                    "split": "train",
                    "label": r["conversations"][-1]["value"].rsplit("Predicted Label:", 1)[-1].strip(),
                },
            )
            for r in load_external(external)
        ]
    summary: dict[str, Any] = {
        "files": {},
        "stats": {},
        "left_out": dict(Counter(f"{r.status}:{r.reason}" for r in results if r.status != "ok")),
    }
    for kind, items in kinds.items():
        by_split: dict[str, list[dict]] = defaultdict(list)
        for rec, meta in items:
            by_split[meta["split"]].append(rec)
        for split, recs in sorted(by_split.items()):
            ids = [r["id"] for r in recs]
            if len(ids) != len(set(ids)):
                raise ValueError(
                    f"{kind}/{split}: duplicate record ids (external set clashes with generated ids?)"
                )
            summary["files"][f"{kind}_{split}"] = str(
                write_json(recs, Path(out_dir) / f"{kind}_{split}.json")
            )
        summary["stats"][kind] = statistics(items, count_tokens)
    return summary
