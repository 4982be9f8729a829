"""What every benchmark records next to its figures: the machine, its load and library versions.

Imported by the benchmark scripts (run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["append_section", "cpu_name", "load_line", "machine"]

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else what ``platform`` knows)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_line() -> str:
    """The load averages as ``uptime`` prints them (the machine is shared)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    """CPU, cores, load and the versions of Python, torch and numpy (those importable)."""
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "nproc": os.cpu_count(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "uptime": load_line(),
    }
    with contextlib.suppress(ImportError):
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    with contextlib.suppress(ImportError):
        import numpy

        info["numpy"] = numpy.__version__
    return info


def append_section(section: str, path: Path = BENCHMARKS_MD) -> None:
    """Append a benchmark's Markdown section (its table and exact command) to BENCHMARKS.md."""
    with path.open("a") as handle:
        handle.write(section)
