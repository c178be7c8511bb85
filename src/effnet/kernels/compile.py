"""Compile effnet's C kernels once per machine and load them through ctypes.

The kernels are built with the system C compiler (``$CC``, else ``cc``) into
``$EFFNET_CACHE/kernels``, keyed by a hash of the source, the compiler, its flags and the
CPU (a library built with ``-march=native`` for one CPU must not run on another). Without a
compiler, or with ``EFFNET_NO_KERNELS=1``, nothing is built and :func:`unavailable_reason`
says why; callers fall back to native PyTorch.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path

from .._cache import cache_dir
from ..atomic import atomic_path
from ..device import cpu_info

SOURCE = Path(__file__).with_name("_cpu_kernels.c")
_OFF, _ON = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _flags() -> list[str]:
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", "-fPIC", "-shared"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.insert(2, "-mprefer-vector-width=512")
    return flags


def disabled_by_environment() -> bool:
    """``EFFNET_NO_KERNELS``: 1/true/yes/on turns the kernels off, 0/false/no/off (or unset)
    leaves them on; anything else is an error, not a guess."""
    value = os.environ.get("EFFNET_NO_KERNELS", "").strip().lower()
    if value in _OFF:
        return True
    if value in _ON:
        return False
    raise ValueError(f"EFFNET_NO_KERNELS={os.environ['EFFNET_NO_KERNELS']!r} is not understood; set it to 1 "
                     "(kernels off) or 0 (kernels on), or unset it")


class _BuildFailed(Exception):
    """The compiler's complaint (raised inside the atomic write so that nothing is left)."""


def _compile(compiler: str, path: Path) -> str | None:
    """Build the library at ``path``; the compiler's complaint when that fails."""
    folder = path.parent
    try:
        with atomic_path(path) as built:  # other processes see the whole library or none
            result = subprocess.run([compiler, *_flags(), str(SOURCE), "-o", str(built)],
                                    capture_output=True, text=True, timeout=300)
            if result.returncode != 0:
                raise _BuildFailed(f"{compiler} failed to build {SOURCE.name}: {result.stderr.strip()[-500:]}")
    except _BuildFailed as failed:
        return str(failed)
    except (OSError, subprocess.SubprocessError) as error:
        return f"could not build {SOURCE.name} in {folder}: {error}"
    return None


def _declare(library: ctypes.CDLL) -> ctypes.CDLL:
    """Argument and result types of every kernel entry (ctypes would guess them wrong)."""
    pointer, size, integer = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    signatures = {
        "effnet_bn_stats": ([pointer, size, size, pointer, pointer, pointer, integer], integer),
        "effnet_bn_act_apply": ([pointer, pointer, size, size, pointer, pointer, integer, integer], None),
        "effnet_bn_act_backward_sums": ([pointer, pointer, pointer, size, size, pointer, pointer, pointer, integer,
                                         pointer, pointer, integer], integer),
        "effnet_bn_act_backward_apply": ([pointer, pointer, size, size, pointer, pointer, pointer, integer], None),
        "effnet_se_gate_grad": ([pointer, pointer, size, size, size, pointer, integer], integer),
        "effnet_dw_forward": ([pointer, pointer, pointer, *[size] * 10, integer], None),
        "effnet_dw_backward": ([pointer] * 6 + [size] * 10 + [integer], integer),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, restype
    return library


@cache
def build() -> ctypes.CDLL | str:
    """The loaded kernel library, or a string saying why there is none."""
    if disabled_by_environment():
        return "EFFNET_NO_KERNELS is set"
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return "no C compiler found (set $CC or install gcc)"
    key = hashlib.sha256(b"|".join([SOURCE.read_bytes(), compiler.encode(), " ".join(_flags()).encode(),
                                    cpu_info().fingerprint.encode()])).hexdigest()[:16]
    path = cache_dir() / "kernels" / f"cpu_kernels-{key}.so"
    if not path.exists():
        failure = _compile(compiler, path)
        if failure:
            return failure
    try:
        return _declare(ctypes.CDLL(str(path)))
    except OSError as error:
        return f"could not load {path}: {error}"


def available() -> bool:
    """Whether the fused kernels are built and loaded on this machine."""
    return not isinstance(build(), str)


def unavailable_reason() -> str | None:
    built = build()
    return built if isinstance(built, str) else None


def library() -> ctypes.CDLL:
    built = build()
    if isinstance(built, str):
        raise RuntimeError(f"effnet's fused CPU kernels are unavailable: {built}")
    return built


__all__ = ["SOURCE", "available", "build", "disabled_by_environment", "library", "unavailable_reason"]
