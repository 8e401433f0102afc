"""Synthetic Hugging Face checkpoints: the exact tensor shapes of a catalog model, random values.

Decode speed of a dense model does not depend on weight values (docs/engines.md, "Synthetic
weights"), so such a folder gives transformers' real speed with no download. Its output text is
meaningless.

The folder is what ``save_pretrained`` of a LlamaForCausalLM would write: ``config.json``,
``generation_config.json``, ``model.safetensors`` (fp16, normal * 0.02, norms 1, as HF initialises
Llama) and a fast tokenizer made from llama.cpp's vocab-only ``ggml-vocab-llama-spm.gguf`` (the
Llama 1/2 SentencePiece vocabulary). With ``weights=False`` the folder has no weight file: the driver
then builds the model from ``config.json`` with random values on the device itself.

The safetensors file is written by hand (an 8-byte header length, a JSON header, raw tensor bytes;
the format is documented with the safetensors package), one tensor at a time, so memory holds at
most one tensor and only numpy is needed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..exceptions import WeightsError
from ..models import ModelSpec, llama_tensors
from .atomic import atomic_dir, one_maker
from .draws import normal_f16, normal_f16_table

VOCAB_FILE = Path(__file__).resolve().parent.parent / "data" / "ggml-vocab-llama-spm.gguf"
WRITER_VERSION = 1  # bump when this module writes different bytes for the same inputs

#: ids the tokenizer must give for the benchmark's prompt (BOS included), as llama.cpp gives them
PROMPT_CHECK = ("What is the meaning of life?", [1, 1724, 338, 278, 6593, 310, 2834, 29973])


def write_synthetic_hf(spec: ModelSpec, out_dir: Path, seed: int = 0, weights: bool = True) -> Path:
    """Write an HF checkpoint folder with the shapes of ``spec`` to ``out_dir``; returns it.

    The folder is assembled beside ``out_dir`` and renamed into place once complete, so a folder
    at ``out_dir`` is always whole. An existing ``out_dir`` is replaced; one made
    meanwhile by another process is left as it is (atomic.one_maker).
    """
    out_dir = Path(out_dir)
    with one_maker(out_dir) as needed:
        if not needed:
            return out_dir
        with atomic_dir(out_dir, "synthetic weights") as tmp:
            config = spec.hf_config()
            _write_json(tmp / "config.json", config)
            _write_json(tmp / "generation_config.json", {
                "bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"],
                "pad_token_id": config["pad_token_id"],
            })
            write_tokenizer(tmp, spec.vocab_size, spec.max_position_embeddings)
            if weights:
                write_safetensors(tmp / "model.safetensors", _tensors(spec, np.random.default_rng(seed)),
                                  metadata={"format": "pt", "llmperf_nb.synthetic": f"{spec.name}, seed {seed}"})
    return out_dir


def tensor_shapes(spec: ModelSpec) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(HF parameter name, shape) of every tensor of LlamaForCausalLM (models.llama_tensors); a matrix is [out, in]."""
    for t in llama_tensors(spec):
        yield t.name("hf") + ".weight", t.shape


def _tensors(spec: ModelSpec, rng: np.random.Generator) -> Iterator[tuple[str, tuple[int, ...], Callable[[], np.ndarray]]]:
    table = normal_f16_table(rng)

    def make(shape):
        if len(shape) == 1:  # RMSNorm weights are ones, as HF initialises them
            return lambda: np.ones(shape, np.float16)
        n = int(np.prod(shape))
        return lambda: normal_f16(rng, table, n)

    for name, shape in tensor_shapes(spec):
        yield name, shape, make(shape)


def write_safetensors(path: Path, tensors, metadata: dict[str, str] | None = None) -> None:
    """Write fp16 tensors given as (name, shape, make) to a safetensors file, one at a time.

    ``make()`` returns the tensor's values (any shape with the right size); it is called in order,
    after the header is written, so only one tensor is in memory at once.
    """
    tensors = list(tensors)
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for name, shape, _ in tensors:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as the safetensors writer keeps it
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape, make in tensors:
            values = np.ascontiguousarray(make(), dtype=np.float16)
            if values.size != int(np.prod(shape)):
                raise WeightsError(f"{name}: {values.size} values for shape {shape}")
            f.write(values.data)


def write_tokenizer(out_dir: Path, vocab_size: int = 32000, max_len: int = 4096) -> None:
    """A fast Llama tokenizer (tokenizer.json, tokenizer_config.json) from the GGUF vocabulary,
    the same files the GPTQ writer makes (built with the gguf package alone, in the layout of the
    Llama-2 checkpoints on the Hub), checked with the tokenizers library.

    It used to come from transformers' GGUF loader, whose output depends on the transformers
    release: 5.17 on the GPU machine dropped BOS, which the check below caught.
    """
    from tokenizers import Tokenizer

    from .gptq import tokenizer_files

    for name, doc in tokenizer_files(vocab_size, max_len).items():
        _write_json(out_dir / name, doc, indent=None if name == "tokenizer.json" else 2)
    text, want = PROMPT_CHECK
    got = Tokenizer.from_file(str(out_dir / "tokenizer.json")).encode(text).ids
    if got != want:
        raise WeightsError(f"the tokenizer written to {out_dir} encodes {text!r} as {got}, not {want}")


def _write_json(path: Path, doc: dict, indent: int | None = 2) -> None:
    path.write_text(json.dumps(doc, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
