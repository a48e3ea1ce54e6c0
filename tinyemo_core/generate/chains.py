"""Plan generation requests from a manifest: TinyEmo pre-training chains and EmoVIT chains.

A *chain* is the requests for one (image, task); later steps depend on earlier answers (the visual answer
request includes the generated question), so a chain's steps run in order while chains run concurrently.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tinyemo_core.store.manifests import read_manifest

from . import prompts as P
from .backends.base import ChatRequest, Sampling, Turn
from .spec import GenerationSpec

COUNTERFACTUAL = "sentiment_counterfactual"  # a sentiment chain told another label
FILL = "{answer}"  # placeholder in a step's turns, replaced by the answer of step ``fill_from``
MANIFEST_COLUMNS = ("image_id", "path", "split", "label", "dataset", "status")


@dataclass(frozen=True)
class ManifestRow:
    """One usable image of the manifest (``status == "ok"``)."""

    image_id: str
    path: str
    label: str
    dataset: str
    split: str
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Step:
    kind: str
    turns: tuple[Turn, ...]
    with_image: bool = True
    fill_from: int | None = None


@dataclass(frozen=True)
class Chain:
    task: str
    row: ManifestRow
    steps: tuple[Step, ...]


def load_manifest(
    paths: Sequence[str | Path], spec: GenerationSpec, image_root: str | Path | None = None
) -> list[ManifestRow]:
    """Rows with status "ok" of the requested datasets and splits, sorted by (dataset, image_id), unique."""
    rows: dict[tuple[str, str], ManifestRow] = {}
    for path in paths:
        table = read_manifest(Path(path), ok_only=True)
        missing = [c for c in MANIFEST_COLUMNS if c not in table.column_names]
        if missing:
            raise ValueError(f"manifest {path} lacks columns {missing}; expected the ingest manifest layout")
        for r in table.to_pylist():
            if (spec.datasets and r["dataset"] not in spec.datasets) or r["split"] not in spec.splits:
                continue
            label = r.get("label") or (r.get("labels") or [None])[0]
            if label is None:
                raise ValueError(
                    f"manifest {path}: image {r['image_id']} has no label (needed by the prompts)"
                )
            img = Path(r["path"])
            if not img.is_absolute() and image_root is not None:
                img = Path(image_root) / img
            attrs = r.get("attributes") or {}
            attrs = json.loads(attrs) if isinstance(attrs, str) else dict(attrs)
            rows[(r["dataset"], r["image_id"])] = ManifestRow(
                r["image_id"], str(img), str(label), r["dataset"], r["split"], attrs
            )
    ordered = [rows[k] for k in sorted(rows)]
    if spec.max_images and spec.image_sample == "random" and len(ordered) > spec.max_images:
        keep = sorted(random.Random(spec.seed).sample(range(len(ordered)), spec.max_images))
        return [ordered[i] for i in keep]  # a seeded draw over every class, still in (dataset, id) order
    return ordered[: spec.max_images] if spec.max_images else ordered


def label_lists(rows: Sequence[ManifestRow], spec: GenerationSpec) -> dict[str, list[str]]:
    """Per dataset the label list for EmoReason's ``Labels: [...]``: ``spec.label_sets`` or labels seen."""
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r.dataset, set()).add(r.label)
    return {d: list(spec.label_sets.get(d) or sorted(labels)) for d, labels in seen.items()}


def _user(text: str) -> Turn:
    return Turn(role="user", text=text)


def tinyemo_chains(row: ManifestRow) -> list[Chain]:
    """TinyEmo §III-A / Appendix A-A: caption; visual Q then A; sentiment Q then A (given the label)."""
    vq, sq = (
        P.strip_image_tag(P.VISUAL_QUESTION_PROMPT),
        P.with_label(P.strip_image_tag(P.SENTIMENT_QUESTION_PROMPT), row.label),
    )
    sa = P.with_label(P.SENTIMENT_ANSWER_PROMPT, row.label)
    asked = Turn(role="assistant", text=FILL)
    return [
        Chain("caption", row, (Step("caption", (_user(P.strip_image_tag(P.CAPTION_PROMPT)),)),)),
        Chain(
            "visual",
            row,
            (
                Step("visual_question", (_user(vq),)),
                Step("visual_answer", (_user(vq), asked, _user(P.VISUAL_ANSWER_PROMPT)), fill_from=0),
            ),
        ),
        Chain(
            "sentiment",
            row,
            (
                Step("sentiment_question", (_user(sq),)),
                Step("sentiment_answer", (_user(sq), asked, _user(sa)), fill_from=0),
            ),
        ),
    ]


def emovit_chains(row: ManifestRow, spec: GenerationSpec) -> list[Chain]:
    """EmoVIT §3.2: caption the image, then two text-only requests (Conversation, Reasoning) whose user
    message is the caption + attributes and whose system message is the authors' prompt for that data type
    (EmoVIT repository emo/gpt4_*.py; Reasoning's carries its in-context examples).

    One chain per data type, both starting with the same caption request (one cache entry: same task name,
    same request), so a Conversation answer that fails its format check does not cost the image its Reasoning
    record, as the authors' separate scripts never did. The caption step is the only one with an image: with
    ``spec.captioner`` it goes to that vision model (BLIP-2 in the paper, §4.1) and the text steps to
    ``spec.model`` (GPT-4); without one, one generator does all. Categorical records need no request
    (:mod:`export` builds them from the label).
    """
    attrs = {"emotion": row.label, **row.attributes}
    context = P.emovit_context(FILL, attrs, spec.emovit_attributes)
    caption = spec.captioner.prompt if spec.captioner is not None else P.strip_image_tag(P.CAPTION_PROMPT)
    systems = {"emovit_conversation": P.EMOVIT_CONVERSATION_SYSTEM,
               "emovit_reasoning": P.emovit_reasoning_system()}
    return [
        Chain(
            "emovit",
            row,
            (
                Step("caption", (_user(caption),)),
                Step(kind, (Turn(role="system", text=system), _user(context)), with_image=False, fill_from=0),
            ),
        )
        for kind, system in systems.items()
    ]


def plan(rows: Sequence[ManifestRow], spec: GenerationSpec) -> list[Chain]:
    """All chains for ``rows``; TinyEmo: per image three tasks, seeded shuffled order (§III-A)."""
    rng = random.Random(spec.seed)
    chains: list[Chain] = []
    for row in rows:
        if spec.mode == "emovit":
            chains.extend(emovit_chains(row, spec))
            continue
        per_image = tinyemo_chains(row)
        rng.shuffle(per_image)
        chains.extend(per_image)
    if spec.counterfactual_conditions and spec.mode == "tinyemo":
        labels, pick = label_lists(rows, spec), random.Random(spec.seed + 1)
        for row in rows:
            n = spec.counterfactual_conditions
            chains.extend(counterfactual_chains(row, labels[row.dataset], n, pick))
    return chains


def counterfactual_chains(row: ManifestRow, labels: Sequence[str], n: int, rng: random.Random) -> list[Chain]:
    """``n`` sentiment chains for ``row`` told another label of ``labels`` (``generation.
    counterfactual_conditions``); exported only as conditional EmoReason records, with that label."""
    others = [label for label in labels if label != row.label]
    out = []
    for other in rng.sample(others, min(n, len(others))):
        told = replace(row, label=other)
        sentiment = next(c for c in tinyemo_chains(told) if c.task == "sentiment")
        out.append(Chain(COUNTERFACTUAL, told, sentiment.steps))
    return out


def request_seed(base: int, image_id: str, task: str, step: int) -> int:
    """A per-request sampling seed derived from the run seed (reproducible, different per request)."""
    return int(hashlib.sha256(f"{base}:{image_id}:{task}:{step}".encode()).hexdigest()[:8], 16)


def render(chain: Chain, index: int, answers: Sequence[str], spec: GenerationSpec) -> ChatRequest:
    """The concrete request of step ``index`` given the answers of the earlier steps."""
    step = chain.steps[index]
    turns = step.turns
    if step.fill_from is not None:
        turns = tuple(Turn(role=t.role, text=t.text.replace(FILL, answers[step.fill_from])) for t in turns)
    sampling = Sampling(
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_tokens=spec.max_tokens,
        seed=request_seed(spec.seed, chain.row.image_id, chain.task, index),
    )
    return ChatRequest(turns=turns, image_path=chain.row.path if step.with_image else None, sampling=sampling)
