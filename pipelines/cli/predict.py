"""``tinyemo predict`` (rank emotions for images with a trained run) and ``tinyemo reground`` (Table VII).

``register(app)`` adds both commands to the ``tinyemo`` typer app. ``predict`` runs without Prefect (it is
an interactive, one-shot command); ``reground`` starts the ``reground-labels`` flow.
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


def predict_command(
    images: Annotated[list[Path], typer.Argument(help="image files and/or folders (searched recursively)")],
    run: Annotated[str, typer.Option("--run", "-r", help="run folder, its name under storage/runs, or latest")
                   ] = "latest",
    labels: Annotated[str | None, typer.Option(help="comma-separated label words, e.g. 'joy,sadness'")
                      ] = None,
    taxonomy: Annotated[str | None, typer.Option(help="a taxonomy (ekman6, mikels8, ...) or a dataset name")
                        ] = None,
    template: Annotated[str | None, typer.Option(help="label template, e.g. 'a photo evoking {label}'")
                        ] = None,
    top: Annotated[int, typer.Option(help="show the best K labels per image (0: all)", min=0)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Rank emotions for images with a trained projector run (cosine to each label embedding)."""
    from tinyemo_core.stages import predict as core

    try:
        cfg = load_config(config, profile, overrides or [])
        run_dir = core.resolve_run(run, cfg.storage_root)
        cfg = core.config_for_run(cfg, run_dir, overrides or [])
        pairs = core.label_set(cfg, labels, taxonomy, template)
        preds, info = core.predict(core.image_paths(images), run_dir, cfg, pairs,
                                   which=cfg.spec.evaluation.checkpoint)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    k = top or len(pairs)
    if as_json:
        payload = {**info, "predictions": [{**p.to_dict(), "labels": p.labels[:k], "scores": p.scores[:k]}
                                           for p in preds]}
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_tables(preds, info, len(pairs), k)
    if any(p.error for p in preds):
        raise typer.Exit(1)  # partial failure: every other image was still ranked and printed


def _print_tables(preds: list, info: dict, n_labels: int, k: int) -> None:
    console.print(f"run [bold]{Path(info['run']).name}[/bold] · {info['encoder']} · {info['backbone']} · "
                  f"{n_labels} labels ({info['labels_embedded']} newly embedded)")
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


def reground_command(
    maps: Annotated[list[str] | None, typer.Option(
        "--map", "-m", help="WORD=TEXT re-grounds one class, e.g. joy='cheerful and content' (repeatable)"
    )] = None,
    template: Annotated[str | None, typer.Option(help="a new label template, e.g. 'a photo of {label}'")
                        ] = None,
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
    result = reground_labels(config=str(config), profile=profile, overrides=overrides or [],
                             variants=variants)
    console.print(Path(result["markdown"]).read_text())
    console.print(f"Report: [bold]{result['markdown']}[/bold]")


def register(app: typer.Typer) -> None:
    """Add ``predict`` and ``reground`` to the ``tinyemo`` command line."""
    app.command("predict")(predict_command)
    app.command("reground")(reground_command)
