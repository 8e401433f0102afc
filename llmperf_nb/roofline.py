"""Roofline limits of inference: what the GPU's datasheet allows a cell, and how close it came.

Decode reads every weight the forward pass uses once per generated token, so no engine can beat

    decode limit (tok/s)  = GPU count x memory bandwidth / weight bytes read per token

Prefill multiplies each of those weights once per prompt token (one multiply-add, 2 FLOPs), so

    prefill compute limit (tok/s) = GPU count x peak dense fp16 FLOP/s / (2 x n_params_per_token)

A prompt of P tokens still reads the weights once, so a short prompt is held by memory first; the
prefill limit at the measured prompt length is the lower of the two, P x decode limit and the compute
limit. All three ignore the KV cache, attention FLOPs and activations: true upper bounds that are
tight for small batches and short contexts. docs/statistics.md has a worked example.

At batch B (a sweep point, :func:`batch_decode_limit`) one decode step reads the weights once for B
tokens, plus each sequence's KV cache, and computes 2 x n_params_per_token FLOPs per token:

    decode limit at B = min(count x BW x B / (W + B x KV bytes per token x mean context),
                            count x F / (2 x n_params_per_token))

The GPU is the one the setup step detected (``hardware.gpu.catalog_name``), else the one the params
asked for. The host CPU has no datasheet limit here: every number is None.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from . import gpus, models

#: Bytes per parameter of each weight format: (linear layers, lm_head). The per-block scales are
#: counted in: Q4_0 packs 32 weights as an fp16 scale + 16 bytes; q4f16_1 has an fp16 scale per 32;
#: GPTQ/AWQ g128 an fp16 scale and a 4-bit zero per 128; bitsandbytes nf4 an fp32 absmax per 64
#: (transformers' default, no double quantization). GPTQ, AWQ and bitsandbytes leave lm_head in fp16.
FORMAT_BYTES: tuple[tuple[str, float, float], ...] = (
    (r"Q4_0", 18 / 32, 18 / 32),
    (r"q4f16_1", 0.5 + 2 / 32, 0.5 + 2 / 32),
    (r"GPTQ 4-bit|AWQ 4-bit", 0.5 + 2.5 / 128, 2.0),
    (r"nf4", 0.5 + 4 / 64, 2.0),
    (r"\bF16\b|fp16|q0f16", 2.0, 2.0),
)

#: File bytes further than this factor from the format's estimate are not the weights as run (a folder
#: with config.json only, weights made on the device), so the estimate is used instead.
FILE_TRUST = 2.0


@dataclass(frozen=True)
class Roofline:
    """The limits of one result and the fractions of them it reached (None where not known)."""

    gpu: str | None  # catalog name of the GPU the limits are for
    count: int
    bytes_per_token: float | None
    bytes_from: str | None  # "file" (weights.bytes) or "format" (bytes per parameter of the format)
    decode_limit_tok_s: float | None
    decode_fraction: float | None
    prefill_compute_limit_tok_s: float | None
    prefill_compute_fraction: float | None
    prefill_limit_tok_s: float | None  # min(compute limit, prompt tokens x decode limit)
    prefill_fraction: float | None
    prefill_bound: str | None  # "memory" or "compute": which of the two sets prefill_limit_tok_s
    note: str  # why a limit is missing, or ""

    def to_dict(self) -> dict:
        return asdict(self)


def gpu_of(doc: dict) -> gpus.GpuSpec | None:
    """The catalog entry of the GPU a result ran on: the detected one, else the one asked for."""
    detected = ((doc.get("hardware") or {}).get("gpu") or {}).get("catalog_name")
    return gpus.GPUS.get(detected or doc["gpu"]["name"])


def format_bytes_per_token(fmt: str | None, model: models.ModelSpec) -> float | None:
    """Weight bytes one decoded token reads, from the format's bytes per parameter; None if unknown."""
    for pattern, linear, head in FORMAT_BYTES:
        if fmt and re.search(pattern, fmt):
            lm_head = model.vocab_size * model.hidden_size
            return (model.n_params_per_token - lm_head) * linear + lm_head * head
    return None


def bytes_per_token(doc: dict) -> tuple[float | None, str | None]:
    """(weight bytes read per decoded token, "file" or "format"), or (None, None).

    From the file where the result recorded its size: size x n_params_per_token / n_params (the
    embedding table is looked up, one row per token, not read whole). From the format otherwise, and
    where the file does not hold the weights as run (quantized at load, made on the device).
    """
    model = models.MODELS.get(doc.get("model"))
    if model is None:
        return None, None
    weights = doc.get("weights") or {}
    estimate = format_bytes_per_token(weights.get("format"), model)
    size = weights.get("bytes")
    if size and not weights.get("quantized_at_load"):
        from_file = size * model.n_params_per_token / model.n_params
        if estimate is None or 1 / FILE_TRUST <= from_file / estimate <= FILE_TRUST:
            return from_file, "file"
    return (estimate, "format") if estimate is not None else (None, None)


def of(doc: dict) -> Roofline:
    """The roofline of one result document."""
    spec, count = gpu_of(doc), doc["gpu"]["count"]
    per_token, source = bytes_per_token(doc)
    model = models.MODELS.get(doc.get("model"))
    note = ""
    if spec is None:
        note = f"GPU {doc['gpu']['name']!r} is not in the catalog"
    elif spec.vendor == "cpu":
        note = "CPU: no datasheet limit"
    elif model is None:
        note = f"model {doc.get('model')!r} is not in the catalog"
    elif per_token is None:
        note = f"weight format {(doc.get('weights') or {}).get('format')!r}: bytes per token unknown"
    on_gpu = spec is not None and spec.vendor != "cpu"

    decode_limit = None
    if on_gpu and per_token and spec.bandwidth_gb_s:
        decode_limit = count * spec.bandwidth_gb_s * 1e9 / per_token
    compute_limit = None
    if on_gpu and model and spec.fp16_tflops:
        compute_limit = count * spec.fp16_tflops * 1e12 / (2 * model.n_params_per_token)

    prompt = (doc.get("prompt_tokens") or {}).get("actual")
    prefill_limit, bound = compute_limit, "compute" if compute_limit else None
    if decode_limit and prompt and (compute_limit is None or prompt * decode_limit < compute_limit):
        prefill_limit, bound = prompt * decode_limit, "memory"

    return Roofline(
        gpu=spec.name if spec else None,
        count=count,
        bytes_per_token=per_token,
        bytes_from=source,
        decode_limit_tok_s=decode_limit,
        decode_fraction=_fraction(doc.get("decode_tok_s"), decode_limit),
        prefill_compute_limit_tok_s=compute_limit,
        prefill_compute_fraction=_fraction(doc.get("prefill_tok_s"), compute_limit),
        prefill_limit_tok_s=prefill_limit,
        prefill_fraction=_fraction(doc.get("prefill_tok_s"), prefill_limit),
        prefill_bound=bound,
        note=note,
    )


def _fraction(summary: dict | None, limit: float | None) -> float | None:
    if not summary or not limit:
        return None
    return summary["mean"] / limit


#: bytes per element of the KV cache (fp16 keys and values: every engine's default here)
KV_BYTES = 2


def kv_bytes_per_token(model: models.ModelSpec) -> int:
    """KV cache bytes one token of context holds: keys and values of every layer."""
    return 2 * model.num_hidden_layers * model.num_key_value_heads * model.head_dim * KV_BYTES


def batch_decode_limit(doc: dict, batch: int, prompt_tokens: int, gen_tokens: int) -> float | None:
    """Total decode tok/s no engine can beat at batch ``batch``: the weights read once per step for all
    ``batch`` tokens, plus each sequence's KV cache at its mean context during the decode (prompt +
    half the generated tokens), against memory bandwidth; and 2 FLOPs per weight per token against the
    dense fp16 tensor rate. None on the CPU or where the GPU, model or format is not known."""
    spec, model = gpu_of(doc), models.MODELS.get(doc.get("model"))
    per_token, _ = bytes_per_token(doc)
    if spec is None or spec.vendor == "cpu" or model is None or not per_token or not spec.bandwidth_gb_s:
        return None
    count = doc["gpu"]["count"]
    step_bytes = per_token + batch * kv_bytes_per_token(model) * (prompt_tokens + gen_tokens / 2)
    memory = count * spec.bandwidth_gb_s * 1e9 * batch / step_bytes
    if not spec.fp16_tflops:
        return memory
    return min(memory, count * spec.fp16_tflops * 1e12 / (2 * model.n_params_per_token))
