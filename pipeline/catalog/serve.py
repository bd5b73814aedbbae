"""Start a stock `tiled serve catalog` on a catalog the broker wrote.

No custom adapter and no server configuration: the data directory is passed as
readable storage (`-r`), which is all Tiled needs to serve external HDF5 files.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from manifest_broker.catalog.database import locate
from manifest_broker.errors import BrokerError


class ServeError(BrokerError, RuntimeError):
    """The server did not come up."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Tiled's server reads its single-user API key from this variable when no
# --api-key is given; passing it there keeps the key out of the process list.
SERVER_KEY_VARIABLE = "TILED_SINGLE_USER_API_KEY"


def serve_command(
    catalog: str, base_dir: Path, port: int, host: str = "127.0.0.1", storage: Path | None = None
) -> list[str]:
    """The plain `tiled serve catalog` command line for a catalog and its data directory
    (and, with ``storage``, the folder where uploaded arrays are written: ``-w``).

    The API key is never part of it: see :func:`server_environment`.
    """
    tiled = shutil.which("tiled", path=str(Path(sys.executable).parent)) or shutil.which("tiled") or "tiled"
    writable = ["-w", str(Path(storage).resolve())] if storage is not None else []
    return [
        tiled,
        "serve",
        "catalog",
        locate(catalog).tiled_uri,
        "-r",
        str(Path(base_dir).resolve()),
        *writable,
        "--host",
        host,
        "--port",
        str(port),
    ]


_KEY = re.compile(r"[A-Za-z0-9]+")


def check_api_key(api_key: str | None) -> str | None:
    """The key ``tiled serve`` will accept: letters and digits only (its settings
    validate the single-user key against ``[a-zA-Z0-9]+`` and die at start-up with
    a traceback otherwise). Refused here with one line that does not repeat it."""
    if api_key is not None and not _KEY.fullmatch(api_key):
        raise ServeError(
            "$TILED_API_KEY holds characters other than letters and digits, which tiled serve refuses "
            "for its key: choose one of [A-Za-z0-9] only (e.g. `openssl rand -hex 32`)",
            where="TILED_API_KEY",
            exit_code=2,
        )
    return api_key or None


# The environment variables that carry the catalog URI and the storage folders to
# the server. Tiled expands ``${NAME}`` in its configuration files (and nothing
# else there comes from the user), so a password never lands in a file or on a
# command line, and a folder whose name holds ``$`` reaches Tiled unchanged.
CATALOG_VARIABLE = "BROKER_CATALOG_URI"
READABLE_VARIABLE = "BROKER_READABLE_STORAGE"
WRITABLE_VARIABLE = "BROKER_WRITABLE_STORAGE"


def scaled_config(*, writable: bool) -> dict[str, Any]:
    """Tiled's configuration for a server started through its ``app_factory``: the
    same stock catalog tree ``tiled serve catalog`` builds, every value a reference
    to the environment :func:`launch` sets (the catalog, the data directory as
    readable storage, and with ``writable`` the folder uploads are written to)."""
    args: dict[str, Any] = {
        "uri": f"${{{CATALOG_VARIABLE}}}",
        "readable_storage": [f"${{{READABLE_VARIABLE}}}"],
        "init_if_not_exists": False,
    }
    if writable:
        args["writable_storage"] = [f"${{{WRITABLE_VARIABLE}}}"]
    return {
        "trees": [{"path": "/", "tree": "catalog", "args": args}],
        "authentication": {"allow_anonymous_access": False},
    }


@dataclass
class Launch:
    """How a server is started: a command line that holds no secret, its environment,
    the private folder of its configuration (removed by :meth:`close`), and the
    secrets to mask in whatever it prints."""

    command: list[str]
    env: dict[str, str]
    folder: Path | None = None
    secrets: tuple[str, ...] = ()

    def close(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def launch(
    catalog: str,
    base_dir: Path,
    *,
    port: int,
    host: str = "127.0.0.1",
    workers: int = 1,
    read_only: bool = False,
    storage: Path | None = None,
    api_key: str | None = None,
) -> Launch:
    """How to serve ``catalog``: ``tiled serve catalog URI -r BASE_DIR`` when its URI
    holds no password and one writable process will do; otherwise Tiled's app in
    ``workers`` uvicorn processes, configured through a file in a private temporary
    folder whose values come from the environment (the catalog URI, password
    included, never on a command line, which every user of the machine can read)."""
    import json
    import tempfile
    from urllib.parse import quote, quote_plus

    import sqlalchemy as sa

    location = locate(catalog)
    password = sa.make_url(location.tiled_uri).password if location.dialect != "sqlite" else None
    secrets = tuple(
        s for s in {api_key, password, password and quote(password, safe=""), password and quote_plus(password)} if s
    )
    if workers == 1 and not read_only and not password:
        return Launch(
            serve_command(catalog, base_dir, port, host, storage), server_environment(api_key), secrets=secrets
        )
    uri = location.tiled_uri
    if read_only and location.dialect == "sqlite":
        # SQLite's own read-only mode: several processes reading take no write lock.
        uri = f"sqlite+aiosqlite:///file:{location.sqlite_path}?mode=ro&uri=true"
    folder = Path(tempfile.mkdtemp(prefix="broker-serve-"))  # 0700: this user's alone
    config = folder / "config.yml"
    config.write_text(json.dumps(scaled_config(writable=storage is not None)))
    env = {
        **scaled_environment(api_key, config),
        CATALOG_VARIABLE: uri,
        READABLE_VARIABLE: str(Path(base_dir).resolve()),
    }
    if storage is not None:
        env[WRITABLE_VARIABLE] = str(Path(storage).resolve())
    return Launch(scaled_command(port, host, workers), env, folder, secrets)


def scaled_command(port: int, host: str, workers: int) -> list[str]:
    """Uvicorn with ``workers`` processes, each running Tiled's ``app_factory`` on the
    configuration in ``$TILED_CONFIG`` (Tiled's own route to a multi-process server)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "tiled.server.app:app_factory",
        "--workers",
        str(workers),
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
    ]


def scaled_environment(api_key: str | None, config: Path) -> dict[str, str]:
    """The environment of a multi-process server: its configuration file, the API key,
    and one secret key shared by every process (Tiled draws a random one per process)."""
    import json
    import secrets

    return {
        **server_environment(api_key),
        "TILED_CONFIG": str(config),
        "TILED_SECRET_KEYS": json.dumps([secrets.token_hex(32)]),
    }


def server_environment(api_key: str | None) -> dict[str, str]:
    """The environment for `tiled serve`: the API key, if any, in Tiled's own variable."""
    env = dict(os.environ)
    if api_key:
        env[SERVER_KEY_VARIABLE] = api_key
    return env


def run_redacted(command: list[str], env: dict[str, str], secrets: tuple[str, ...]) -> int:
    """Run the server in the foreground with ``secrets`` masked in everything it prints.

    Tiled prints its API key in the start-up banner when it did not get it through
    ``--api-key``; the child runs in its own session, so Ctrl-C reaches it once,
    forwarded from here.

    Returns:
        The server's exit code.
    """
    import signal

    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, lambda received, _frame: process.send_signal(received))
    assert process.stdout is not None
    masks = sorted((s.encode() for s in secrets), key=len, reverse=True)
    for line in process.stdout:
        for mask in masks:
            line = line.replace(mask, b"***")
        sys.stderr.buffer.write(line)
        sys.stderr.buffer.flush()
    return process.wait()


def wait_ready(url: str, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServeError(f"tiled serve exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/api/v1/", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServeError(f"tiled serve did not answer at {url} within {timeout:.0f}s")


@contextlib.contextmanager
def running_server(
    catalog: str,
    base_dir: Path,
    *,
    api_key: str = "secret",
    port: int | None = None,
    log: Path | None = None,
    workers: int = 1,
    read_only: bool = False,
    storage: Path | None = None,
) -> Iterator[str]:
    """Run `tiled serve catalog` (or, with ``workers`` > 1, Tiled's app in that many
    uvicorn processes) on a free loopback port for the duration of the block.

    Yields:
        The server's base URL.
    """
    port = port or free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    started = launch(
        catalog, base_dir, port=port, workers=workers, read_only=read_only, storage=storage, api_key=api_key
    )
    process = subprocess.Popen(started.command, stdout=out, stderr=subprocess.STDOUT, env=started.env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        started.close()
        if log:
            out.close()  # type: ignore[union-attr]
