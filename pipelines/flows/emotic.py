"""emotic-exports: EMOTIC as the LLaVA-on-EMOTIC poster uses it - one record per annotated person, the box
drawn in red on the image (each drawn once, content-addressed), and the two LLaVA-format exports
(emotions + V/A/D words, emotions only) for the ``llava-emotic`` recipe. Every layout-``emotic`` dataset of
the profile is prepared; both steps are cached by content."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from pipelines.flows.steps import config_from, ensure_manifests
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.stages import emotic
from tinyemo_core.store.emotic import EmoticStore
from tinyemo_core.store.plan import StorePlan


@task(name="emotic-persons", **CACHED)
@recorded
def persons_task(key: str, dataset: str, manifest: Path, root: Path, storage_root: Path,
                 workers: int, plan: StorePlan) -> dict:
    progress = ThrottledProgress(f"emotic-{dataset}".lower().replace("_", "-"), f"Red boxes for {dataset}")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p["done"], p["total"])

    return emotic.render_persons(
        dataset, manifest, root, storage_root, workers=workers, on_progress=on_progress, plan=plan
    )


@task(name="emotic-export", **CACHED)
@recorded
def export_task(key: str, dataset: str, persons_dir: Path, storage_root: Path, plan: StorePlan) -> dict:
    return emotic.export_persons(dataset, persons_dir, storage_root, plan=plan)


def ensure_emotic(cfg: RunConfig, manifests: dict[str, dict]) -> dict[str, dict]:
    """Per-person table and both exports of each layout-``emotic`` dataset, brought up to date."""
    names = [n for n, s in cfg.datasets.items() if s.layout == "emotic"]
    if not names:
        raise ValueError(f"profile {cfg.profile!r} has no dataset with layout: emotic")
    store, out = EmoticStore(cfg.storage_root), {}
    for name in names:
        manifest = Path(manifests[name]["manifest"])
        plan = emotic.persons_plan(name, manifest, cfg.storage_root)
        up_to_date(plan, store.read, persons_task, scope=cfg.storage_root, dataset=name, manifest=manifest,
                   root=cfg.datasets[name].root, storage_root=cfg.storage_root,
                   workers=cfg.spec.extraction.ingest_workers, plan=plan)
        persons = StorePlan(plan.fingerprint, plan.path, True)
        export_plan = emotic.export_plan(name, persons.path, cfg.storage_root)
        export = up_to_date(export_plan, store.read, export_task, scope=cfg.storage_root, dataset=name,
                            persons_dir=persons.path, storage_root=cfg.storage_root, plan=export_plan)
        out[name] = {"persons": str(plan.path), "export": export}
    return out


@flow(name="emotic-exports")
def emotic_exports(
    config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
) -> dict:
    """Per-person tables, red-box renderings and both LLaVA exports for the profile's EMOTIC datasets."""
    cfg = config_from(config, profile, overrides)
    if not any(s.layout == "emotic" for s in cfg.datasets.values()):
        raise ValueError(f"profile {cfg.profile!r} has no dataset with layout: emotic")
    out = ensure_emotic(cfg, ensure_manifests(cfg))
    rows = [{"dataset": name, "file": f, "records": n}
            for name, d in out.items() for f, n in d["export"].get("records", {}).items()]
    if rows:
        create_table_artifact(rows, key="emotic-exports", description="EMOTIC per-person LLaVA exports")
    return {"datasets": out}
