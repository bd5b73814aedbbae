"""Benchmark harness: `python -m benchmarks CASE [options]`.

Every case prints throughput and peak memory, beside its peer where it has one,
as figures from the same run.
"""

from __future__ import annotations

from benchmarks.cases import app

app()
