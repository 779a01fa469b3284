"""Measured memory of a training worker: the numbers ``--plan`` estimates are checked against.

A sampler thread reads the process's resident memory every 10 ms and keeps the peak per
phase (loading, then training), because on CPU the two differ in kind:

* the base weights are often not private memory at all: transformers keeps parameters
  whose dtype matches the checkpoint as views of the memory-mapped safetensors file, so
  they are resident *file* pages. Resident memory (``VmRSS``: private + file-backed) is
  therefore the number that decides whether a worker fits, and the one ``--plan`` estimates;
* while loading, a worker also maps checkpoint pages it copies and then drops (under ZeRO-3,
  rank 0 reads every module's weights to scatter them), so the loading peak is reported
  on its own; those pages are page cache the kernel can reclaim.

Also reported: the private (anonymous) part of the training peak and the kernel's whole-run
high-water mark (``ru_maxrss``). On GPUs the peak that matters is the device's
(``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")


def resident_mb() -> tuple[float, float] | None:
    """(resident, private resident) MiB of this process now; None off Linux."""
    try:
        fields = dict(line.split(":", 1) for line in STATUS.read_text().splitlines() if ":" in line)
    except OSError:
        return None
    kib = lambda key: int(fields[key].split()[0]) if key in fields else 0  # noqa: E731
    return kib("VmRSS") / 1024, (kib("RssAnon") + kib("RssShmem")) / 1024


def peak_rss_mb() -> float:
    """The kernel's high-water mark of the resident set over the whole process life."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class PeakMemory:
    """Samples resident memory in a daemon thread; peaks since the last ``new_phase()``."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self._interval = interval_s
        self._peak = (0.0, 0.0)
        self._update()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _update(self) -> bool:
        now = resident_mb()
        if now is None:
            return False
        self._peak = (max(self._peak[0], now[0]), max(self._peak[1], now[1]))
        return True

    def _sample(self) -> None:
        while not self._stop.wait(self._interval) and self._update():
            pass

    def peak(self) -> tuple[float, float]:
        """(resident, private) peak MiB of the current phase."""
        self._update()
        return self._peak

    def new_phase(self) -> tuple[float, float]:
        """End the current phase: return its peak and start measuring the next one from now."""
        ended = self.peak()
        self._peak = (0.0, 0.0)
        self._update()
        return ended

    def stop(self) -> None:
        self._stop.set()


def device_peak_mb(device: torch.device, sampler: PeakMemory) -> float:
    """The peak that decides fitting: allocated GPU memory, or resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return sampler.peak()[0]
