"""Synthetic GGUF files: the shapes and types llama.cpp expects, values of the stated distribution,
and llama.cpp itself loading and decoding them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from llmperf_nb.models import get_model
from llmperf_nb.weights.gguf import write_synthetic_gguf

from .conftest import needs_llama_cpp

gguf = pytest.importorskip("gguf")
PROMPT = "1,1724,338,278,6593,310,2834,29973"


@pytest.fixture(scope="module")
def f16_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny-F16.gguf"
    write_synthetic_gguf(get_model("tiny-llama"), path, quant="F16")
    return path


def test_f16_file_has_every_tensor_in_f16_with_normal_values(f16_file):
    spec = get_model("tiny-llama")
    tensors = {t.name: t for t in gguf.GGUFReader(f16_file).tensors}
    assert len(tensors) == 2 + 1 + 9 * spec.num_hidden_layers  # embeddings, norm, output; 9 per block
    up = tensors["blk.0.ffn_up.weight"]
    assert up.tensor_type == gguf.GGMLQuantizationType.F16
    assert sorted(up.shape.tolist()) == sorted([spec.hidden_size, spec.intermediate_size])
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    values = np.concatenate([t.data.astype(np.float32).ravel() for t in tensors.values() if len(t.shape) == 2])
    assert np.isfinite(values).all()
    assert values.mean() == pytest.approx(0.0, abs=1e-3)
    assert values.std() == pytest.approx(0.02, rel=0.02)
    # tensors start at different places in the pool: no two matrices are equal
    a, b = tensors["blk.0.attn_q.weight"].data, tensors["blk.0.attn_k.weight"].data
    assert not np.array_equal(a, b)


def test_same_seed_same_file(tmp_path):
    spec = get_model("tiny-llama")
    write_synthetic_gguf(spec, tmp_path / "a.gguf", quant="F16")
    write_synthetic_gguf(spec, tmp_path / "b.gguf", quant="F16")
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


@needs_llama_cpp
def test_llama_cpp_decodes_the_f16_file_with_both_greedy_pickers(f16_file, tmp_path):
    tokens = {}
    for sampler in ("argmax", "llama"):
        out = tmp_path / f"{sampler}.json"
        subprocess.run([sys.executable, "-m", "llmperf_nb.drivers.llama_cpp", "bench", "--model", str(f16_file),
                        "--prompt-ids", PROMPT, "--gen-len", "16", "--reps", "1", "--warmup", "0",
                        "--options", '{"threads": 2, "n_gpu_layers": 0}', "--sampler", sampler, "--out", str(out)],
                       check=True, capture_output=True)
        raw = json.loads(out.read_text())
        assert raw["samples"][0]["gen_tokens"] == 16
        assert raw["settings"]["sampler"] == sampler
        tokens[sampler] = raw["samples"][0]["token_ids"][:8]
    assert tokens["argmax"] == tokens["llama"]  # the same greedy choice, whichever picks it


def test_the_gguf_names_of_the_llama_layout_are_gguf_pys():
    import gguf

    from llmperf_nb.models import TENSOR_NAMES

    t = gguf.MODEL_TENSOR
    theirs = {"embed": t.TOKEN_EMBD, "attn_norm": t.ATTN_NORM, "q": t.ATTN_Q, "k": t.ATTN_K, "v": t.ATTN_V,
              "o": t.ATTN_OUT, "ffn_norm": t.FFN_NORM, "gate": t.FFN_GATE, "up": t.FFN_UP, "down": t.FFN_DOWN,
              "final_norm": t.OUTPUT_NORM, "lm_head": t.OUTPUT}
    assert TENSOR_NAMES["gguf"] == {role: gguf.TENSOR_NAMES[v].replace("{bid}", "{i}") for role, v in theirs.items()}


def test_a_file_another_process_is_making_is_waited_for_not_written_again(tmp_path):
    """Two cells of a Ray run on one machine (--per-host 2) once wrote the same synthetic GGUF at once, through
    the same temporary name: one failed ("No such file or directory: ….gguf.tmp -> ….gguf"). One process makes
    it now (weights.atomic.one_maker); another that needs it meanwhile waits, then finds it made."""
    import time

    path = tmp_path / "gguf" / "tiny-Q4_0.gguf"
    code = ("import sys, time; from pathlib import Path; from llmperf_nb.weights.atomic import one_maker\n"
            "path = Path(sys.argv[1])\nwith one_maker(path) as needed:\n"
            "    print(needed, flush=True); time.sleep(1.5); path.write_bytes(b'made by the other one')\n")
    other = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline() == "True\n"  # it holds the lock and is making the file
    start = time.monotonic()
    write_synthetic_gguf(get_model("tiny-llama"), path, quant="Q4_0")
    assert other.wait(timeout=60) == 0 and time.monotonic() - start > 0.5
    other.stdout.close()
    assert path.read_bytes() == b"made by the other one"  # waited for, not written again
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no .tmp, no .lock left
