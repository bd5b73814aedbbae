"""Rendering of core results: rich text for people, JSON for programs."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Result lines are grepped by scripts too: never wrapped (tables still fit the width).
console = Console(highlight=False, soft_wrap=True)
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


@contextmanager
def progress(label: str, total: int, *, unit: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar with rate on stderr (when stderr is a terminal); yields
    ``update(done)``, safe to call from worker threads."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        console=errors, disable=not enabled or not errors.is_terminal, transient=True,
    )  # fmt: skip
    task = bar.add_task(label, total=total, rate="")
    started = time.monotonic()

    def update(done: int) -> None:
        elapsed = time.monotonic() - started
        bar.update(task, completed=done, rate=f"{done / elapsed:,.0f} {unit}/s" if elapsed > 0 else "")

    with bar:
        yield update


def labelled(style: str, label: str, message: str) -> str:
    """``label:`` in ``style``, then ``message`` as plain text (paths and messages may
    hold square brackets, which rich would take for markup)."""
    return f"[{style}]{label}:[/] {escape(message)}"


def fail(message: str, code: int = 1) -> Exception:
    """Print ``error: message`` to stderr and return the exit to raise (typer.Exit)."""
    import typer

    errors.print(labelled("red", "error", message))
    return typer.Exit(code)
