"""Run one command and report its own wall time and peak RSS: ``python launch.py
RESULT_JSON COMMAND...``.

A child inherits its parent's resident pages in its peak-RSS count (``ru_maxrss``
survives ``exec``), so a command started straight from a benchmark process that
holds hundreds of MiB would be charged for them. Started from this small process
instead, its figure is its own.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    result_path, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    with open(result_path, "w") as out:
        json.dump(
            {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "code": os.waitstatus_to_exitcode(status)}, out
        )


if __name__ == "__main__":
    main()
