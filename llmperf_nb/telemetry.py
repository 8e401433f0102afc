"""Memory and energy readings taken while a benchmark runs.

GPU: NVML (nvidia-ml-py). The timing loop calls :meth:`NvmlSampler.mark` just before and just after
each decode, outside the timed span: one reading of the GPUs' energy counters (millijoules since
the driver loaded) and used memory. No thread runs beside the benchmark, because a thread calling
NVML every few milliseconds competes with the benchmark for the GIL and the driver (seen as a few
per cent of llama.cpp's decode speed on an H200). Only where a GPU has no energy counter (before
Volta), or where the engine keeps its own clock (vLLM), does a thread sample power every 20 ms.
Memory is the device's used memory (all processes on the device, which on a benchmark host is the
benchmark). AMD: the same marks, read with ``rocm-smi --showenergycounter --showmeminfo vram --json``
(:class:`RocmSmiSampler`). CPU: the process's peak resident set. Imported by drivers: standard
library only at import time.
"""

from __future__ import annotations

import json
import resource
import shutil
import threading
import time


def process_peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


#: ``source`` of each sampler, as a result's ``energy.source`` explains it to a reader
SOURCES = {
    "nvml_energy_counter": "NVML energy counters of the cell's GPUs, read just before and just after each decode",
    "nvml_energy_counter_sampled": "NVML energy counters of the cell's GPUs, read every 20 ms on a thread, "
                                   "at the engine's own decode timestamps",
    "rocm_smi_energy_counter": "rocm-smi energy counters (Accumulated Energy) of the cell's GPUs, read just before "
                               "and just after each decode",
    "nvml_power_samples": "NVML board power of the cell's GPUs, sampled every 20 ms during decode (no energy counter)",
    None: "NVML, the cell's GPUs during decode",  # results written before the source was recorded
}


class _Readings:
    """What every sampler keeps: energy-counter readings, memory (and power) samples, and the
    arithmetic over them. A subclass's ``_read()`` gives (joules summed or None, bytes used summed or None)."""

    source: str
    memory_kind: str

    def __init__(self):
        self.samples: list[tuple[float, float | None, int]] = []  # (t, watts summed or None, bytes used summed)
        self.energy: list[tuple[float, float]] = []  # (t, joules since the counter started, summed)

    def _read(self) -> tuple[float | None, int | None]:
        raise NotImplementedError

    def mark(self) -> None:
        """One reading now: the energy counter (where there is one) and used memory."""
        joules, used = self._read()
        now = time.perf_counter()
        if joules is not None:
            self.energy.append((now, joules))
        if used is not None:
            self.samples.append((now, None, used))

    @property
    def peak_bytes(self) -> int | None:
        return max((s[2] for s in self.samples), default=None)

    def energy_joules(self, start: float, end: float) -> float | None:
        return energy_between(self.energy, [(t, w) for t, w, _ in self.samples if w is not None], start, end)

    def mean_watts(self, start: float, end: float) -> float | None:
        joules = self.energy_joules(start, end)
        return joules / (end - start) if joules is not None and end > start else None


class NvmlSampler(_Readings):
    """Energy, power and used memory of the given GPUs, read at marks or sampled on a thread."""

    memory_kind = "gpu_device_used_nvml"

    def __init__(self, indices: list[int] | None = None, interval: float = 0.02, continuous: bool = False):
        import pynvml  # nvidia-ml-py; raises ImportError where it is absent

        self._nvml = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in (indices or range(count))]
        self.interval = interval
        super().__init__()
        self.has_energy_counter = self._joules() is not None
        # the thread samples power where there is no counter to read at the marks
        self.continuous = continuous or not self.has_energy_counter
        self.source = ("nvml_power_samples" if not self.has_energy_counter
                       else "nvml_energy_counter_sampled" if self.continuous else "nvml_energy_counter")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.baseline_bytes = self._used()

    def _used(self) -> int:
        return sum(self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles)

    def _watts(self) -> float:
        return sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self.handles) / 1000.0

    def _joules(self) -> float | None:
        try:
            return sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles) / 1000.0
        except self._nvml.NVMLError:  # no counter on this GPU: power samples instead
            return None

    def _read(self) -> tuple[float | None, int]:
        return (self._joules() if self.has_energy_counter else None), self._used()

    def _loop(self) -> None:
        while not self._stop.is_set():
            watts, used = self._watts(), self._used()
            now = time.perf_counter()
            self.samples.append((now, watts, used))
            if self.has_energy_counter:
                self.energy.append((now, self._joules()))
            self._stop.wait(self.interval)

    def __enter__(self) -> NvmlSampler:
        if self.continuous:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.continuous:
            self._stop.set()
            self._thread.join()
        self._nvml.nvmlShutdown()


def energy_between(counter: list[tuple[float, float]], power: list[tuple[float, float]],
                   start: float, end: float) -> float | None:
    """Joules spent over [start, end] (perf_counter seconds).

    From the energy counter where there is one: the readings nearest outside the span (the marks
    around a decode), scaled to its length. Otherwise the trapezoid integral of the power samples
    inside the span. None when the readings do not cover the span.
    """
    if counter:
        before = [p for p in counter if p[0] <= start]
        after = [p for p in counter if p[0] >= end]
        (t0, j0) = before[-1] if before else min(counter)
        (t1, j1) = after[0] if after else max(counter)
        if t1 > t0 and t0 <= start + (end - start) / 2 <= t1:
            return (j1 - j0) * (end - start) / (t1 - t0)
        return None
    pts = [(t, w) for t, w in power if start <= t <= end]
    if len(pts) < 2:
        return None
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(pts, pts[1:], strict=False))


ROCM_SMI_ARGS = ("--showenergycounter", "--showmeminfo", "vram", "--json")


def parse_rocm_smi(text: str) -> dict[int, dict[str, float | None]]:
    """``rocm-smi --showenergycounter --showmeminfo vram --json`` → {card index: readings}.

    Readings: ``joules`` (from "Accumulated Energy (uJ)", the energy counter times its resolution),
    ``used_bytes`` ("VRAM Total Used Memory (B)"); None where the card does not report one. The JSON
    may follow warnings on the same stream; keys other than ``cardN`` ("system") are skipped.
    """
    start = text.find("{")
    if start < 0:
        raise ValueError("rocm-smi printed no JSON")
    doc = json.loads(text[start:])
    cards = {}
    for key, fields in doc.items():
        if not key.startswith("card") or not key[4:].isdigit():
            continue
        uj, used = _number(fields.get("Accumulated Energy (uJ)")), _number(fields.get("VRAM Total Used Memory (B)"))
        cards[int(key[4:])] = {"joules": uj / 1e6 if uj is not None else None,
                               "used_bytes": int(used) if used is not None else None}
    return cards


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):  # "N/A", missing
        return None


class RocmSmiSampler(_Readings):
    """AMD GPUs: the NVML sampler's marks, read through rocm-smi (one call of about 0.1-0.3 s per mark,
    outside the timed span). No thread: an engine with its own clock (vLLM) gets no energy here."""

    source = "rocm_smi_energy_counter"
    memory_kind = "gpu_device_used_rocm_smi"

    def __init__(self, indices: list[int], run=None):
        self.indices = indices
        self._run = run or _run_rocm_smi
        super().__init__()
        first = self._read()
        self.baseline_bytes = first[1] or 0
        self.has_energy_counter = first[0] is not None

    def _read(self) -> tuple[float | None, int | None]:
        argv = ["rocm-smi", "-d", *map(str, self.indices), *ROCM_SMI_ARGS]
        cards = parse_rocm_smi(self._run(argv))
        picked = [cards[i] for i in self.indices if i in cards]
        if len(picked) != len(self.indices):
            raise ValueError(f"rocm-smi reported cards {sorted(cards)}, not {self.indices}")
        joules = [c["joules"] for c in picked]
        used = [c["used_bytes"] for c in picked]
        return (sum(joules) if None not in joules else None), (sum(used) if None not in used else None)

    def __enter__(self) -> RocmSmiSampler:
        return self

    def __exit__(self, *exc) -> None:
        return None


def _run_rocm_smi(argv: list[str]) -> str:
    from . import process  # not at import time: drivers import this module in engine images

    return process.run(argv, timeout=60).output


def gpu_sampler(indices: list[int] | None = None, continuous: bool = False):
    """An NvmlSampler (NVIDIA), a RocmSmiSampler (AMD, marks only), or None where neither answers."""
    try:
        import pynvml
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            return NvmlSampler(indices, continuous=continuous)
        except pynvml.NVMLError:  # no NVIDIA driver on this host
            pass
    if indices and not continuous and shutil.which("rocm-smi"):
        try:
            return RocmSmiSampler(indices)
        except Exception:  # noqa: BLE001 - rocm-smi present but unusable: no readings, not a failed run
            return None
    return None
