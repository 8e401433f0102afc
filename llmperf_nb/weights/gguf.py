"""Synthetic GGUF checkpoints for llama.cpp: the exact tensor shapes of a catalog model, random values.

Decode speed of a dense model does not depend on weight values, so such a file gives llama.cpp's
real speed with no download (docs/engines.md, "Synthetic weights"). Its output text is meaningless.

Tensor names and metadata keys are those llama.cpp's ``convert_hf_to_gguf.py`` writes for Llama;
the tokenizer is llama.cpp's vocab-only ``ggml-vocab-llama-spm.gguf`` (the Llama 1/2 SentencePiece
vocabulary), padded with extra tokens for models with a larger vocabulary (CodeLlama: 32016).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import gguf
import numpy as np

from ..exceptions import WeightsError
from ..models import ModelSpec, llama_tensors
from .atomic import one_maker
from .draws import normal_f16, normal_f16_table, random_bytes

VOCAB_FILE = Path(__file__).resolve().parent.parent / "data" / "ggml-vocab-llama-spm.gguf"

QUANTS = {"Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0, "F16": gguf.LlamaFileType.MOSTLY_F16}

SYNTHETIC_KEY = "llmperf_nb.synthetic"

_Q4_0_BLOCK = 32  # weights per Q4_0 block; stored as an fp16 scale then 16 bytes of nibbles
_Q4_0_BYTES = 18


def write_synthetic_gguf(spec: ModelSpec, path: Path, quant: str = "Q4_0", seed: int = 0) -> None:
    """Write a llama-architecture GGUF with the shapes of ``spec`` and random weights to ``path``.

    Tensors are generated and written one at a time, so memory holds at most one tensor (70B is
    40 GB in Q4_0). The file appears under ``path`` only once complete, made by one process at a time:
    one that finds it made meanwhile by another leaves it as it is (atomic.one_maker).
    """
    _check(spec, quant)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with one_maker(path) as needed:
        if not needed:
            return
        try:
            _write(spec, tmp, quant, np.random.default_rng(seed))
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise WeightsError(f"cannot write synthetic weights to {path}: {err}") from err
            raise


def _check(spec: ModelSpec, quant: str) -> None:
    if quant not in QUANTS:
        raise WeightsError(f"unknown GGUF quant {quant!r}; valid: {', '.join(QUANTS)}")
    # Q4_0 blocks run along a row, i.e. along the input dimension of every matrix.
    if quant == "Q4_0" and (spec.hidden_size % _Q4_0_BLOCK or spec.intermediate_size % _Q4_0_BLOCK):
        raise WeightsError(f"{spec.name}: hidden and intermediate sizes must be multiples of 32 for Q4_0")


def _write(spec: ModelSpec, tmp: Path, quant: str, rng: np.random.Generator) -> None:
    writer = gguf.GGUFWriter(tmp, arch="llama")
    try:
        _add_metadata(writer, spec, quant)
        _add_tokenizer(writer, spec.vocab_size)
        tensors = list(_tensor_shapes(spec))
        # GGUFWriter's streaming mode: declare every tensor, write the header, then the data in the
        # same order; add_tensor() would instead keep every array in memory until the end.
        for name, shape in tensors:
            writer.add_tensor_info(name, *_stored_layout(shape, quant))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        pool = _F16Pool(rng, max(int(np.prod(shape)) for _, shape in tensors)) if quant == "F16" else None
        for _, shape in tensors:
            writer.write_tensor_data(_random_tensor(rng, shape, quant, pool))
    finally:
        writer.close()


def _add_metadata(writer: gguf.GGUFWriter, spec: ModelSpec, quant: str) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(spec.name)
    writer.add_description(
        f"Synthetic random weights with the shapes of {spec.name} (llmperf_nb); "
        "for speed measurements only, not a real model"
    )
    writer.add_bool(SYNTHETIC_KEY, True)
    writer.add_vocab_size(spec.vocab_size)
    writer.add_context_length(spec.max_position_embeddings)
    writer.add_embedding_length(spec.hidden_size)
    writer.add_block_count(spec.num_hidden_layers)
    writer.add_feed_forward_length(spec.intermediate_size)
    writer.add_head_count(spec.num_attention_heads)
    writer.add_head_count_kv(spec.num_key_value_heads)
    writer.add_rope_freq_base(spec.rope_theta)
    writer.add_layer_norm_rms_eps(spec.rms_norm_eps)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_file_type(QUANTS[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer(writer: gguf.GGUFWriter, vocab_size: int) -> None:
    """Copy every ``tokenizer.*`` key of the vocab-only file, padding the vocabulary to ``vocab_size``."""
    keys = _vocab_keys()
    n_base = len(keys["tokenizer.ggml.tokens"][0])
    if vocab_size < n_base:
        raise WeightsError(f"vocab_size {vocab_size} is smaller than the Llama vocabulary ({n_base})")
    n_extra = vocab_size - n_base
    padding = {
        "tokenizer.ggml.tokens": [f"<extra_{i}>" for i in range(n_extra)],
        "tokenizer.ggml.scores": [0.0] * n_extra,
        "tokenizer.ggml.token_type": [int(gguf.TokenType.USER_DEFINED)] * n_extra,
    }
    for name, (value, vtype, sub_type) in keys.items():
        if name in padding:
            value = value + padding[name]
        writer.add_key_value(name, value, vtype, sub_type)


@functools.cache
def _vocab_keys() -> dict[str, tuple]:
    """``tokenizer.*`` keys of the vocab file as (value, type, array item type); parsed once, as
    GGUFReader takes seconds over 32000 tokens."""
    try:
        fields = gguf.GGUFReader(VOCAB_FILE).fields
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot read the Llama vocabulary {VOCAB_FILE}: {err}") from err
    keys = {}
    for name, field in fields.items():
        if name.startswith("tokenizer."):
            vtype = field.types[0]
            sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            keys[name] = (field.contents(), vtype, sub_type)
    return keys


def _tensor_shapes(spec: ModelSpec) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(GGUF name, numpy shape) of every tensor (models.llama_tensors); a matrix is [out, in] like the HF
    checkpoint."""
    for t in llama_tensors(spec):
        yield t.name("gguf") + ".weight", t.shape


def _stored_layout(shape: tuple[int, ...], quant: str) -> tuple:
    """Arguments of ``GGUFWriter.add_tensor_info`` after ``name``: shape, dtype, nbytes, raw_dtype."""
    n = int(np.prod(shape))
    if len(shape) == 1:  # norms stay F32, as llama.cpp's converter and quantizer keep them
        return shape, np.float32, 4 * n, None
    if quant == "F16":
        return shape, np.float16, 2 * n, None
    # Raw bytes: add_tensor_info turns a uint8 byte shape back into the weight shape.
    row_bytes = shape[1] // _Q4_0_BLOCK * _Q4_0_BYTES
    return (shape[0], row_bytes), np.uint8, shape[0] * row_bytes, gguf.GGMLQuantizationType.Q4_0


def _random_tensor(rng: np.random.Generator, shape: tuple[int, ...], quant: str, pool: _F16Pool | None) -> np.ndarray:
    if len(shape) == 1:
        # Ones, as HF initialises RMSNorm: norms then only rescale, keeping activations in range.
        return np.ones(shape, np.float32)
    if quant == "F16":
        return pool.take(shape)
    return _random_q4_0(rng, shape)


def _random_q4_0(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Q4_0 blocks: random nibbles with a random fp16 scale in [0.001, 0.01]."""
    n_blocks = shape[0] * shape[1] // _Q4_0_BLOCK
    blocks = random_bytes(rng, n_blocks * _Q4_0_BYTES).reshape(n_blocks, _Q4_0_BYTES)
    # Random bytes as a scale could be inf or NaN, so the scale is drawn as a small finite value.
    scales = (0.001 + 0.009 * rng.random(n_blocks, dtype=np.float32)).astype(np.float16)
    blocks[:, :2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(shape[0], -1)


class _F16Pool:
    """F16 matrices filled from a pool of normal * 0.02 draws (64 MiB), at a random offset each.

    Drawing 69 G values for 70B takes numpy about 10 minutes on one core; copying them from the pool
    into one reused buffer runs at memory speed, so writing is bound by the disk. Within a tensor the
    values repeat every ``POOL_VALUES`` (an odd length, so consecutive rows read the pool at shifted
    offsets); decode speed does not depend on the values, and each is still normal * 0.02 distributed.
    """

    POOL_VALUES = (1 << 25) + 1

    def __init__(self, rng: np.random.Generator, max_values: int):
        self.rng = rng
        self.pool = normal_f16(rng, normal_f16_table(rng), self.POOL_VALUES)
        self.buffer = np.empty(max_values, np.float16)  # reused: a fresh array per tensor costs page faults

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """A view of the buffer holding the next tensor; valid until the next call."""
        n = int(np.prod(shape))
        out, pool = self.buffer[:n], self.pool
        pos, offset = 0, int(self.rng.integers(len(pool)))
        while pos < n:
            take = min(n - pos, len(pool) - offset)
            out[pos:pos + take] = pool[offset:offset + take]
            pos, offset = pos + take, 0
        return out.reshape(shape)
