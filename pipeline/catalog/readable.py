"""Can the server read the provider's files? Asked once, before any work.

Tiled registers an external asset anywhere, but serves it only from inside its
readable storage (``tiled serve -r DIR``); outside it, every read is an HTTP 500
(and tiled.client retries a 500 for most of a minute). So ``register`` and
``verify`` ask first, with one small read of one array, and refuse with the cause
instead of registering nodes that all answer 500.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from manifest_broker.errors import BrokerError

HINT = (
    "the server's readable storage (`tiled serve -r`, `broker serve --base-dir`) must hold {base_dir}, or use --upload"
)


class UnreadableData(BrokerError, RuntimeError):
    """The server cannot read the files a command is about."""


def first_read(node: Any) -> int:
    """Status of one small read (the first element) of the array ``node``, asked
    without tiled.client's retries (200 for an array of no elements)."""
    shape = node.structure().shape
    if 0 in shape:  # nothing to read (tiled.client does not ask either)
        return 200
    params = {"slice": ",".join("0:1" for _ in shape)} if shape else {}
    response = node.context.http_client.get(
        node.item["links"]["full"], params=params, headers={"Accept": "application/octet-stream"}
    )
    return int(response.status_code)


# Reads of the probe node before a 5xx is taken as the server's answer, not a passing fault.
READ_ATTEMPTS = 4


def steady_read(node: Any) -> int:
    """:func:`first_read` until it answers other than 5xx or 429, at most
    :data:`READ_ATTEMPTS` times: a server that cannot read the file answers 500
    every time, a transient fault does not."""
    import time

    import httpx

    status = 0
    for attempt in range(READ_ATTEMPTS):
        if attempt:
            time.sleep(0.2 * attempt)
        try:
            status = first_read(node)
        except httpx.TransportError as exc:  # a dropped connection: transient, like a 5xx
            if attempt == READ_ATTEMPTS - 1:
                raise BrokerError(
                    f"{node.uri}: the connection keeps failing ({type(exc).__name__}) while reading one array",
                    where=node.uri,
                ) from None
            continue
        if status < 500 and status != 429:
            break
    return status


def check_reads_planned(client: Any, plan: Any, base_dir: Path) -> None:
    """Register one planned array at the root under a private key, read one element
    of it through the server, delete it again.

    Raises:
        UnreadableData: when the server cannot read it (nothing was registered).
        BrokerError: when the server does not take the probe node at all (a
            read-only server), said as such.
    """
    from tiled.structures.core import StructureFamily

    from manifest_broker.catalog.plan import ArraySources

    if plan.arrays.num_rows == 0:
        return
    source = ArraySources(plan).data_source(plan.arrays.slice(0, 1).to_pylist()[0])
    # tiled.client retries the create and the delete through transient faults (5xx,
    # 429, dropped connections), as every request of a registration; a server that
    # refuses to register anything (read-only) is said once its retries are spent.
    key = f"broker-read-check-{uuid.uuid4().hex[:12]}"
    try:
        node = client.new(StructureFamily.array, [source], key=key, metadata={})
    except Exception as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status != 409:
            raise BrokerError(
                f"{client.uri}: the server refused to register a node (HTTP {status or type(exc).__name__}); "
                "is it read-only (`serve --read-only`)? nothing was registered",
                where=client.uri,
            ) from None
        node = client[key]  # our own create, whose answer was lost on the way
    try:
        status = steady_read(node)
    finally:
        try:
            node.delete(external_only=True)
        except Exception as exc:  # a delete whose answer was lost, retried: already gone
            if getattr(getattr(exc, "response", None), "status_code", None) != 404:
                raise
    if status >= 500:
        raise UnreadableData(
            f"--base-dir {base_dir}: the server cannot read its files (HTTP {status} reading "
            f"{plan.arrays['path'][0]}): " + HINT.format(base_dir=base_dir) + "; nothing was registered",
            where=base_dir,
        )
