"""GPU catalog: names accepted in params files, how to recognise each card, and its datasheet limits.

The limits are the roofline of issue #6: batch-1 decode must read every weight byte once per token,
so ``tok/s <= bandwidth / weight bytes``; prefill is bounded by the dense fp16 tensor rate.
Figures are the vendors' datasheet values (dense, no sparsity), cited per entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .exceptions import ConfigError


@dataclass(frozen=True)
class GpuSpec:
    name: str
    label: str
    vendor: str  # "nvidia", "amd" or "cpu"
    memory_gb: float | None
    bandwidth_gb_s: float | None
    fp16_tflops: float | None
    match: str  # regex on the device name the driver reports
    source: str


GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        GpuSpec("cpu", "CPU", "cpu", None, None, None, r"^$", "no GPU: the engine runs on the host CPU"),
        GpuSpec("rtx-3090-ti", "RTX 3090 Ti", "nvidia", 24, 1008, 160, r"3090 Ti",
                "NVIDIA Ampere GA102 whitepaper (fp16 tensor, fp16 accumulate)"),
        GpuSpec("rtx-4090", "RTX 4090", "nvidia", 24, 1008, 330.3, r"RTX 4090",
                "NVIDIA Ada Lovelace whitepaper (fp16 tensor, fp16 accumulate)"),
        GpuSpec("a10g", "A10G", "nvidia", 24, 600, 125, r"A10G",
                "NVIDIA A10 datasheet (A10G is AWS's A10 variant; same memory system)"),
        GpuSpec("a100-40gb", "A100 40GB", "nvidia", 40, 1555, 312, r"A100.*40GB",
                "NVIDIA A100 datasheet (SXM4 40 GB)"),
        GpuSpec("a100-80gb", "A100 80GB", "nvidia", 80, 2039, 312, r"A100.*80GB",
                "NVIDIA A100 datasheet (SXM4 80 GB)"),
        GpuSpec("l40s", "L40S", "nvidia", 48, 864, 362.05, r"L40S", "NVIDIA L40S datasheet"),
        GpuSpec("h100-sxm", "H100 SXM 80GB", "nvidia", 80, 3350, 989.4, r"H100 80GB HBM3|H100 SXM",
                "NVIDIA H100 datasheet (SXM5)"),
        GpuSpec("h100-pcie", "H100 PCIe 80GB", "nvidia", 80, 2000, 756, r"H100 PCIe",
                "NVIDIA H100 datasheet (PCIe)"),
        GpuSpec("h200", "H200 141GB", "nvidia", 141, 4800, 989.4, r"H200", "NVIDIA H200 datasheet (SXM)"),
        GpuSpec("mi250", "MI250", "amd", 128, 3276.8, 362.1, r"MI250", "AMD Instinct MI250 datasheet"),
        GpuSpec("mi300x", "MI300X", "amd", 192, 5300, 1307.4, r"MI300X", "AMD Instinct MI300X datasheet"),
        GpuSpec("rx-7900-xtx", "RX 7900 XTX", "amd", 24, 960, 122.8, r"7900 XTX",
                "AMD Radeon RX 7900 XTX specifications"),
    )
}

#: In a params file, "auto" means whatever GPU this machine has (or the CPU when it has none).
AUTO = "auto"


def get_gpu(name: str) -> GpuSpec:
    try:
        return GPUS[name]
    except KeyError:
        valid = ", ".join([AUTO, *GPUS])
        raise ConfigError(f"unknown GPU {name!r}; valid GPUs: {valid}") from None


def identify(device_name: str) -> GpuSpec | None:
    """The catalog entry for a name such as 'NVIDIA H100 80GB HBM3', or None if unknown."""
    for g in GPUS.values():
        if g.vendor != "cpu" and re.search(g.match, device_name, re.IGNORECASE):
            return g
    return None
