"""The paper's experiments as flows: dataset-combination ablation (TinyEmo Table III), encoder x backbone grid
(Table IV) and re-grounding a trained projector with other label texts (Table VII).

They reuse every cached store: manifests, features and label tables are computed once by content fingerprint
(``pipelines.flows.steps.ensure_*``); only the projectors (a few seconds each on the demo) are trained per
row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.flows.steps import (
    config_from,
    ensure_evaluation,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
    feature_hashes,
)
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.memo import load_config_once
from tinyemo_core.config import RunConfig
from tinyemo_core.stages import experiments as exp
from tinyemo_core.store.experiments import ExperimentStore
from tinyemo_core.store.runs import read_run_config

OFFLINE_SOURCES = ("package:", "random:")


def _sub_config(cfg: RunConfig, overrides: list[str] | None, extra: list[str]) -> RunConfig:
    return load_config_once(cfg.config_path, cfg.profile, [*(overrides or []), *extra])


def _param_count(run_dir: str) -> int | None:
    """Trainable projector parameters, from the run's config.json (written by every training)."""
    return (read_run_config(Path(run_dir)) or {}).get("param_count")


def _row_ids(train: dict, ev: dict) -> dict[str, Any]:
    return {"run_dir": train["run_dir"], "report_dir": ev["report_dir"],
            "param_count": _param_count(train["run_dir"])}


def _accuracies(ev: dict, order: list[str]) -> dict[str, float]:
    datasets = ev["summary"]["datasets"]
    return {n: datasets[n]["accuracy"] for n in order}


@task(name="experiment-table", **CACHED)
@recorded
def table_task(key: str, out_dir: Path, title: str, keys: list[str], datasets: list[str], rows: list[dict],
               notes: str, runs: list[dict]) -> dict:
    return exp.write_experiment(out_dir, title, keys, datasets, rows, notes, {"runs": runs})


def _publish(name: str, cfg: RunConfig, keys: list[str], datasets: list[str], rows: list[dict], notes: str,
             runs: list[dict]) -> dict:
    """The table of one experiment (``experiments/<name>-<fp of its reports>/``), written once."""
    title = {"dataset-ablation": "Dataset-combination ablation (TinyEmo Table III)",
             "encoder-backbone-grid": "Vision encoder x language backbone (TinyEmo Table IV)"}[name]
    store = ExperimentStore(cfg.storage_root)
    plan = store.plan(name, [r["report_dir"] for r in runs])
    out_dir = plan.path
    paths = up_to_date(plan, store.read_table, table_task, scope=cfg.storage_root, out_dir=out_dir,
                       title=title, keys=keys, datasets=datasets, rows=rows, notes=notes, runs=runs)
    paths = {k: paths[k] for k in ("markdown", "json")}
    table = [{k: (round(100 * v, 2) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    create_table_artifact(table, key=name, description=f"{title}; accuracies in %. {notes}")
    create_markdown_artifact(Path(paths["markdown"]).read_text(), key=f"{name}-report",
                             description=f"{title}: {paths['markdown']}")
    get_run_logger().info("%s table: %s", name, paths["markdown"])
    return {"out_dir": str(out_dir), **paths, "rows": rows, "runs": runs}


@flow(name="dataset-ablation", log_prints=True)
def dataset_ablation(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    datasets: list[str] | None = None,
) -> dict:
    """Train one projector per non-empty subset of the held-in datasets (``datasets``, default: all of the
    profile's) and score every dataset; one table in Table III's layout."""
    cfg = config_from(config, profile, overrides)
    held_all = [n for n, r in cfg.roles.items() if r == "held_in"]
    zero_shot = [n for n, r in cfg.roles.items() if r == "zero_shot"]
    held_in = exp.check_names(datasets if datasets is not None else held_all, held_all,
                              f"held-in datasets of profile {cfg.profile!r}")
    order = [*held_all, *zero_shot]
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)  # every image encoded once, for all rows
    label_desc = ensure_labels(cfg, manifests)  # one label table covers every subset
    rows, runs = [], []
    for subset in exp.held_in_subsets(held_in):
        sub = _sub_config(cfg, overrides, exp.role_overrides(subset, order))
        train = ensure_training(sub, manifests, stores, label_desc)
        ev = ensure_evaluation(sub, manifests, stores, label_desc, train)
        keys = {exp.train_column(n): ("✓" if n in subset else "") for n in held_in}
        rows.append(exp.experiment_row(keys, _accuracies(ev, order), subset, zero_shot))
        runs.append({"held_in": list(subset), **_row_ids(train, ev)})
    keys = [exp.train_column(n) for n in held_in]
    return _publish("dataset-ablation", cfg, keys, order, rows, exp.ABLATION_NOTES, runs)


def offline_backbones(cfg: RunConfig) -> list[str]:
    """Backbones that build without a model hub (bundled package vocabularies, tiny random models)."""
    return [n for n, b in cfg.flows.backbones.items() if b.source.startswith(OFFLINE_SOURCES)]


@flow(name="encoder-backbone-grid", log_prints=True)
def encoder_backbone_grid(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    encoders: list[str] | None = None,
    backbones: list[str] | None = None,
) -> dict:
    """One projector per (encoder, backbone) pair on the profile's datasets; one row each (Table IV).

    Defaults: the profile's ``grid:`` (the paper profiles carry Table IV's 4 x 4 grid); without one, the
    profile's encoder and every backbone that runs offline (``package:``/``random:`` sources).
    """
    cfg = config_from(config, profile, overrides)
    grid = cfg.spec.grid
    encoders = encoders or (grid.encoders if grid and grid.encoders else [cfg.encoder_name])
    backbones = backbones or (grid.backbones if grid and grid.backbones else offline_backbones(cfg))
    encoders = exp.check_names(encoders, list(cfg.flows.encoders), "encoders")
    backbones = exp.check_names(backbones, list(cfg.flows.backbones), "backbones")
    zero_shot = [n for n, r in cfg.roles.items() if r == "zero_shot"]
    held_in = [n for n, r in cfg.roles.items() if r == "held_in"]
    order = [*held_in, *zero_shot]
    manifests = ensure_manifests(cfg)
    rows, runs = [], []
    for enc in encoders:
        stores = ensure_features(_sub_config(cfg, overrides, [f"encoder={enc}"]), manifests)
        for bb in backbones:
            sub = _sub_config(cfg, overrides, [f"encoder={enc}", f"backbone={bb}"])
            label_desc = ensure_labels(sub, manifests)
            train = ensure_training(sub, manifests, stores, label_desc)
            ev = ensure_evaluation(sub, manifests, stores, label_desc, train)
            keys = {"encoder": enc, "backbone": bb, "Params": _param_count(train["run_dir"])}
            rows.append(exp.experiment_row(keys, _accuracies(ev, order), held_in, zero_shot))
            runs.append({"encoder": enc, "backbone": bb, **_row_ids(train, ev)})
    return _publish("encoder-backbone-grid", cfg, ["encoder", "backbone", "Params"], order, rows,
                    exp.GRID_NOTES, runs)


@task(name="reground", **CACHED)
@recorded
def reground_task(key: str, **kwargs) -> dict:
    return exp.reground(**kwargs)


@flow(name="reground-labels", log_prints=True)
def reground_labels(
    config: str = "flows.yaml",
    profile: str = "demo",
    overrides: list[str] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    calibrated: bool = False,
) -> dict:
    """Evaluate the profile's trained projector with other label texts, without retraining (Table VII).
    ``calibrated``: apply the run's calibration (stacking margin off the texts it trained on).

    ``variants``: name -> ``{"texts": {"joy": "cheerful and content"}}`` and/or
    ``{"template": "a photo evoking {label}"}``.
    The projector is the profile's run (trained first only if it does not exist yet).
    """
    cfg = config_from(config, profile, overrides)
    if not variants:
        raise ValueError('pass variants, e.g. {"cheerful": {"texts": {"joy": "cheerful and content"}}}')
    parsed = {k: exp.Grounding.model_validate(v) for k, v in variants.items()}
    manifests = ensure_manifests(cfg)
    stores = ensure_features(cfg, manifests)
    label_desc = ensure_labels(cfg, manifests)
    train = ensure_training(cfg, manifests, stores, label_desc)
    which = cfg.spec.evaluation.checkpoint
    detail = {"run": Path(train["run_dir"]).name, "which": which, "labels": label_desc["fingerprint"],
              "variants": {k: v.model_dump() for k, v in parsed.items()},
              "templates": {n: s.template for n, s in cfg.datasets.items()},
              "features": feature_hashes(stores),
              "manifests": {n: d["content_hash"] for n, d in manifests.items()}}
    if calibrated:  # in the folder's fingerprint only when asked: earlier tables keep their folders
        from tinyemo_core.projector.io import read_calibration

        detail["calibration"] = read_calibration(Path(train["run_dir"]))
    store = ExperimentStore(cfg.storage_root)
    plan = store.plan("reground", detail)
    out_dir = plan.path
    desc = up_to_date(
        plan, store.read, reground_task, scope=cfg.storage_root,
        run_dir=Path(train["run_dir"]), which=which, datasets=cfg.datasets,
        manifests={n: d["manifest"] for n, d in manifests.items()}, stores=stores,
        label_table=label_desc["table"], backbone=cfg.backbone, backbone_name=cfg.backbone_name,
        storage_root=cfg.storage_root, variants=parsed, out_dir=out_dir, calibrated=calibrated,
    )
    create_markdown_artifact(store.markdown(out_dir), key="reground", description=f"Re-grounding: {out_dir}")
    return {**desc, "run_dir": train["run_dir"], "markdown": str(store.markdown_path(out_dir))}
