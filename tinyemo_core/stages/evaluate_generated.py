"""Stage: evaluate what a model writes (docs/judging.md).

Prompts per recipe over each dataset's test split go through the shared generation runner (batched,
per-request cache under ``storage/answers/<model>-<fp8>/<dataset>/``, resumable); the answers are parsed and
scored; the report lands in ``storage/evaluations/generated/<model>-<fp8>/<fingerprint[:12]>/`` (written under
a temporary name and renamed: ``report.json`` there means complete).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyemo_core.config import DatasetSpec
from tinyemo_core.data.emotic_boxes import boxes_root
from tinyemo_core.encoders.specs import VisionEncoderSpec
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.generate.backends.transformers_local import TransformersGenerator
from tinyemo_core.generate.runner import collect, generator_dir, health_sync, run_generation
from tinyemo_core.identity import local_model_fingerprint
from tinyemo_core.judge.clipscore import ClipScorer
from tinyemo_core.judge.emotic import person_items
from tinyemo_core.judge.plan import EvalItem, chains_for, instruction_id, load_items
from tinyemo_core.judge.recipes import judge_recipe
from tinyemo_core.judge.scoring import clipscore_summary, likelihood_map, score_answers
from tinyemo_core.judge.spec import TRANSPORT_FIELDS, EvaluateGeneratedSpec
from tinyemo_core.stages.assemble import EVERY_SPLIT, eval_splits
from tinyemo_core.stages.emotic import read_persons, render_persons
from tinyemo_core.stages.features import encoder_fingerprint
from tinyemo_core.store.answers import answers_dir, answers_root
from tinyemo_core.store.evaluations import (
    evaluation_complete,
    generated_evaluation_dir,
    read_report,
    staged_evaluation,
)
from tinyemo_core.store.features import FeatureStore
from tinyemo_core.store.kind import write_provenance
from tinyemo_core.store.plan import StorePlan

Progress = Callable[[dict], None]


def make_generator(spec: EvaluateGeneratedSpec):
    """The backend of ``spec.model``: a saved folder in process (batched), else an OpenAI endpoint."""
    gen = spec.generation_spec()
    if gen.backend == "transformers":
        return TransformersGenerator(
            spec.model,
            trust_remote_code=spec.trust_remote_code,
            device=spec.device,
            dtype=spec.dtype,
            max_batch_size=spec.batch_size,
            load_in_4bit=spec.load_in_4bit,
        )
    from tinyemo_core.generate.backends.openai_http import OpenAIHTTPGenerator

    return OpenAIHTTPGenerator.from_spec(gen)


def model_fingerprint(spec: EvaluateGeneratedSpec) -> str:
    """The evaluated model's identity without loading it (a folder is hashed; an endpoint is asked)."""
    if spec.resolved_backend() == "transformers":
        return local_model_fingerprint(spec.model, chat_format="auto", dtype=spec.dtype,
                                       **({"load_in_4bit": True} if spec.load_in_4bit else {}))

    return health_sync(make_generator(spec))  # its own loop; the client is closed in it


def scored_split(split: str, dataset: DatasetSpec, role: str | None) -> str | None:
    """Which split's images a dataset is judged on; ``"auto"`` = those the projector's evaluation scores
    (held-in: "test"; zero-shot: every image (None) when ``zero_shot_split: all``, else "test")."""
    if split != "auto":
        return split
    splits = eval_splits(dataset, role or "held_in")  # the projector evaluation's own rule
    return None if splits == EVERY_SPLIT else splits[0]


def scoring_encoder(spec: EvaluateGeneratedSpec, encoders: dict[str, VisionEncoderSpec],
                    default: VisionEncoderSpec) -> VisionEncoderSpec:
    """The open_clip model CLIPScore uses: ``clipscore.encoder`` (e.g. Hessel et al.'s ViT-B/32) when set,
    else the profile's feature encoder (whose stored image features are then reused)."""
    name = spec.clipscore.encoder if spec.clipscore else None
    if name is None:
        return default
    if name not in encoders:
        raise ValueError(f"evaluate_generated.clipscore.encoder: unknown encoder {name!r} (known: "
                         f"{', '.join(encoders)})")
    return encoders[name]


EPOCH_SCORES = ("accuracy", "mAP_generated", "mAP_likelihood", "vad_mae", "clip_score", "ref_clip_score")


def epoch_row(epoch: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One row of the per-epoch table (``every_epoch``): each dataset's headline scores."""
    row: dict[str, Any] = {"epoch": epoch}
    for name, d in (summary.get("datasets") or {}).items():
        row.update({f"{name}.{k}": d[k] for k in EPOCH_SCORES if d.get(k) is not None})
    return row


def templates(spec: EvaluateGeneratedSpec) -> list[str]:
    """The classification prompts (none with ``accuracy: false``: only CLIPScore is asked)."""
    if not spec.accuracy:
        return []
    return list(spec.instructions) or [judge_recipe(spec.recipe).instruction]


def fingerprint(
    spec: EvaluateGeneratedSpec,
    model_fp: str,
    manifests: dict[str, str],
    roles: dict[str, str],
    encoder_fp: str | None = None,
) -> str:
    """Everything that shapes the report: model, reading rules, prompts, data (manifest fingerprints)."""
    settings = spec.model_dump(mode="json", exclude=set(TRANSPORT_FIELDS))
    data = {n: {"manifest": Path(m).stem, "role": roles.get(n)} for n, m in sorted(manifests.items())}
    return step_fingerprint("evaluate_generated", model_fp, settings, templates(spec), data, encoder_fp)


def plan(
    spec: EvaluateGeneratedSpec,
    manifests: dict[str, str],
    roles: dict[str, str],
    storage_root: Path,
    encoder: VisionEncoderSpec | None = None,
) -> StorePlan:
    """Where the report for this model/prompts/data goes and whether it is complete, without loading the
    model (a saved folder is hashed; an endpoint is asked for its model id)."""
    names = list(spec.datasets) or list(manifests)
    model_fp = model_fingerprint(spec)
    fp = fingerprint(spec, model_fp, {n: manifests[n] for n in names if n in manifests}, roles,
                     _encoder_fp(encoder) if spec.clipscore else None)
    from tinyemo_core.generate.backends.openai_http import served_model_name

    # the same folder name evaluate_generated() writes (generator_dir): a served id may contain "/"
    local = spec.resolved_backend() == "transformers"
    name = Path(spec.model).name if local else served_model_name(spec.model)
    out = generated_evaluation_dir(storage_root, f"{name}-{model_fp[:8]}", fp)
    return StorePlan(fp, out, evaluation_complete(out))


def evaluate_generated(
    spec: EvaluateGeneratedSpec,
    datasets: dict[str, DatasetSpec],
    roles: dict[str, str],
    manifests: dict[str, str],
    storage_root: Path,
    *,
    encoder: VisionEncoderSpec | None = None,
    feature_stores: dict[str, FeatureStore] | None = None,
    generator: Any | None = None,
    on_progress: Progress | None = None,
    title: str | None = None,
    plan: StorePlan | None = None,
) -> dict[str, Any]:
    """Ask, read and score; returns {"report_dir", "computed", "summary", "generation", "files"}.
    ``plan``: the plan the caller made (:func:`plan`); the report goes where it says."""
    names = list(spec.datasets) or list(datasets)
    unknown = [n for n in names if n not in datasets or n not in manifests]
    if unknown:
        raise ValueError(
            f"evaluate_generated.datasets: {unknown} are not datasets of this profile "
            f"(known: {sorted(datasets)})"
        )
    gen = generator or make_generator(spec)
    gen_spec = spec.generation_spec()
    judging = judge_recipe(spec.recipe)
    items: dict[str, list[EvalItem]] = {}
    labels: dict[str, list[str]] = {}
    for n in names:
        if judging.per_person:  # one item per annotated person, its red-box image (LLaVA on EMOTIC)
            persons = render_persons(n, Path(manifests[n]), datasets[n].root, storage_root)
            items[n], labels[n] = person_items(n, read_persons(Path(persons["dir"])).to_pylist(),
                                               boxes_root(storage_root), spec.split, spec.max_images)
        else:
            split = scored_split(spec.split, datasets[n], roles.get(n))
            items[n], labels[n] = load_items(n, Path(manifests[n]), datasets[n].root, split, spec.max_images)
    tmpl = templates(spec)
    chains = {
        (n, instruction_id(t)): chains_for(items[n], t, labels[n], f"eval-{spec.recipe}-{instruction_id(t)}")
        for n in names
        for t in tmpl
    }
    clip_names = [n for n in (spec.clipscore.datasets or names)] if spec.clipscore else []
    clip_chains = (
        {n: chains_for(items[n], spec.clipscore.prompt, labels[n], "eval-reasoning") for n in clip_names}
        if spec.clipscore
        else {}
    )

    _refuse_served_likelihood(spec, gen)
    health_sync(gen)  # one loop per call, client closed in it: run_generation below opens its own
    if plan is not None:
        fp, out_dir = plan.fingerprint, plan.path
    else:
        fp = fingerprint(spec, gen.fingerprint, {n: manifests[n] for n in names}, roles,
                         _encoder_fp(encoder) if spec.clipscore else None)
        out_dir = generated_evaluation_dir(storage_root, generator_dir(gen), fp)
    if (done := read_report(out_dir)) is not None:
        return {"report_dir": str(out_dir), "computed": False, "summary": done["summary"], "fingerprint": fp}

    def progress(p) -> None:
        if on_progress is not None:
            on_progress(
                {
                    "done": p.done,
                    "total": p.total,
                    "sent": p.sent,
                    "cached": p.cached,
                    "failed": p.failed,
                    "tokens_per_s": p.tokens_per_s,
                    "elapsed_s": p.elapsed_s,
                }
            )

    all_chains = [c for cs in chains.values() for c in cs]
    reports = [run_generation(all_chains, gen, gen_spec, answers_root(storage_root), progress).as_dict()]
    if clip_chains:
        cspec = spec.generation_spec(spec.clipscore.max_tokens)
        reports.append(
            run_generation(
                [c for cs in clip_chains.values() for c in cs],
                gen,
                cspec,
                answers_root(storage_root),
                progress,
            ).as_dict()
        )
    adir = answers_dir(storage_root, generator_dir(gen))
    texts = {
        k: [r.texts[0] if r.status == "ok" else None for r in collect(cs, gen_spec, adir, gen.fingerprint)]
        for k, cs in chains.items()
    }
    summary, confusions, rows = score_answers(judging, names, tmpl, items, labels, texts, roles,
                                              synonyms=spec.synonyms, several=spec.several)
    summary.update(
        model=spec.model,
        model_fingerprint=gen.fingerprint,
        recipe=spec.recipe,
        split=spec.split,
        several=spec.several,
        instructions=tmpl,
        fingerprint=fp,
    )
    if judging.likelihood_map and spec.likelihood_map and hasattr(gen, "processor"):
        for n in names:
            summary["datasets"][n]["mAP_likelihood"] = likelihood_map(
                gen.model, gen.processor, items[n], labels[n], tmpl[0], spec.answer_prefix
            )
    if clip_chains:
        cspec = spec.generation_spec(spec.clipscore.max_tokens)
        if encoder is None:
            raise ValueError("evaluate_generated.clipscore needs the profile's encoder (an open_clip model)")
        summary["clipscore"] = clipscore_summary(
            ClipScorer(encoder), spec.clipscore.prompt, spec.clipscore.references, feature_stores or {},
            _encoder_fp(encoder), items, clip_chains, cspec, adir, gen.fingerprint,
        )
        for n, d in summary["clipscore"]["datasets"].items():
            summary["datasets"][n].update(clip_score=d["clip_score"], ref_clip_score=d.get("ref_clip_score"))
    from tinyemo_core.judge.report import write_report

    with staged_evaluation(out_dir) as tmp:
        written = write_report(
            summary, confusions, rows, tmp, title=title or f"Generated-answer evaluation ({spec.recipe})"
        )
        write_provenance(tmp)
    files = {k: str(out_dir / Path(v).relative_to(tmp)) for k, v in written.items()}
    return {
        "report_dir": str(out_dir),
        "computed": True,
        "summary": summary,
        "fingerprint": fp,
        "generation": reports,
        "files": files,
    }


def _refuse_served_likelihood(spec: EvaluateGeneratedSpec, gen: Any) -> None:
    """Likelihood mAP scores every category's log-probability with the model in process; a served model
    cannot do that through the chat API, so the combination is refused before anything is sent."""
    explicit = "likelihood_map" in spec.model_fields_set  # the default (True) means "when in process"
    if judge_recipe(spec.recipe).likelihood_map and spec.likelihood_map and explicit and not hasattr(
        gen, "processor"
    ):
        raise ValueError(
            "evaluate_generated.likelihood_map needs the model in process (a saved folder as "
            f"evaluate_generated.model); {spec.model!r} is served over HTTP: set likelihood_map: false"
        )


def _encoder_fp(encoder: VisionEncoderSpec | None) -> str | None:
    return encoder_fingerprint(encoder) if encoder is not None else None

