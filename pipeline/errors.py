"""The one root of every error a user can cause.

Anything the broker refuses because of its input or its surroundings (a manifest,
a data file, a catalog, a lake, a server) raises a :class:`BrokerError` subclass.
The command line prints it as one line, ``error: ...``, and exits with its
``exit_code``, in one place (:mod:`manifest_broker.render`); anything else is a
bug in the broker and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    """An error the user can act on.

    Attributes:
        where: The path or URL it concerns, when there is one.
        exit_code: 1, or 2 for a command line used wrongly.
        details: What a program reading ``--json`` gets besides the message (the
            contract's findings, what was done before the error...), JSON-ready.
    """

    exit_code = 1

    def __init__(
        self, message: str, *, where: object = None, exit_code: int | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.where = None if where is None else str(where)
        if exit_code is not None:
            self.exit_code = exit_code
        self.details = details or {}


def redact(address: str) -> str:
    """``address`` (a server URL, a database URL, a Dask address, with or without a
    scheme) as it may be printed: no user or password, no query, no fragment. Any
    text before an ``@`` in the authority goes (``admin:PW@host`` too, and a password
    holding ``/``); nothing here can raise, whatever the text."""
    text = address.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        rest = rest[rest.index(authority) + authority.rindex("@") + 1 :]
    elif "@" in rest and ":" in rest.split("@", 1)[0]:  # user:pass/word@host: a password with a slash in it
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{rest}" if sep else rest


def redact_in(text: str, address: str) -> str:
    """``text`` (a library's message about ``address``) with the user and password of
    ``address`` taken out wherever they appear."""
    rest = address.partition("://")[2] or address
    credentials = rest.rsplit("@", 1)[0] + "@" if "@" in rest else ""
    return text.replace(credentials, "") if credentials else text
