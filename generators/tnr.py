"""Synthetic time-resolved neutron reflectometry (tNR) runs that look like the real ones.

One run directory holds what the EIS interval extractor and the event-splitting
reducer produce (see shared/notes/tnr-formats.md):

    <run>/expt-splits-per-file-w-hold.json   split file (per-file mode, hold slicing)
    <run>/REF_L_sample_tNR.xml               reduction template, one <RefLData> per angle
    <run>/reduced/r<run>_eis_reduction.json  sidecar (run number, order, reduced_files)
    <run>/reduced/reduction_options.json     tz_offset and friends
    <run>/reduced/r<run>_<clean label>.txt   one reduced file per slice, both flavours
    <run>/reduced/REFL_<run>_combined_data_auto.txt   a stray file, as on real disks
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from manifest_broker.tnr.package import clean_label

SPLIT_NAME = "expt-splits-per-file-w-hold.json"
TEMPLATE_NAME = "REF_L_sample_tNR.xml"
HOLD_SECONDS = 60.0


@dataclass(frozen=True)
class SyntheticRun:
    root: Path
    run_number: int
    split_file: Path
    reduced_dir: Path
    template: Path
    labels: list[str]


def _iso(t: datetime) -> str:
    # The extractor omits the fraction when it is zero.
    return t.isoformat(timespec="microseconds").removesuffix(".000000")


def _intervals(n_slices: int, start: datetime, rng: np.random.Generator) -> list[dict]:
    """Holds and EIS intervals in time order, about n_slices of them."""
    intervals: list[dict] = []
    t = start
    hold_index = 0
    file_index = 0
    while len(intervals) < n_slices:
        n_holds = 2 if file_index == 0 else 3
        for k in range(n_holds):
            if len(intervals) >= n_slices:
                break
            duration = HOLD_SECONDS if k < n_holds - 1 else float(rng.integers(5, 59))
            label = f"hold_initial_{k}" if file_index == 0 else f"hold_gap_{file_index}_{k}"
            intervals.append(
                {
                    "label": label,
                    "interval_type": "hold",
                    "start": _iso(t),
                    "end": _iso(t + timedelta(seconds=duration)),
                    "duration_seconds": duration,
                    "hold_index": hold_index,
                }
            )
            t += timedelta(seconds=duration)
            hold_index += 1
        if len(intervals) >= n_slices:
            break
        duration = float(rng.integers(300, 900)) + 0.5
        # every fourth EIS file has no sequence number: its stem (spaces, commas) is the label
        label = (
            f"sequence_{file_index + 1}_eis_{file_index + 1}"
            if file_index % 4 != 3
            else f"Cell 7, OCV scan {file_index + 1:02d} after"[:30]
        )
        intervals.append(
            {
                "label": label,
                "filename": f"{label}.mpt",
                "interval_type": "eis",
                "start": _iso(t),
                "end": _iso(t + timedelta(seconds=duration)),
                "duration_seconds": duration,
                "n_frequencies": int(rng.integers(30, 60)),
                "first_time_s": 0.0,
                "last_time_s": duration,
                "avg_ewe_v": round(float(rng.uniform(-0.2, 0.3)), 4),
            }
        )
        t += timedelta(seconds=duration)
        file_index += 1
    return intervals


def _template(run_number: int) -> str:
    blocks = []
    for angle, (theta, norm) in enumerate([(0.45, 218380), (1.2, 218381), (3.5, 218382)]):
        tags = {
            "data_sets": str(run_number),
            "norm_dataset": str(norm),
            "incident_angle": f"{theta}",
            "from_peak_pixels": str(130 + angle),
            "to_peak_pixels": str(140 + angle),
            "back_roi1_from": "30",
            "back_roi1_to": "60",
            "from_q_range": "0.008",
            "to_q_range": "0.2",
            "q_step": "-0.02",
            "q_min": "0.008",
            "angle_offset": "0.0",
            "angle_offset_error": "0.0",
            "scaling_factor_file": "/SNS/REF_L/shared/autoreduce/sf_186529_Si_auto.cfg",
            "dead_time_correction": "True",
            "tof_range_flag": "True",
            "norm_flag": "True",
            "slits_width_flag": "N/A",
        }
        body = "".join(f"      <{k}>{v}</{k}>\n" for k, v in tags.items())
        blocks.append(f"    <RefLData>\n{body}    </RefLData>\n")
    return (
        "<Reduction>\n <instrument_name>REFL</instrument_name>\n <timestamp>Wednesday, 30. April 2025 08:31AM</timestamp>\n"
        " <version>2.1.14</version>\n <mantid_version>6.12.0</mantid_version>\n <generator>lr_reduction</generator>\n"
        f" <DataSeries>\n{''.join(blocks)} </DataSeries>\n</Reduction>\n"
    )


def _reduced_text(
    n_points: int, flavour: int, run_number: int, label: str, start: str, rng: np.random.Generator
) -> str:
    q = np.sort(rng.uniform(0.008, 0.2, n_points))
    r = np.exp(-q * 60) * (1 + 0.05 * np.cos(q * 200)) + rng.normal(0, 1e-5, n_points)
    r[rng.integers(0, n_points)] = -abs(r[0]) * 0.01  # real data has negative R
    dr = np.abs(r) * 0.05 + 1e-7
    dq = q * 0.027
    if rng.random() < 0.3:
        r[-1] = np.nan  # and occasionally NaN
    rows = np.column_stack([q, r, dr, dq])
    if flavour == 1:
        return "\n".join(" ".join(f"{v:.18e}" for v in row) for row in rows) + "\n"
    meta = {
        "run_number": str(run_number),
        "q_min": 0.008,
        "q_max": 0.2,
        "dq_over_q": 0.027,
        "theta": 0.45,
        "sequence_id": run_number,
        "scaling_factors": {"a": 1.0, "b": 0.0},
        "slice": label,
    }
    header = [
        f"# Experiment IPTS-34347 Run {run_number}",
        "# Reduction 2.1.14",
        "# Run title: sample 6 tNR",
        f"# Run start time: {start}",
        "# Reduction time: Wed Apr 30 09:12:44 2025",
        "# Q summing: False",
        "# TOF weighted: False",
        "# Bck in Q: False",
        "# Theta offset: 0",
        f"# Meta:{json.dumps(meta)}",
        "# DataRun   NormRun   TwoTheta(deg)  LambdaMin(A)   LambdaMax(A) Qmin(1/A)    Qmax(1/A)    SF_A         SF_B",
        f"# {run_number}    218380    0.900000       2.750000       9.500000     0.008000     0.034000     1.000000     0.000000",
        "# Q [1/Angstrom]        R                    dR                   dQ [FWHM]",
    ]
    return "\n".join(header) + "\n" + "\n".join("  ".join(f"{v:20.16f}" for v in row) for row in rows) + "\n"


FLAVOURS = ("mixed", "savetxt", "library")


def synthesize_run(
    root: Path,
    run_number: int = 218389,
    n_slices: int = 12,
    seed: int = 0,
    points: tuple[int, int] = (100, 500),
    tz_offset: float = 4.0,
    flavour: str = "mixed",
) -> SyntheticRun:
    """Write one complete run under ``root``.

    Args:
        flavour: The reduced files' format: ``savetxt`` (what the event-splitting
            reducer writes per slice: numpy.savetxt rows), ``library`` (the reduction
            library's headed fixed-width files), or ``mixed`` (half of each).
        tz_offset: The reducer's convention, UTC = local + tz_offset hours: 4.0 for
            US Eastern daylight time (the runs are in May).
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour {flavour!r}: one of {', '.join(FLAVOURS)}")
    rng = np.random.default_rng([seed, run_number])
    reduced = root / "reduced"
    reduced.mkdir(parents=True, exist_ok=True)
    intervals = _intervals(n_slices, datetime(2025, 5, 2, 9, 1, 0), rng)
    split = {
        "source_directory": "/SNS/REF_L/IPTS-34347/shared/eis/expt11",
        "pattern": "*C02_?.mpt",
        "resolution": "per-file",
        "n_intervals": len(intervals),
        "hold_interval_seconds": HOLD_SECONDS,
        "n_hold_intervals": sum(i["interval_type"] == "hold" for i in intervals),
        "n_eis_intervals": sum(i["interval_type"] == "eis" for i in intervals),
        "intervals": intervals,
    }
    split_file = root / SPLIT_NAME
    split_file.write_text(json.dumps(split, indent=2))
    template = root / TEMPLATE_NAME
    template.write_text(_template(run_number))
    names = []
    for i, interval in enumerate(intervals):
        name = f"r{run_number}_{clean_label(interval['label'])}.txt"
        n = int(rng.integers(points[0], points[1] + 1))
        kind = {"mixed": 1 + i % 2, "savetxt": 1, "library": 2}[flavour]
        (reduced / name).write_text(_reduced_text(n, kind, run_number, interval["label"], interval["start"], rng))
        names.append(name)
    start, end = intervals[0]["start"], intervals[-1]["end"]
    sidecar = {
        "run_number": run_number,
        "duration": (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(),
        "n_intervals": len(intervals),
        "intervals": [{k: iv[k] for k in ("label", "interval_type", "start", "end")} for iv in intervals],
        "reduced_files": [f"/SNS/REF_L/IPTS-34347/shared/autoreduce/tnr/{n}" for n in names],
    }
    (reduced / f"r{run_number}_eis_reduction.json").write_text(json.dumps(sidecar, indent=2))
    options = {
        "intervals_file": str(split_file),
        "event_file": f"/SNS/REF_L/IPTS-34347/nexus/REF_L_{run_number}.nxs.h5",
        "template_file": str(template),
        "output_dir": str(reduced),
        "scan_index": 1,
        "theta_offset": 0.0,
        "tz_offset": tz_offset,
        "n_intervals": len(intervals),
    }
    (reduced / "reduction_options.json").write_text(json.dumps(options, indent=2))
    (reduced / f"REFL_{run_number}_combined_data_auto.txt").write_text("0.01 1 0.1 0.001\n")
    return SyntheticRun(root, run_number, split_file, reduced, template, [iv["label"] for iv in intervals])


def synthesize_campaign(
    root: Path,
    runs: int,
    n_slices: int = 12,
    seed: int = 0,
    *,
    points: tuple[int, int] = (100, 500),
    flavour: str = "mixed",
) -> list[SyntheticRun]:
    """``runs`` runs under ``root/run_<number>``, numbered from 218389, as a campaign."""
    return [
        synthesize_run(
            Path(root) / f"run_{218389 + i}",
            run_number=218389 + i,
            n_slices=n_slices,
            seed=seed + i,
            points=points,
            flavour=flavour,
        )
        for i in range(runs)
    ]
