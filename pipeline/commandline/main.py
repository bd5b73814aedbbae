"""The `broker` command: every command group on one typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline import _catalog, _provider, _server, _tnr

app = typer.Typer(
    help="Register HDF5 datasets in a Tiled catalog from Parquet manifests; package tNR runs into Iceberg.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=render.BrokerGroup,
)


def _version(value: bool) -> None:
    if value:
        from manifest_broker import __version__

        render.console.print(f"manifest-broker {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Register HDF5 datasets in a Tiled catalog from Parquet manifests; package tNR runs into Iceberg."""


# In the guide's order: explore and generate, check and ingest, serve, register,
# verify and locate; then tNR.
_provider.register_commands(app)
_catalog.register_commands(app)
_server.register_commands(app)
app.add_typer(_tnr.app, name="tnr")

if __name__ == "__main__":  # python -m manifest_broker.commandline.main
    app()
