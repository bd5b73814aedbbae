"""`broker index create|list|drop`: the metadata indexes Tiled's searches use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline._shared import JsonOption
from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from manifest_broker.catalog.index import MetadataIndex

app = typer.Typer(
    help="Metadata indexes for Tiled's Key(col) > / < searches (PostgreSQL catalogs).",
    no_args_is_help=True,
    cls=render.BrokerGroup,
)

CatalogOption = Annotated[str, typer.Option("--catalog", help="The catalog database (SQLite file or postgresql://).")]
KeysArgument = Annotated[list[str] | None, typer.Argument(help="Metadata keys (a.b reaches nested metadata).")]


def _emit(indexes: list[MetadataIndex], headline: str) -> None:
    rows = [i.__dict__ for i in indexes]

    def text() -> None:
        for i in indexes:
            size = f"{i.bytes / 2**20:,.1f} MiB" if i.bytes is not None else "-"
            render.console.print(f"{i.name}  {i.key or '?'}  {size}  {i.definition}", markup=False)
        render.console.print(headline, markup=False)

    render.output().emit({"indexes": rows, "count": len(rows)}, text)


@app.command()
def create(keys: KeysArgument = None, catalog: CatalogOption = "", as_json: JsonOption = False) -> None:
    """Create (when missing) one index per metadata key, for Tiled's range searches on it (PostgreSQL only: SQLite cannot use one, see the README)."""
    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.index import create_indexes

    if not catalog or not keys:
        raise BrokerError("give --catalog and at least one metadata key", exit_code=2)
    indexes = create_indexes(locate(catalog), keys)
    _emit(indexes, f"{len(indexes)} broker index(es) on the catalog")


@app.command("list")
def list_(catalog: CatalogOption = "", as_json: JsonOption = False) -> None:
    """List the broker's indexes (named broker_ix_...) with the key each serves."""
    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.index import list_indexes

    if not catalog:
        raise BrokerError("give --catalog", exit_code=2)
    indexes = list_indexes(locate(catalog))
    _emit(indexes, f"{len(indexes)} broker index(es) on the catalog")


@app.command()
def drop(
    keys: KeysArgument = None,
    catalog: CatalogOption = "",
    every: Annotated[bool, typer.Option("--all", help="Drop every broker index.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Drop the broker's indexes of these keys (or names), or --all of them; Tiled's own indexes are never touched."""
    from manifest_broker.catalog.database import locate
    from manifest_broker.catalog.index import drop_indexes

    if not catalog or bool(keys) == every:
        raise BrokerError("give --catalog and either metadata keys or --all", exit_code=2)
    names = drop_indexes(locate(catalog), keys or [], every=every)
    render.output().emit(
        {"dropped": names}, lambda: render.console.print(f"dropped {len(names)} index(es)", markup=False)
    )
