"""Worker processes that end with the broker, whatever kills it.

A campaign's readers are ``forkserver`` children: the broker starts a fork server,
which forks the workers. SIGKILL gives the broker no chance to clean up, and neither
the fork server nor a worker blocked on its task queue notices on its own (each
holds an end of the queue's pipe itself): they stayed alive for minutes. So every
worker watches the broker's process through a pidfd (no polling, no signal of
ours needed) and, the moment it is gone, kills the fork server that forked it and
itself. ``PR_SET_PDEATHSIG`` alone cannot do it: it fires when the *parent* dies,
and a worker's parent is the fork server, not the broker.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> None:
    """SIGKILL this process when its parent (the fork server) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pidfd watch below still ends the worker
        pass


def _end(broker: int) -> None:
    parent = os.getppid()
    if parent not in (1, broker):  # the fork server (ours: it forks only the broker's workers)
        try:
            os.kill(parent, signal.SIGKILL)
        except OSError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(broker: int) -> None:
    try:
        fd = os.pidfd_open(broker)
    except ProcessLookupError:  # gone already
        _end(broker)
        return
    except (OSError, AttributeError):  # no pidfd (old kernel): look once a second
        while True:
            try:
                os.kill(broker, 0)
            except ProcessLookupError:
                _end(broker)
                return
            except OSError:
                pass
            threading.Event().wait(1.0)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not poller.poll():  # readable when the process has ended
        pass
    _end(broker)


def die_with(broker: int) -> None:
    """Run in each worker as it starts (the pool's initializer): end this worker and
    its fork server as soon as process ``broker`` ends."""
    _parent_death_signal()
    threading.Thread(target=_watch, args=(broker,), name="broker-lifeline", daemon=True).start()
