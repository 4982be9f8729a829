"""Peak resident memory of a block of work, and handing freed memory back to the OS (for the LM peers).

``ru_maxrss`` is the peak of the whole process, so it cannot say which of several methods run one after another
in the same process needed the memory; ``PeakRss`` samples ``VmRSS`` from ``/proc/self/status`` on a daemon
thread while its block runs. ``release_memory`` runs the garbage collector and glibc's ``malloc_trim``: the
per-example gradients of a 135M-parameter model (``torch.func.vmap``) leave gigabytes of freed but unreturned
heap behind every call, which is how the SmolLM2 TRAK peer grew to the OOM killer's 24 GiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
from pathlib import Path
from types import TracebackType

STATUS = Path("/proc/self/status")


def rss_mb() -> float | None:
    """This process's resident set size in MiB (``None`` where ``/proc`` is not available)."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def release_memory() -> None:
    """Collect garbage and return the C heap's free pages to the OS (glibc ``malloc_trim``; a no-op elsewhere)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


class PeakRss:
    """Context manager: the largest resident set size (MiB) seen while its block runs, sampled every ``interval``
    seconds (``peak_mb``), and the size when it started (``start_mb``); both ``None`` without ``/proc``."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.start_mb: float | None = None
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        now = rss_mb()
        if now is not None:
            self.peak_mb = now if self.peak_mb is None else max(self.peak_mb, now)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRss:
        self.start_mb = rss_mb()
        self.peak_mb = self.start_mb
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
