"""The catalog path a command is given (``--parent``), held to the key rules.

A parent is a chain of containers: each segment becomes a node key, so it obeys
the same rule as every Hamiltonian key (``sql/contract/macros/name_problem.sql``).
Otherwise ``--parent ..`` or ``x?y`` makes containers that ``tiled.client`` can
never reach (``c['.']`` is the root).
"""

from __future__ import annotations

from manifest_broker import queries
from manifest_broker.errors import BrokerError


def parent_segments(parent: str, option: str = "--parent") -> str:
    """``parent`` as ``a/b`` (one leading or trailing ``/`` allowed), its segments not
    yet held to the key rule (:func:`parent_path` does that).

    Raises:
        BrokerError: (exit 2) for an empty segment (``a//b``).
    """
    inner = parent.removeprefix("/").removesuffix("/")
    if "" in inner.split("/") and inner:
        raise BrokerError(f"{option} {parent!r}: an empty segment ('//'); give a/b", exit_code=2)
    return inner


def parent_path(parent: str, option: str = "--parent") -> str:
    """``parent`` as ``a/b`` (one leading or trailing ``/`` allowed), or a usage error.

    Raises:
        BrokerError: (exit 2) for an empty segment (``a//b``) or a segment that could
            not be a node key, with the reason the key rule gives.
    """
    inner = parent_segments(parent, option)
    if not inner:
        return ""
    segments = inner.split("/")
    con = queries.connect()
    try:
        for macro in queries.names("contract/macros"):
            con.execute(queries.load(macro))
        bad = con.execute(queries.load("contract/parent_invalid"), [segments]).fetchall()
    finally:
        con.close()
    if bad:
        segment, message = bad[0]
        raise BrokerError(f"{option} {parent!r}: segment {segment!r}: {message}", exit_code=2)
    return inner
