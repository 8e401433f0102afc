"""The prompt's token ids, from the real Llama tokenizer, so every engine runs the same ids.

The tokenizer is the Llama SentencePiece vocabulary shipped as llama.cpp's vocab-only GGUF
(llmperf_nb/data/ggml-vocab-llama-spm.gguf), read through llama.cpp where llama-cpp-python is
installed, else through transformers' GGUF loader. Either gives, for "What is the meaning of
life?", [1, 1724, 338, 278, 6593, 310, 2834, 29973] (BOS included).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .exceptions import EngineError

VOCAB_FILE = Path(__file__).resolve().parent / "data" / "ggml-vocab-llama-spm.gguf"


@lru_cache(maxsize=8)
def prompt_ids(text: str) -> tuple[tuple[int, ...], str]:
    """(token ids with BOS, which tokenizer made them)."""
    try:
        return tuple(_llama_cpp(text)), "Llama SPM vocabulary (ggml-vocab-llama-spm.gguf) via llama.cpp"
    except ImportError:
        pass
    try:
        return tuple(_transformers(text)), "Llama SPM vocabulary (ggml-vocab-llama-spm.gguf) via transformers"
    except ImportError:
        raise EngineError("no Llama tokenizer here: install llama-cpp-python or transformers") from None


def _llama_cpp(text: str) -> list[int]:
    import ctypes

    import llama_cpp as L

    L.llama_log_set(_silent_callback(L), ctypes.c_void_p(0))
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(str(VOCAB_FILE).encode(), mp)
    if not model:
        raise EngineError(f"llama.cpp could not read the vocabulary {VOCAB_FILE}")
    try:
        raw = text.encode()
        buf = (L.llama_token * (len(raw) + 16))()
        n = L.llama_tokenize(L.llama_model_get_vocab(model), raw, len(raw), buf, len(buf), True, False)
        return list(buf[:n])
    finally:
        L.llama_model_free(model)


def _transformers(text: str) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(VOCAB_FILE.parent), gguf_file=VOCAB_FILE.name)
    return tok(text)["input_ids"]


@lru_cache(maxsize=1)
def _silent_callback(L):
    # cached: llama.cpp keeps the pointer, so the callback must outlive the call
    return L.llama_log_callback(lambda level, text, user_data: None)
