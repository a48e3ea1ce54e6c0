"""``tinyemo check``: validate flows.yaml and preflight a profile (``tinyemo validate`` is the same command).

``tinyemo run`` calls :func:`preflight_or_exit` before it imports Prefect, so a run that cannot work stops in
about a second with every problem in one table (exit code 2), not after a server start with a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pipelines.cli.options import ConfigOpt, JsonOpt, ProfileOpt, SetOpt, console, load
from tinyemo_core.config import RunConfig
from tinyemo_core.preflight import preflight
from tinyemo_core.preflight.resources import human

FLOWS_DIR = Path(__file__).resolve().parent.parent / "flows"
_FLOW_NAME = re.compile(r"""@flow\(\s*name\s*=\s*["']([\w-]+)["']""")


def declared_flow_names() -> list[str]:
    """The ``@flow(name=...)`` names under pipelines/flows/, read from the source (no Prefect import)."""
    names = {m for path in FLOWS_DIR.glob("*.py") for m in _FLOW_NAME.findall(path.read_text())}
    return sorted(names)


def print_report(report, *, title: str, as_json: bool = False) -> None:
    """The findings as one table (errors first), the disk estimate, and a one-line verdict."""
    if as_json:
        print(json.dumps({"ok": report.ok, "findings": [f.as_dict() for f in report.findings],
                          "estimate_bytes": report.estimate, "checked": report.checked}, indent=2))
        return
    findings = sorted(report.findings, key=lambda f: (f.severity != "error", f.check, f.subject))
    if findings:
        table = Table(title=title, show_lines=True)
        table.add_column("", no_wrap=True)
        table.add_column("check", no_wrap=True)
        table.add_column("what", overflow="fold")
        table.add_column("problem", overflow="fold", ratio=3)
        table.add_column("what to do", overflow="fold", ratio=3)
        for f in findings:
            mark = "[red]error[/red]" if f.severity == "error" else "[yellow]warn[/yellow]"
            table.add_row(mark, f.check, f.subject, f.problem, f.fix)
        console.print(table)
    if report.estimate:
        parts = ", ".join(f"{k} {human(v)}" for k, v in report.estimate.items() if v)
        console.print(f"Stores this run writes (estimate): {parts or 'nothing large'}")
    n_err = sum(f.severity == "error" for f in findings)
    n_warn = len(findings) - n_err
    if n_err:
        console.print(f"[red]{n_err} problem(s)[/red], {n_warn} warning(s): fix the rows above, then rerun.")
    else:
        checked = ", ".join(report.checked)
        console.print(f"[green]preflight passed[/green] ({n_warn} warning(s); checked {checked})")


def preflight_or_exit(cfg: RunConfig, flow: str | None, *, model: str | None = None,
                      smoke: bool = False) -> None:
    """Run the preflight for ``flow``; print the table and exit 2 when anything blocks the run."""
    report = preflight(cfg, flow, model=model, smoke=smoke)
    if report.findings:
        print_report(report, title=f"Preflight: {flow or 'profile'} · {cfg.profile}")
    if not report.ok:
        raise typer.Exit(2)


def check(
    config: ConfigOpt = Path("flows.yaml"),
    profile: ProfileOpt = "demo",
    overrides: SetOpt = None,
    flow: Annotated[str | None, typer.Option(
        "--flow", help="check only what this flow needs (default: everything the profile names)")] = None,
    show_config: Annotated[bool, typer.Option(
        "--show-config", help="also print the resolved profile as JSON")] = False,
    config_only: Annotated[bool, typer.Option(
        "--config-only", help="validate flows.yaml, print the resolved profile; no machine checks")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate flows.yaml and check this machine for a profile: dataset roots and layouts, model weights
    (local, cached or downloadable), generator and served endpoints, CUDA, free disk. Exit 2 on a problem."""
    cfg = load(config, profile, overrides)
    if show_config or config_only:
        console.print_json(cfg.model_dump_json(exclude={"flows"}))
    if config_only:
        return
    if flow is not None and flow not in declared_flow_names():
        console.print(f"[red]unknown flow {flow!r}[/red]; choose one of: {', '.join(declared_flow_names())}")
        raise typer.Exit(2)

    report = preflight(cfg, flow)
    print_report(report, title=f"Preflight: {flow or 'everything'} · profile {cfg.profile}", as_json=as_json)
    if not report.ok:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
    app.command("validate", help="Same as `tinyemo check` (add --config-only for the old flows.yaml-only "
                "validation).")(check)
