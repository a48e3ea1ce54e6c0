"""generate-qa: synthetic instruction data (TinyEmo §III-A / EmoVIT §3.2) from a served or local generator.

Thin: the stage is :mod:`tinyemo_core.stages.instructions`. The profile flow ``generate-qa`` brings each
dataset's exports (``instructions/<dataset>/``) up to date like every other stage: a complete export is read
back (no request, no file written); otherwise one cached task sends the missing requests (the per-request
cache makes a rerun send only those), exports and writes ``export.json`` last. ``generate-qa-dataset`` is the
same work on explicit paths (manifests, output folder, cache root), outside the store.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.generate.roles import make_generators
from tinyemo_core.generate.runner import Progress, run_generation
from tinyemo_core.generate.spec import GenerationSpec
from tinyemo_core.generate.tiny_model import resolve_local_model
from tinyemo_core.stages import instructions as stage
from tinyemo_core.store.instructions import InstructionsStore
from tinyemo_core.store.plan import StorePlan


def run_with_progress(chains, gspec: GenerationSpec, store_root: Path | str) -> dict[str, Any]:
    """Send every missing request; a progress artifact shows requests done/total, tokens/s and failures."""
    progress = ThrottledProgress("generate-qa-progress", "Requests", interval_s=0.0)
    progress(0, 1, "planning")
    latest: list[Progress] = []
    with cf.ThreadPoolExecutor(1) as pool:  # generation runs its own event loop; this thread reports progress
        gen = make_generators(gspec)
        fut = pool.submit(run_generation, chains, gen, gspec, str(store_root), latest.append)
        while True:
            try:
                report = fut.result(timeout=2.0)
                break
            except cf.TimeoutError:
                if latest:
                    p = latest[-1]
                    note = f"{p.done}/{p.total} requests, {p.tokens_per_s:.1f} tok/s, {p.failed} failed"
                    progress(min(p.done, p.total - 1), p.total, note)
    progress(report.total, report.total, f"{report.total} requests, {sum(report.failed.values())} failed")
    return report.as_dict()


@task(name="generate-requests", tags=["generator"])
@recorded
def generate_requests(manifests: list[str], spec: dict, image_root: str, store_root: str) -> dict[str, Any]:
    gspec = GenerationSpec.model_validate(spec)
    _, chains = stage.chains_of(manifests, gspec, Path(image_root))
    return run_with_progress(chains, gspec, store_root)


@task(name="export-llava")
@recorded
def export_llava(
    manifests: list[str],
    spec: dict,
    image_root: str,
    generations_dir: str,
    fingerprint: str,
    out_dir: str,
    conditional: bool,
    external: str | None,
) -> dict[str, Any]:
    """Read the cached answers back and write validated LLaVA JSON files with per-split statistics."""
    gspec = GenerationSpec.model_validate(spec).model_copy(update={"conditional": conditional})
    rows, chains = stage.chains_of(manifests, gspec, Path(image_root))
    return stage.export(rows, chains, gspec, Path(image_root), Path(generations_dir), fingerprint,
                        Path(out_dir), external)


@task(name="generate-instructions", tags=["generator"], **CACHED)
@recorded
def instructions_task(key: str, plan: StorePlan, manifest: str, spec: dict, image_root: str,
                      storage_root: Path) -> dict[str, Any]:
    gspec = GenerationSpec.model_validate(spec)
    return stage.build(plan, [manifest], gspec, Path(image_root), storage_root, generate=run_with_progress)


@flow(name="generate-qa-dataset", log_prints=True)
def generate_qa(
    manifests: list[str],
    spec: dict,
    out_dir: str,
    image_root: str,
    store_root: str = "storage/generations",
    conditional: bool = False,
    external: str | None = None,
) -> dict[str, Any]:
    """Generate (cached, resumable) answers for every manifest image and export LLaVA records."""
    report = generate_requests(manifests, spec, image_root, store_root)
    get_run_logger().info("generation: %s", report)
    summary = export_llava(
        manifests,
        spec,
        image_root,
        str(Path(store_root) / report["generator_dir"]),
        report["fingerprint"],
        out_dir,
        conditional,
        external,
    )
    rows = _summary_rows(report, summary)
    create_table_artifact(
        rows, key="generate-qa-summary", description="records per kind/split; request counts"
    )
    return {"report": report, "export": summary}


def _summary_rows(report: dict, summary: dict) -> list[dict]:
    rows = [
        {
            "kind": kind,
            "split": split,
            "records": st["records"],
            "tokens": st["tokens"],
            "labels": len(st["labels"]),
        }
        for kind, per in summary["stats"].items()
        for split, st in per.items()
    ]
    rows.append(
        {
            "kind": "requests",
            "split": "-",
            "records": report["total"],
            "tokens": report["completion_tokens"],
            "labels": 0,
            "sent": report["sent"],
            "cached": report["cached"],
            "failed": report["failed_total"],
            "blocked": report["blocked"],
        }
    )
    return rows


def generation_spec(cfg: RunConfig) -> GenerationSpec:
    """The profile's ``generation:`` with ``model: tiny`` resolved (the bundled tiny VLM, built once)."""
    if cfg.spec.generation is None:
        raise ValueError(f"profiles.{cfg.profile}.generation is not set; add a generation section to "
                         "flows.yaml")
    gspec = cfg.spec.generation
    if gspec.backend == "transformers":  # `model: tiny` = the bundled tiny random VLM (offline demo)
        gspec = gspec.model_copy(update={"model": resolve_local_model(gspec.model, cfg.storage_root)})
    if gspec.captioner is not None and gspec.captioner.backend == "transformers":  # EmoVIT's captioner
        cap = gspec.captioner.model_copy(
            update={"model": resolve_local_model(gspec.captioner.model, cfg.storage_root)})
        gspec = gspec.model_copy(update={"captioner": cap})
    return gspec


def ensure_instructions(cfg: RunConfig, manifests: dict[str, dict]) -> dict[str, dict]:
    """Each generation dataset's exports brought up to date (complete: read back, nothing sent)."""
    gspec = generation_spec(cfg)
    names = gspec.datasets or list(manifests)
    unknown = sorted(set(names) - set(manifests))
    if unknown:
        raise ValueError(
            f"profiles.{cfg.profile}.generation.datasets: {unknown} are not datasets of this profile"
        )
    store, out = InstructionsStore(cfg.storage_root), {}
    for name in names:
        manifest, root = manifests[name]["manifest"], cfg.datasets[name].root
        plan = stage.plan(cfg.storage_root, name, Path(manifest), gspec, root)
        out[name] = up_to_date(plan, store.read, instructions_task, scope=cfg.storage_root, plan=plan,
                               manifest=manifest, spec=gspec.model_dump(mode="json"), image_root=str(root),
                               storage_root=cfg.storage_root)
        if out[name]["computed"]:
            create_table_artifact(_summary_rows(out[name]["report"], out[name]), key="generate-qa-summary",
                                  description=f"{name}: records per kind/split; request counts")
    return out


@flow(name="generate-qa")
def generate_qa_profile(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Synthetic instruction data for the profile's datasets (``generation:`` in flows.yaml), image paths
    relative to each dataset's root."""
    from pipelines.flows.steps import config_from, ensure_manifests

    cfg = config_from(config, profile, overrides)
    generation_spec(cfg)  # a clear error before any dataset is ingested
    out = ensure_instructions(cfg, ensure_manifests(cfg))
    return {"datasets": {n: d["files"] for n, d in out.items()}}
