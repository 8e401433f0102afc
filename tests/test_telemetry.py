"""Energy arithmetic on known readings; the real NVML readings on an NVIDIA GPU."""

import subprocess
import sys

import pytest

from llmperf_nb import telemetry
from .conftest import needs_gpu


def test_counter_readings_around_the_span_are_scaled_to_it():
    # marks 1 ms outside a 2 s decode, counter rising 400 J/s: 400 J/s * 2 s
    counter = [(9.999, 1000.0), (12.001, 1000.0 + 400 * 2.002)]
    assert telemetry.energy_between(counter, [], 10.0, 12.0) == pytest.approx(800.0)


def test_counter_picks_the_readings_nearest_the_span():
    counter = [(0.0, 0.0), (9.0, 900.0), (10.0, 1000.0), (12.0, 1400.0), (20.0, 9999.0)]
    assert telemetry.energy_between(counter, [], 10.0, 12.0) == pytest.approx(400.0)


def test_counter_that_does_not_cover_the_span_gives_none():
    assert telemetry.energy_between([(20.0, 1.0), (21.0, 2.0)], [], 10.0, 12.0) is None
    assert telemetry.energy_between([(10.0, 1.0)], [], 10.0, 12.0) is None


def test_power_samples_are_integrated_inside_the_span():
    power = [(t / 10, 300.0 if t < 15 else 500.0) for t in range(0, 40)]  # 0.0 .. 3.9 s
    # trapezoids from 1.0 to 2.0 s: 300 W until 1.4 s, one 0.1 s step ramping to 500 W, then 500 W
    assert telemetry.energy_between([], power, 1.0, 2.0) == pytest.approx(0.4 * 300 + 0.1 * 400 + 0.5 * 500)
    assert telemetry.energy_between([], power, 5.0, 6.0) is None


@pytest.mark.gpu
@needs_gpu
def test_nvml_marks_on_a_busy_gpu_read_energy_and_memory():
    """A matrix multiply loop between two marks: energy > 0, watts between idle-ish and the board's
    limit, memory above what it was before the 1 GiB allocation."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    import time

    pynvml = pytest.importorskip("pynvml")
    sampler = telemetry.gpu_sampler([0])
    assert sampler is not None
    with sampler:
        a = torch.randn(8192, 8192, device="cuda:0", dtype=torch.float16)  # 128 MiB, and more below
        keep = torch.empty(1 << 30, dtype=torch.uint8, device="cuda:0")
        torch.cuda.synchronize()
        sampler.mark()
        start = time.perf_counter()
        while time.perf_counter() - start < 2.0:
            a = (a @ a).clamp_(-1, 1)
            torch.cuda.synchronize()
        end = time.perf_counter()
        sampler.mark()
    joules, watts = sampler.energy_joules(start, end), sampler.mean_watts(start, end)
    limit_w = pynvml.nvmlDeviceGetEnforcedPowerLimit(sampler.handles[0]) / 1000
    print(f"{sampler.source}: {joules:.1f} J over {end - start:.2f} s = {watts:.0f} W; "
          f"peak {sampler.peak_bytes / 2**30:.2f} GiB, baseline {sampler.baseline_bytes / 2**30:.2f} GiB")
    assert sampler.source in ("nvml_energy_counter", "nvml_power_samples")
    assert joules is not None and joules > 0
    assert 30 < watts <= limit_w * 1.2
    assert sampler.peak_bytes >= sampler.baseline_bytes + (1 << 30)
    del keep


@pytest.mark.gpu
@needs_gpu
def test_no_thread_runs_beside_the_benchmark_where_the_gpu_counts_energy():
    code = ("import threading; from llmperf_nb import telemetry; s = telemetry.gpu_sampler([0]); "
            "s.__enter__(); print(s.source, threading.active_count()); s.__exit__(None, None, None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["nvml_energy_counter", "1"] or out[0] == "nvml_power_samples"
