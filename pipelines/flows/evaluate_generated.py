"""evaluate-generated: ask a saved model (or an OpenAI-compatible endpoint) the recipe's prompts over each
dataset's test split, read the answers, score them (accuracy, instruction sensitivity, EMOTIC mAP, CLIPScore).

Answers go through the per-request cache (a rerun asks only what is missing); a complete report is never
recomputed (the stage's plan hashes the model folder without loading it).
"""

from __future__ import annotations

import functools
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipelines.flows.steps import config_from, ensure_features, ensure_manifests
from pipelines.runtime.caching import CACHED, recorded, up_to_date
from pipelines.runtime.gpu import gpu_tags
from pipelines.runtime.progress import ThrottledProgress
from tinyemo_core.monitor import DeviceMonitor
from tinyemo_core.stages import evaluate_generated as stage
from tinyemo_core.store.evaluations import GeneratedEvaluationStore, read_report, report_markdown
from tinyemo_core.store.finetune import epoch_models
from tinyemo_core.store.plan import StorePlan


@task(name="evaluate-generated", **CACHED)
@recorded
def evaluate_generated_task(key: str, spec, datasets, roles, manifests, storage_root: Path, encoder,
                            stores, plan: StorePlan | None = None) -> dict:
    progress = ThrottledProgress("evaluate-generated-progress", "Generated answers")

    def on_progress(p: dict) -> None:
        progress(p["done"], p["total"], f"{p['done']}/{p['total']} answers ({p['cached']} cached, "
                                        f"{p['failed']} failed), {p['tokens_per_s']:.1f} tok/s")

    with DeviceMonitor() as monitor:
        desc = stage.evaluate_generated(spec, datasets, roles, manifests, storage_root, encoder=encoder,
                                        feature_stores=stores, on_progress=on_progress, plan=plan)
    return {**{k: v for k, v in desc.items() if k != "generation"}, **monitor.summary()}


@flow(name="evaluate-generated")
def evaluate_generated(config: str = "flows.yaml", profile: str = "demo", overrides: list[str] | None = None,
                       model: str | None = None) -> dict:
    """Judge what a model writes (TinyEmo / EmoVIT / LLaVA-EMOTIC recipes); ``model`` overrides
    ``evaluate_generated.model`` (a saved model folder or a served model id)."""
    extra = [f"evaluate_generated.model={model}"] if model else []
    cfg = config_from(config, profile, [*(overrides or []), *extra])
    spec = cfg.spec.evaluate_generated
    if spec is None:
        raise ValueError(f"profile {cfg.profile!r} has no evaluate_generated: block in {cfg.config_path} "
                         "(see docs/judging.md)")
    from pipelines.flows.reasoning import TRAINED_MODELS, trained_model

    if spec.model in TRAINED_MODELS:  # the profile's own fine-tuned model (docs/judging.md)
        spec = spec.model_copy(update={"model": str(trained_model(cfg, spec.model))})
    manifest_descs = ensure_manifests(cfg)
    manifests = {n: d["manifest"] for n, d in manifest_descs.items()}
    # the profile's feature stores serve CLIPScore only when it scores with the profile's own encoder
    reuse = spec.clipscore is not None and spec.clipscore.encoder in (None, cfg.spec.encoder)
    stores = ensure_features(cfg, manifest_descs) if reuse else None
    # CLIPScore's model may differ from the feature encoder (clipscore.encoder; Hessel et al.: ViT-B/32)
    encoder = stage.scoring_encoder(spec, cfg.flows.encoders, cfg.encoder)
    planned = stage.plan(spec, manifests, cfg.roles, cfg.storage_root, encoder)
    device = spec.device if spec.resolved_backend() == "transformers" else "cpu"
    tags = functools.partial(gpu_tags, device, cfg.flows.gpu.tag)  # asked only if a task runs
    desc = up_to_date(planned, GeneratedEvaluationStore(cfg.storage_root).read, evaluate_generated_task,
                      scope=cfg.storage_root, tags=tags, spec=spec,
                      datasets=cfg.datasets, roles=cfg.roles, manifests=manifests,
                      storage_root=cfg.storage_root, encoder=encoder, stores=stores, plan=planned)
    report = read_report(Path(desc["report_dir"])) or {}
    if report.get("table_rows"):
        create_table_artifact(report["table_rows"], key="evaluate-generated",
                              description=f"Generated-answer accuracy ({spec.recipe}, {spec.model})")
    if (markdown := report_markdown(Path(desc["report_dir"]))) is not None:
        create_markdown_artifact(markdown, key="evaluate-generated-report", description=desc["report_dir"])
    if spec.every_epoch:  # each epochs/epoch-<k> model beside the judged one (train.save_epoch_models)
        from tinyemo_core.stages.evaluate_generated import epoch_row
        rows = []
        for folder in epoch_models(Path(spec.model).parent):
            ep_spec = spec.model_copy(update={"model": str(folder), "every_epoch": False})
            ep_plan = stage.plan(ep_spec, manifests, cfg.roles, cfg.storage_root, encoder)
            ep = up_to_date(ep_plan, GeneratedEvaluationStore(cfg.storage_root).read, evaluate_generated_task,
                            scope=cfg.storage_root, tags=tags, spec=ep_spec,
                            datasets=cfg.datasets, roles=cfg.roles, manifests=manifests,
                            storage_root=cfg.storage_root, encoder=encoder, stores=stores, plan=ep_plan)
            report_ep = read_report(Path(ep["report_dir"])) or {}
            rows.append(epoch_row(folder.name, report_ep.get("summary", {})))
        if rows:
            create_table_artifact(rows, key="evaluate-generated-epochs",
                                  description="Generated-answer scores after every epoch")
        desc = {**desc, "epochs": rows}
    return desc
