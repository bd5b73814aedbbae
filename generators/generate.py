"""Run a manifest generator: a built-in layout or a user's script written to the guide."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pyarrow as pa

from manifest_broker.errors import BrokerError
from manifest_broker.generators import LAYOUTS


class GeneratorError(BrokerError, RuntimeError):
    """A generator that cannot be loaded or that returned something unusable."""


@dataclass(frozen=True)
class GeneratedManifests:
    hamiltonians: pa.Table
    artifacts: pa.Table
    written: list[Path]


def load_generator(spec: str) -> ModuleType:
    """Import a generator: a layout name (``vdp``), a dotted module, or a ``.py`` file.

    Raises:
        GeneratorError: when nothing importable with a ``generate`` function is found.
    """
    try:
        if spec in LAYOUTS:
            module = importlib.import_module(f"manifest_broker.generators.{spec}")
        elif spec.endswith(".py") or Path(spec).is_file() or os.sep in spec:  # a path, not a module name
            path = Path(spec).resolve()
            if not path.is_file():
                raise GeneratorError(f"generator script {spec} not found")
            loader_spec = importlib.util.spec_from_file_location(f"broker_user_generator_{path.stem}", path)
            if loader_spec is None or loader_spec.loader is None:
                raise GeneratorError(f"cannot import {spec}")
            module = importlib.util.module_from_spec(loader_spec)
            try:
                loader_spec.loader.exec_module(module)
            except SystemExit as exc:
                raise GeneratorError(
                    f"{spec}: the generator called sys.exit({exc.code!r}) while being imported", where=spec
                ) from None
            except SyntaxError as exc:
                raise GeneratorError(
                    f"{exc.filename}:{exc.lineno}: syntax error in the generator: {exc.msg}", where=exc.filename
                ) from None
            except Exception as exc:  # the user's module failed while importing: their frame, not ours
                raise user_code_error(exc, path, "importing the generator") from None
        else:
            module = importlib.import_module(spec)
    except ImportError as exc:
        raise GeneratorError(f"cannot import generator {spec!r}: {exc}") from exc
    if not callable(getattr(module, "generate", None)):
        raise GeneratorError(f"{spec}: no generate(output_dir, n_hamiltonians=None) function", where=spec)
    return module


def user_code_error(exc: BaseException, script: Path | None, doing: str) -> GeneratorError:
    """One line for an exception raised in the user's generator: the innermost frame
    in their own code (file and line), the exception and its message; none of the
    broker's frames."""
    frames = traceback.extract_tb(exc.__traceback__)
    broker_root = str(Path(__file__).resolve().parents[1])
    theirs = [
        f
        for f in frames
        if (script is not None and Path(f.filename).resolve() == script)
        or not str(Path(f.filename).resolve()).startswith(broker_root)
    ]
    here = f"{theirs[-1].filename}:{theirs[-1].lineno}: " if theirs else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return GeneratorError(
        f"{here}{type(exc).__name__} while {doing}" + (f": {message}" if message else ""),
        where=theirs[-1].filename if theirs else script,
    )


def _as_arrow(value: object, what: str) -> pa.Table:
    if isinstance(value, pa.Table):
        return value
    if hasattr(value, "to_arrow"):  # polars
        return value.to_arrow()  # type: ignore[union-attr]
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas ships with tiled[server]
        pd = None
    if pd is not None and isinstance(value, pd.DataFrame):
        return pa.Table.from_pandas(value, preserve_index=False)
    raise GeneratorError(f"generate() returned {type(value).__name__} for the {what}; expected a table")


def _snapshot(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in Path(folder).glob("*.parquet")}


def run_generator(spec: str, data_dir: Path, output_dir: Path, n_hamiltonians: int | None = None) -> GeneratedManifests:
    """Run ``generate`` with ``data_dir`` as the data location.

    The guide's template reads a module constant ``DATA_DIR``; it is set before the
    call, and ``data_dir=`` is passed as well when the function accepts it.

    Raises:
        GeneratorError: for a missing data directory, an unusable generator, or one
            that found no Hamiltonians (the manifests it just created are removed).
    """
    if not Path(data_dir).is_dir():
        raise GeneratorError(f"{data_dir}: data directory not found", where=data_dir)
    module = load_generator(spec)
    module.DATA_DIR = str(data_dir)  # type: ignore[attr-defined]
    kwargs: dict[str, object] = {}
    if "data_dir" in inspect.signature(module.generate).parameters:
        kwargs["data_dir"] = data_dir
    before = _snapshot(output_dir)
    try:
        result = module.generate(str(output_dir), n_hamiltonians, **kwargs)
    except SystemExit as exc:  # the script's own exit would become the broker's (exit 0, and no --json answer)
        raise GeneratorError(
            f"{spec}: generate() called sys.exit({exc.code!r}) instead of returning (hamiltonians, artifacts)",
            where=spec,
        ) from None
    except Exception as exc:
        if module.__name__.startswith("manifest_broker."):  # a built-in layout: the broker's own bug
            raise
        script = Path(module.__file__).resolve() if module.__file__ else None
        raise user_code_error(exc, script, "running generate()") from None
    if not (isinstance(result, tuple) and len(result) == 2):
        raise GeneratorError(f"{spec}: generate() must return (hamiltonians, artifacts)", where=spec)
    after = _snapshot(output_dir)
    written = sorted(p for p, mtime in after.items() if before.get(p) != mtime)
    generated = GeneratedManifests(_as_arrow(result[0], "Hamiltonians"), _as_arrow(result[1], "artifacts"), written)
    if generated.hamiltonians.num_rows == 0:
        for path in written:
            if path not in before:  # only what this run created; a rewritten file stays
                path.unlink()
        raise GeneratorError(
            f"{spec}: generated no Hamiltonians from {data_dir} (is it the right data directory?)", where=spec
        )
    return generated


def synthesize(layout: str, out_dir: Path, n_hamiltonians: int, seed: int = 0) -> GeneratedManifests:
    """Write a synthetic dataset (HDF5 under ``out_dir/data``) and its manifests.

    Raises:
        GeneratorError: for an unknown layout.
    """
    if layout not in LAYOUTS:
        raise GeneratorError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    module = importlib.import_module(f"manifest_broker.generators.{layout}")
    data_dir = out_dir / "data"
    module.synthesize(data_dir, n_hamiltonians, seed)
    return run_generator(layout, data_dir, out_dir / "manifests", n_hamiltonians)
