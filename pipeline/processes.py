"""Worker processes and Ctrl-C.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the
broker's worker processes too, which would each print a traceback (or die while
starting, with "Fatal Python error"). Workers therefore ignore SIGINT; only the main
process takes it, cancels what is queued and reports one line. A short sequence that
must not be cut in two (the two commits of a tNR run) defers it to its end.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import Any


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def shut_down(pool: ProcessPoolExecutor) -> None:
    """Drop what is queued and wait for the workers (which ignore SIGINT) to finish
    their task and exit; a second Ctrl-C meanwhile changes nothing. Leaving earlier
    would let a worker still starting find its queue's semaphore gone, and say so."""
    with interrupt_deferred():
        pool.shutdown(wait=True, cancel_futures=True)


def submit(pool: ProcessPoolExecutor, function: Callable[..., Any], *args: Any) -> Future[Any]:
    """``pool.submit``, whole: submitting may start a worker, which a Ctrl-C must not
    cut between its start and its registration in the pool."""
    with interrupt_deferred():
        return pool.submit(function, *args)


def worker_pool(
    workers: int,
    preload: Sequence[str] = (),
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    """A ``forkserver`` pool whose processes ignore SIGINT.

    forkserver: a clean parent to fork from (forking this process could inherit locks
    held by DuckDB's, Arrow's or polars' threads). The fork server is started with
    SIGINT ignored; an ignored signal stays ignored across exec and fork, so it and
    every worker it forks ignore it. ``initializer(*initargs)`` runs in each worker
    as it starts.
    """
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    if _in_main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            from multiprocessing import forkserver

            forkserver.ensure_running()
        finally:
            signal.signal(signal.SIGINT, previous)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=initializer, initargs=initargs)


@contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Run the block whole: a Ctrl-C that arrives inside it is raised at its end."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, _frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


# Set by the command line's SIGINT handler: some libraries turn the KeyboardInterrupt
# it raises into an error of their own (DuckDB's "Query interrupted").
INTERRUPTED = threading.Event()


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _interrupt_after_import() -> None:
    """Deliver SIGINT again once the main thread has left every import."""
    main = threading.main_thread()

    def wait() -> None:
        while main.is_alive():
            time.sleep(0.02)
            if not _importing(sys._current_frames().get(main.ident or 0)):
                os.kill(os.getpid(), signal.SIGINT)
                return

    threading.Thread(target=wait, name="interrupt-after-import", daemon=True).start()


def take_interrupts_between_imports() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual, except inside an import: there it is
    delivered as soon as the import is done. The commands import their heavy
    libraries when they run, and an extension module cut off in its initialisation
    (DuckDB's) leaves the interpreter to crash at exit instead of saying one line."""
    # Not in the broker's worker processes: they import the main module (the
    # `broker` script) while starting, and must keep ignoring SIGINT.
    if not _in_main_thread() or getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    if multiprocessing.parent_process() is not None:
        return

    def handler(_number: int, frame: FrameType | None) -> None:
        if _importing(frame):
            _interrupt_after_import()
            return
        INTERRUPTED.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
