"""Store commands: ``tinyemo import-features`` (bring your own feature cache)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.options import ConfigOpt, ProfileOpt, SetOpt, console, fail, load, print_rows


def import_features_command(
    dataset: Annotated[str, typer.Argument(help="a dataset of the profile (its images must be present)")],
    source: Annotated[Path, typer.Argument(help="a folder of <split>/<class>/<name>.pt tensors, or a .npy")],
    encoder: Annotated[str | None, typer.Option(help="the flows.yaml encoder that produced the features "
                                                     "(default: the profile's)")] = None,
    table: Annotated[Path | None, typer.Option(help=".npy source: CSV/Parquet with a path and/or image_id "
                                                    "column, one row per matrix row")] = None,
    config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo", overrides: SetOpt = None,
) -> None:
    """Import an existing feature cache as a feature store; train-projector and evaluate then extract nothing.

    Pickles are never executed: .pt files must hold a tensor (read with weights_only), .npy no objects.
    """
    from pipelines.flows.import_features import import_features
    from pipelines.runtime.runners import task_runner_from
    from tinyemo_core.stages.import_features import FeatureImportError

    cfg = load(config, profile, overrides)
    try:
        desc = import_features.with_options(task_runner=task_runner_from(cfg.flows.task_runner))(
            config=str(cfg.config_path), profile=profile, overrides=overrides or [], dataset=dataset,
            source=str(source), table=str(table) if table else None, encoder=encoder)
    except (FeatureImportError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from None
    keys = ("dataset", "declared_encoder", "id_source", "imported", "missing", "unmatched", "ambiguous")
    print_rows([{k: desc.get(k) for k in keys}], title="Imported features")
    if desc.get("missing"):
        console.print(f"{desc['missing']} image(s) of {dataset} had no cached feature; "
                      "`tinyemo run extract-features` computes exactly those")


def register(app: typer.Typer) -> None:
    app.command("import-features")(import_features_command)
