"""The `broker` command: every command group on one typer app."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline import _catalog, _index, _provider, _server, _tnr
from manifest_broker.commandline._process import WITHOUT_PANDAS, without_pandas

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
app.add_typer(_index.app, name="index")
app.add_typer(_tnr.app, name="tnr")


def _command(args: list[str]) -> tuple[str, ...]:
    """The (group, command) names of a command line, past the group's options
    (``broker tnr --lake L package ...`` is ``("tnr", "package")``)."""
    names: list[str] = []
    skip = False
    for token in args:
        if skip:
            skip = False
        elif token.startswith("--"):
            skip = "=" not in token  # an option of the group and its value
        else:
            names.append(token)
            if len(names) == 2:
                break
    return tuple(names)


def run() -> None:
    """The `broker` console script: ``app`` in a process of its own. Once the command
    is over, a late Ctrl-C no longer counts: Python would otherwise end a process
    whose answer is already out by its own SIGINT (exit -2 instead of the command's
    code); one that reaches the top before is exit 130, as everywhere."""
    import signal

    if _command(sys.argv[1:]) in WITHOUT_PANDAS:
        without_pandas()
    try:
        app()
    except KeyboardInterrupt:  # before the command group's own handler was reached (still starting)
        render.output().error(render.INTERRUPTED_ERROR)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":  # python -m manifest_broker.commandline.main
    run()
