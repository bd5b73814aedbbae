"""Work spread over a Dask cluster the facility already runs (``dask scheduler`` +
``dask worker``, or dask-jobqueue on SLURM); the broker has no scheduler of its own.

The broker sends plain functions of its own package over batches (file probes, tNR
runs); the workers need the same ``manifest-broker`` installed and the same paths
(the data directory, the shared lake) mounted. Dask's scheduler retries the tasks
of a worker that dies on another one; every task the broker sends is safe to run
twice (a probe reads, a tNR packaging replaces its run's rows).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from manifest_broker.errors import BrokerError

if TYPE_CHECKING:
    from distributed import Client

SCHEDULER_VARIABLE = "BROKER_DASK_SCHEDULER"
# Retries of a task whose worker raised (a lost worker's tasks are moved by the
# scheduler, within its own `allowed-failures`).
TASK_RETRIES = 2
T = TypeVar("T")
R = TypeVar("R")


class ClusterError(BrokerError, RuntimeError):
    """The Dask scheduler cannot be reached or has no workers."""


def scheduler_address(given: str | None) -> str | None:
    """``--dask ADDRESS``, else ``$BROKER_DASK_SCHEDULER``, else ``None`` (work locally)."""
    return given or os.environ.get(SCHEDULER_VARIABLE) or None


def connect(address: str, *, timeout: float = 10.0) -> Client:
    """A client of the scheduler at ``address`` (``tcp://host:8786``), with at least
    one worker, or a one-line error before any work is done.

    Raises:
        ClusterError: naming the address and what failed.
    """
    from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"{address}: cannot reach the Dask scheduler ({str(exc).splitlines()[0]})",
                           where=address) from exc  # fmt: skip
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise ClusterError(f"{address}: the Dask scheduler has no worker (none joined in {timeout:g}s)",
                           where=address) from exc  # fmt: skip
    return client


def workers(client: Client) -> int:
    """Threads across the cluster's workers (what the scheduler can run at once)."""
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1


def map_unordered(client: Client, function: Callable[[T], R], items: Sequence[T],
                  key: str) -> Iterator[R]:  # fmt: skip
    """``function`` over ``items`` on the cluster, results as they finish (each task
    retried on failure; a lost worker's tasks are run again elsewhere).

    Raises:
        ClusterError: when the scheduler goes away mid-way.
    """
    from distributed import as_completed

    if not items:
        return
    batch = uuid.uuid4().hex[:12]  # keys of this call alone: Dask would hand back an earlier call's results
    futures = client.map(function, list(items), pure=False, retries=TASK_RETRIES,
                         key=[f"{key}-{batch}-{i}" for i in range(len(items))])  # fmt: skip
    try:
        for _future, result in as_completed(futures, with_results=True, loop=client.loop):
            yield result
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"the Dask scheduler went away ({str(exc).splitlines()[0]})") from exc
    finally:
        client.cancel(futures)
