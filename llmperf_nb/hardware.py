"""What machine a step runs on: GPUs (NVIDIA through nvidia-smi, AMD through rocm-smi), CPU, OS.

Recorded in every result as provenance, and used to check that a cell's GPU is the one present.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import sys

from . import gpus, process
from .cells import GpuChoice
from .exceptions import ProcessError

_NVIDIA_FIELDS = (
    "index", "name", "driver_version", "memory.total", "power.limit", "clocks.max.sm",
    "clocks.max.mem", "ecc.mode.current", "mig.mode.current", "pci.bus_id", "uuid",
)


def detect() -> dict:
    devices = _nvidia() or _amd()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices and visible:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        devices = [d for d in devices if str(d.get("index")) in wanted] or devices
    catalog = gpus.identify(devices[0]["name"]) if devices else None
    return {
        "gpu": {
            "detected": [d["name"] for d in devices],
            "catalog_name": catalog.name if catalog else ("cpu" if not devices else None),
            "driver": devices[0].get("driver_version") if devices else None,
            "cuda": _cuda_version() if devices and devices[0].get("vendor") == "nvidia" else None,
            "devices": devices,
        },
        "cpu": _cpu(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "hostname_hash": _host_id(),
        "container_image": os.environ.get("LLMPERF_NB_IMAGE"),  # tag@id, set by --runner docker
    }


def check_gpu(choice: GpuChoice, hw: dict) -> str | None:
    """Why this machine cannot run a cell for ``choice``, or None when it can."""
    found = hw["gpu"]["catalog_name"]
    count = len(hw["gpu"]["devices"])
    if choice.name == "cpu":
        return None
    if count == 0:
        return f"the cell asks for {choice.label} but this machine has no GPU"
    if choice.name != gpus.AUTO and choice.name != found:
        have = found or hw["gpu"]["detected"][0]
        return f"the cell asks for {choice.name} but this machine has {have}"
    if count < choice.count:
        return f"the cell asks for {choice.count} GPUs but this machine has {count}"
    return None


def _nvidia() -> list[dict]:
    if not process.which("nvidia-smi"):
        return []
    try:
        out = process.run(
            ["nvidia-smi", f"--query-gpu={','.join(_NVIDIA_FIELDS)}", "--format=csv,noheader,nounits"],
            timeout=30,
        ).output
    except ProcessError:
        return []
    rows = [r for r in csv.reader(io.StringIO(out)) if len(r) == len(_NVIDIA_FIELDS)]
    return [{"vendor": "nvidia", **{k: v.strip() for k, v in zip(_NVIDIA_FIELDS, r, strict=True)}} for r in rows]


def _cuda_version() -> str | None:
    try:
        out = process.run(["nvidia-smi"], timeout=30).output
    except ProcessError:
        return None
    m = re.search(r"CUDA Version:\s*([\d.]+)", out)
    return m.group(1) if m else None


def _amd() -> list[dict]:
    if not process.which("rocm-smi"):
        return []
    try:
        out = process.run(["rocm-smi", "--showproductname", "--csv"], timeout=30).output
    except ProcessError:
        return []
    rows = list(csv.DictReader(io.StringIO(out)))
    return [
        {"vendor": "amd", "index": str(i), "name": r.get("Card series") or r.get("Card model") or "AMD GPU"}
        for i, r in enumerate(rows)
    ]


def _cpu() -> dict:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
            model = m.group(1).strip() if m else model
    except OSError:
        pass  # not Linux: platform.processor() stays
    return {"model": model, "logical_cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0))}


def _host_id() -> str:
    import hashlib

    # a stable id to tell machines apart without publishing their hostnames
    return hashlib.sha256(platform.node().encode()).hexdigest()[:12]


def gpu_vendor(gpu_name: str) -> str:
    """'nvidia', 'amd' or 'cpu': from the GPU catalog, or for 'auto' from the GPUs this machine has.

    The one answer to "which GPU vendor" (the docker runner's devices, MLC's compile target)."""
    if gpu_name != gpus.AUTO:
        return gpus.get_gpu(gpu_name).vendor
    devices = detect()["gpu"]["devices"]
    return devices[0].get("vendor", "nvidia") if devices else "cpu"
