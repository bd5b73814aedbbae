"""What a broker process sets up for itself before a command runs."""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec


class _WithoutPandas:
    """A meta path finder that says pandas is not installed. pyarrow imports pandas
    whenever it can (``pyarrow.dataset``, which pyiceberg imports, does so at once):
    0.3 to 0.6 s of every `broker tnr package`, which never uses it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (not used by this command)", name=name)
        return None


# Commands that run without pandas. Only in a process of their own (the console
# scripts, `python -m`): pyarrow remembers that pandas is missing for the rest of
# the process, which an in-process caller (a test's CliRunner) would not expect.
WITHOUT_PANDAS = {("tnr", "package")}


def without_pandas() -> None:
    """From here on, this process imports no pandas (see :class:`_WithoutPandas`)."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _WithoutPandas())
