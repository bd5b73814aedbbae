"""The data provider's side of the guide: explore the files (Step 1), make synthetic
data, run a manifest generator (Steps 3-5)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer

from manifest_broker import render
from manifest_broker.commandline._shared import JsonOption, input_dir, new_file, output_dir, prints_to_stderr
from manifest_broker.errors import BrokerError


def synth(
    layout: Annotated[
        str,
        typer.Argument(
            help="vdp, edrixs, multimodal, spinwave, nexus (reduced S(Q,E) NeXus files), or tnr (reflectometry runs)."
        ),
    ],
    out_dir: Annotated[
        Path, typer.Argument(help="Writes OUT_DIR/data (HDF5) and OUT_DIR/manifests; for tnr, OUT_DIR/run_<number>.")
    ],
    n: Annotated[
        int, typer.Option("-n", "--n-hamiltonians", min=1, help="Hamiltonians to make (tnr: slices per run).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 0,
    runs: Annotated[int, typer.Option("--runs", min=1, help="tnr: runs to make (a campaign).")] = 1,
    flavour: Annotated[
        str, typer.Option("--flavour", help="tnr: reduced files as savetxt, library (headed) or mixed.")
    ] = "mixed",
    as_json: JsonOption = False,
) -> None:
    """Write a synthetic dataset in one of the guide's layouts and its manifests, or synthetic tNR runs."""
    from manifest_broker.generators.generate import synthesize

    folder = out_dir.absolute().parent
    if not out_dir.exists() and not folder.is_dir():  # OUT_DIR is made; the folder it goes into must be there
        raise BrokerError(f"OUT_DIR {out_dir}: folder {folder} does not exist", where=out_dir)
    if layout == "tnr":
        _synth_tnr(out_dir, runs, n, seed, flavour)
        return
    for folder in (out_dir, out_dir / "data", out_dir / "manifests"):
        output_dir(folder, "OUT_DIR")
    result = synthesize(layout, out_dir, n, seed)

    def text() -> None:
        render.console.print(
            f"{layout}: {result.hamiltonians.num_rows} Hamiltonians, {result.artifacts.num_rows} artifacts",
            markup=False,
        )
        for path in result.written:
            render.console.print(f"  wrote {path}", markup=False)

    render.output().emit(
        {
            "layout": layout,
            "hamiltonians": result.hamiltonians.num_rows,
            "artifacts": result.artifacts.num_rows,
            "written": [str(p) for p in result.written],
        },
        text,
    )


def _synth_tnr(out_dir: Path, runs: int, slices: int, seed: int, flavour: str) -> None:
    from manifest_broker.generators.tnr import FLAVOURS, synthesize_campaign

    if flavour not in FLAVOURS:
        raise BrokerError(f"--flavour {flavour}: one of {', '.join(FLAVOURS)}", exit_code=2)
    output_dir(out_dir, "OUT_DIR")
    made = synthesize_campaign(out_dir, runs, slices, seed, flavour=flavour)

    def text() -> None:
        for run in made:
            render.console.print(f"run {run.run_number}: {len(run.labels)} slices in {run.reduced_dir}", markup=False)

    render.output().emit(
        {
            "layout": "tnr",
            "runs": [
                {
                    "run_number": r.run_number,
                    "split_file": str(r.split_file),
                    "reduced_dir": str(r.reduced_dir),
                    "template": str(r.template),
                    "slices": len(r.labels),
                }
                for r in made
            ],
        },
        text,
    )


def generate(
    generator: Annotated[str, typer.Argument(help="A layout name, a dotted module, or a generator .py file.")],
    data_dir: Annotated[Path, typer.Argument(help="Where the HDF5 files are (sets the script's DATA_DIR).")],
    out_dir: Annotated[Path, typer.Argument(help="Where the two Parquet manifests go.")],
    n: Annotated[int | None, typer.Option("-n", "--n-hamiltonians", min=1, help="Limit the Hamiltonians.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Run a manifest generator written to the guide's interface."""
    from manifest_broker.generators.generate import LAYOUTS, run_generator

    output_dir(out_dir, "OUT_DIR")
    from manifest_broker.boundary import ProviderFileError

    try:
        with prints_to_stderr(render.output().json):  # the generator's own prints: stdout is the JSON answer's
            result = run_generator(generator, data_dir, out_dir, n)
    except (FileNotFoundError, ProviderFileError) as exc:
        if generator not in LAYOUTS or (isinstance(exc, ProviderFileError) and exc.rule != "missing"):
            raise
        # a built-in layout pointed at another layout's folder: the file it looks for is not there
        missing = exc.where if isinstance(exc, ProviderFileError) else exc.filename
        raise BrokerError(
            f"DATA_DIR {data_dir}: not a {generator} dataset ({missing or 'a file it reads'} is "
            f"missing); give the folder `broker synth {generator}` wrote its data into",
            where=data_dir,
        ) from None
    if not result.written:  # exit 0 promises manifests to check and ingest
        raise BrokerError(
            f"{generator}: the generator wrote no manifest into {out_dir} (generate() must write "
            "<name>_hamiltonians.parquet and <name>_artifacts.parquet into its output folder)",
            where=out_dir,
        )

    def text() -> None:
        render.console.print(
            f"{result.hamiltonians.num_rows} Hamiltonians (columns: {', '.join(result.hamiltonians.column_names)}), "
            f"{result.artifacts.num_rows} artifacts",
            markup=False,
        )
        for path in result.written:
            render.console.print(f"  wrote {path}", markup=False)

    render.output().emit(
        {
            "hamiltonians": result.hamiltonians.num_rows,
            "artifacts": result.artifacts.num_rows,
            "hamiltonian_columns": result.hamiltonians.column_names,
            "written": [str(p) for p in result.written],
        },
        text,
    )


def explore(
    data_dir: Annotated[Path, typer.Argument(help="The provider's data directory.")],
    sample: Annotated[int, typer.Option(min=0, help="HDF5 files to open.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the random sample.")] = 0,
    card: Annotated[
        Path | None,
        typer.Option(
            "--card", help="Write the guide's Step 0 dataset card (YAML) here, from what was found.", show_default=False
        ),
    ] = None,
    generator: Annotated[
        Path | None,
        typer.Option(
            "--generator",
            help="Also save the starting generator here (never over an existing file).",
            show_default=False,
        ),
    ] = None,
    provider: Annotated[str, typer.Option(help="The data provider, for the card.")] = "",
    description: Annotated[str, typer.Option(help="What the dataset is, for the card.")] = "",
    as_json: JsonOption = False,
) -> None:
    """The guide's Step 1: count files, show HDF5 trees, compare structures, name the pattern."""
    from manifest_broker.provider import card as dataset_card
    from manifest_broker.provider.explore import explore as explore_dir

    input_dir(data_dir, "DATA_DIR")
    if card is not None:
        new_file(card, "--card", "a dataset card is already there (it may hold the provider's answers)")
    if generator is not None:
        new_file(generator, "--generator", "a file is already there (it may be an adapted generator)")
    report = explore_dir(data_dir, sample, seed)
    if generator is not None:
        generator.write_text(report.generator)
    written = None
    if card is not None:
        written = dataset_card.from_report(report, provider=provider, description=description)
        dataset_card.write(card, written)

    def text() -> None:
        from manifest_broker.boundary import printable

        c = render.console

        def say(text: str) -> None:  # provider names as readable escapes: no terminal control sequence gets through
            c.print("\n".join(printable(line) for line in text.split("\n")), markup=False)

        say(f"{report.root}: {report.n_files} HDF5 file(s), {report.total_bytes / 1e6:.1f} MB in all")
        say("by suffix: " + ", ".join(f"{s} {n}" for s, n in sorted(report.by_suffix.items())))
        say("first files: " + ", ".join(report.examples))
        for info in report.sample:
            c.print(
                f"\n[bold]{render.escape(printable(info.path))}[/] ({info.size / 1e3:.1f} kB)"
                + (f" [red]{render.escape(printable(info.error))}[/]" if info.error else "")
            )
            for key, value in info.attrs.items():
                say(f"  @{key} = {value}")
            for group in info.groups:
                say(f"  {group}/ (group)")
            for d in info.datasets:
                extra = f" chunks={d.chunks}" if d.chunks else ""
                flags = f" ({'; '.join(d.flags)})" if d.flags else ""
                say(f"  {d.path}: shape={d.shape}, dtype={d.dtype}{extra}{flags}")
                for key, value in d.attrs.items():
                    say(f"    @{key} = {value}")
            for entry in info.nexus:
                say(
                    f"  NeXus NXentry {entry.path}: signal {entry.signal or '(none)'}"
                    + (f", axes {', '.join(entry.axes)}" if entry.axes else "")
                    + (f", errors {entry.errors}" if entry.errors else "")
                )
                for p in entry.parameters:
                    units = f" [{p.units}]" if p.units else ""
                    how = " (NXlog mean)" if p.reduce else ""
                    say(f"    parameter {p.column} <- {p.path}{units}{how}")
        c.print("\n[bold]structures in the sample[/]")
        for count, paths in report.structures:
            say(f"  {count} file(s): {', '.join(paths)}")
        if report.flags:
            c.print("\n[bold]look at these[/]")
            for flag in report.flags:
                say(f"  - {flag}")
        c.print(
            f"\n[bold]likely pattern: {render.escape(report.pattern)}[/] ({render.escape(printable(report.reason))})"
        )
        c.print(
            "\n[bold]a starting generator[/] (save as gen_<name>_manifest.py, adapt, run with `broker generate`):\n"
        )
        sys.stdout.write(report.generator)
        if generator is not None:
            say(f"\nthe starting generator was saved as {generator}")
        if card is not None:
            c.print(
                f"\ndataset card written to {card}: fill in the provider's answers (descriptions, units, "
                "counts left null), then `broker check --card`",
                markup=False,
            )

    render.output().emit(
        {**dataclasses.asdict(report), "card": written, "card_path": None if card is None else str(card)}, text
    )


def register_commands(app: typer.Typer) -> None:
    app.command()(synth)
    app.command()(generate)
    app.command()(explore)
