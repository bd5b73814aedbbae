"""A run at a glance: reflectivity of every slice coloured by its absolute time, with
error bars, and a chosen Q band's reflectivity over time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from manifest_broker.errors import BrokerError


class PlotUnavailable(BrokerError, RuntimeError):
    """matplotlib is an optional dependency (the ``plot`` extra)."""


class PlotError(BrokerError, ValueError):
    """The plot asked for cannot be drawn (an output format matplotlib lacks, a Q band without data)."""


@dataclass(frozen=True)
class Figure:
    path: Path  # the file written (exactly this name)
    slices: int
    hidden: int  # R values <= 0 or not finite, which a log axis cannot show (counted in the legend)


def _matplotlib():  # type: ignore[no-untyped-def]
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotUnavailable("plotting needs matplotlib: pip install 'manifest-broker[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_output(output: Path) -> None:
    """Refuse, before any work, a file name whose format matplotlib cannot write
    (it would otherwise append its default suffix and write another name).

    Raises:
        PlotError: naming the formats it can write.
    """
    plt = _matplotlib()
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = Path(output).suffix.lstrip(".").lower()
    if suffix not in formats:
        raise PlotError(f"-o {output}: give a file name ending in one of .png, .pdf, .svg"
                        f" (matplotlib writes {', '.join(sorted(formats))})", where=output, exit_code=2)  # fmt: skip


def band_values(rows: list[dict], q_band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the error-weighted mean R over the Q band and its uncertainty (NaN
    for a slice without a finite point in the band).

    Raises:
        PlotError: when no slice has a point in the band.
    """
    means, errors = [], []
    for row in rows:
        q, r, dr = (np.asarray(row[c], float) for c in ("Q", "R", "dR"))
        sel = (q >= q_band[0]) & (q <= q_band[1]) & np.isfinite(r) & np.isfinite(dr) & (dr > 0)
        if not sel.any():
            means.append(np.nan)
            errors.append(np.nan)
            continue
        weights = 1.0 / dr[sel] ** 2
        means.append(float(np.sum(weights * r[sel]) / np.sum(weights)))
        errors.append(float(1.0 / np.sqrt(np.sum(weights))))
    if np.all(np.isnan(means)):
        spans = [(min(row["Q"]), max(row["Q"])) for row in rows if row["Q"]]
        covered = (
            f"the slices cover Q {min(a for a, _ in spans):.4g} to {max(b for _, b in spans):.4g} 1/Å"
            if spans
            else "no slice has data"
        )
        raise PlotError(f"no slice has a point with a positive dR in the Q band {q_band[0]}-{q_band[1]} 1/Å "
                        f"({covered}): choose --q-min/--q-max inside it", exit_code=2)  # fmt: skip
    return np.array(means), np.array(errors)


def plot_run(reflectivity: pa.Table, output: Path, q_band: tuple[float, float] = (0.01, 0.03)) -> Figure:
    """Write a two-panel figure of one run's reflectivity rows.

    Left: R(Q) of every slice with its dR error bars on log axes, coloured by the
    slice's start time (a colour bar in absolute UTC time); R values that are zero,
    negative or not finite cannot sit on a log axis and are counted in the legend.
    Right: the error-weighted mean R over ``q_band`` per slice against time, hold and
    EIS intervals shaded.

    Raises:
        PlotUnavailable: when matplotlib is not installed.
        PlotError: when the Q band holds no data.
    """
    plt = _matplotlib()
    import matplotlib.dates as mdates

    rows = sorted(reflectivity.to_pylist(), key=lambda r: r["interval_start"])
    means, band_errors = band_values(rows, q_band)
    starts = mdates.date2num([r["interval_start"] for r in rows])
    norm = plt.Normalize(starts.min(), max(starts.max(), starts.min() + 1e-9))
    cmap = plt.get_cmap("viridis")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), constrained_layout=True)
    hidden = 0
    for row, start in zip(rows, starts):
        q, r, dr = (np.asarray(row[c], float) for c in ("Q", "R", "dR"))
        keep = np.isfinite(r) & (r > 0) & np.isfinite(q) & (q > 0)
        hidden += int((~keep).sum())
        err = np.where(np.isfinite(dr[keep]), dr[keep], 0.0)
        # Error bars never below zero on the log axis: clipped to just above it.
        lower = np.minimum(err, r[keep] * (1 - 1e-9))
        left.errorbar(q[keep], r[keep], yerr=[lower, err], color=cmap(norm(start)), lw=0.8, elinewidth=0.5,
                      capsize=0, alpha=0.8)  # fmt: skip
    left.set(xscale="log", yscale="log", xlabel="Q [1/Å]", ylabel="R",
             title=f"run {rows[0]['run_number']}: {len(rows)} slices")  # fmt: skip
    left.plot([], [], " ", label=f"{hidden} R value(s) ≤ 0 or not finite: not on the log axis")
    left.legend(loc="lower left", fontsize="small", frameon=False)
    left.axvspan(*q_band, color="0.9", zorder=0, lw=0)
    colour_bar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=left, label="slice start (UTC)")
    colour_bar.ax.yaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))

    for row in rows:
        right.axvspan(row["interval_start"], row["interval_end"],
                      color="tab:orange" if row["interval_type"] == "eis" else "0.85", alpha=0.4, lw=0)  # fmt: skip
    mids = [r["interval_start"] + (r["interval_end"] - r["interval_start"]) / 2 for r in rows]
    right.errorbar(mids, means, yerr=band_errors, fmt="o-", color="k", ms=3, lw=0.8, capsize=2)
    right.set(xlabel="time (UTC)", ylabel=f"mean R, Q {q_band[0]}–{q_band[1]} 1/Å",
              title="reflectivity in the Q band over time (grey: hold, orange: EIS)")  # fmt: skip
    right.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    output = Path(output)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return Figure(output, len(rows), hidden)
