"""Work spread over a Dask cluster the facility already runs (``dask scheduler`` +
``dask worker``, or dask-jobqueue on SLURM); the broker has no scheduler of its own.

The broker sends plain functions of its own package over batches (file probes, tNR
runs); the workers need the same ``manifest-broker`` installed and the same paths
(the data directory, the shared lake) mounted. Dask's scheduler retries the tasks
of a worker that dies on another one; every task the broker sends is safe to run
twice (a probe reads, a tNR packaging replaces its run's rows).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from manifest_broker.errors import BrokerError, redact, redact_in

if TYPE_CHECKING:
    from distributed import Client

# Retries of a task whose worker raised (a lost worker's tasks are moved by the
# scheduler, within its own `allowed-failures`).
TASK_RETRIES = 2
T = TypeVar("T")
R = TypeVar("R")


class ClusterError(BrokerError, RuntimeError):
    """The Dask scheduler cannot be reached or has no workers."""


def connect(address: str, *, timeout: float = 10.0) -> Client:
    """A client of the scheduler at ``address`` (``tcp://host:8786``), with at least
    one worker, or a one-line error before any work is done.

    Raises:
        ClusterError: naming the address and what failed.
    """
    from distributed import Client

    _reachable(address, timeout)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"{redact(address)}: cannot reach the Dask scheduler ({redact_in(str(exc).splitlines()[0], address)})",
            where=redact(address),
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ClusterError(
            f"{redact(address)}: the Dask scheduler has no worker (none joined in {timeout:g}s)", where=redact(address)
        ) from None
    return client


def _reachable(address: str, timeout: float) -> None:
    """Refuse an address that is not one, or a TCP scheduler nobody listens at,
    before a ``Client`` exists: a client that fails half-made prints a traceback
    from its ``__del__`` twenty seconds after the error.

    Raises:
        ClusterError: exit 2 for an address that is not ``[tcp://]host:port``, exit 1
            when nothing answers there.
    """
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location) if scheme in ("tcp", "tls") else ("", 0)
    except ValueError as exc:
        raise ClusterError(
            f"--dask {redact(address)}: not a scheduler address ({redact_in(str(exc), address)}); give tcp://host:8786",
            where=redact(address),
            exit_code=2,
        ) from None
    if scheme not in ("tcp", "tls"):
        return
    # A scheduler that is still starting is waited for, as long as a Client would wait.
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
            return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{redact(address)}: cannot reach the Dask scheduler ({exc.strerror or exc})", where=redact(address)
                ) from None
            time.sleep(0.1)


def map_unordered(client: Client, function: Callable[[T], R], items: Sequence[T], key: str) -> Iterator[R]:
    """``function`` over ``items`` on the cluster, results as they finish (each task
    retried on failure; a lost worker's tasks are run again elsewhere).

    Raises:
        ClusterError: when the scheduler goes away mid-way.
    """
    from distributed import as_completed

    if not items:
        return
    batch = uuid.uuid4().hex[:12]  # keys of this call alone: Dask would hand back an earlier call's results
    futures = client.map(
        function, list(items), pure=False, retries=TASK_RETRIES, key=[f"{key}-{batch}-{i}" for i in range(len(items))]
    )
    try:
        for _future, result in as_completed(futures, with_results=True, loop=client.loop):
            yield result
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"the Dask scheduler went away ({str(exc).splitlines()[0]})") from exc
    finally:
        client.cancel(futures)
