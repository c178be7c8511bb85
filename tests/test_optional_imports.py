"""The test suite's optional-package guard skips only for a package that is not installed."""

from __future__ import annotations

import sys

import pytest

from .optional import require


def test_a_missing_package_skips():
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require("effnet_no_such_package")
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require("effnet_no_such_package.submodule")


def test_a_broken_package_fails_instead_of_skipping(tmp_path, monkeypatch):
    # Installed but unable to import: a dependency inside it is missing, or it raises ImportError.
    (tmp_path / "effnet_broken_dependency.py").write_text("import effnet_its_missing_dependency\n")
    (tmp_path / "effnet_broken_library.py").write_text("raise ImportError('libfoo.so: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("effnet_broken_dependency", "effnet_broken_library"):
        sys.modules.pop(name, None)
    with pytest.raises(ModuleNotFoundError, match="effnet_its_missing_dependency"):
        require("effnet_broken_dependency")
    with pytest.raises(ImportError, match="libfoo"):
        require("effnet_broken_library")


def test_an_installed_package_is_returned():
    assert require("json").dumps([1]) == "[1]"
