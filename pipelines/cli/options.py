"""Options and helpers every ``tinyemo`` command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.runtime.memo import load_config_once
from tinyemo_core.config import ConfigError, RunConfig

console = Console()

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="flows.yaml to read")]
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="profile in flows.yaml")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="override KEY=VALUE (repeatable)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def fail(message: object) -> typer.Exit:
    """Print ``message`` in red and return the exit (status 2) to raise."""
    console.print(f"[red]{message}[/red]", soft_wrap=True)
    return typer.Exit(2)


def load(config: Path, profile: str, overrides: list[str] | None = None) -> RunConfig:
    """The resolved profile, or exit 2 with the validation error (which names the offending field)."""
    try:
        return load_config_once(config, profile, overrides or [])  # the flow reuses it: loaded once
    except ConfigError as exc:
        raise fail(exc) from None


def print_rows(rows: list[dict], *, title: str, as_json: bool = False,
               empty: str = "nothing to list") -> None:
    """A listing: JSON with ``--json``; a table on a terminal (the first column, the name, is never wrapped or
    cut; other long values fold onto more lines); tab-separated lines with a header when piped."""
    import json
    import sys

    from rich.table import Table

    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        console.print(empty)
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if not console.is_terminal:
        print(f"# {title}", file=sys.stderr)  # stdout stays plain rows for cut/awk
        print("\t".join(columns))
        for row in rows:
            print("\t".join(_cell(row.get(c)) for c in columns))
        return
    table = Table(title=title)
    first = max(len(_cell(row.get(columns[0]))) for row in rows)
    table.add_column(columns[0], no_wrap=True, min_width=max(first, len(columns[0])))  # the name: whole
    for col in columns[1:]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    console.print(table)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
