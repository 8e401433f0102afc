"""Synthetic GPTQ checkpoints for ExLlamaV2: the exact tensor shapes of a catalog model, random values.

Decode speed of a dense model does not depend on weight values (docs/engines.md, "Synthetic
weights"), so this folder gives ExLlamaV2's real speed with no download. Its output text is
meaningless. The layout is what AutoGPTQ wrote for TheBloke's Llama-2 GPTQ repositories (4-bit,
group size 128, no act-order, symmetric), per linear layer of ``in`` inputs and ``out`` outputs:

    qweight int32 [in/8, out]     eight 4-bit weights per int32, packed along the input dimension
    qzeros  int32 [groups, out/8] groups = ceil(in/128)
    scales  fp16  [groups, out]
    g_idx   int32 [in]            g_idx[i] = i // 128

plus fp16 embeddings, RMSNorm weights and lm_head under the Hugging Face names, a ``config.json``
with ``quantization_config``, and a ``tokenizer.json`` built from the Llama SentencePiece
vocabulary in ``llmperf_nb/data/ggml-vocab-llama-spm.gguf``.

Safetensors files are written by hand (an 8-byte header length, a JSON header, the raw bytes), one
tensor at a time, so memory holds one tensor however large the model; folders over
:data:`MAX_SHARD_BYTES` are sharded with a ``model.safetensors.index.json`` as transformers does.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exceptions import WeightsError
from ..models import LINEAR_ROLES, ModelSpec, llama_tensors
from .atomic import atomic_dir, one_maker
from .draws import normal_f16, normal_f16_table, random_bytes

VOCAB_FILE = Path(__file__).resolve().parent.parent / "data" / "ggml-vocab-llama-spm.gguf"

BITS = 4
GROUP_SIZE = 128
PACK = 32 // BITS  # weights per int32
MAX_SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size ("5GB")

# Symmetric GPTQ stores every zero point as 8 - 1 (AutoGPTQ's v1 format subtracts one), so a real
# sym checkpoint's qzeros are all 0x77777777; keeping them so also keeps the weights zero-mean.
SYM_QZEROS = 0x77777777

QUANTIZATION_CONFIG = {"bits": BITS, "group_size": GROUP_SIZE, "desc_act": False, "sym": True,
                       "quant_method": "gptq", "checkpoint_format": "gptq"}

#: a layer's tensors in the order AutoGPTQ wrote them: both norms around the linear layers
_LAYER_ORDER = ("attn_norm", *LINEAR_ROLES, "ffn_norm")


def write_synthetic_gptq(spec: ModelSpec, out_dir: Path, seed: int = 0) -> Path:
    """Write a GPTQ 4-bit g128 checkpoint folder with the shapes of ``spec`` to ``out_dir``.

    The folder appears under ``out_dir`` only once complete (written beside it, then renamed); an
    existing ``out_dir`` is replaced; one made meanwhile by another process is left as it is
    (atomic.one_maker).
    """
    _check(spec)
    out_dir = Path(out_dir)
    with one_maker(out_dir) as needed:
        if not needed:
            return out_dir
        with atomic_dir(out_dir, "synthetic GPTQ weights") as tmp:
            _write_shards(tmp, list(tensor_plan(spec)), np.random.default_rng(seed))
            config = {**spec.hf_config(), "quantization_config": QUANTIZATION_CONFIG, "llmperf_nb_synthetic": True}
            _write_json(tmp / "config.json", config)
            for name, doc in tokenizer_files(spec.vocab_size, spec.max_position_embeddings).items():
                _write_json(tmp / name, doc)
    return out_dir


def _check(spec: ModelSpec) -> None:
    kv = spec.num_key_value_heads * spec.head_dim
    for what, n in (("hidden_size", spec.hidden_size), ("intermediate_size", spec.intermediate_size),
                    ("key/value width", kv)):
        # qweight packs 8 inputs per int32 and qzeros 8 outputs; ExLlamaV2's kernels work in
        # tiles of 32, so anything else is not a shape a real GPTQ checkpoint of Llama has
        if n % 32:
            raise WeightsError(f"{spec.name}: {what} {n} is not a multiple of 32, which GPTQ 4-bit needs")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # safetensors dtype: "I32" or "F16"
    shape: tuple[int, ...]
    fill: str  # "bits", "qzeros", "scales", "g_idx", "ones", "normal"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * (4 if self.dtype == "I32" else 2)


def tensor_plan(spec: ModelSpec) -> Iterator[Tensor]:
    """Every tensor of the checkpoint (models.llama_tensors, Hugging Face names), in the order AutoGPTQ wrote
    them: each layer's norms around its quantized linear layers."""
    for t in llama_tensors(spec, _LAYER_ORDER):
        name = t.name("gptq")
        if t.role not in LINEAR_ROLES:
            yield Tensor(name + ".weight", "F16", t.shape, "ones" if len(t.shape) == 1 else "normal")
            continue
        n_out, n_in = t.shape
        groups = -(-n_in // GROUP_SIZE)  # AutoGPTQ: ceil(in / group_size)
        yield Tensor(f"{name}.qweight", "I32", (n_in // PACK, n_out), "bits")
        yield Tensor(f"{name}.qzeros", "I32", (groups, n_out // PACK), "qzeros")
        yield Tensor(f"{name}.scales", "F16", (groups, n_out), "scales")
        yield Tensor(f"{name}.g_idx", "I32", (n_in,), "g_idx")


def _values(t: Tensor, rng: np.random.Generator, normal_table: np.ndarray) -> np.ndarray:
    n = int(np.prod(t.shape))
    if t.fill == "bits":  # every 4-bit code equally likely
        return random_bytes(rng, 4 * n).view(np.int32).reshape(t.shape)
    if t.fill == "qzeros":
        return np.full(t.shape, SYM_QZEROS, dtype=np.int32)
    if t.fill == "scales":
        # small positive finite scales (as the synthetic GGUF uses) keep activations in fp16 range
        return (0.001 + 0.009 * rng.random(n, dtype=np.float32)).astype(np.float16).reshape(t.shape)
    if t.fill == "g_idx":
        return (np.arange(n, dtype=np.int32) // GROUP_SIZE).astype(np.int32)
    if t.fill == "ones":  # as HF initialises RMSNorm
        return np.ones(t.shape, np.float16)
    return normal_f16(rng, normal_table, n).reshape(t.shape)  # normal * 0.02, HF's initializer_range


def _shards(tensors: list[Tensor]) -> list[list[Tensor]]:
    shards, size = [[]], 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > MAX_SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


def _write_shards(folder: Path, tensors: list[Tensor], rng: np.random.Generator) -> None:
    shards = _shards(tensors)
    table = normal_f16_table(rng)
    if len(shards) == 1:
        _write_safetensors(folder / "model.safetensors", shards[0], rng, table)
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        _write_safetensors(folder / name, shard, rng, table)
        weight_map.update({t.name: name for t in shard})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors)}, "weight_map": weight_map}
    _write_json(folder / "model.safetensors.index.json", index)


def _write_safetensors(path: Path, tensors: list[Tensor], rng: np.random.Generator, table: np.ndarray) -> None:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header with spaces to 8-byte alignment
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for t in tensors:
            values = _values(t, rng, table)
            assert values.nbytes == t.nbytes, t.name
            values.astype(values.dtype.newbyteorder("<"), copy=False).tofile(f)


def _write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --- tokenizer ---------------------------------------------------------------------------------
# ExLlamaV2 0.3 reads only tokenizer.json (HF tokenizers; SentencePiece support was dropped). The
# Llama SPM vocabulary is a BPE-type SentencePiece model, so it maps onto a `tokenizers` BPE model
# the way transformers' converters do it: merges are every split of a piece into two pieces of the
# vocabulary, ranked by the merged piece's score; unknown characters fall back to <0xNN> bytes; the
# normalizer prepends "▁" and turns spaces into "▁" (the layout of Llama-2's own tokenizer.json).

_NORMAL, _CONTROL, _BYTE = 1, 3, 6  # GGUF token types


@functools.cache
def _llama_vocab() -> tuple[list[str], list[float], list[int]]:
    import gguf

    try:
        fields = gguf.GGUFReader(VOCAB_FILE).fields
        return tuple(fields[f"tokenizer.ggml.{k}"].contents() for k in ("tokens", "scores", "token_type"))
    except (OSError, ValueError, KeyError) as err:
        raise WeightsError(f"cannot read the Llama vocabulary {VOCAB_FILE}: {err}") from err


def _merges(tokens: list[str], scores: list[float], types: list[int]) -> list[str]:
    normal = {t: i for i, t in enumerate(tokens) if types[i] == _NORMAL}
    ranked = []
    for piece, pid in normal.items():
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in normal and right in normal:
                ranked.append((-scores[pid], pid, normal[left], normal[right], f"{left} {right}"))
    ranked.sort()
    return [m[-1] for m in ranked]


def tokenizer_files(vocab_size: int, max_len: int) -> dict[str, dict]:
    """``tokenizer.json`` and ``tokenizer_config.json`` of the Llama vocabulary, padded with
    ``<extra_N>`` pieces up to ``vocab_size`` (CodeLlama: 32016), as the synthetic GGUF does."""
    tokens, scores, types = (list(x) for x in _llama_vocab())
    if vocab_size < len(tokens):
        raise WeightsError(f"vocab_size {vocab_size} is smaller than the Llama vocabulary ({len(tokens)})")
    merges = _merges(tokens, scores, types)
    tokens += [f"<extra_{i}>" for i in range(vocab_size - len(tokens))]
    special = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True} for i, t in enumerate(tokens[:3])]
    bos = tokens[1]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [1], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": tokens[0], "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges},
    }
    config = {
        "add_bos_token": True, "add_eos_token": False, "bos_token": bos, "eos_token": tokens[2],
        "unk_token": tokens[0], "pad_token": None, "clean_up_tokenization_spaces": False, "legacy": True,
        "model_max_length": max_len, "tokenizer_class": "LlamaTokenizer",
        "added_tokens_decoder": {str(s["id"]): {k: v for k, v in s.items() if k != "id"} for s in special},
    }
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": config}
