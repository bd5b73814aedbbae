"""A run at a glance: reflectivity curves coloured by time, and a Q band over time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.errors import BrokerError


class PlotUnavailable(BrokerError, RuntimeError):
    """matplotlib is an optional dependency (the ``plot`` extra)."""


def plot_run(reflectivity: pa.Table, output: Path, q_band: tuple[float, float] = (0.01, 0.03)) -> Path:
    """Write a two-panel PNG for one run's reflectivity rows.

    Left: R(Q) of every slice on log axes, coloured by slice start time. Right: the
    integrated R over ``q_band`` per slice against time, hold and EIS intervals shaded.

    Raises:
        PlotUnavailable: when matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'manifest-broker[plot]'") from exc

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(reflectivity.to_pylist(), key=lambda r: r["interval_start"])
    t0 = rows[0]["interval_start"]
    minutes = np.array([(r["interval_start"] - t0).total_seconds() / 60 for r in rows])
    colours = plt.cm.viridis(minutes / max(minutes.max(), 1e-9))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for row, colour in zip(rows, colours):
        q, r = np.asarray(row["Q"], float), np.asarray(row["R"], float)
        keep = np.isfinite(r) & (r > 0)
        left.plot(q[keep], r[keep], color=colour, lw=0.8)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="Q [1/Å]",
        ylabel="R",
        title=f"run {rows[0]['run_number']}: {len(rows)} slices",
    )
    mappable = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, minutes.max()))
    fig.colorbar(mappable, ax=left, label="minutes since first slice")

    band = []
    for row in rows:
        q, r = np.asarray(row["Q"], float), np.asarray(row["R"], float)
        sel = (q >= q_band[0]) & (q <= q_band[1]) & np.isfinite(r)
        band.append(np.trapezoid(r[sel], q[sel]) if sel.sum() > 1 else np.nan)
    for row in rows:
        start = (row["interval_start"] - t0).total_seconds() / 60
        end = (row["interval_end"] - t0).total_seconds() / 60
        right.axvspan(start, end, color="tab:orange" if row["interval_type"] == "eis" else "0.85", alpha=0.5, lw=0)
    mids = [((r["interval_start"] - t0).total_seconds() + (r["interval_end"] - t0).total_seconds()) / 120 for r in rows]
    right.plot(mids, band, "o-", color="k", ms=3)
    right.set(xlabel="minutes since first slice", ylabel=f"∫R dQ, {q_band[0]}–{q_band[1]} 1/Å",
              title="integrated reflectivity (grey: hold, orange: EIS)")  # fmt: skip
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
