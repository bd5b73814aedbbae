"""Nothing left behind: `package-many --jobs 2` killed by SIGKILL (nothing of it can
clean up) takes its fork server and worker processes with it, and SIGINT / SIGTERM
end it and `watch` within a second with the promised exit code."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from manifest_broker.generators.tnr import synthesize_campaign

BROKER = str(Path(sys.executable).parent / "broker")


def _alive(processes: set[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _campaign_with_workers(tmp_path: Path) -> tuple[psutil.Popen, set[psutil.Process]]:
    """A campaign long enough to kill mid-way, started; returns once two worker
    processes are reading (the fork server's children)."""
    synthesize_campaign(tmp_path / "campaign", runs=12, n_slices=120, points=(200, 400), flavour="savetxt")
    process = psutil.Popen(
        [BROKER, "tnr", "package-many", str(tmp_path / "campaign"), "--lake", str(tmp_path / "lake"), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen: set[psutil.Process] = set()
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no worker processes started"
        children = set(process.children(recursive=True))
        seen |= children
        if sum(1 for c in children if c.ppid() != process.pid) >= 2:  # the workers, below the fork server
            return process, seen
        time.sleep(0.05)


def test_sigkill_of_the_main_process_leaves_no_child(tmp_path: Path) -> None:
    process, seen = _campaign_with_workers(tmp_path)
    time.sleep(0.3)
    seen |= set(process.children(recursive=True))
    assert len(seen) >= 3  # fork server and two workers (and the resource tracker)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 2
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(seen), [(p.pid, p.cmdline()) for p in _alive(seen)]


@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_package_many_within_a_second(tmp_path: Path, number: int, code: int) -> None:
    process, seen = _campaign_with_workers(tmp_path)
    process.send_signal(number)
    started = time.monotonic()
    process.wait(timeout=10)
    assert time.monotonic() - started <= 1.0
    assert process.returncode == code, process.communicate()
    deadline = time.monotonic() + 2
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(seen)
