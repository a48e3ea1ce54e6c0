"""``tinyemo predict`` (rank emotions for images with a trained run), ``tinyemo reground`` (Table VII) and
``tinyemo reason`` (conditional reasoning with the fine-tuned reasoning model).

``register(app)`` adds the commands to the ``tinyemo`` typer app. ``predict`` and ``reason`` run without
Prefect (interactive, one-shot commands); ``reground`` starts the ``reground-labels`` flow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.options import ConfigOpt, ProfileOpt, SetOpt, console
from pipelines.cli.options import fail as _fail
from tinyemo_core.config import ConfigError, load_config
from tinyemo_core.data.feature_sources import read_any
from tinyemo_core.stages import predict as core
from tinyemo_core.stages.reason import reason_images, reasoning_dataset
from tinyemo_core.store import finetune as finetune_store
from tinyemo_core.store.finetune import latest_model


def predict_command(
    images: Annotated[
        list[Path] | None, typer.Argument(help="image files and/or folders (searched recursively)")
    ] = None,
    run: Annotated[
        str, typer.Option("--run", "-r", help="run folder, its name under storage/runs, or latest")
    ] = "latest",
    labels: Annotated[
        str | None, typer.Option(help="comma-separated label words, e.g. 'joy,sadness'")
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option("--features", help="vectors you already have, from the run's encoder: a .pt file or "
                     "tree, a .npy (+ --table for names), or a table with name and vector columns"),
    ] = None,
    table: Annotated[Path | None, typer.Option(help="--features .npy: its names table")] = None,
    taxonomy: Annotated[
        str | None, typer.Option(help="a taxonomy (ekman6, mikels8, ...) or a dataset name")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="label template, e.g. 'a photo evoking {label}'")
    ] = None,
    top: Annotated[int, typer.Option(help="show the best K labels per image (0: all)", min=0)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    calibrated: Annotated[
        bool, typer.Option("--calibrated", help="apply the run's calibration (label-transfer runs): "
                           "its margin is subtracted from the words it trained on")
    ] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Rank emotions for images (or, with --features, for feature vectors) with a trained projector run
    (cosine to each label embedding); words the run never trained on are named."""
    if bool(images) == (features is not None):
        raise _fail("give images or --features (one of them)")
    try:
        cfg = load_config(config, profile, overrides or [])
        run_dir = core.resolve_run(run, cfg.storage_root)
        cfg = core.config_for_run(cfg, run_dir, overrides or [])
        pairs = core.label_set(cfg, labels, taxonomy, template)
        which = cfg.spec.evaluation.checkpoint
        if features is not None:
            names, vectors = read_any(features, table)
            preds, info = core.predict_features(names, vectors, run_dir, cfg, pairs, which=which,
                                                calibrated=calibrated)
        else:
            preds, info = core.predict(core.image_paths(images or []), run_dir, cfg, pairs, which=which,
                                       calibrated=calibrated)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    k = top or len(pairs)
    if as_json:
        payload = {
            **info,
            "predictions": [{**p.to_dict(), "labels": p.labels[:k], "scores": p.scores[:k]} for p in preds],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_tables(preds, info, len(pairs), k)
    if any(p.error for p in preds):
        raise typer.Exit(1)  # partial failure: every other image was still ranked and printed


def _print_tables(preds: list, info: dict, n_labels: int, k: int) -> None:
    console.print(
        f"run [bold]{Path(info['run']).name}[/bold] · {info['encoder']} · {info['backbone']} · "
        f"{n_labels} labels ({info['labels_embedded']} newly embedded)"
    )
    _print_training_notes(info)
    for p in preds:
        if p.error:
            console.print(f"[red]{p.image}: {p.error}[/red]")
            continue
        console.print(f"[bold]{p.image}[/bold]", soft_wrap=True)
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("emotion")
        table.add_column("cosine", justify="right")
        for i, (word, score) in enumerate(zip(p.labels[:k], p.scores[:k], strict=True), 1):
            table.add_row(str(i), f"[bold]{word}[/bold]" if i == 1 else word, f"{score:.4f}")
        console.print(table)


def _print_training_notes(info: dict) -> None:
    """Which words the run never trained on, and the calibration applied (if any)."""
    untrained = info.get("untrained")
    if untrained is None:
        console.print("[yellow]this run does not record its trained label texts: cannot tell which words "
                      "it never trained on[/yellow]")
    elif untrained:
        console.print(f"[yellow]never trained on: {', '.join(untrained)}[/yellow] (their scores compete "
                      "with trained words' higher ones; see --calibrated)")
    if info.get("calibration"):
        cal = info["calibration"]
        console.print(f"calibration: {cal['method']}, margin {cal['margin']:.3f} subtracted from the scores "
                      "of trained words")


def reground_command(
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map", "-m", help="WORD=TEXT re-grounds one class, e.g. joy='cheerful and content' (repeatable)"
        ),
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="a new label template, e.g. 'a photo of {label}'")
    ] = None,
    calibrated: Annotated[
        bool, typer.Option("--calibrated", help="apply the run's calibration (label-transfer): its margin "
                           "is subtracted from the texts it trained on")
    ] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Evaluate the profile's trained projector with other label texts, no retraining (Table VII)."""
    from pipelines.flows.experiments import reground_labels

    variants: dict[str, dict] = {}
    for item in maps or []:
        word, sep, text = item.partition("=")
        if not sep or not word.strip() or not text.strip():
            raise _fail(f"--map {item!r}: expected WORD=TEXT, e.g. joy='cheerful and content'")
        variants[f"{word.strip()}→{text.strip()}"] = {"texts": {word.strip(): text.strip()}}
    if template:
        variants[f"template: {template}"] = {"template": template}
    if not variants:
        raise _fail("give at least one --map WORD=TEXT or --template")
    try:
        load_config(config, profile, overrides or [])
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        result = reground_labels(config=str(config), profile=profile, overrides=overrides or [],
                                 variants=variants, calibrated=calibrated)
    except ValueError as exc:  # e.g. --calibrated on a run without calibration.json
        raise _fail(str(exc)) from None
    console.print(Path(result["markdown"]).read_text())
    console.print(f"Report: [bold]{result['markdown']}[/bold]")


def _profile_reasoner(cfg) -> Path | None:
    """The profile's own stage-2 model when its plan is complete (never Fig. 9's normal model, which is a
    stage-2 model too and may be newer), else the newest finished one of the recipe."""
    spec = cfg.spec.reasoning
    if spec.patch_encoder is None and "finetune" in spec.stages:
        from pipelines.flows.reasoning import export_source, plan_models

        try:
            planned = plan_models(cfg, spec, export_source(cfg)[0], None)["finetune"][1]
        except (FileNotFoundError, ValueError):
            planned = None
        if planned is not None and planned.complete:
            return finetune_store.model_dir(planned.path)
    return latest_model(cfg.storage_root, spec.recipe)


def reason_command(
    images: Annotated[list[Path], typer.Argument(help="image files and/or folders (searched recursively)")],
    run: Annotated[
        str, typer.Option("--run", "-r", help="projector run folder, its name, or latest")
    ] = "latest",
    reasoner: Annotated[
        Path | None,
        typer.Option(
            help="a fine-tuned model folder (default: the newest "
            "finished finetune stage of the profile's recipe)"
        ),
    ] = None,
    condition: Annotated[
        bool,
        typer.Option(
            "--condition/--no-condition",
            help="insert the projector's label into the prompt (TinyEmo conditional reasoning)",
        ),
    ] = True,
    labels: Annotated[str | None, typer.Option(help="comma-separated label words")] = None,
    taxonomy: Annotated[str | None, typer.Option(
        help="a taxonomy or dataset name (default: the dataset the reasoner was trained on)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Conditional reasoning for images: projector label -> conditioned prompt -> the reasoning model writes
    "Reasoning: ...\nPredicted Label: ..." (cached per image, model and settings)."""
    try:
        cfg = load_config(config, profile, overrides or [])
        if cfg.spec.reasoning is None:
            raise ValueError(f"profiles.{profile}.reasoning is not set (docs/reasoning.md)")
        run_dir = core.resolve_run(run, cfg.storage_root)
        model_dir = reasoner or _profile_reasoner(cfg)
        if labels is None and taxonomy is None:  # the label list the reasoner was trained with (its prompt)
            taxonomy = reasoning_dataset(cfg)
        spec = cfg.spec.reasoning.reason.model_copy(update={"condition": condition})
        res = reason_images(images, cfg, run_dir, model_dir, spec, labels=labels, taxonomy=taxonomy)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    import pyarrow.parquet as pq

    rows = pq.read_table(Path(res["path"]) / "reasoning.parquet").to_pylist()
    keep = ("image_id", "projector_label", "predicted_label", "agree", "reasoning")
    if as_json:
        typer.echo(
            json.dumps({**res, "rows": [{k: r.get(k) for k in keep} for r in rows]}, indent=2, default=str)
        )
        return
    table = Table(title=f"Reasoning ({'conditional' if condition else 'no condition'}), run {run_dir.name}")
    for col in keep:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(str(r.get(k)) for k in keep))
    console.print(table)
    console.print(f"agree: {res.get('agree')}/{res.get('images')} · files: {res['path']}")


def register(app: typer.Typer) -> None:
    """Add ``predict`` and ``reground`` to the ``tinyemo`` command line."""
    app.command("predict")(predict_command)
    app.command("reground")(reground_command)
    app.command("reason")(reason_command)
