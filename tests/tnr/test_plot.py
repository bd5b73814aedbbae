"""The plot of a run a scientist would keep: built from the reduction library's real
REFL_* files (tests/fixtures/reference_files: real data, points where dR >= R) as the
slices of a run that spans two days."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from manifest_broker.tnr.package import package_run
from manifest_broker.tnr.plot import PlotError, draw_run, plot_run
from tests.tnr.spec_run import FILES, RUN, spec_run

REAL = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "reference_files").glob("REFL_*.txt"))


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("plot")
    split, reduced, xml = spec_run(root / "run")
    for i, name in enumerate(FILES):
        shutil.copy(REAL[i % len(REAL)], reduced / f"r{RUN}_{name}.txt")
    data = json.loads(split.read_text())  # the last slice two days later: a run that spans days
    data["intervals"][-1].update(start="2025-05-03T23:10:00", end="2025-05-03T23:20:00")
    split.write_text(json.dumps(data))
    return package_run(split, reduced, xml).reflectivity


def test_the_y_range_comes_from_the_data(real_run) -> None:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    r = np.concatenate([np.asarray(v, float) for v in real_run["R"].to_pylist()])
    dr = np.concatenate([np.asarray(v, float) for v in real_run["dR"].to_pylist()])
    positive = r[np.isfinite(r) & (r > 0)]
    assert (dr[np.isfinite(r) & (r > 0)] >= positive).any()  # real data: error bars that reach zero
    fig, slices, hidden = draw_run(real_run)
    try:
        bottom, top = fig.axes[0].get_ylim()
        assert bottom == pytest.approx(positive.min() / 2) and top == pytest.approx(positive.max() * 2)
        assert bottom > 1e-12  # was 1e-17: lower bars drawn down to R x 1e-9
        assert slices == len(FILES) and hidden == int((~(np.isfinite(r) & (r > 0))).sum())
    finally:
        plt.close(fig)


def test_ticks_show_the_date_when_a_run_spans_days_and_titles_fit(real_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    fig, _, _ = draw_run(real_run)
    try:
        fig.canvas.draw()
        colour_bar = fig.axes[2]
        labels = [t.get_text() for t in colour_bar.get_yticklabels() if t.get_text()]
        assert labels and all(label[:2] == "05" and "-" in label for label in labels), labels  # month-day shown
        right = [t.get_text() for t in fig.axes[1].get_xticklabels() if t.get_text()]
        assert any("May" in label for label in right) and len(set(right)) > 2, right  # dates shown, not all "00:00"
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        for axes in fig.axes[:2]:
            box = axes.title.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width, axes.title.get_text()
    finally:
        plt.close(fig)
    figure = plot_run(real_run, tmp_path / "real.png")
    assert figure.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_band_without_data_names_the_range(real_run) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlotError, match=r"the slices cover Q"):
        draw_run(real_run, (5.0, 6.0))
