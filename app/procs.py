"""Child processes that never outlive their parent (Linux: ``PR_SET_PDEATHSIG``)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child: ask the kernel to send ``sig`` when the parent dies, even by SIGKILL.

    Usable as ``preexec_fn`` (between fork and exec) or at the start of a worker. No-op
    where ``prctl`` does not exist (not Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getppid()
    libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the call: follow it now
        os.kill(os.getpid(), sig)


def settle_heap() -> None:
    """Once a service has started: collect, then move everything alive into the permanent
    generation (``gc.freeze``). The start-up heap (pandas' calendars, QuantLib, the app)
    is never traversed again by the cyclic collector, so its full collections, which land
    on whatever request is running, cost a fraction (the option bench's p99 halved).
    Once per process: a second app in the same process (tests) changes nothing."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
