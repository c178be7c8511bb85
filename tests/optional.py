"""Optional packages in tests: skip when a package is not installed, fail when it is broken.

`pytest.importorskip` skips on any ImportError before pytest 9 (a package that is installed but
cannot import, say a missing shared library, would then silently turn its tests into skips), and
this project allows pytest 8. `require` makes the distinction itself, on every pytest: only a
missing top-level package (or the named submodule) skips; any other import failure is raised.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest


def require(name: str) -> ModuleType:
    """Import ``name``, or skip the test when ``name`` (or a package above it) is not installed."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            pytest.skip(f"{name} is not installed ({missing} missing)")
        raise
