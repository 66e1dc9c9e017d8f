"""Peak memory of this process from the kernel (Linux): the benchmarks' one way to measure it.

``reset_peak()`` sets VmHWM (the peak resident set) to the current VmRSS (``/proc/self/clear_refs``: 5);
``status_mb("VmHWM") - base`` after the measured step is what the step needed above the ``base`` read just
after the reset. MB = 2**20 bytes.
"""
from __future__ import annotations

import gc
from pathlib import Path


def status_mb(field: str) -> float:
    """A ``/proc/self/status`` field (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> float:
    """Collects garbage, sets VmHWM := VmRSS, and returns that VmRSS (the baseline) in MB."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")
