"""The ``tinyemo`` command line: run flows, inspect stores."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

import pipelines  # noqa: F401  (sets PREFECT_HOME etc. before Prefect is imported)
from pipelines.cli import check as check_commands
from pipelines.cli import explore as explore_commands
from pipelines.cli import generation as generation_commands
from pipelines.cli import ops as ops_commands
from pipelines.cli import predict as predict_commands
from pipelines.cli import stores as stores_commands
from pipelines.cli.check import declared_flow_names, preflight_or_exit
from pipelines.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt, console, fail, load, print_rows
from pipelines.cli.smoke import enter_smoke
from pipelines.flows import flows
from tinyemo_core.smoke import smoke_roots
from tinyemo_core.stages.features_only import NeedsImages, check_flow
from tinyemo_core.store.evaluations import read_report
from tinyemo_core.store.inventory import inventory

app = typer.Typer(
    help="tinyemo: build, train and evaluate small emotion-aware vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def run(
    flow: Annotated[
        str,
        typer.Argument(help="a flow name; `tinyemo flows` lists them"),
    ],
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param", help="a flow parameter NAME=VALUE (YAML value), e.g. --param stages=[pretrain]"
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="evaluate-generated: a saved model folder or a served model id")
    ] = None,
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="the profile as written, but on a few generated images in each dataset's own layout "
        "and tiny random models of the same families, under <storage_root>/smoke/<profile>/")] = False,
) -> None:
    """Run one flow through Prefect (embedded server unless PREFECT_API_URL points at one).

    A preflight (`tinyemo check`) runs first, before Prefect starts: any problem stops the run (exit 2)."""
    import contextlib

    if flow not in (names := declared_flow_names()):
        console.print(f"[red]unknown flow {flow!r}[/red]; choose one of: {', '.join(names)}")
        raise typer.Exit(2)
    cfg = load(config, profile, overrides)

    try:
        check_flow(cfg, flow)  # a flow that needs pixels refuses a features-only dataset in one line
    except NeedsImages as exc:
        raise fail(exc) from None
    with contextlib.ExitStack() as stack:
        if smoke:
            cfg, overrides = enter_smoke(stack, cfg, flow, overrides or [])
        preflight_or_exit(cfg, flow, model=model, smoke=smoke)
        _run_flow(flow, cfg, overrides or [], params, model)


def _run_flow(flow: str, cfg, overrides: list[str], params: list[str] | None, model: str | None) -> None:
    import inspect

    import yaml

    known = flows()
    if flow not in known:
        console.print(f"[red]unknown flow {flow!r}[/red]; choose one of: {', '.join(known)}")
        raise typer.Exit(2)
    accepted = inspect.signature(known[flow].fn).parameters
    extra: dict = {}
    for item in params or []:
        name, _, value = item.partition("=")
        if not _ or name not in accepted or name in ("config", "profile", "overrides"):
            choices = [p for p in accepted if p not in ("config", "profile", "overrides")]
            raise fail(f"--param {item!r}: {flow} takes NAME=VALUE with NAME in {choices or 'nothing'}")
        try:
            extra[name] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise fail(f"--param {item!r}: the value is not valid YAML; quote it") from None
    if model is not None:
        if "model" not in accepted:
            raise fail(f"--model: {flow} takes no model (evaluate-generated does)")
        extra["model"] = model
    console.print(
        f"[bold]tinyemo[/bold] {flow} · profile [cyan]{cfg.profile}[/cyan] · store {cfg.storage_root}"
    )
    start = time.perf_counter()
    from pipelines.runtime.runners import task_runner_from

    runner = task_runner_from(cfg.flows.task_runner)
    result = known[flow].with_options(task_runner=runner)(
        config=str(cfg.config_path), profile=cfg.profile, overrides=overrides, **extra
    )
    console.print(f"[green]{flow} finished in {time.perf_counter() - start:.1f} s[/green]")
    _print_result(result)


def _print_result(result: dict) -> None:
    if result.get("markdown") and Path(result["markdown"]).exists():
        from rich.markdown import Markdown

        console.print(Markdown(Path(result["markdown"]).read_text()))
        console.print(f"Table: [bold]{result['markdown']}[/bold]")
        return
    summary = result.get("summary") or {}
    if summary.get("datasets"):
        rows = summary["datasets"]
        # the scores the summary has (TinyEmo Table VI judges free text: CLIP-S / RefCLIP-S, no accuracy)
        scores = [k for k in ("accuracy", "clip_score", "ref_clip_score")
                  if any(k in d for d in rows.values())]
        title = ("Accuracy per dataset (own label set, exact match)" if "accuracy" in scores
                 else "Scores per dataset (x100)")
        table = Table(title=title)
        for col in ("dataset", "role", "n", *scores):
            table.add_column(col)
        for name, d in rows.items():
            cells = [f"{100 * d[k]:.2f}" + ("%" if k == "accuracy" else "") if d.get(k) is not None else "-"
                     for k in scores]
            table.add_row(name, str(d.get("role")), str(d.get("n")), *cells)
        console.print(table)
        for key in ("held_in_mean", "zero_shot_mean", "total"):
            if summary.get(key) is not None:
                console.print(f"{key}: {100 * summary[key]:.2f}%")
    if result.get("report_dir"):
        console.print(f"Report: [bold]{Path(result['report_dir']) / 'report.md'}[/bold]")
    if (trained := result.get("finetune")) and trained.get("model"):
        console.print(f"Reasoning model ({trained.get('recipe')}): [bold]{trained['model']}[/bold]")
    if (reasoned := result.get("reason")) and reasoned.get("path"):
        console.print(
            f"Conditional reasoning: {reasoned.get('agree')}/{reasoned.get('images')} answers agree "
            f"with the projector; samples: [bold]{Path(reasoned['path']) / 'samples.md'}[/bold]"
        )
        _print_second_half(summary, reasoned, result.get("evaluate_generated"))
    elif not summary:
        console.print_json(json.dumps(result, default=str))


def _print_second_half(summary: dict, reasoned: dict, judged: dict | None) -> None:
    """The end of full-pipeline (``make demo``): on the reasoning dataset's test split, the projector's
    accuracy, how often conditional reasoning names the projector's label, and the accuracy of the trained
    model's answers written without the label (evaluate-generated), with chance."""
    name, n = reasoned.get("name"), reasoned.get("images") or 0
    projector = (summary.get("datasets") or {}).get(name) or {}
    lines = []
    if projector.get("accuracy") is not None:
        lines.append(f"projector accuracy                        {100 * projector['accuracy']:5.1f} %")
    if n:
        lines.append(f"conditional reasoning agrees with it      {100 * reasoned.get('agree', 0) / n:5.1f} %"
                     f"  ({reasoned.get('agree')}/{n}; {reasoned.get('parsed')} with a Predicted Label)")
    from tinyemo_core.judge.metrics import NONE_COLUMN

    report = (read_report(Path(judged["report_dir"])) if judged and judged.get("report_dir") else None) or {}
    d = (report.get("summary", {}).get("datasets") or {}).get(name)
    labels = [c for c in (d or {}).get("confusion_columns", []) if c != NONE_COLUMN]  # the offered labels
    if d and labels:
        lines.append(f"answers without the label (trained model) {100 * d['accuracy']:5.1f} %  (n={d['n']}; "
                     f"chance {100 / len(labels):.1f} % = 1 of {len(labels)} labels)")
    if lines:
        console.print(f"[bold]Second half on {name} test ({n} images)[/bold]")
        for line in lines:
            console.print("  " + line)


@app.command("flows")
def list_flows(as_json: JsonOpt = False) -> None:
    """The flows `tinyemo run` (and `prefect deployment run FLOW/NAME`) can start, with what each does."""
    rows = [
        {"flow": name, "does": " ".join((f.description or "").strip().split("\n\n")[0].split())}
        for name, f in flows().items()
    ]
    print_rows(rows, title="Flows", as_json=as_json)


@app.command()
def status(
    config: ConfigOpt = Path("flows.yaml"), profile: ProfileOpt = "demo", as_json: JsonOpt = False,
    overrides: SetOpt = None,
) -> None:
    """List every store under the storage root and whether it is complete; smoke-run stores
    (`tinyemo run --smoke`, under <storage_root>/smoke/<profile>/) are listed after them, marked smoke."""
    cfg = load(config, profile, overrides)
    roots = {"": cfg.storage_root, **{f"smoke:{p}": r for p, r in smoke_roots(cfg.storage_root).items()}}
    rows = [
        {
            "kind": e.kind,
            "name": e.name,
            "complete": e.complete,
            "rows": e.rows,
            "size_mb": round(e.size_bytes / 1e6, 2),
            "fingerprint": e.fingerprint,
            "produced_by": e.produced_by,
            **({"smoke": tag} if tag else {}),
        }
        for tag, root in roots.items()
        for e in inventory(root)
    ]
    print_rows(
        rows,
        title=f"Stores under {cfg.storage_root}",
        as_json=as_json,
        empty="no stores yet: run `tinyemo run build-dataset`",
    )


def _register_extensions() -> None:
    """Commands that live in their own modules (check, explore, generation, operations, predict, stores)."""
    for module in (check_commands, explore_commands, generation_commands, ops_commands, predict_commands,
                   stores_commands):
        module.register(app)


_register_extensions()
