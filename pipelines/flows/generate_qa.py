"""generate-qa: synthetic instruction data (TinyEmo §III-A / EmoVIT §3.2) from a served or local generator.

Thin: each task is a few lines around ``tinyemo_core.generate``; tasks exchange small descriptors (paths,
fingerprints, counts). The per-request cache under ``store_root`` makes a rerun send only missing requests.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.generate.backends import make_generator
from tinyemo_core.generate.chains import label_lists, load_manifest, plan
from tinyemo_core.generate.export import export_all
from tinyemo_core.generate.runner import Progress, collect, run_generation
from tinyemo_core.generate.spec import GenerationSpec


def _plan(manifests: list[str], spec: GenerationSpec, image_root: str):
    rows = load_manifest(manifests, spec, image_root=image_root)
    return rows, plan(rows, spec)


@task(name="generate-requests", tags=["generator"])
def generate_requests(manifests: list[str], spec: dict, image_root: str, store_root: str) -> dict[str, Any]:
    """Send every missing request; a progress artifact shows requests done/total, tokens/s and failures."""
    gspec = GenerationSpec.model_validate(spec)
    _, chains = _plan(manifests, gspec, image_root)
    progress = ThrottledProgress("generate-qa-progress", "Requests", interval_s=0.0)
    progress(0, 1, "planning")
    latest: list[Progress] = []
    with cf.ThreadPoolExecutor(1) as pool:  # generation runs its own event loop; this thread reports progress
        fut = pool.submit(run_generation, chains, make_generator(gspec), gspec, store_root, latest.append)
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


@task(name="export-llava")
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
    gspec = GenerationSpec.model_validate(spec)
    rows, chains = _plan(manifests, gspec, image_root)
    results = collect(chains, gspec, generations_dir, fingerprint)
    return export_all(
        results,
        out_dir,
        image_root,
        label_lists(rows, gspec),
        mode=gspec.mode,
        conditional=conditional,
        external=external,
    )


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
    rows = [
        {
            "kind": kind,
            "split": split,
            "records": s["records"],
            "tokens": s["tokens"],
            "labels": len(s["labels"]),
        }
        for kind, per in summary["stats"].items()
        for split, s in per.items()
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
    create_table_artifact(
        rows, key="generate-qa-summary", description="records per kind/split; request counts"
    )
    return {"report": report, "export": summary}


@flow(name="generate-qa")
def generate_qa_profile(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict[str, Any]:
    """Synthetic instruction data for the profile's datasets (``generation:`` in flows.yaml), one subflow per
    dataset so image paths stay relative to that dataset's root."""
    from pipelines.flows.steps import config_from, ensure_manifests
    from tinyemo_core.generate.tiny_model import resolve_local_model

    cfg = config_from(config, profile, overrides)
    if cfg.spec.generation is None:
        raise ValueError(f"profiles.{profile}.generation is not set; add a generation section to flows.yaml")
    gspec = cfg.spec.generation
    if gspec.backend == "transformers":  # `model: tiny` = the bundled tiny random VLM (offline demo)
        gspec = gspec.model_copy(update={"model": resolve_local_model(gspec.model, cfg.storage_root)})
    manifests = ensure_manifests(cfg)
    names = gspec.datasets or list(manifests)
    unknown = sorted(set(names) - set(manifests))
    if unknown:
        raise ValueError(
            f"profiles.{profile}.generation.datasets: {unknown} are not datasets of this profile"
        )
    out = {}
    for name in names:
        out[name] = generate_qa(
            manifests=[manifests[name]["manifest"]],
            spec=gspec.model_dump(mode="json"),
            out_dir=str(cfg.storage_root / "instructions" / name),
            image_root=str(cfg.datasets[name].root),
            store_root=str(cfg.storage_root / "generations"),
            conditional=gspec.conditional,
        )
    return {"datasets": {n: r["export"]["files"] for n, r in out.items()}}
