"""The prompt's token ids, from the real Llama tokenizer, so every engine runs the same ids.

The tokenizer is the Llama SentencePiece vocabulary shipped as llama.cpp's vocab-only GGUF
(llmperf_nb/data/ggml-vocab-llama-spm.gguf), read through llama.cpp where llama-cpp-python is
installed, else through transformers' GGUF loader. Either gives, for "What is the meaning of
life?", [1, 1724, 338, 278, 6593, 310, 2834, 29973] (BOS included).

The transformers path does not trust the converted tokenizer to add BOS (transformers 5.17 did
not, 5.24 does: on the GPU machine the vLLM and MLC cells got 7 ids): it encodes without special
tokens and adds BOS as the vocabulary's own metadata says (``tokenizer.ggml.add_bos_token``).
Converting the vocabulary takes 30-50 s, once per process, so the converted tokenizer is kept as a
``tokenizer.json`` under the cache ($LLMPERF_NB_CACHE or ~/.cache/llmperf-nb, ``tokenizer/``).
The two paths agree on text that starts with a word (tests/test_tokenizer.py); on a leading space
llama.cpp keeps SentencePiece's extra "▁" (id 29871) and transformers' conversion does not.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .exceptions import EngineError
from .jsonfile import write_json, write_text

VOCAB_FILE = Path(__file__).resolve().parent / "data" / "ggml-vocab-llama-spm.gguf"


@lru_cache(maxsize=8)
def prompt_ids(text: str) -> tuple[tuple[int, ...], str]:
    """(token ids with BOS, which tokenizer made them)."""
    ids = _llama_cpp_in_child(text)
    if ids is not None:
        return tuple(ids), "Llama SPM vocabulary (ggml-vocab-llama-spm.gguf) via llama.cpp"
    try:
        return tuple(_transformers(text)), "Llama SPM vocabulary (ggml-vocab-llama-spm.gguf) via transformers"
    except ImportError:
        raise EngineError("no Llama tokenizer here: install llama-cpp-python or transformers") from None


_NO_LLAMA_CPP = 3  # the child's exit status when llama_cpp does not import


def _llama_cpp_in_child(text: str) -> list[int] | None:
    """llama.cpp's tokenizer in a child process (``python -m llmperf_nb.tokenizer TEXT``), None where
    llama_cpp does not import. Not in this process: loading libllama next to pyzmq (papermill, the
    CLI) aborted the process with "free(): invalid pointer" on the GPU machine (2026-11-30)."""
    import importlib.util
    import json

    from . import process

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    out = process.run([process.python(), "-m", "llmperf_nb.tokenizer", text], timeout=300, check=False)
    if out.returncode == _NO_LLAMA_CPP:
        return None
    if out.returncode != 0:
        raise EngineError(f"llama.cpp's tokenizer failed (exit {out.returncode}): {process.tail(out.output, 3)}")
    return json.loads(out.output.strip().splitlines()[-1])


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
    tok, bos, add_bos = _converted()
    return ([bos] if add_bos else []) + list(tok.encode(text, add_special_tokens=False).ids)


def _bos() -> tuple[int, bool]:
    """The vocabulary's BOS id and whether its model adds it (GGUF metadata; reading it takes seconds)."""
    import gguf

    fields = gguf.GGUFReader(str(VOCAB_FILE)).fields

    def value(key):
        f = fields[key]
        return f.parts[f.data[0]][0]

    return int(value("tokenizer.ggml.bos_token_id")), bool(value("tokenizer.ggml.add_bos_token"))


@lru_cache(maxsize=1)
def _converted():
    """(transformers' conversion of the GGUF vocabulary as a ``tokenizers.Tokenizer``, BOS id, add
    BOS?), made once and kept under the cache, keyed by the vocabulary's sha256 and the transformers
    version: ``<key>.json`` (the tokenizer) and ``<key>.bos.json``."""
    import hashlib
    import json
    import os
    from importlib.metadata import version

    import tokenizers

    digest = hashlib.sha256(VOCAB_FILE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("LLMPERF_NB_CACHE") or Path.home() / ".cache" / "llmperf-nb")
    key = cache / "tokenizer" / f"{VOCAB_FILE.stem}-{digest}-transformers-{version('transformers')}"
    saved, meta = key.with_name(key.name + ".json"), key.with_name(key.name + ".bos.json")
    try:
        m = json.loads(meta.read_text())
        return tokenizers.Tokenizer.from_file(str(saved)), int(m["bos"]), bool(m["add_bos"])
    except Exception:  # absent or damaged: convert below
        pass
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(VOCAB_FILE.parent), gguf_file=VOCAB_FILE.name).backend_tokenizer
    bos, add_bos = _bos()
    try:
        saved.parent.mkdir(parents=True, exist_ok=True)
        write_text(saved, tok.to_str())
        write_json(meta, {"bos": bos, "add_bos": add_bos})  # last: it marks the pair complete
    except OSError:
        pass  # a read-only or full cache: convert again next time
    return tok, bos, add_bos


@lru_cache(maxsize=1)
def _silent_callback(L):
    # cached: llama.cpp keeps the pointer, so the callback must outlive the call
    return L.llama_log_callback(lambda level, text, user_data: None)


def main(argv: list[str] | None = None) -> int:
    """``python -m llmperf_nb.tokenizer TEXT``: TEXT's ids through llama.cpp, as a JSON list."""
    import json
    import sys

    text = (argv if argv is not None else sys.argv[1:])[0]
    try:
        ids = _llama_cpp(text)
    except ImportError:
        return _NO_LLAMA_CPP
    print(json.dumps(ids), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
