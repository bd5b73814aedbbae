"""Rendering of core results: rich text for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(highlight=False)
# Error lines are read by people and grepped by scripts: never wrapped.
errors = Console(stderr=True, highlight=False, soft_wrap=True)

if TYPE_CHECKING:  # pyarrow costs start-up time: only commands that have tables import it
    import pyarrow as pa

MAX_ROWS = 40


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout (no colour, no wrapping)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int | None = MAX_ROWS) -> None:
    """Print rows as a rich table, at most ``limit`` of them."""
    out = Table(title=title, show_lines=False, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    shown = total = 0
    for row in rows:
        total += 1
        if limit is None or shown < limit:
            out.add_row(*["" if v is None else str(v) for v in row])
            shown += 1
    console.print(out)
    if total > shown:
        console.print(f"... {total - shown} more row(s) not shown (use --json for all)")


def arrow_table(title: str | None, data: pa.Table, limit: int | None = MAX_ROWS) -> None:
    """Print an Arrow table."""
    columns = data.column_names
    table(title, columns, (tuple(r[c] for c in columns) for r in data.to_pylist()), limit)


def findings(data: pa.Table) -> None:
    """The contract report: one row per finding, errors first."""
    rows = data.select(["rule", "severity", "manifest", "row", "column", "value", "message"]).to_pylist()
    styled = [
        (r["rule"], ("[red]error[/]" if r["severity"] == "error" else "[yellow]warning[/]"),
         r["manifest"], r["row"], r["column"], r["value"], r["message"])
        for r in rows
    ]  # fmt: skip
    table(None, ["rule", "severity", "manifest", "row", "column", "value", "message"], styled)


def labelled(style: str, label: str, message: str) -> str:
    """``label:`` in ``style``, then ``message`` as plain text (paths and messages may
    hold square brackets, which rich would take for markup)."""
    return f"[{style}]{label}:[/] {escape(message)}"


def fail(message: str, code: int = 1) -> Exception:
    """Print ``error: message`` to stderr and return the exit to raise (typer.Exit)."""
    import typer

    errors.print(labelled("red", "error", message))
    return typer.Exit(code)
