"""The prompt's token ids: llama.cpp's and transformers' readings of the same vocabulary agree
(BOS included) and the converted tokenizer kept in the cache gives the same ids."""

import subprocess
import sys

import pytest

from llmperf_nb import tokenizer

# Not " leading space": llama.cpp keeps SentencePiece's extra "▁" (29871) before it, transformers'
# conversion does not. Prompts start with a word.
TEXTS = ["What is the meaning of life?", "Tell me a story.  Two spaces,\nnew line", "naïve café, 東京 — 42!", ""]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMPERF_NB_CACHE", str(tmp_path))
    tokenizer._converted.cache_clear()
    yield tmp_path / "tokenizer"
    tokenizer._converted.cache_clear()


@pytest.mark.slow  # converting the vocabulary with transformers takes 20-40 s here
def test_transformers_path_matches_llama_cpp_and_its_cache(fresh_cache):
    pytest.importorskip("llama_cpp")
    want = [tokenizer._llama_cpp(t) for t in TEXTS]
    assert want[0] == [1, 1724, 338, 278, 6593, 310, 2834, 29973]
    assert [tokenizer._transformers(t) for t in TEXTS] == want
    saved = sorted(p.name for p in fresh_cache.iterdir())
    assert len(saved) == 2 and saved[0].endswith(".bos.json"), saved

    tokenizer._converted.cache_clear()  # a new process: read from the cache
    assert [tokenizer._transformers(t) for t in TEXTS] == want

    for p in fresh_cache.iterdir():  # a damaged cache is converted again, not trusted
        p.write_text("{not json")
    tokenizer._converted.cache_clear()
    assert tokenizer._transformers(TEXTS[0]) == want[0]


def test_llama_cpp_tokenizes_in_a_child_so_this_process_never_loads_libllama():
    # libllama next to pyzmq aborted the CLI ("free(): invalid pointer") on the GPU machine
    code = ("import sys; from llmperf_nb import tokenizer; ids, how = tokenizer.prompt_ids('What is the meaning of life?'); "
            "print(list(ids), how, 'llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")
