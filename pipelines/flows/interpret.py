"""Interpretability flows over cached features (TinyEmo §V-C, Appendix E): ``neuron-atlas``,
``neuron-ablation`` and ``bias-report``. Each brings the profile's projector run up to date (cached), builds
the layer-0 activation store for the dataset once, then runs its analysis (a finished one is read back).
``run`` picks another finished run (a folder, its name under storage/runs, or ``latest``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.flows.steps import (
    config_from,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
)
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.config import RunConfig
from tinyemo_core.stages import interpret_atlas, interpret_report
from tinyemo_core.store.activations import ActivationStoreKind
from tinyemo_core.store.plan import StorePlan
from tinyemo_core.store.runs import resolve_run


def _run_dir(cfg: RunConfig, run: str | None) -> Path:
    if run:
        return resolve_run(run, cfg.storage_root)
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    label_desc = ensure_labels(cfg, manifests)
    return Path(ensure_training(cfg, manifests, stores, label_desc)["run_dir"])


@task(name="interpret", **CACHED)
@recorded
def interpret_task(key: str, analysis: Callable, cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    progress = ThrottledProgress(f"{analysis.__name__.replace('_', '-')}-progress", "Layer-0 activations")

    def on_progress(p: dict) -> None:
        if p.get("total"):
            progress(p.get("done", 0), p["total"])

    return analysis(cfg, run_dir, cfg.spec.interpret, on_progress=on_progress)


def _analysis(analysis: Callable, plan: Callable[..., StorePlan], cfg: RunConfig, run: str | None) -> dict:
    """Bring one analysis up to date: its plan complete -> read back; else the cached task builds it."""
    run_dir = _run_dir(cfg, run)
    return up_to_date(plan(cfg, run_dir, cfg.spec.interpret), ActivationStoreKind(cfg.storage_root).read,
                      interpret_task, scope=cfg.storage_root, analysis=analysis, cfg=cfg, run_dir=run_dir)


def _table(rows: list[dict] | None, key: str, description: str) -> None:
    flat = [{k: v for k, v in r.items() if isinstance(v, int | float | str | bool)} for r in rows or []]
    if flat:
        create_table_artifact(flat, key=key, description=description)


@flow(name="neuron-atlas")
def neuron_atlas(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    run: str | None = None,
) -> dict:
    """Top-k images per hidden neuron, detection rates per label/attribute, most selective neurons."""
    cfg = config_from(config, profile, overrides)
    desc = _analysis(interpret_atlas.neuron_atlas, interpret_atlas.plan_atlas, cfg, run)
    _table(desc.get("selective"), "neuron-atlas", f"Most selective neurons ({desc['dataset']})")
    create_markdown_artifact(
        Path(desc["markdown"]).read_text(), key="neuron-atlas-report", description=desc["markdown"]
    )
    return desc


@flow(name="neuron-ablation")
def neuron_ablation(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    run: str | None = None,
) -> dict:
    """Accuracy change when each hidden neuron alone is zeroed (Appendix E-A, Fig. 17), all at once."""
    cfg = config_from(config, profile, overrides)
    desc = _analysis(interpret_atlas.neuron_ablation, interpret_atlas.plan_ablation, cfg, run)
    _table(
        desc.get("largest"),
        "neuron-ablation",
        f"Largest single-neuron ablation effects ({desc['dataset']}, baseline "
        f"{100 * desc['baseline_accuracy']:.2f}%)",
    )
    return desc


@flow(name="bias-report")
def bias_report(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    run: str | None = None,
) -> dict:
    """Retrieval -> neurons of the retrieved subset -> counterfactuals -> ablation for the profile's
    ``interpret.query`` / ``interpret.pairs`` (TinyEmo §V-C's three steps), as one Markdown report."""
    cfg = config_from(config, profile, overrides)
    desc = _analysis(interpret_report.bias_report, interpret_report.plan_bias, cfg, run)
    for name, rows in (desc.get("artifacts") or {}).items():
        if isinstance(rows, list):
            _table(rows, f"bias-{name}".replace("_", "-"), f"Bias report: {name}")
    create_markdown_artifact(
        Path(desc["markdown"]).read_text(), key="bias-report", description=desc["markdown"]
    )
    return desc
