"""A run at a glance: reflectivity of every slice coloured by its absolute time, with
error bars, and a chosen Q band's reflectivity over time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
        raise PlotError(
            f"-o {output}: give a file name ending in one of .png, .pdf, .svg"
            f" (matplotlib writes {', '.join(sorted(formats))})",
            where=output,
            exit_code=2,
        )


@dataclass
class _Slices:
    """A run's slices as flat arrays, in time order: ``Q``, ``R``, ``dR`` of every
    point, the slice each point belongs to, and per slice its start and end (matplotlib
    date numbers) and kind."""

    q: np.ndarray
    r: np.ndarray
    dr: np.ndarray
    slice_of: np.ndarray
    offsets: np.ndarray  # slice i is points offsets[i]:offsets[i + 1]
    starts: np.ndarray
    ends: np.ndarray
    eis: np.ndarray  # bool per slice
    run_number: int

    @property
    def count(self) -> int:
        return len(self.starts)


def _date_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """matplotlib date numbers (days since 1970) of a UTC timestamp column, without
    going through Python datetimes (or pandas)."""
    micros = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
    return micros / 86_400e6


def _slices(reflectivity: pa.Table) -> _Slices:
    table = reflectivity.take(pc.sort_indices(reflectivity, [("interval_start", "ascending")]))
    lengths = pc.fill_null(pc.list_value_length(table["Q"]), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = {c: pc.list_flatten(table[c]).to_numpy(zero_copy_only=False).astype(np.float64) for c in ("Q", "R", "dR")}
    starts = _date_numbers(table["interval_start"])
    ends = _date_numbers(table["interval_end"])
    return _Slices(
        flat["Q"],
        flat["R"],
        flat["dR"],
        np.repeat(np.arange(len(lengths)), lengths),
        np.concatenate([[0], np.cumsum(lengths)]),
        starts,
        ends,
        np.asarray(table["interval_type"].to_pylist()) == "eis",
        int(table["run_number"][0].as_py()),
    )


def band_values(slices: _Slices, q_band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, the error-weighted mean R over the Q band and its uncertainty (NaN
    for a slice without a finite point in the band); vectorised over all points.

    Raises:
        PlotError: when no slice has a point in the band.
    """
    q, r, dr = slices.q, slices.r, slices.dr
    with np.errstate(invalid="ignore"):
        sel = (q >= q_band[0]) & (q <= q_band[1]) & np.isfinite(r) & np.isfinite(dr) & (dr > 0)
    weights = np.zeros_like(r)
    weights[sel] = 1.0 / dr[sel] ** 2
    total = np.bincount(slices.slice_of, weights=weights, minlength=slices.count)
    weighted = np.bincount(
        slices.slice_of, weights=np.where(sel, weights * np.where(sel, r, 0.0), 0.0), minlength=slices.count
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(total > 0, weighted / total, np.nan)
        errors = np.where(total > 0, 1.0 / np.sqrt(total), np.nan)
    if np.all(np.isnan(means)):
        finite = q[np.isfinite(q)]
        covered = (
            f"the slices cover Q {finite.min():.4g} to {finite.max():.4g} 1/Å" if finite.size else "no slice has data"
        )
        raise PlotError(
            f"no slice has a point with a positive dR in the Q band {q_band[0]}-{q_band[1]} 1/Å "
            f"({covered}): choose --q-min/--q-max inside it",
            exit_code=2,
        )
    return means, errors


# The columns a plot reads (a scan of only these keeps a 2,000-slice run's memory small).
PLOT_COLUMNS = ("run_number", "interval_start", "interval_end", "interval_type", "Q", "R", "dR")
# Slices drawn as lines, and those with error bars, evenly spaced in time: beyond a
# few hundred, more lines of one colour map are ink, not information (the right
# panel's band mean covers every slice).
LINE_SLICES = 400
ERROR_BAR_SLICES = 12


def _evenly(count: int, most: int) -> np.ndarray:
    """Up to ``most`` indices of ``range(count)``, evenly spaced, first and last included."""
    return np.unique(np.linspace(0, count - 1, min(most, count)).round().astype(np.int64))


def plot_run(reflectivity: pa.Table, output: Path, q_band: tuple[float, float] = (0.01, 0.03)) -> Figure:
    """Write the figure of :func:`draw_run` to ``output``.

    Raises:
        PlotUnavailable: when matplotlib is not installed.
        PlotError: when the Q band holds no data.
    """
    plt = _matplotlib()
    fig, count, hidden = draw_run(reflectivity, q_band)
    output = Path(output)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return Figure(output, count, hidden)


def draw_run(reflectivity: pa.Table, q_band: tuple[float, float] = (0.01, 0.03)) -> tuple[Any, int, int]:
    """A two-panel figure of one run's reflectivity rows.

    Left: R(Q) of every slice as one line collection on log axes, coloured by the
    slice's start time (a colour bar in UTC), with the dR error bars of up to
    :data:`ERROR_BAR_SLICES` slices evenly spaced in time (thousands of error bars are
    ink, not information). The y range comes from the data: the positive R values,
    with a lower error bar that reaches zero or below clipped at the axis (not drawn
    down to R x 1e-9). R values that are zero, negative or not finite cannot sit on a
    log axis and are counted in the legend. Right: the error-weighted mean R over
    ``q_band`` per slice against time, hold and EIS intervals shaded; the time axis
    shows dates when the run spans days.

    Returns:
        (the matplotlib figure, slices, R values not on the log axis).

    Raises:
        PlotUnavailable: when matplotlib is not installed.
        PlotError: when the Q band holds no data.
    """
    plt = _matplotlib()
    import matplotlib.dates as mdates
    from matplotlib.collections import LineCollection, PolyCollection

    slices = _slices(reflectivity)
    means, band_errors = band_values(slices, q_band)
    q, r, dr = slices.q, slices.r, slices.dr
    with np.errstate(invalid="ignore"):
        shown = np.isfinite(r) & (r > 0) & np.isfinite(q) & (q > 0)
    hidden = int((~shown).sum())
    if not shown.any():
        raise PlotError(f"run {slices.run_number}: no R value above zero; nothing to draw on a log axis", exit_code=1)
    low, high = float(r[shown].min()), float(r[shown].max())
    bottom, top = low / 2.0, high * 2.0
    norm = plt.Normalize(slices.starts.min(), max(slices.starts.max(), slices.starts.min() + 1e-9))
    cmap = plt.get_cmap("viridis")
    colours = cmap(norm(slices.starts))

    # Laid out by hand: constrained layout draws the figure twice.
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"wspace": 0.28})
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.12, top=0.88)
    points = np.column_stack([np.where(shown, q, np.nan), np.where(shown, r, np.nan)])
    drawn = _evenly(slices.count, LINE_SLICES)
    lines = [points[slices.offsets[i] : slices.offsets[i + 1]] for i in drawn]
    left.add_collection(LineCollection(lines, colors=colours[drawn], linewidths=0.6, alpha=0.7))
    picked = _evenly(slices.count, ERROR_BAR_SLICES)
    mask = shown & np.isin(slices.slice_of, picked) & np.isfinite(dr)
    lower = np.maximum(r[mask] - dr[mask], bottom)  # reaching zero or below: clipped at the axis
    upper = np.minimum(r[mask] + dr[mask], top)
    bars = np.stack([np.column_stack([q[mask], lower]), np.column_stack([q[mask], upper])], axis=1)
    left.add_collection(LineCollection(list(bars), colors=colours[slices.slice_of[mask]], linewidths=0.5, alpha=0.8))
    qs = q[shown]
    shown_lines = "" if len(drawn) == slices.count else f" ({len(drawn)} drawn, evenly spaced in time)"
    left.set(
        xscale="log",
        yscale="log",
        xlabel="Q [1/Å]",
        ylabel="R",
        xlim=(qs.min() / 1.05, qs.max() * 1.05),
        ylim=(bottom, top),
    )
    left.set_title(f"run {slices.run_number}: {slices.count} slices{shown_lines}", fontsize="medium")
    left.plot([], [], " ", label=f"{hidden} R value(s) ≤ 0 or not finite: not on the log axis")
    left.plot([], [], color="0.3", lw=0.5, label=f"dR bars on {len(picked)} slices evenly spaced in time")
    left.legend(loc="lower left", fontsize="small", frameon=False)  # where decaying curves leave room
    left.axvspan(*q_band, color="0.9", zorder=0, lw=0)
    colour_bar = fig.colorbar(plt.cm.ScalarMappable(cmap=cmap, norm=norm), ax=left, label="slice start (UTC)")
    colour_bar.ax.yaxis.set_major_locator(mdates.AutoDateLocator())
    days = slices.ends.max() - slices.starts.min()
    colour_bar.ax.yaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M" if days >= 1 else "%H:%M"))
    if days < 1:
        colour_bar.set_label(f"slice start (UTC, {mdates.num2date(slices.starts.min()):%Y-%m-%d})")

    for kind, colour in ((False, "0.85"), (True, "tab:orange")):
        pick = slices.eis == kind
        a, b = slices.starts[pick], slices.ends[pick]
        boxes = np.stack(
            [
                np.column_stack([a, np.zeros_like(a)]),
                np.column_stack([a, np.ones_like(a)]),
                np.column_stack([b, np.ones_like(a)]),
                np.column_stack([b, np.zeros_like(a)]),
            ],
            axis=1,
        )
        right.add_collection(
            PolyCollection(list(boxes), facecolors=colour, alpha=0.4, lw=0, transform=right.get_xaxis_transform())
        )
    mids = (slices.starts + slices.ends) / 2
    style = {"fmt": "o-", "ms": 3} if slices.count <= 200 else {"fmt": "-", "ms": 0}
    right.errorbar(mids, means, yerr=band_errors, color="k", lw=0.8, capsize=0, elinewidth=0.5, **style)
    right.set_xlim(slices.starts.min(), slices.ends.max())
    locator = mdates.AutoDateLocator()
    right.xaxis.set_major_locator(locator)
    right.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    right.set(xlabel="time (UTC)", ylabel=f"mean R, Q {q_band[0]}–{q_band[1]} 1/Å")
    right.set_title("R in the Q band over time\n(grey: hold, orange: EIS)", fontsize="medium")
    return fig, slices.count, hidden
