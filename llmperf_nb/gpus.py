"""GPU catalog: names accepted in params files, how to recognise each card, and its datasheet limits.

The limits are the roofline of issue #6: batch-1 decode must read every weight byte once per token,
so ``tok/s <= bandwidth / weight bytes``; prefill is bounded by the dense fp16 tensor rate.
Figures are the vendors' datasheet values (dense, no sparsity), cited per entry: ``source`` says which
document and which figure, ``url`` where it is. Datasheets print the tensor rate with 2:4 sparsity
beside (or instead of) the dense one; the dense one is half of it. GeForce cards run fp16 tensor math
with fp32 accumulation at half the fp16-accumulate rate listed here.
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
    url: str | None = None  # the vendor document ``source`` names


GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in (
        GpuSpec("cpu", "CPU", "cpu", None, None, None, r"^$", "no GPU: the engine runs on the host CPU"),
        GpuSpec("rtx-3090-ti", "RTX 3090 Ti", "nvidia", 24, 1008, 160, r"3090 Ti",
                "NVIDIA GeForce RTX 3090 Ti specifications (fp16 tensor, fp16 accumulate: 320 with sparsity)",
                "https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/rtx-3090-3090ti/"),
        GpuSpec("rtx-4090", "RTX 4090", "nvidia", 24, 1008, 330.3, r"RTX 4090",
                "NVIDIA Ada Lovelace whitepaper (fp16 tensor, fp16 accumulate; 165.2 with fp32 accumulate)",
                "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"),
        # The A10's 125 TFLOPS (nvidia.com/en-us/data-center/products/a10-gpu/) does not apply to the A10G:
        # AWS's A10G datasheet gives fp16/bf16 tensor 70 dense (140 with sparsity); memory is the A10's.
        GpuSpec("a10g", "A10G", "nvidia", 24, 600, 70, r"A10G",
                "NVIDIA A10G datasheet for AWS (fp16 tensor 70 dense, 140 with sparsity; 600 GB/s)",
                "https://d1.awsstatic.com/product-marketing/ec2/NVIDIA_AWS_A10G_DataSheet_FINAL_02_17_2022.pdf"),
        GpuSpec("a100-40gb", "A100 40GB", "nvidia", 40, 1555, 312, r"A100.*40GB",
                "NVIDIA A100 datasheet (SXM4 40 GB)",
                "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
        GpuSpec("a100-80gb", "A100 80GB", "nvidia", 80, 2039, 312, r"A100.*80GB",
                "NVIDIA A100 datasheet (SXM4 80 GB; the PCIe 80 GB card has 1935 GB/s)",
                "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
                "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"),
        GpuSpec("l40s", "L40S", "nvidia", 48, 864, 362.05, r"L40S",
                "NVIDIA L40S datasheet (fp16 tensor 362.05 dense, 733 with sparsity)",
                "https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413"),
        GpuSpec("h100-sxm", "H100 SXM 80GB", "nvidia", 80, 3350, 989.4, r"H100 80GB HBM3|H100 SXM",
                "NVIDIA H100 datasheet (SXM5: fp16 tensor 1979 with sparsity)",
                "https://resources.nvidia.com/en-us-gpu-resources/h100-datasheet-24306"),
        GpuSpec("h100-pcie", "H100 PCIe 80GB", "nvidia", 80, 2000, 756, r"H100 PCIe",
                "NVIDIA H100 datasheet (PCIe: fp16 tensor 1513 with sparsity)",
                "https://resources.nvidia.com/en-us-gpu-resources/h100-datasheet-24306"),
        GpuSpec("h200", "H200 141GB", "nvidia", 141, 4800, 989.4, r"H200",
                "NVIDIA H200 product page (SXM: 4.8 TB/s; fp16 tensor 1979 with sparsity)",
                "https://www.nvidia.com/en-us/data-center/h200/"),
        # ROCm shows an MI250 as two devices (one per die, 64 GB and half the bandwidth each): these are the
        # figures of the whole module.
        GpuSpec("mi250", "MI250", "amd", 128, 3276.8, 362.1, r"MI250",
                "AMD Instinct MI250 product page (whole OAM module, two dies)",
                "https://www.amd.com/en/products/accelerators/instinct/mi200/mi250.html"),
        GpuSpec("mi300x", "MI300X", "amd", 192, 5300, 1307.4, r"MI300X", "AMD Instinct MI300X datasheet",
                "https://www.amd.com/content/dam/amd/en/documents/instinct-tech-docs/data-sheets/"
                "amd-instinct-mi300x-data-sheet.pdf"),
        GpuSpec("rx-7900-xtx", "RX 7900 XTX", "amd", 24, 960, 122.8, r"7900 XTX",
                "AMD Radeon RX 7900 XTX specifications",
                "https://www.amd.com/en/products/graphics/amd-radeon-rx-7900xtx"),
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
