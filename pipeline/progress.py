"""How long-running stages report progress, without knowing who listens.

A stage takes ``progress: Progress | None`` and calls it with ``(stage, done,
total)`` as work goes on; the command line draws a bar per stage
(:func:`manifest_broker.render.stages`), tests and library callers may record it.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]
