"""Memory and power readings taken while a benchmark runs.

GPU: NVML (nvidia-ml-py) sampled on a thread; memory is the device's used memory (all processes
on the device, which on a benchmark host is the benchmark), power is board power. CPU: the
process's peak resident set. Imported by drivers, so standard library only at import time.
"""

from __future__ import annotations

import resource
import threading
import time


def process_peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class NvmlSampler:
    """Samples used memory and power of the given GPUs every ``interval`` seconds."""

    def __init__(self, indices: list[int] | None = None, interval: float = 0.02):
        import pynvml  # nvidia-ml-py; raises ImportError where it is absent

        self._nvml = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in (indices or range(count))]
        self.interval = interval
        self.samples: list[tuple[float, float, int]] = []  # (t, watts summed, bytes used summed)
        self.energy: list[tuple[float, float]] = []  # (t, joules since boot summed), where the GPU counts it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.baseline_bytes = self._read()[1]

    def _read(self) -> tuple[float, int]:
        n = self._nvml
        watts = sum(n.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0
        used = sum(n.nvmlDeviceGetMemoryInfo(h).used for h in self.handles)
        return watts, used

    def _joules(self) -> float | None:
        try:
            return sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0
        except self._nvml.NVMLError:  # counter not supported on this GPU: fall back to power samples
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            watts, used = self._read()
            now = time.perf_counter()
            self.samples.append((now, watts, used))
            joules = self._joules()
            if joules is not None:
                self.energy.append((now, joules))
            self._stop.wait(self.interval)

    def __enter__(self) -> NvmlSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._nvml.nvmlShutdown()

    @property
    def peak_bytes(self) -> int | None:
        return max((s[2] for s in self.samples), default=None)

    def energy_joules(self, start: float, end: float) -> float | None:
        """Energy over [start, end] (perf_counter seconds): the GPU's energy counter where it has one
        (power readings on recent GPUs are 1-second averages, too coarse for a decode of a few
        seconds), else the trapezoid integral of the power samples."""
        inside = [(t, j) for t, j in self.energy if start <= t <= end]
        if len(inside) >= 2:
            (t0, j0), (t1, j1) = inside[0], inside[-1]
            return (j1 - j0) * (end - start) / (t1 - t0) if t1 > t0 else None
        pts = [(t, w) for t, w, _ in self.samples if start <= t <= end]
        if len(pts) < 2:
            return None
        return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(pts, pts[1:], strict=False))

    def mean_watts(self, start: float, end: float) -> float | None:
        joules = self.energy_joules(start, end)
        if joules is not None and end > start:
            return joules / (end - start)
        ws = [w for t, w, _ in self.samples if start <= t <= end]
        return sum(ws) / len(ws) if ws else None


def gpu_sampler(indices: list[int] | None = None):
    """An NvmlSampler, or None where NVML is not available (CPU hosts, AMD)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        return NvmlSampler(indices)
    except pynvml.NVMLError:  # no NVIDIA driver on this host
        return None
