"""``tinyemo run label-transfer``: generalized zero-shot learning over a dataset's own classes.

Brings manifests, features and the label table up to date like every flow (no image is read when they are
cached), then per dataset and fold: the fold's projector run (seen classes only), with ``calibration:
stacking`` the pseudo-unseen runs and the margin chosen on them (stored in the fold run), and finally one
report over every fold (table + Markdown artifacts). Each step is a cached task behind a stage ``plan``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.flows.steps import (
    config_from,
    ensure_features,
    ensure_labels,
    ensure_manifests,
    ensure_training,
    feature_hashes,
)
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from tinyemo_core.config import RunConfig
from tinyemo_core.fingerprint import step_fingerprint
from tinyemo_core.projector.transfer_spec import LabelTransferSpec
from tinyemo_core.stages import label_transfer as stage
from tinyemo_core.stages import word_demo
from tinyemo_core.stages.labels import dataset_labels


@task(name="label-transfer-train", **CACHED)
@recorded
def transfer_train_task(key: str, **kwargs: Any) -> dict:
    return stage.train_run(**kwargs)


@task(name="label-transfer-calibrate", **CACHED)
@recorded
def calibrate_task(key: str, **kwargs: Any) -> dict:
    return stage.calibrate(**kwargs)


@task(name="label-transfer-calibrate-profile-run", **CACHED)
@recorded
def calibrate_profile_run_task(key: str, **kwargs: Any) -> dict:
    return stage.calibrate_from_folds(**kwargs)


@task(name="label-transfer-report", **CACHED)
@recorded
def report_task(key: str, jobs: list[dict], inputs: dict[str, dict], which: str, settings: dict,
                out_dir: Path) -> dict:
    rows = []
    for job in jobs:
        data = inputs[job["dataset"]]
        rows.append(stage.evaluate_fold(job["dataset"], data["spec"], data["manifest"], data["store"],
                                        data["label_table"], stage.Fold(**job["fold"]), Path(job["run_dir"]),
                                        which, job["margin"]))
    return stage.write_report(out_dir, rows, settings)


def transfer_settings(cfg: RunConfig) -> LabelTransferSpec:
    """The profile's ``label_transfer`` section (defaults when absent), its dataset names checked."""
    spec = cfg.spec.label_transfer or LabelTransferSpec()
    where = f"profiles.{cfg.profile}.label_transfer"
    for i, name in enumerate(spec.datasets):
        if name not in cfg.datasets:
            raise ValueError(f"{where}.datasets.{i}: {name!r} is not a dataset of this profile "
                             f"(its datasets: {', '.join(cfg.datasets)})")
    if spec.demo_words is not None:
        word_demo.check(spec.demo_words, cfg.datasets, f"{where}.demo_words")
    return spec


def ensure_transfer_run(cfg: RunConfig, name: str, classes: tuple[str, ...], detail: dict, label_desc: dict,
                        inputs: dict, *, with_val: bool) -> dict:
    """A projector run on ``classes`` of dataset ``name`` (a fold's seen classes or a pseudo split's)."""
    fp = stage.run_fingerprint(detail, label_desc["fingerprint"], cfg.spec.training, classes, with_val)
    plan = stage.plan(cfg.storage_root, cfg.encoder_name, cfg.backbone_name, fp)
    data = inputs[name]
    return up_to_date(plan, stage.read_run, transfer_train_task, scope=cfg.storage_root, name=name,
                      spec=data["spec"],
                      manifest=data["manifest"], store=data["store"], label_table=label_desc["table"],
                      training=cfg.spec.training, classes=classes, out_dir=plan.path, with_val=with_val)


def ensure_calibration(cfg: RunConfig, fold: stage.Fold, run_dir: str, detail: dict, label_desc: dict,
                       inputs: dict, spec: LabelTransferSpec) -> dict:
    """The fold run's stacking margin, chosen on pseudo-unseen runs (trained here when missing)."""
    pseudo_runs = []
    for held_out in fold.pseudo_unseen:
        rest = tuple(w for w in fold.seen if w not in held_out)
        pseudo_runs.append(ensure_transfer_run(cfg, fold.dataset, rest, detail, label_desc, inputs,
                                               with_val=False)["run_dir"])
    fp = stage.calibration_fingerprint(Path(run_dir), pseudo_runs, fold, spec, detail)
    plan = stage.plan_calibration(Path(run_dir), fp)
    data = inputs[fold.dataset]
    return up_to_date(plan, stage.read_calibration, calibrate_task, scope=cfg.storage_root, name=fold.dataset,
                      spec=data["spec"],
                      manifest=data["manifest"], store=data["store"], label_table=label_desc["table"],
                      fold=fold, pseudo_runs=pseudo_runs, run_dir=Path(run_dir), fingerprint=fp,
                      transfer=spec)


@flow(name="label-transfer", log_prints=True)
def label_transfer(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None
                   ) -> dict:
    """Generalized zero-shot protocol on the profile's ``label_transfer`` datasets (default: held-in):
    seen / unseen accuracy, H and ZSL accuracy per fold and averaged, uncalibrated and, with ``calibration:
    stacking``, calibrated plus the permuted-word control (docs/experiments.md)."""
    cfg = config_from(config, profile, overrides)
    spec = transfer_settings(cfg)
    manifests = ensure_manifests(cfg)  # generates the word demo (label_transfer.demo_words) first
    stores = ensure_features(cfg, manifests)
    label_desc = ensure_labels(cfg, manifests)
    hashes = feature_hashes(stores)
    names = spec.datasets or [n for n, r in cfg.roles.items() if r == "held_in"]
    inputs = {n: {"spec": cfg.datasets[n], "manifest": manifests[n]["manifest"], "store": stores[n],
                  "label_table": label_desc["table"]} for n in names}
    details = {n: stage.dataset_detail(cfg.datasets[n], manifests[n]["content_hash"], hashes[n])
               for n in names}
    jobs = []
    for name in names:
        for fold in stage.plan_folds(name, dataset_labels(Path(manifests[name]["manifest"])), spec):
            run = ensure_transfer_run(cfg, name, fold.seen, details[name], label_desc, inputs, with_val=True)
            margin, cal = None, None
            if fold.pseudo_unseen:
                cal = ensure_calibration(cfg, fold, run["run_dir"], details[name], label_desc, inputs, spec)
                margin = cal["margin"]
            picked = None if cal is None else {"margin": cal["margin"], "fingerprint": cal["fingerprint"]}
            jobs.append({"dataset": name, "fold": fold.to_dict(), "run_dir": run["run_dir"],
                         "margin": margin, "calibration": picked})
    profile_run = ensure_profile_run_calibration(cfg, names, jobs, manifests, stores, label_desc)
    training = cfg.spec.training
    mixup = f", word mixup {training.word_mixup.model_dump()}" if training.word_mixup else ""
    settings = {"training": f"loss {training.loss}, {training.epochs} epochs{mixup}",
                "calibration": spec.calibration, "checkpoint": cfg.spec.evaluation.checkpoint,
                "label_transfer": spec.model_dump(mode="json")}
    which = cfg.spec.evaluation.checkpoint
    plan = stage.plan_report(cfg.storage_root, {"jobs": jobs, "details": details, "which": which,
                                                "labels": label_desc["fingerprint"], "settings": settings})
    desc = up_to_date(plan, stage.read_report, report_task, scope=cfg.storage_root,
                      jobs=jobs, inputs=inputs, which=which, settings=settings, out_dir=plan.path)
    publish(desc)
    return {**desc, "profile_run": profile_run}


def ensure_profile_run_calibration(cfg: RunConfig, names: list[str], jobs: list[dict], manifests: dict,
                                   stores: dict, label_desc: dict) -> dict | None:
    """With stacking, and when the profile trains on exactly the one dataset studied here, its own run
    (``tinyemo run train-projector``) gets the mean fold margin, so ``tinyemo predict --calibrated`` and
    ``tinyemo reground --calibrated`` can apply it."""
    held_in = [n for n, r in cfg.roles.items() if r == "held_in"]
    margins = [j["calibration"] for j in jobs if j["calibration"] is not None]
    if len(held_in) != 1 or held_in != names or not margins:
        return None
    run = ensure_training(cfg, manifests, stores, label_desc)
    fp = step_fingerprint("label_transfer", "profile-run", Path(run["run_dir"]).name,
                          [c["fingerprint"] for c in margins])
    plan = stage.plan_calibration(Path(run["run_dir"]), fp)
    cal = up_to_date(plan, stage.read_calibration, calibrate_profile_run_task, scope=cfg.storage_root,
                     run_dir=Path(run["run_dir"]), fold_calibrations=margins, fingerprint=fp)
    return {"run_dir": run["run_dir"], "margin": cal["margin"]}


def publish(desc: dict) -> None:
    """Per-fold table artifact (accuracies in %) and the Markdown report."""
    rows = []
    for r in desc["rows"]:
        row = {"dataset": r["dataset"], "fold": r["fold"], "unseen": ", ".join(r["unseen"]),
               "n_seen": r["n_seen"], "n_unseen": r["n_unseen"], "margin": r["margin"]}
        for key in ("uncalibrated", "calibrated", "control"):
            for metric, value in (r.get(key) or {}).items():
                if metric in ("seen_acc", "unseen_acc", "h"):
                    row[f"{key}:{metric}"] = round(100 * value, 2)
        rows.append({**row, "zsl": round(100 * r["zsl"], 2), "chance_gzsl": round(100 * r["chance_gzsl"], 2),
                     "chance_zsl": round(100 * r["chance_zsl"], 2)})
    create_table_artifact(rows, key="label-transfer", description="Generalized zero-shot per fold (%)")
    md = Path(desc["markdown"]).read_text()
    create_markdown_artifact(md, key="label-transfer-report",
                             description=f"Label transfer: {desc['markdown']}")
    get_run_logger().info("label-transfer report: %s", desc["markdown"])
