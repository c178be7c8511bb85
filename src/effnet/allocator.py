"""Keep freed CPU memory in the process instead of returning it to the kernel.

PyTorch's CPU tensors come from ``malloc``. glibc serves allocations above 128 KiB-32 MiB with
fresh ``mmap`` pages and unmaps them on free, so every activation of every training step is
page-faulted in and zeroed by the kernel again: for the Fashion-MNIST networks (activations of
3-50 MB, batch 256) that was a third of the step time. Telling glibc never to use ``mmap``
for large blocks and never to trim the heap makes freed blocks reusable, as PyTorch's CUDA
caching allocator does on the GPU. The price: the process keeps its peak memory until it
exits. This is what ``train.cache_cpu_memory`` (on by default) does for CPU training.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_cpu_memory() -> bool:
    """Switch glibc's malloc to reuse freed memory; True if it took effect (glibc only)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success. 2^31 - 1 bytes is the largest trim threshold it accepts.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


__all__ = ["keep_freed_cpu_memory"]
