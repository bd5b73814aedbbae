"""The one output layer of both command lines: rich text for people, one JSON
document for programs, errors included.

A command builds its answer as a dict and says how to show it as text;
:func:`output` decides which one is printed. ``--json`` (:func:`use_json`) switches
the command's output to JSON before it runs. Errors are printed in one place
(:class:`BrokerGroup`): ``error: ...`` on stderr, or ``{"error": ..., "where": ...}``
on stdout under ``--json``, with the error's exit code.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as escape  # re-exported: the commands escape what they print
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from manifest_broker.boundary import printable as escape_controls
from manifest_broker.errors import BrokerError

# Result lines are grepped by scripts too: never wrapped (tables still fit the width).
console = Console(highlight=False, soft_wrap=True)
# Error lines are read by people and grepped by scripts: never wrapped.
errors = Console(stderr=True, highlight=False, soft_wrap=True)

if TYPE_CHECKING:  # pyarrow costs start-up time: only commands that have tables import it
    import pyarrow as pa

MAX_ROWS = 40


class Output:
    """Text output: a command's answer as rich text on stdout."""

    json = False

    def emit(self, payload: dict[str, Any], text: Callable[[], None]) -> None:
        """Show a command's answer: ``text()`` here, ``payload`` under ``--json``."""
        text()

    def error(self, exc: BrokerError) -> None:
        """One line ``error: ...`` on stderr (what the error carries besides, such as
        contract findings, is shown first)."""
        if (rows := exc.details.get("findings")) is not None and len(rows):
            findings(rows)
        errors.print(labelled("red", "error", str(exc)))


class JsonOutput(Output):
    """``--json``: exactly one JSON document on stdout, whatever happens."""

    json = True

    def emit(self, payload: dict[str, Any], text: Callable[[], None]) -> None:
        print_json(payload)

    def error(self, exc: BrokerError) -> None:
        print_json({"error": str(exc), "where": exc.where, "exit_code": exc.exit_code, **(exc.details or {})})


_current: Output = Output()


def output() -> Output:
    """The output of the command being run (text unless it was given ``--json``)."""
    return _current


def use_json(value: bool) -> bool:
    """The ``--json`` option's callback: from now on the command's output is JSON."""
    global _current
    _current = JsonOutput() if value else Output()
    return value


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout (no colour, no wrapping); numbers stay numbers.

    An Arrow table among the payload's values (a million contract findings) is
    written row by row, one batch of rows converted at a time, after the other
    keys: memory follows a batch, not the document."""
    tables = {k: v for k, v in payload.items() if hasattr(v, "to_batches")} if isinstance(payload, dict) else {}
    if not tables:
        sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")
        return
    rest = {k: v for k, v in payload.items() if k not in tables}
    out = sys.stdout
    head = json.dumps(rest, indent=2, default=_json_default)
    out.write(head[: head.rindex("}")].rstrip() + (",\n" if rest else "\n"))
    for n, (key, table) in enumerate(tables.items()):
        out.write(f"  {json.dumps(key)}: [")
        separator = "\n    "
        for batch in table.to_batches(max_chunksize=10_000):
            for row in batch.to_pylist():
                out.write(separator + json.dumps(row, default=_json_default))
                separator = ",\n    "
        out.write(("\n  ]" if separator != "\n    " else "]") + (",\n" if n < len(tables) - 1 else "\n"))
    out.write("}\n")
    out.flush()


def _json_default(value: Any) -> Any:
    """Values JSON has no type for: Decimal and other numbers as numbers, the rest as text."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "to_pylist"):  # an Arrow table (contract findings): its rows
        return value.to_pylist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def printable(value: object) -> str:
    """A cell as one line of text: control characters (tabs, line breaks) escaped."""
    return escape_controls("" if value is None else str(value))


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int | None = MAX_ROWS
) -> None:
    """Print rows: a rich table on a terminal; tab-separated lines, never wrapped or
    cut mid-value, when stdout is piped. At most ``limit`` rows either way."""
    shown = total = 0
    if not console.is_terminal:  # tabs kept as tabs (rich would expand them)
        lines = ([f"# {printable(title)}"] if title else []) + ["\t".join(columns)]
        for row in rows:
            total += 1
            if limit is None or shown < limit:
                lines.append("\t".join(printable(v) for v in row))
                shown += 1
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    else:
        out = Table(title=title, show_lines=False, title_justify="left")
        for column in columns:
            out.add_column(column, overflow="fold")
        for row in rows:
            total += 1
            if limit is None or shown < limit:
                out.add_row(*[printable(v) for v in row])
                shown += 1
        console.print(out)
    if total > shown:
        console.print(f"... {total - shown} more row(s) not shown (use --json for all)", markup=False)


def arrow_table(title: str | None, data: pa.Table, limit: int | None = MAX_ROWS) -> None:
    """Print an Arrow table."""
    columns = data.column_names
    table(title, columns, (tuple(r[c] for c in columns) for r in data.to_pylist()), limit)


FINDING_COLUMNS = ["rule", "severity", "manifest", "row", "column", "value", "message"]


def _finding_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Findings as table rows: severity coloured and values escaped for rich on a
    terminal; the values exactly as they are when piped (no markup to strip, and
    text such as ``T[meV]`` left alone)."""
    if not console.is_terminal:
        return [tuple(r[c] for c in FINDING_COLUMNS) for r in rows]
    return [
        (
            r["rule"],
            "[red]error[/]" if r["severity"] == "error" else "[yellow]warning[/]",
            *(escape(printable(r[c])) for c in FINDING_COLUMNS[2:]),
        )
        for r in rows
    ]


def findings(data: pa.Table) -> None:
    """The contract report: one row per finding, errors first; at most
    :data:`MAX_ROWS` of them converted and shown (a million findings are a line
    saying how many more, not a million Python rows)."""
    shown = data.select(FINDING_COLUMNS).slice(0, MAX_ROWS)
    table(None, FINDING_COLUMNS, _finding_rows(shown.to_pylist()))
    if data.num_rows > shown.num_rows:
        console.print(
            f"... {data.num_rows - shown.num_rows} more finding(s) not shown (use --json for all)", markup=False
        )


@contextmanager
def stages(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars with rate and time left on stderr, one per stage, while stderr
    is a terminal (quiet when piped, and under ``--json``); yields
    ``report(stage, done, total)``, safe from worker threads."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=errors,
        disable=not enabled or output().json or not errors.is_terminal,
        transient=True,
    )
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
    hold square brackets, which rich would take for markup, or control characters)."""
    return f"[{style}]{label}:[/] {escape(printable(message))}"


def warn(message: str) -> None:
    """``warning: ...`` on stderr (also under ``--json``: stdout holds the document)."""
    errors.print(labelled("yellow", "warning", message))


def _usage_line(exc: Any) -> str:
    """A click usage error as one line, naming the command to ask for help."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{exc.format_message()}{where}"


def _usage_errors() -> tuple[type[BaseException], ...]:
    """Click's UsageError: typer's own copy of click (newer typer) and click itself."""
    import click
    import typer.core

    vendored = getattr(typer.core, "_click", None)
    return tuple({click.exceptions.UsageError, *([vendored.exceptions.UsageError] if vendored else [])})


INTERRUPTED_ERROR = BrokerError(
    "interrupted (Ctrl-C): what was committed stays; a re-run finishes the job", exit_code=130
)


def _reporting_errors(call: Callable[[], Any], args: Sequence[str]) -> Any:
    """Run ``call``: a :class:`BrokerError`, a usage error (exit 2) or Ctrl-C (exit
    130) becomes one ``error:`` line on stderr, or the JSON error document on stdout
    when the command line asked for ``--json``."""
    import typer

    from manifest_broker.processes import INTERRUPTED

    try:
        return call()
    except typer.Exit:  # an exit code already decided (by a command, or an inner group)
        raise
    except KeyboardInterrupt:
        output().error(INTERRUPTED_ERROR)
        raise typer.Exit(130) from None
    except BrokerError as exc:  # also one that says what an interrupt left (register's count of what is missing)
        output().error(exc)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:
        if INTERRUPTED.is_set():  # a library turned the KeyboardInterrupt into an error of its own
            output().error(INTERRUPTED_ERROR)
            raise typer.Exit(130) from None
        if isinstance(exc, _usage_errors()):
            if "--json" in args:
                use_json(True)
            output().error(BrokerError(_usage_line(exc), exit_code=2))
            raise typer.Exit(2) from None
        if type(exc).__name__ == "OutOfMemoryException" and type(exc).__module__.startswith(("duckdb", "_duckdb")):
            output().error(duckdb_memory_error())
            raise typer.Exit(1) from None
        raise


def duckdb_memory_error() -> BrokerError:
    """What a DuckDB out of memory is told as: the limits in force, the way out."""
    import os

    from manifest_broker.queries import STAGE_MEMORY_LIMIT

    given = os.environ.get("BROKER_DUCKDB_MEMORY", "").strip()
    limits = (
        f"BROKER_DUCKDB_MEMORY={given}"
        if given
        else f"BROKER_DUCKDB_MEMORY; the broker's stages take {STAGE_MEMORY_LIMIT}, a query a quarter of the host's "
        "memory"
    )
    return BrokerError(
        f"DuckDB ran out of the memory it may use ({limits}): set BROKER_DUCKDB_MEMORY higher "
        "(e.g. 2GB) and run again; nothing was written"
    )


class BrokerGroup(TyperGroup):
    """The command group of ``broker``: the one place where a :class:`BrokerError`
    of any subcommand, a usage error or Ctrl-C becomes ``error: ...`` on stderr (or
    the JSON error document) and its exit code."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        use_json(False)  # a fresh answer per invocation; --json sets it while a command's options are read
        given = list(args)
        ctx = _reporting_errors(lambda: super(BrokerGroup, self).make_context(info_name, args, parent, **extra), given)
        ctx.meta["broker_args"] = given
        return ctx

    def invoke(self, ctx: Any) -> Any:
        return _reporting_errors(lambda: super(BrokerGroup, self).invoke(ctx), ctx.meta.get("broker_args", []))


class BrokerCommand(TyperCommand):
    """The same, for a program of one command (``iceberg-packager``)."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        use_json(False)
        return _reporting_errors(
            lambda: super(BrokerCommand, self).make_context(info_name, args, parent, **extra), list(args)
        )

    def invoke(self, ctx: Any) -> Any:
        return _reporting_errors(lambda: super(BrokerCommand, self).invoke(ctx), sys.argv[1:])
