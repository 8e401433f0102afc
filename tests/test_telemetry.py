"""Energy arithmetic on known readings; the real NVML readings on an NVIDIA GPU."""

import json
import os
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


# --- AMD: rocm-smi ----------------------------------------------------------------------------------
# The keys and layout rocm-smi (ROCm 5.x/6.x rocm_smi.py) prints for
# `--showenergycounter --showmeminfo vram --json`: strings for every value, a "system" entry beside
# the cards, "N/A" where a card cannot say. The numbers are this test's own.

def rocm_json(uj0: float, uj1: float, used0: int = 2 << 30, used1: int = 3 << 30) -> str:
    return json.dumps({
        "card0": {"Energy counter": str(int(uj0 / 15.3)), "Accumulated Energy (uJ)": f"{uj0:.2f}",
                  "VRAM Total Memory (B)": str(192 << 30), "VRAM Total Used Memory (B)": str(used0)},
        "card1": {"Energy counter": str(int(uj1 / 15.3)), "Accumulated Energy (uJ)": f"{uj1:.2f}",
                  "VRAM Total Memory (B)": str(192 << 30), "VRAM Total Used Memory (B)": str(used1)},
        "system": {"Driver version": "6.8.5"},
    })


def test_rocm_smi_json_is_read_per_card_in_joules_and_bytes():
    cards = telemetry.parse_rocm_smi("WARNING: some sensors not supported\n" + rocm_json(5e9, 7e9))
    assert cards == {0: {"joules": 5000.0, "used_bytes": 2 << 30}, 1: {"joules": 7000.0, "used_bytes": 3 << 30}}


def test_rocm_smi_card_without_counter_gives_none_not_zero():
    text = json.dumps({"card0": {"Accumulated Energy (uJ)": "N/A", "VRAM Total Used Memory (B)": "1024"}})
    assert telemetry.parse_rocm_smi(text) == {0: {"joules": None, "used_bytes": 1024}}
    with pytest.raises(ValueError, match="no JSON"):
        telemetry.parse_rocm_smi("rocm-smi: command failed")


def test_rocm_smi_marks_give_decode_energy_and_peak_memory():
    readings = iter([rocm_json(1e9, 1e9), rocm_json(2e9, 2e9, used0=5 << 30), rocm_json(2.6e9, 2.4e9, used0=6 << 30)])
    calls = []

    def run(argv):
        calls.append(argv)
        return next(readings)

    s = telemetry.RocmSmiSampler([0, 1], run=run)
    assert calls[0][:4] == ["rocm-smi", "-d", "0", "1"]
    s.mark()
    start = s.energy[-1][0]
    s.mark()
    end = s.energy[-1][0]
    assert s.energy_joules(start, end) == pytest.approx(1000.0)  # (2600 + 2400) - (2000 + 2000)
    assert s.peak_bytes == (6 << 30) + (3 << 30)
    assert s.source == "rocm_smi_energy_counter" and s.memory_kind == "gpu_device_used_rocm_smi"


def test_rocm_smi_missing_card_is_an_error_not_a_partial_sum():
    with pytest.raises(ValueError, match="not \\[0, 2\\]"):
        telemetry.RocmSmiSampler([0, 2], run=lambda argv: rocm_json(1, 1))


def test_an_amd_host_gets_the_rocm_smi_sampler(tmp_path, monkeypatch):
    """A rocm-smi on the PATH (here a script printing that JSON) and no NVIDIA driver: the driver's
    sampler is rocm-smi's, run through the project's process function."""
    tool = tmp_path / "rocm-smi"
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{rocm_json(3e9, 4e9)}\nEOF\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    try:
        import pynvml

        pynvml.nvmlInit()
        pytest.skip("NVML answers here: the NVIDIA sampler comes first")
    except Exception:  # noqa: BLE001 - absent module or no driver: the case under test
        pass
    s = telemetry.gpu_sampler([0, 1])
    assert isinstance(s, telemetry.RocmSmiSampler)
    s.mark()
    assert s.energy[-1][1] == pytest.approx(7000.0)
