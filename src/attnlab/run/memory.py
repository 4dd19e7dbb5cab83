"""Keep the memory a training step frees inside the process, for the next step to reuse.

glibc's malloc serves every block above its mmap threshold (128 KB, rising to at most 32 MB) with
a fresh ``mmap`` and hands it back to the kernel on ``free``. PyTorch's CPU tensors come straight
from malloc, so the largest tensors of a step (the (B*T, V) logits and their gradient: 65 MB each
at 2,048 tokens and a vocabulary of 8,000) are mapped, page-faulted in and unmapped again at every
step. With mmap off and the trim threshold raised, freed blocks stay in the heap and the next step
mostly reuses pages that are already there (a fifteenth of the page faults, tests/test_memory.py);
the benchmark's train step runs x1.12 faster (``benchmarks/peers.py``, lever +memory). The cost is that the process keeps its peak heap until it ends (+5 % peak
RSS on that step). Intel's CPU performance guide gets the same by preloading jemalloc or tcmalloc;
this needs no library. ``keep_freed_memory=false`` leaves glibc's defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Optional

log = logging.getLogger("attnlab")

# mallopt parameter numbers from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # free heap kept before glibc gives any back (1 GiB)

_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc to serve big blocks from its heap and keep what is freed; -> whether it applies
    (False where the C library is not glibc: macOS, musl). Idempotent, process-wide."""
    global _applied
    if _applied:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not _applied:
        log.warning("glibc refused mallopt: large tensors stay on glibc's default allocation path")
    return _applied


class PeakMemory:
    """The most memory a job added while it ran: on a GPU, torch's peak allocation; on Linux, the
    peak resident set (reset through /proc/self/clear_refs when the job starts) above what the
    process held then. None elsewhere. With ``keep_freed_memory`` a multirun's later jobs reuse heap
    an earlier one kept, so their growth reads low: compare jobs run with keep_freed_memory=false."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.start: Optional[int] = None
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = 0
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.start = _status_bytes("VmRSS:")
        except OSError:
            self.start = None

    def mib(self) -> Optional[float]:
        import torch

        if self.start is None:
            return None
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        try:
            return max(0, _status_bytes("VmHWM:") - self.start) / 2**20
        except OSError:
            return None


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field))
    return int(line.split()[1]) * 1024
