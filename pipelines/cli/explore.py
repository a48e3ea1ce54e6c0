"""``tinyemo explore similar|concepts|counterfactual``: the Metric Projector as an interpretability
instrument (TinyEmo §IV-F/G, §V-C). One-shot interactive commands (no Prefect): they read the stores and run
an image forward pass only for image files given on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt, console, fail, load, print_rows
from tinyemo_core.interpret.spec import InterpretSpec
from tinyemo_core.stages.interpret import explore_concepts, explore_counterfactual, explore_similar
from tinyemo_core.stages.interpret_atlas import default_dataset
from tinyemo_core.store.runs import resolve_run

explore_app = typer.Typer(
    help="Retrieval, concept/token probing and counterfactuals over cached features.", no_args_is_help=True
)
RunOpt = Annotated[
    str, typer.Option("--run", "-r", help="run folder, its name under storage/runs, or latest")
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="dataset (default: the profile's interpret.dataset or first zero-shot)"
    ),
]


def _context(config: Path, profile: str, overrides: list[str] | None, run: str):
    cfg = load(config, profile, overrides)
    try:
        return cfg, resolve_run(run, cfg.storage_root)
    except FileNotFoundError as exc:
        raise fail(exc) from None


def _dataset(cfg, dataset: str | None) -> str:
    return dataset or default_dataset(cfg, cfg.spec.interpret or InterpretSpec())


ERRORS = (ValueError, KeyError, FileNotFoundError, IndexError)


@explore_app.command("similar")
def similar(
    query: Annotated[str, typer.Argument(help="an image file, an image id of the dataset, or a text")],
    k: Annotated[int, typer.Option("-k", help="neighbours", min=1)] = 16,
    run: RunOpt = "latest",
    dataset: DatasetOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Nearest images to QUERY by cosine in the projected space; table + image grid PNG (Fig. 12)."""
    cfg, run_dir = _context(config, profile, overrides, run)
    try:
        res = explore_similar(cfg, run_dir, _dataset(cfg, dataset), query, k=k)
    except ERRORS as exc:
        raise fail(exc) from None
    rows = [
        {k2: r[k2] for k2 in ("rank", "image_id", "label", "distance", "cosine", "path")}
        for r in res["results"]
    ]
    print_rows(rows, title=f"Nearest to {res['kind']} {query}", as_json=as_json)
    if not as_json and res.get("grid"):  # no grid for a features-only dataset
        console.print(f"grid: [bold]{res['grid']}[/bold]")


@explore_app.command("concepts")
def concepts(
    image: Annotated[str, typer.Argument(help="an image file, or an image id with --dataset")],
    concepts_file: Annotated[
        Path | None,
        typer.Option("--concepts", help="concept list (YAML/text; default: the bundled ~200 concepts)"),
    ] = None,
    top: Annotated[int, typer.Option(help="concepts shown", min=1)] = 20,
    tokens: Annotated[int, typer.Option(help="vocabulary tokens shown", min=0)] = 20,
    run: RunOpt = "latest",
    dataset: DatasetOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Rank a concept list and the backbone's whole vocabulary for one image (§IV-G, Fig. 7)."""
    cfg, run_dir = _context(config, profile, overrides, run)
    try:
        res = explore_concepts(
            cfg, run_dir, image, dataset=dataset, concepts=concepts_file, top=top, tokens=tokens
        )
    except ERRORS as exc:
        raise fail(exc) from None
    if as_json:
        print(
            json.dumps(
                {k: res[k] for k in ("image", "run", "concepts_source", "top_concepts", "tokens")},
                indent=2,
                default=str,
            )
        )
        return
    print_rows(res["top_concepts"], title=f"Concepts nearest to {image} ({res['concepts_source']})")
    if res.get("tokens"):
        print_rows(res["tokens"], title="Nearest vocabulary tokens")


@explore_app.command("counterfactual")
def counterfactual(
    original: Annotated[
        Path, typer.Argument(help="the original image, or a folder with original/ + edited/")
    ],
    edited: Annotated[
        Path | None, typer.Argument(help="the edited image (omit when ORIGINAL is a folder)")
    ] = None,
    neurons: Annotated[
        str | None, typer.Option(help="comma-separated hidden neurons, e.g. 1381,1793")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="comma-separated label words")] = None,
    taxonomy: Annotated[str | None, typer.Option(help="a taxonomy or dataset name")] = None,
    target: Annotated[str | None, typer.Option(help="label whose distance is followed")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for the bar charts and pair images")] = None,
    run: RunOpt = "latest",
    as_json: JsonOpt = False,
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
) -> None:
    """Neuron changes, label distances before/after (Fig. 15) and prediction flips for edited images."""
    cfg, run_dir = _context(config, profile, overrides, run)
    pairs = original if edited is None else [(original.stem, original, edited)]
    try:
        chosen = [int(n) for n in neurons.split(",")] if neurons else []
        res = explore_counterfactual(
            cfg, run_dir, pairs, labels=labels, taxonomy=taxonomy, neurons=chosen, target=target, out_dir=out
        )
    except ERRORS as exc:
        raise fail(exc) from None
    if as_json:
        print(json.dumps(res, indent=2, default=str))
        return
    rows = [
        {
            "pair": p["pair"],
            "before": p["prediction_before"],
            "after": p["prediction_after"],
            "flipped": p["flipped"],
            **{f"neuron {x['neuron']}": round(x["change"], 3) for x in p["neurons"]},
        }
        for p in res["pairs"]
    ]
    print_rows(rows, title=f"Counterfactuals (neurons {res['neurons']})")
    console.print(f"verdict: [bold]{res['summary']['verdict']}[/bold]")


def register(app: typer.Typer) -> None:
    app.add_typer(explore_app, name="explore")
