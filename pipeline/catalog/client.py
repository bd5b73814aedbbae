"""Connections to a running Tiled server: its address, its API key, its first answer.

The API key comes from ``$TILED_API_KEY`` or, on a terminal, from a prompt; never
from a command-line option (``ps`` shows every process's arguments to every user of
the machine) and never from the URL (which lands in shell history and error
messages). A URL that carries a key is refused without repeating it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from manifest_broker.errors import BrokerError, redact

KEY_VARIABLE = "TILED_API_KEY"


class ServerError(BrokerError, RuntimeError):
    """The server cannot be used: unreachable, not Tiled, refusing the key, or a URL
    that carries a key."""


def check_url(url: str, option: str = "--url") -> str:
    """The server's base URL, or a one-line error (exit 2) for an address without
    http(s)://, or one with a key or password in it (not repeated in the message)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ServerError(f"{option} {redact(url)}: not a URL ({exc})", where=option, exit_code=2) from None
    try:
        parts.port  # noqa: B018  (parsed here: a port out of range is a mistake, not a traceback later)
    except ValueError as exc:
        raise ServerError(f"{option} {redact(url)}: {exc}", where=option, exit_code=2) from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(
            f"{option} {redact(url)}: give the server's address with http:// or https://", where=option, exit_code=2
        )
    if parts.username is not None or parts.password is not None:
        raise ServerError(
            f"{option} {redact(url)}: the address carries a user name or password; give the key "
            f"through ${KEY_VARIABLE} instead",
            where=option,
            exit_code=2,
        )
    if any(
        name.lower().replace("-", "_") in ("api_key", "apikey", "key", "token") for name, _ in parse_qsl(parts.query)
    ):
        raise ServerError(
            f"{option} {redact(url)}: the address carries an API key; give it through ${KEY_VARIABLE} "
            "(or at the prompt) instead, never in a URL",
            where=option,
            exit_code=2,
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Server:
    """A Tiled server that answered, and the key to use with it (``None``: none needed)."""

    url: str
    api_key: str | None

    def client(self, *, include_data_sources: bool = False) -> Any:
        """A fresh ``tiled.client`` root (one per thread: its connection pool is its own).

        Raises:
            ServerError: when the server still fails after tiled.client's retries
                (5xx or 429 answers, dropped connections), or refuses the key.
        """
        import httpx
        from tiled.client import from_uri

        try:
            return from_uri(self.url, api_key=self.api_key, include_data_sources=include_data_sources)
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise ServerError(
                f"{redact(self.url)}: the server answered HTTP {status} to every attempt "
                "(tiled.client's retries are spent): try again later",
                where=redact(self.url),
            ) from exc
        except httpx.TransportError as exc:
            raise ServerError(
                f"{redact(self.url)}: the connection keeps failing ({type(exc).__name__}) after tiled.client's retries",
                where=redact(self.url),
            ) from exc
        except RuntimeError as exc:  # tiled.client: no key, or one it could not use, for a server that needs one
            raise ServerError(
                f"{redact(self.url)}: the server needs an API key it accepts; set ${KEY_VARIABLE}",
                where=redact(self.url),
            ) from exc


def connect(url: str, *, prompt: Callable[[str], str] | None = None, option: str = "--url") -> Server:
    """Check ``url`` with one plain request (a server that is down fails at once;
    tiled.client would retry for half a minute), then find the key it needs.

    Args:
        url: The server's base URL.
        prompt: Asks for the key when ``$TILED_API_KEY`` is unset and the server wants
            one (``None``: never ask, e.g. when not on a terminal).

    Raises:
        ServerError: naming the URL (redacted) and what is wrong.
    """
    url = check_url(url, option)
    key = os.environ.get(KEY_VARIABLE) or None
    status = _status(url, key)
    if status in (401, 403) and key is None and prompt is not None:
        key = prompt(f"API key for {redact(url)}") or None
        status = _status(url, key)
    if status in (401, 403):
        hint = (
            f"the API key in ${KEY_VARIABLE} was refused"
            if os.environ.get(KEY_VARIABLE)
            else f"it needs an API key: set ${KEY_VARIABLE}"
        )
        raise ServerError(
            f"{redact(url)}: the server refused the connection (HTTP {status}); {hint}", where=redact(url)
        )
    if status is not None and status >= 400 and status not in (429,) and status < 500:
        raise ServerError(f"{redact(url)}: not a Tiled server (HTTP {status} from /api/v1/)", where=redact(url))
    return Server(url, key)


def _status(url: str, key: str | None) -> int | None:
    """HTTP status of an authenticated look at the root node; ``None`` for a dropped
    connection (left to tiled.client's retries). 5xx and 429 are left to them too."""
    import httpx

    headers = {"Authorization": f"Apikey {key}"} if key else {}
    try:
        answer = httpx.get(f"{url}/api/v1/", timeout=10.0)
        if answer.status_code != 200:
            return answer.status_code
        return httpx.get(f"{url}/api/v1/metadata/", headers=headers, timeout=10.0).status_code
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol) as exc:
        raise ServerError(f"{redact(url)}: cannot reach the Tiled server ({exc})", where=redact(url)) from exc
    except httpx.TransportError:
        return None


def response_status(exc: BaseException) -> int | None:
    """The HTTP status of the answer an exception of tiled.client or httpx carries
    (``None`` when there was no answer: a dropped connection...)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def failure_reason(exc: BaseException) -> str:
    """One line saying why a request failed, with its HTTP status when there was one."""
    status = response_status(exc)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"HTTP {status}: {text}" if status and not text.startswith(str(status)) else text
