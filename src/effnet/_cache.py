"""Where effnet keeps files between runs (exported models, built CPU kernels)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EFFNET_CACHE``, else ``$XDG_CACHE_HOME/effnet``, else ``~/.cache/effnet``."""
    if os.environ.get("EFFNET_CACHE"):
        return Path(os.environ["EFFNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "effnet"
