"""Conditional reasoning (TinyEmo §III-C, Fig. 3 and 9; Appendix A-B): Metric Projector -> label -> reasoning.

The Metric Projector ranks the label set for each image; its best label is written into the EmoReason
instruction ("Important: note that the correct label is <label>.") and the fine-tuned reasoning VLM writes
"Reasoning: ...\\nPredicted Label: ...". Generation goes through the project's generator backends: the
in-process transformers model (batched, left-padded greedy ``generate``) or an OpenAI-compatible server
(``vllm serve <stage-2 model folder>``). Output folder ``<storage>/reasoning/<name>-<fp12>/``:

- ``reasoning.parquet``: image id, path, true label (dataset split), projector label and score, the prompt's
  condition, generated text, parsed "Predicted Label" (:func:`tinyemo_core.judge.parse.parse_label`), its
  parse status, ``agree`` (parsed == projector label) and ``correct`` (parsed == true label, when known);
- ``samples.md``: a table of the first rows; ``comparison.md``: normal vs conditional answers for a few
  images (Fig. 9); ``result.json`` LAST (completion marker, counts and agreement rate).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyemo_core.finetune.spec import ReasonSpec
from tinyemo_core.fingerprint import stable_hash, step_fingerprint
from tinyemo_core.generate.backends.base import Answer, ChatRequest, RequestFailed, Sampling, Turn
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
from tinyemo_core.generate.prompts import emoreason_instruction, strip_image_tag
from tinyemo_core.generate.runner import run_sync
from tinyemo_core.identity import local_model_fingerprint
from tinyemo_core.judge.parse import parse_label
from tinyemo_core.stages.ingest import plan as plan_manifest
from tinyemo_core.stages.predict import config_for_run, image_paths, label_set, predict
from tinyemo_core.store.manifests import manifest_complete, read_manifest, read_summary
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.reasoning import ReasoningStore

Progress = Callable[[dict], None] | None


@dataclass(frozen=True)
class ReasonItem:
    """One image to reason about, with the label set offered in the prompt and the label to condition on."""

    image_id: str
    path: str
    labels: tuple[str, ...]
    projector_label: str | None
    projector_score: float | None = None
    true_label: str | None = None


def reasoning_prompt(labels: Sequence[str], label: str | None) -> str:
    """The EmoReason instruction (Appendix A-B) without its ``<image>`` tag; with ``label`` the conditional
    line is added: the exact text the stage-2 model was fine-tuned on."""
    return strip_image_tag(emoreason_instruction(list(labels), label))


def reasoning_request(item: ReasonItem, *, condition: bool, max_new_tokens: int) -> ChatRequest:
    """Greedy chat request for one image (the condition needs a projector label)."""
    label = item.projector_label if condition else None
    if condition and label is None:
        raise ValueError(f"image {item.image_id}: no projector label to condition on (it failed to decode?)")
    return ChatRequest(turns=(Turn(role="user", text=reasoning_prompt(item.labels, label)),),
                       image_path=item.path, sampling=Sampling(temperature=0.0, max_tokens=max_new_tokens))


Reasoner = Callable[[list[ChatRequest]], list[Answer]]


def make_reasoner(model_dir: Path | None, spec: ReasonSpec) -> tuple[Reasoner, str]:
    """(batch -> answers, model identity). ``transformers``: the saved folder in process; ``openai``: a
    server (vLLM) at ``spec.base_url`` serving ``spec.served_model``."""
    if spec.backend == "openai":
        from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator
        model = spec.served_model or (str(model_dir) if model_dir else None)
        if not model:
            raise ValueError("reason.backend=openai needs reason.served_model (the id the server serves)")

        gen = OpenAIHTTPGenerator(spec.base_url, model, max_concurrency=spec.batch_size)

        async def answer(r: ChatRequest) -> Answer:
            try:
                return await gen.generate(r)
            except RequestFailed as exc:  # costs this request only: an empty answer, parsed as failed
                return Answer(text="", finish_reason=f"error:{exc.reason}")

        def run_http(requests: list[ChatRequest]) -> list[Answer]:
            async def go() -> list[Answer]:
                await gen.health()
                return list(await asyncio.gather(*(answer(r) for r in requests)))

            return run_sync(gen, go)  # one loop per batch; the client is closed in it

        return run_http, stable_hash("openai", spec.base_url, model)

    if model_dir is None or not (Path(model_dir) / "config.json").exists():
        raise FileNotFoundError(f"reasoner folder {model_dir} has no config.json: pass the `model/` folder "
                                "of a finished stage-2 fine-tune (tinyemo run finetune-reasoning) or "
                                "--reasoner PATH")
    holder: dict[str, TransformersGenerator] = {}

    def run_local(requests: list[ChatRequest]) -> list[Answer]:
        if "gen" not in holder:  # loaded on first use: a cached stage never loads the model
            holder["gen"] = TransformersGenerator(model_dir, max_batch_size=spec.batch_size)
        gen = holder["gen"]
        return [a for i in range(0, len(requests), spec.batch_size)
                for a in gen.generate_batch_sync(requests[i:i + spec.batch_size])]

    return run_local, local_model_fingerprint(model_dir)


def _norm(label: str | None) -> str | None:
    return label.lower() if label else None


def _row(item: ReasonItem, answer: Answer, condition: bool) -> dict[str, Any]:
    parsed = parse_label(answer.text, item.labels, recipe="tinyemo")
    return {
        "image_id": item.image_id, "path": item.path, "true_label": item.true_label,
        "projector_label": item.projector_label, "projector_score": item.projector_score,
        "conditioned": condition, "reasoning": answer.text, "predicted_label": parsed.label,
        "parse_status": parsed.status, "field_missing": parsed.field_missing,
        "agree": parsed.label is not None and parsed.label == _norm(item.projector_label),
        "correct": None if item.true_label is None else parsed.label == _norm(item.true_label),
        "finish_reason": answer.finish_reason, "completion_tokens": answer.completion_tokens,
    }


def _cell(text: Any, limit: int = 300) -> str:
    s = "" if text is None else str(text)
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("|", "\\|").replace("\n", "<br>")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def generate_reasoning(items: Sequence[ReasonItem], generate: Callable[[list[ChatRequest]], list[Answer]],
                       spec: ReasonSpec, *, condition: bool | None = None,
                       on_progress: Progress = None) -> list[dict[str, Any]]:
    """One row per item (see the module docstring), generated in batches of ``spec.batch_size``."""
    cond = spec.condition if condition is None else condition
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i in range(0, len(items), spec.batch_size):
        chunk = list(items[i:i + spec.batch_size])
        answers = generate([reasoning_request(it, condition=cond, max_new_tokens=spec.max_new_tokens)
                            for it in chunk])
        rows += [_row(it, a, cond) for it, a in zip(chunk, answers, strict=True)]
        if on_progress is not None:
            dt = time.perf_counter() - t0
            on_progress({"step": len(rows), "max_steps": len(items), "images_per_s": round(len(rows) / dt, 2),
                         "eta_s": round(dt / len(rows) * (len(items) - len(rows)), 1)})
    return rows


COMPARISON_TWO_MODELS = (
    "# Normal vs conditional reasoning (TinyEmo Fig. 9)\n\n"
    "Two trained models: *normal* was fine-tuned on EmoReason records without the label line and is asked "
    "without it (it classifies and reasons); *conditional* was fine-tuned with the TRUE label in the prompt "
    "and is asked with the Metric Projector's top-1 label (§III-C, Eq. 5).\n\n"
)
COMPARISON_ONE_MODEL = (
    "# Normal vs conditional prompt (one model; not TinyEmo Fig. 9)\n\n"
    "Only the conditional model is trained (set reasoning.normal to train Fig. 9's normal model): both "
    "columns are the same model, asked without and with the projector's label.\n\n"
)


def write_reasoning(out_dir: Path, items: Sequence[ReasonItem], generate, spec: ReasonSpec, meta: dict,
                    on_progress: Progress = None, normal_generate=None) -> dict[str, Any]:
    """Generate, then write the folder's files with ``result.json`` last (staged: all or nothing).
    ``normal_generate``: Fig. 9's separately trained "normal" model for comparison.md's normal column."""
    rows = generate_reasoning(items, generate, spec, on_progress=on_progress)
    few = [it for it in items if it.projector_label is not None][: spec.compare_images]
    normal = generate_reasoning(few, normal_generate or generate, spec, condition=False) if few else []
    conditional = generate_reasoning(few, generate, spec, condition=True) if few else []
    n, agree = len(rows), sum(r["agree"] for r in rows)
    known = [r for r in rows if r["correct"] is not None]
    result = {**meta, "images": n, "condition": spec.condition, "agree": agree,
              "comparison": "two trained models" if normal_generate else "one model, two prompts",
              "agree_rate": round(agree / n, 4) if n else None,
              "parsed": sum(r["predicted_label"] is not None for r in rows),
              "accuracy": round(sum(r["correct"] for r in known) / len(known), 4) if known else None}
    head = ["image", "true", "projector", "parsed", "agree", "reasoning"]
    title = f"# Reasoning samples ({'conditional' if spec.condition else 'no condition'})\n\n"
    cells = [[r["image_id"], r["true_label"], r["projector_label"], r["predicted_label"], r["agree"],
              r["reasoning"]] for r in rows[:12]]
    comp = [[a["image_id"], a["true_label"], a["projector_label"], a["reasoning"], b["reasoning"]]
            for a, b in zip(normal, conditional, strict=True)]
    comparison = ((COMPARISON_TWO_MODELS if normal_generate else COMPARISON_ONE_MODEL)
                  + _table(["image", "true", "projector", "normal", "conditional"], comp))
    return ReasoningStore.write_folder(out_dir, rows, title + _table(head, cells), comparison, result)


def reasoning_dir(storage_root: Path, name: str, fingerprint: str) -> Path:
    return ReasoningStore(storage_root).path(name, fingerprint)


def reasoning_complete(out_dir: Path) -> bool:
    return ReasoningStore.folder_complete(out_dir)


def _file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _reason_spec_key(spec: ReasonSpec) -> dict:
    return spec.model_dump(mode="json", exclude={"split"})


def reasoning_fingerprint(name: str, inputs: Any, run_dir: Path | None, model_id: str,
                          spec: ReasonSpec) -> str:
    """Images/split content + projector run (its folder name carries its fingerprint) + reasoner + spec."""
    return step_fingerprint("reason", name, inputs, Path(run_dir).name if run_dir else None, model_id,
                            _reason_spec_key(spec))


def _cached(out_dir: Path) -> dict[str, Any]:
    return ReasoningStore.read_folder(out_dir) or {}


def _with_normal(model_dir: Path | None, spec: ReasonSpec, normal_dir: Path | None):
    """(reasoner, its id, normal reasoner or None): the normal model's id joins the fingerprint."""
    generate, model_id = make_reasoner(model_dir, spec)
    if normal_dir is None:
        return generate, model_id, None
    local = spec.model_copy(update={"backend": "transformers"})  # the normal model runs in process
    normal_generate, normal_id = make_reasoner(Path(normal_dir), local)
    return generate, f"{model_id}+normal:{normal_id}", normal_generate


def reason_items(items: Sequence[ReasonItem], model_dir: Path | None, spec: ReasonSpec, storage_root: Path,
                 *, name: str = "images", inputs: Any = None, run_dir: Path | None = None,
                 on_progress: Progress = None, normal_dir: Path | None = None) -> dict[str, Any]:
    """Reason about labelled items (projector labels already chosen); cached by fingerprint.
    ``normal_dir``: Fig. 9's normal model (comparison.md)."""
    generate, model_id, normal_generate = _with_normal(model_dir, spec, normal_dir)
    key = inputs if inputs is not None else [(it.image_id, _file_digest(it.path), it.projector_label,
                                              it.labels) for it in items]
    fp = reasoning_fingerprint(name, key, run_dir, model_id, spec)
    out = reasoning_dir(storage_root, name, fp)
    if reasoning_complete(out):
        return _cached(out)
    meta = _meta(name, fp, model_dir, spec, normal_dir, run_dir)
    return write_reasoning(out, items, generate, spec, meta, on_progress, normal_generate)


def _meta(name: str, fp: str, model_dir: Path | None, spec: ReasonSpec, normal_dir: Path | None,
          run_dir: Path | None) -> dict[str, Any]:
    return {"name": name, "fingerprint": fp, "model": str(model_dir) if model_dir else spec.served_model,
            "normal_model": str(normal_dir) if normal_dir else None, "run": str(run_dir) if run_dir else None}


def image_ids(paths: Sequence[str | Path]) -> list[str]:
    """Ids of ad-hoc images: paths relative to their common folder (``happy/01.jpg``; unique)."""
    import os

    full = [os.path.abspath(p) for p in paths]
    root = os.path.dirname(full[0]) if len(full) == 1 else os.path.commonpath(full)
    return [Path(os.path.relpath(p, root)).as_posix() for p in full]


def projector_items(paths: Sequence[Path], run_dir: Path, cfg, pairs: Sequence[tuple[str, str]],
                    ids: Sequence[str] | None = None,
                    truths: Sequence[str] | None = None) -> list[ReasonItem]:
    """The Metric Projector's best label per image (:func:`tinyemo_core.stages.predict.predict`)."""
    preds, _ = predict(list(paths), run_dir, config_for_run(cfg, run_dir), pairs)
    words = tuple(w for w, _ in pairs)
    ids = ids or image_ids(paths)
    return [ReasonItem(ids[i], str(paths[i]), words,
                       p.labels[0] if p.labels else None, p.scores[0] if p.scores else None,
                       truths[i] if truths else None) for i, p in enumerate(preds)]


def reason_images(paths: Sequence[str | Path], cfg, run_dir: Path, model_dir: Path | None, spec: ReasonSpec,
                  *, labels: str | None = None, taxonomy: str | None = None,
                  on_progress: Progress = None) -> dict[str, Any]:
    """``tinyemo reason IMAGE...``: files/folders -> projector labels -> (conditional) reasoning, cached."""
    files = image_paths(paths)
    pairs = label_set(cfg, labels, taxonomy)
    _, model_id = make_reasoner(model_dir, spec)
    inputs = [[str(f), _file_digest(f)] for f in files], pairs
    fp = reasoning_fingerprint("images", inputs, run_dir, model_id, spec)
    out = reasoning_dir(cfg.storage_root, "images", fp)
    if reasoning_complete(out):
        return _cached(out)
    items = projector_items(files, run_dir, cfg, pairs)
    items = [it for it in items if it.projector_label is not None]  # undecodable images: no label, no row
    return reason_items(items, model_dir, spec, cfg.storage_root, name="images", inputs=inputs,
                        run_dir=run_dir, on_progress=on_progress)


def split_inputs(cfg, dataset: str, spec: ReasonSpec, manifest: Path | None = None
                 ) -> tuple[list[Path], list[str], list[str], str]:
    """(paths, image ids, true labels, manifest content hash) of ``dataset``'s ``spec.split`` images
    (``manifest``: the dataset's manifest when the caller has it, else the current one is looked up)."""
    import pyarrow.compute as pc

    if dataset not in cfg.datasets:
        raise ValueError(f"dataset {dataset!r} is not in profile {cfg.profile}: {', '.join(cfg.datasets)}")
    path = Path(manifest or plan_manifest(dataset, cfg.datasets[dataset], cfg.storage_root).path)
    if not manifest_complete(path):
        raise FileNotFoundError(f"dataset {dataset} has no manifest yet: run `tinyemo run build-dataset`")
    t = read_manifest(path, ok_only=True)
    t = t.filter(pc.equal(t["split"], spec.split))
    if t.num_rows == 0:
        raise ValueError(f"dataset {dataset} has no {spec.split!r} images; set reason.split")
    n = min(t.num_rows, spec.max_images or t.num_rows)
    root = cfg.datasets[dataset].root
    paths = [root / p for p in t["path"].to_pylist()[:n]]
    ids, truths = t["image_id"].to_pylist()[:n], t["label"].to_pylist()[:n]
    return paths, ids, truths, read_summary(path)["content_hash"]


def plan_split(cfg, dataset: str, run_dir: Path, model_dir: Path | None, spec: ReasonSpec,
               normal_dir: Path | None = None, manifest: Path | None = None) -> StorePlan:
    """Fingerprint, folder and completeness of :func:`reason_split` (no model is loaded)."""
    _, ids, truths, content = split_inputs(cfg, dataset, spec, manifest)
    _, model_id, _ = _with_normal(model_dir, spec, normal_dir)
    fp = reasoning_fingerprint(dataset, [content, spec.split, len(ids)], run_dir, model_id, spec)
    return ReasoningStore(cfg.storage_root).plan(dataset, fp)


def reason_split(cfg, dataset: str, run_dir: Path, model_dir: Path | None, spec: ReasonSpec,
                 on_progress: Progress = None, normal_dir: Path | None = None, *,
                 plan: StorePlan | None = None, manifest: Path | None = None) -> dict[str, Any]:
    """The ``reason`` flow's stage: a dataset's test split, projector-conditioned, with accuracy vs truth.
    ``normal_dir``: Fig. 9's separately trained normal model for comparison.md. ``plan``: the plan the
    caller made (:func:`plan_split`); it is not made again."""
    plan = plan or plan_split(cfg, dataset, run_dir, model_dir, spec, normal_dir, manifest)
    if plan.complete:
        return _cached(plan.path)
    paths, ids, truths, _ = split_inputs(cfg, dataset, spec, manifest)
    pairs = label_set(cfg, taxonomy=dataset)
    items = [it for it in projector_items(paths, run_dir, cfg, pairs, ids, truths) if it.projector_label]
    generate, _, normal_generate = _with_normal(model_dir, spec, normal_dir)
    meta = _meta(dataset, plan.fingerprint, model_dir, spec, normal_dir, run_dir)
    return write_reasoning(plan.path, items, generate, spec, meta, on_progress, normal_generate)


def reasoning_dataset(cfg) -> str:
    """The dataset whose exports the reasoning chain trains on: the first of ``generation.datasets`` (where
    generate-qa wrote ``storage/instructions/<dataset>/``), else the profile's first held-in dataset."""
    gen = cfg.spec.generation
    return (gen.datasets[0] if gen is not None and gen.datasets else
            next(n for n, r in cfg.roles.items() if r == "held_in"))
