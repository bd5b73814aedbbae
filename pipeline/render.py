"""Rendering of core results: rich text for people, JSON for programs."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from manifest_broker.errors import BrokerError

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


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int | None = MAX_ROWS
) -> None:
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
def stages(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars with rate and time left on stderr, one per stage, while stderr
    is a terminal (quiet when piped, or when ``enabled`` is false, e.g. for
    ``--json``); yields ``report(stage, done, total)``, safe from worker threads."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
        console=errors, disable=not enabled or not errors.is_terminal, transient=True,
    )  # fmt: skip
    tasks: dict[str, tuple[Any, float]] = {}
    adding = threading.Lock()

    def report(stage: str, done: int, total: int) -> None:
        with adding:  # two threads starting one stage make one bar
            if stage not in tasks:
                tasks[stage] = (bar.add_task(stage, total=total, rate=""), time.monotonic())
            task, started = tasks[stage]
        elapsed = time.monotonic() - started
        # A rate only for stages of many steps, once it means something.
        rate = f"{done / elapsed:,.0f}/s" if total > 1 and done and elapsed > 0.2 else ""
        bar.update(task, completed=done, total=total, rate=rate)

    with bar:
        yield report


@contextmanager
def progress(label: str, total: int, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """One stage of :func:`stages`; yields ``update(done)``."""
    with stages(enabled) as report:
        yield lambda done: report(label, done, total)


def labelled(style: str, label: str, message: str) -> str:
    """``label:`` in ``style``, then ``message`` as plain text (paths and messages may
    hold square brackets, which rich would take for markup)."""
    return f"[{style}]{label}:[/] {escape(message)}"


def fail(message: str, code: int = 1, where: object = None) -> BrokerError:
    """The error to raise for ``message``: printed as ``error: message`` with exit
    ``code`` by the one handler (:class:`BrokerGroup`)."""
    return BrokerError(message, where=where, exit_code=code)


def _invoke_reporting_errors(invoke: Callable[[Any], Any], ctx: Any) -> Any:
    import typer

    try:
        return invoke(ctx)
    except BrokerError as exc:
        errors.print(labelled("red", "error", str(exc)))
        raise typer.Exit(exc.exit_code) from None


class BrokerGroup(TyperGroup):
    """The command group of ``broker``: the one place where a :class:`BrokerError`
    of any subcommand becomes ``error: ...`` on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        return _invoke_reporting_errors(super().invoke, ctx)


class BrokerCommand(TyperCommand):
    """The same, for a program of one command (``iceberg-packager``)."""

    def invoke(self, ctx: Any) -> Any:
        return _invoke_reporting_errors(super().invoke, ctx)
