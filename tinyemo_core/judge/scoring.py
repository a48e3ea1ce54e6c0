"""Scoring generated answers (docs/judging.md): answers in, the report's numbers and per-sample rows out.

Called by the evaluate-generated stage with the items, the answers it collected and the recipe's judging
rules (:mod:`tinyemo_core.judge.recipes`): single-label accuracy (TinyEmo, EmoVIT), per-person multi-label
mAP + V/A/D bin error (LLaVA on EMOTIC), the likelihood-ranked mAP, CLIPScore / RefCLIPScore.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinyemo_core.data.emotic_persons import VAD_WORDS, vad_bin
from tinyemo_core.generate.runner import collect
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.judge.clipscore import score_texts
from tinyemo_core.judge.emotic import parse_categories, parse_vad
from tinyemo_core.judge.likelihood import category_log_likelihoods
from tinyemo_core.judge.metrics import (
    group_means,
    instruction_sensitivity,
    map_scores,
    multilabel_targets,
    score_single_label,
    vad_bin_mae,
)
from tinyemo_core.judge.parse import parse_label
from tinyemo_core.judge.plan import EvalItem, instruction_id
from tinyemo_core.judge.prompts import render_instruction
from tinyemo_core.judge.recipes import JudgeRecipe
from tinyemo_core.judge.references import load_references

Answers = Mapping[tuple[str, str], Sequence[str | None]]  # (dataset, instruction id) -> answer or None


def score_answers(
    recipe: JudgeRecipe,
    names: Sequence[str],
    templates: Sequence[str],
    items: Mapping[str, Sequence[EvalItem]],
    labels: Mapping[str, Sequence[str]],
    answers: Answers,
    roles: Mapping[str, str],
    *,
    synonyms: bool = True,
    several: str = "wrong",
) -> tuple[dict[str, Any], dict[str, tuple], list[dict]]:
    """``(summary, confusions, rows)`` over every dataset and instruction template."""
    summary: dict[str, Any] = {"datasets": {}}
    confusions: dict[str, tuple] = {}
    rows: list[dict] = []
    acc_by: dict[str, dict[str, float]] = {}
    for n in names:
        d: dict[str, Any] = {"role": roles.get(n, "held_out"), "n": len(items[n])}
        for k, t in enumerate(templates):
            instr = instruction_id(t)
            got = answers[(n, instr)]
            if recipe.multilabel:
                if k == 0:  # one template: the categories the recipe was trained to list
                    d.update(score_multilabel(items[n], labels[n], got, rows, n, instr))
                continue
            parsed = [None if a is None else parse_label(a, labels[n], recipe=recipe.name, synonyms=synonyms)
                      for a in got]
            s = score_single_label([it.label for it in items[n]], parsed, labels[n], several=several)
            acc_by.setdefault(n, {})[instr] = s.accuracy
            if k == 0:
                d.update({kk: v for kk, v in s.to_dict().items() if kk != "candidates"})
                confusions[n] = (labels[n], s.confusion)
            rows += [
                {"dataset": n, "instruction": instr, "sample_id": it.sample_id, "true": [it.label],
                 "answer": a, "status": st, "predicted": [p] if p else [], "correct": p == it.label}
                for it, a, st, p in zip(items[n], got, s.statuses, s.predicted, strict=True)
            ]
        summary["datasets"][n] = d
    if acc_by:
        summary["means"] = group_means({n: v[instruction_id(templates[0])] for n, v in acc_by.items()}, roles)
        if len(templates) > 1:
            summary["sensitivity"] = instruction_sensitivity(acc_by)
    return summary, confusions, rows


def score_multilabel(
    items: Sequence[EvalItem], cats: Sequence[str], answers: Sequence[str | None], rows: list[dict],
    name: str, instr: str,
) -> dict[str, Any]:
    """mAP of the categories an answer names (binary scores) and the V/A/D bin error; appends the rows."""
    predicted = [parse_categories(a or "", cats) for a in answers]
    targets = multilabel_targets([it.labels for it in items], cats)
    binary = multilabel_targets(predicted, cats).astype(np.float64)
    out: dict[str, Any] = {
        "mAP_generated": map_scores(binary, targets, cats)["mAP"],
        "n_failed": sum(a is None for a in answers),
        "n_none": sum(not p for p in predicted),
    }
    if all(it.vad is not None for it in items):
        said = [parse_vad(a or "", VAD_WORDS) for a in answers]
        mae = vad_bin_mae(said, [[vad_bin(v) for v in it.vad] for it in items])  # type: ignore[union-attr]
        out.update(vad_mae=mae["mean"], vad=mae)
    else:
        out["vad_note"] = "not scored: some persons have no V/A/D annotation"
    rows += [
        {"dataset": name, "instruction": instr, "sample_id": it.sample_id, "true": list(it.labels),
         "answer": a, "status": "failed" if a is None else ("ok" if p else "none"), "predicted": p,
         "correct": set(p) == set(it.labels)}
        for it, a, p in zip(items, answers, predicted, strict=True)
    ]
    return out


def likelihood_map(model: Any, processor: Any, items: Sequence[EvalItem], cats: Sequence[str], template: str,
                   answer_prefix: str = "") -> float:
    """mAP of the categories ranked by the model's teacher-forced log-likelihood (model in process)."""
    from PIL import Image

    prompt = render_instruction(template, cats)
    scores = []
    for it in items:
        with Image.open(it.image_path) as im:
            scores.append(category_log_likelihoods(model, processor, prompt, im.convert("RGB"), cats,
                                                   answer_prefix=answer_prefix))
    return map_scores(np.array(scores), multilabel_targets([it.labels for it in items], cats), cats)["mAP"]


def clipscore_summary(
    scorer: Any,
    prompt: str,
    references: Any,
    stores: Mapping[str, Any],
    encoder_fp: str | None,
    items: Mapping[str, Sequence[EvalItem]],
    clip_chains: Mapping[str, Sequence[Any]],
    spec: GenerationSpec,
    answers_dir: Any,
    model_fp: str,
) -> dict[str, Any]:
    """CLIP-S (and RefCLIP-S with ``references``: a file, or ``"dataset"`` = the items' own texts) of the
    free-text answers; image features come from a feature store of the same encoder when it has them."""
    refs = (load_references(references) if references not in (None, "dataset")
            else {it.sample_id: list(it.references) for its in items.values() for it in its}
            if references == "dataset" else None)
    source, out, meta = set(), {}, {}
    for n, cs in clip_chains.items():
        res = collect(cs, spec, answers_dir, model_fp)
        keep = [(it, r.texts[0]) for it, r in zip(items[n], res, strict=True) if r.status == "ok"]
        ids = [it.sample_id for it, _ in keep]
        store = stores.get(n)
        if store is not None and store.encoder_fingerprint == encoder_fp and store.manifest() is not None:
            _, feats = store.load(ids)
            source.add("feature store (no image forward pass)")
        else:
            feats = scorer.encode_images([it.image_path for it, _ in keep])
            source.add("recomputed (image forward pass)")
        r_lists = None
        if refs is not None:
            missing = [i for i in ids if not refs.get(i)]
            if missing:
                raise KeyError(f"clipscore.references has no reference for {len(missing)} images of {n!r} "
                               f"(e.g. {missing[0]})")
            r_lists = [refs[i] for i in ids]
        meta = score_texts(scorer, np.asarray(feats, np.float32), [t for _, t in keep], r_lists)
        out[n] = {"n": meta["n"], "n_failed": len(cs) - len(keep), "clip_score": meta["clip_score"],
                  "ref_clip_score": meta.get("ref_clip_score")}
    return {
        "clip_model": scorer.name, "w": meta.get("w"), "prefix": meta.get("prefix"),
        "truncation_tokens": meta.get("truncation_tokens"), "prompt": prompt,
        "image_features": ", ".join(sorted(source)), "datasets": out,
        "mean_clip_score": float(np.mean([d["clip_score"] for d in out.values()])) if out else math.nan,
    }
