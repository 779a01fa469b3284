"""Measured memory of a training worker: the numbers ``--plan`` estimates are checked against.

Two peaks, because on CPU they differ a lot:

* ``peak_rss_mb``: the kernel's high-water mark of the resident set (``ru_maxrss``). It
  counts the pages of memory-mapped checkpoint files that loading touched (safetensors
  are mmapped), which the kernel can drop at any time, so it overstates what a worker needs.
* ``peak_private_mb``: the highest private (anonymous) resident memory seen by a sampler
  thread every few milliseconds: the weights, LoRA parameters, gradients, optimizer state,
  activations and the runtime's own heap, without the file cache. This is the number that
  decides whether a worker fits, and the one ``train.memory_plan`` estimates.

On GPUs the peak that matters is the device's (``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")


def private_mb() -> float | None:
    """Current private resident memory of this process (RssAnon + RssShmem), None off Linux."""
    try:
        fields = dict(line.split(":", 1) for line in STATUS.read_text().splitlines() if ":" in line)
    except OSError:
        return None
    kib = sum(int(fields[k].split()[0]) for k in ("RssAnon", "RssShmem") if k in fields)
    return kib / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class PeakMemory:
    """Samples private memory in a daemon thread; ``peak()`` is the highest value seen so far."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self._interval = interval_s
        self._peak = private_mb() or 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            now = private_mb()
            if now is None:
                return
            self._peak = max(self._peak, now)

    def peak(self) -> float:
        now = private_mb()
        if now is not None:
            self._peak = max(self._peak, now)
        return self._peak

    def stop(self) -> None:
        self._stop.set()


def device_peak_mb(device: torch.device, sampler: PeakMemory) -> float:
    """The peak that decides fitting: allocated GPU memory, or private memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return sampler.peak()
