"""A tNR run built by hand from the spec and shared/notes/tnr-formats.md (not by
generators/): the reducer's files as the notes describe them, for the tNR tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

RUN = 218389
PLAIN = (
    "1.000000000000000021e-02 9.000000000000000222e-01 1.000000000000000021e-02 2.700000000000000060e-04\n"
    "2.000000000000000042e-02 -1.000000000000000021e-03 1.000000000000000021e-02 5.400000000000000120e-04\n"
)
HEADED = textwrap.dedent("""\
    # Experiment IPTS-34347 Run 218389
    # Reduction 2.1.14
    # Run title: sample 6 tNR
    # Run start time: 2025-05-02T09:02:00
    # Reduction time: Wed Apr 30 09:12:44 2025
    # Q summing: False
    # TOF weighted: False
    # Bck in Q: False
    # Theta offset: 0
    # Meta:{"run_number": "218389", "q_min": 0.008, "q_max": 0.2, "dq_over_q": 0.027, "theta": 0.45}
    # DataRun   NormRun   TwoTheta(deg)  LambdaMin(A)   LambdaMax(A) Qmin(1/A)    Qmax(1/A)    SF_A         SF_B
    # 218389    218380    0.900000       2.750000       9.500000     0.008000     0.034000     1.000000     0.000000
    # Q [1/Angstrom]        R                    dR                   dQ [FWHM]
      0.0100000000000000    0.9000000000000000    0.0100000000000000    0.0002700000000000
      0.0300000000000000                   nan    0.0100000000000000    0.0008100000000000
      0.0500000000000000    0.0100000000000000    0.0010000000000000    0.0013500000000000
""")
TEMPLATE = textwrap.dedent("""\
    <Reduction>
     <instrument_name>REFL</instrument_name>
     <timestamp>Wednesday, 30. April 2025 08:31AM</timestamp>
     <version>2.1.14</version>
     <mantid_version>6.12.0</mantid_version>
     <generator>lr_reduction</generator>
     <DataSeries>
      <RefLData>
       <data_sets>218389</data_sets>
       <norm_dataset>218380</norm_dataset>
       <incident_angle>0.45</incident_angle>
       <q_step>-0.02</q_step>
       <q_min>0.008</q_min>
       <angle_offset>N/A</angle_offset>
       <dead_time_correction>True</dead_time_correction>
      </RefLData>
     </DataSeries>
    </Reduction>
""")
# Per-file split with hold slicing: naive local times, fraction omitted when zero.
INTERVALS = [
    {
        "label": "hold_initial_0",
        "interval_type": "hold",
        "start": "2025-05-01T22:58:00",
        "end": "2025-05-01T22:59:00",
        "duration_seconds": 60.0,
        "hold_index": 0,
    },
    {
        "label": "hold_initial_1",
        "interval_type": "hold",
        "start": "2025-05-01T22:59:00",
        "end": "2025-05-01T22:59:30.5",
        "duration_seconds": 30.5,
        "hold_index": 1,
    },
    {
        "label": "sequence_1_eis_1",
        "filename": "sequence_1_eis_1.mpt",
        "interval_type": "eis",
        "start": "2025-05-01T22:59:30.5",
        "end": "2025-05-01T23:10:00",
        "duration_seconds": 629.5,
        "n_frequencies": 41,
        "first_time_s": 0.0,
        "last_time_s": 629.5,
    },
    {
        "label": "Cell 7, OCV scan 04 after",
        "filename": "Cell 7, OCV scan 04 after rest.mpt",
        "interval_type": "eis",
        "start": "2025-05-01T23:10:00",
        "end": "2025-05-01T23:20:00",
        "duration_seconds": 600.0,
        "n_frequencies": 35,
        "first_time_s": 0.0,
        "last_time_s": 600.0,
        "avg_ewe_v": 0.1234,
    },
]
FILES = ["hold_initial_0", "hold_initial_1", "sequence_1_eis_1", "Cell_7__OCV_scan_04_after"]


def spec_run(root: Path, *, sidecar: bool = True, template: str = TEMPLATE, run: int = RUN) -> tuple[Path, Path, Path]:
    """Exactly the spec's inputs: split file, reduced folder with its sidecar, template."""
    reduced = root / "reduced"
    reduced.mkdir(parents=True)
    split = root / "expt11-splits-per-file-w-hold.json"
    split.write_text(
        json.dumps(
            {
                "source_directory": "/SNS/REF_L/IPTS-34347/shared/eis/expt11",
                "pattern": "*C02_?.mpt",
                "resolution": "per-file",
                "n_intervals": 4,
                "hold_interval_seconds": 60,
                "n_hold_intervals": 2,
                "n_eis_intervals": 2,
                "intervals": INTERVALS,
            },
            indent=2,
        )
    )
    for i, name in enumerate(FILES):
        (reduced / f"r{run}_{name}.txt").write_text(PLAIN if i % 2 == 0 else HEADED)
    if sidecar:
        (reduced / f"r{run}_eis_reduction.json").write_text(
            json.dumps(
                {
                    "run_number": run,
                    "duration": 1320.0,
                    "n_intervals": 4,
                    "intervals": [{k: iv[k] for k in ("label", "interval_type", "start", "end")} for iv in INTERVALS],
                    "reduced_files": [f"/SNS/REF_L/IPTS-34347/shared/autoreduce/r{run}_{n}.txt" for n in FILES],
                }
            )
        )
    (reduced / f"REFL_{run}_combined_data_auto.txt").write_text("0.01 1 0.1 0.001\n")
    xml = root / "REF_L_sample_6_tNR.xml"
    xml.write_text(template)
    return split, reduced, xml


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from manifest_broker.tnr.lake import write_run
from manifest_broker.tnr.package import package_run
package = package_run(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
def pause():
    print("between commits", flush=True)
    time.sleep(120)
write_run(Path(sys.argv[4]), package, between_commits=pause)
"""


def kill_between_commits(split: Path, reduced: Path, xml: Path, lake: Path) -> None:
    """SIGKILL a packaging of the run between its two Iceberg commits."""
    process = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(split), str(reduced), str(xml), str(lake)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "between commits"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
