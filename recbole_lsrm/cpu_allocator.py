"""Keep freed memory in the process on a CPU, so that large tensors do not fault in every step.

A training step on a CPU allocates tensors of hundreds of MB (the (positions, n_items) scores
of the loss: 190 MB at batch 256, length 50 and ML-1M's 3,706 items). glibc serves each such
block with a fresh ``mmap`` and returns it on ``free``, so every step touches new pages and
the kernel zero-fills them: on this project's 2-core machine that was a quarter of an LSRM
step at d = 64. With ``mmap`` off and the heap never trimmed, freed blocks are reused as they
are. The cost is that the process's resident memory stays at its peak; PyTorch's own CUDA
memory is not affected.

Only glibc (Linux) has these settings; elsewhere :func:`keep_freed_memory` does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_done = False


def keep_freed_memory() -> bool:
    """Turn off glibc's mmap for large blocks and its heap trimming; True when it took effect."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
