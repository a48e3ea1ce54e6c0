"""Store commands: ``tinyemo import-features`` (bring your own feature cache) and ``tinyemo migrate-stores``
(format-1 stores rewritten as format 2, in place, atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.options import ConfigOpt, ProfileOpt, SetOpt, console, fail, load, print_rows
from tinyemo_core.data.feature_sources import list_source
from tinyemo_core.stages.import_features import FeatureImportError
from tinyemo_core.store.migrate import migrate_stores


def import_features_command(
    dataset: Annotated[str, typer.Argument(help="a flows.yaml dataset (any profile), or a new name")],
    source: Annotated[
        Path, typer.Argument(help="a folder of <split>/<class>/<name>.pt tensors, a .npy, or a Parquet/Arrow "
                                  "table of name, label, split, vector")
    ],
    encoder: Annotated[
        str | None,
        typer.Option(help="the flows.yaml encoder that produced the features (default: the profile's)"),
    ] = None,
    table: Annotated[
        Path | None,
        typer.Option(
            help=".npy source: CSV/Parquet with name (or path), label, split columns, one row per matrix row"
        ),
    ] = None,
    split_file: Annotated[
        Path | None,
        typer.Option(help="JSON {name: split} or CSV name,split: splits where the source has none"),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="rebuild a store that holds an earlier import of another source")
    ] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Import an existing feature cache as a feature store; train-projector and evaluate then extract nothing.

    Only DATASET is touched. Without its images it becomes a features-only dataset (ids from the source's
    names; docs/datasets.md). Pickles are never executed: .pt files must hold a tensor (read with
    weights_only), .npy no objects.
    """
    from pipelines.flows.import_features import import_features
    from pipelines.runtime.runners import task_runner_from
    cfg = load(config, profile, [*(overrides or []), *([f"encoder={encoder}"] if encoder else [])])
    try:
        list_source(source, table=table, split_file=split_file)  # a bad source fails here, in one line
    except (FeatureImportError, ValueError, OSError) as exc:
        raise fail(exc) from None
    try:
        desc = import_features.with_options(task_runner=task_runner_from(cfg.flows.task_runner))(
            config=str(cfg.config_path),
            profile=profile,
            overrides=overrides or [],
            dataset=dataset,
            source=str(source),
            table=str(table) if table else None,
            encoder=encoder,
            split_file=str(split_file) if split_file else None,
            replace=replace,
        )
    except (FeatureImportError, ValueError, FileNotFoundError) as exc:
        raise fail(exc) from None
    keys = ("dataset", "declared_encoder", "id_source", "imported", "missing", "unmatched", "ambiguous")
    print_rows([{k: desc.get(k) for k in keys}], title="Imported features")
    for note in desc.get("notes") or []:
        console.print(f"note: {note}")
    if desc.get("features_only"):
        console.print(f"{dataset} is features-only (no images): use it with --set held_in=[{dataset}] or "
                      f"zero_shot=[...] and --set encoder={desc.get('declared_encoder')}")
    if desc.get("missing"):
        console.print(
            f"{desc['missing']} image(s) of {dataset} had no cached feature; "
            "`tinyemo run extract-features` computes exactly those"
        )


def migrate_stores_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be rewritten; change nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
) -> None:
    """Rewrite format-1 feature shards and label tables as format 2 (fingerprints unchanged: nothing is
    re-extracted or retrained; old stores also load as they are). Run while no flow writes to the stores."""
    cfg = load(config, profile)
    res = migrate_stores(cfg.storage_root, dry_run=dry_run)
    rows = [
        {
            "kind": p["kind"],
            "path": p["path"],
            "mb": round(p["bytes"] / 1e6, 2),
            "migrated": bool(p.get("migrated")),
        }
        for p in res["stores"]
    ]
    verb = "would rewrite (dry run)" if dry_run else "rewrote"
    print_rows(
        rows,
        title=f"{verb} {len(rows)} store(s) under {cfg.storage_root}",
        as_json=as_json,
        empty=f"every store under {cfg.storage_root} is already format 2",
    )


def register(app: typer.Typer) -> None:
    app.command("import-features")(import_features_command)
    app.command("migrate-stores")(migrate_stores_command)
