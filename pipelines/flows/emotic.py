"""emotic-exports: EMOTIC as the LLaVA-on-EMOTIC poster uses it - one record per annotated person, the box
drawn in red on the image (each drawn once, content-addressed), and the two LLaVA-format exports
(emotions + V/A/D words, emotions only) for the ``llava-emotic`` recipe. Every layout-``emotic`` dataset of
the profile is prepared; both steps are cached by content."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipelines.flows.steps import config_from, ensure_manifests
from pipelines.runtime.caching import recorded
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.stages import emotic


@task(name="emotic-persons")
@recorded
def persons_task(dataset: str, manifest: Path, root: Path, storage_root: Path, workers: int) -> dict:
    progress = ThrottledProgress(f"emotic-{dataset}".lower().replace("_", "-"), f"Red boxes for {dataset}")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p["done"], p["total"])

    return emotic.render_persons(
        dataset, manifest, root, storage_root, workers=workers, on_progress=on_progress
    )


@task(name="emotic-export")
@recorded
def export_task(dataset: str, persons_dir: Path, storage_root: Path) -> dict:
    return emotic.export_persons(dataset, persons_dir, storage_root)


@flow(name="emotic-exports")
def emotic_exports(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Per-person tables, red-box renderings and both LLaVA exports for the profile's EMOTIC datasets."""
    cfg = config_from(config, profile, overrides)
    names = [n for n, s in cfg.datasets.items() if s.layout == "emotic"]
    if not names:
        raise ValueError(f"profile {cfg.profile!r} has no dataset with layout: emotic")
    manifests = ensure_manifests(cfg)
    out, rows = {}, []
    for name in names:
        manifest = Path(manifests[name]["manifest"])
        plan = emotic.persons_plan(name, manifest, cfg.storage_root)
        if not plan.complete:  # the stage itself returns a complete table's summary at once
            persons_task(name, manifest, cfg.datasets[name].root, cfg.storage_root,
                         cfg.spec.extraction.ingest_workers)
        export = export_task(name, plan.path, cfg.storage_root)
        out[name] = {"persons": str(plan.path), "export": export}
        rows += [{"dataset": name, "file": f, "records": n} for f, n in export.get("records", {}).items()]
    if rows:
        create_table_artifact(rows, key="emotic-exports", description="EMOTIC per-person LLaVA exports")
    return {"datasets": out}
