"""ExLlamaV2: parsers on real captured output (tests/data/logs/public/exllamav2, exllama; SOURCES.md
there says where each file comes from), the synthetic GPTQ writer, options and argv; and, where a
CUDA GPU and exllamav2 are present, the real driver on a tiny GPTQ checkpoint."""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import replace

import numpy as np
import pytest

from llmperf_nb import process, tokenizer
from llmperf_nb.cells import Cell
from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Prepared
from llmperf_nb.engines.exllamav2 import ExLlamaV2Engine
from llmperf_nb.exceptions import ConfigError, EngineError, ParseError, WeightsError
from llmperf_nb.importers import exllamav2 as p
from llmperf_nb.importers import result as importers
from llmperf_nb.models import ModelSpec, get_model
from llmperf_nb.params import DEFAULT_PROMPT
from llmperf_nb.weights import gptq

from .conftest import LOGS, driver_options, has_nvidia_gpu, new_cell

V2 = LOGS / "public" / "exllamav2"
V1 = LOGS / "public" / "exllama"
PROMPT_IDS = (1, 1724, 338, 278, 6593, 310, 2834, 29973)


@pytest.fixture(autouse=True, scope="module")
def engine():
    eng = ExLlamaV2Engine()
    registry.register(eng)
    return eng


@pytest.fixture(autouse=True)
def llama_prompt_ids(monkeypatch):
    """The prompt's ids without a tokenizer install (llama.cpp or transformers give these)."""
    monkeypatch.setattr(tokenizer, "prompt_ids", lambda text: (PROMPT_IDS, "Llama SPM vocabulary (test)"))


def cell(gpu="H100", count=1, options=None, weights="synthetic", model="tiny-llama", gen_len=256) -> Cell:
    return new_cell(model, gpu, "exllamav2", count=count, options=options, weights=weights, gen_len=gen_len,
                    timeout_s=600.0)


# --- parsers ------------------------------------------------------------------------------------

def test_modern_response_line_includes_prompt_eval():
    m = p.parse_response((V2 / "readme-llama2-7b-chat-exl2-test-inference-p.txt").read_text())
    assert m.samples == [{"prompt_tokens": None, "gen_tokens": 128, "decode_s": 1.52, "decode_tok_s": 84.43}]
    assert m.engine_version == "ExLlamaV2" and m.build == {"tool": "test_inference.py -p"}
    assert "includes prompt eval" in m.notes[0] and "requested -t" in m.notes[0]


def test_early_format_pairs_prompt_and_response_lines():
    m = p.parse_response((V2 / "issue33-test-inference-p-early-format.txt").read_text())
    assert m.samples == [{"prompt_tokens": 5, "gen_tokens": 128, "decode_s": 3.96, "decode_tok_s": 32.29,
                          "prefill_s": 0.10, "prefill_tok_s": 51.99}]
    assert "early test_inference.py format" in m.notes[0]


def test_bare_response_line_says_what_is_unknown():
    m = p.parse_response((V2 / "issue346-a100-response-line.txt").read_text())
    assert m.samples == [{"prompt_tokens": None, "gen_tokens": 1024, "decode_s": 8.56, "decode_tok_s": 119.64}]
    assert "not in the log" in m.notes[0] and "not named" in m.build["tool"]


def test_speed_rows_are_decode_samples_per_position():
    m = p.parse_speed((V2 / "pr5-rocm-6700xt-ps-s-speed-truncated.txt").read_text())
    assert [s["position"] for s in m.samples] == [1, 128, 256, 384, 512, 640, 768, 896, 1024, 1152]
    assert [s["gen_tokens"] for s in m.samples] == [127] + [128] * 9
    assert [s["prompt_tokens"] for s in m.samples][:3] == [0, 127, 255]
    assert [s["decode_tok_s"] for s in m.samples] == [35.9594, 35.5533, 34.5516, 33.9032, 32.9328, 31.7120,
                                                      31.6832, 31.6106, 30.9029, 29.8211]
    assert m.samples[0]["decode_s"] == pytest.approx(127 / 35.9594)
    assert any("prompt-speed" in n for n in m.notes)


def test_prompt_speed_rows_are_prefill_samples_per_length():
    m = p.parse_prompt_speed((V2 / "pr5-rocm-6700xt-ps-s-speed-truncated.txt").read_text())
    assert [s["prompt_tokens"] for s in m.samples] == list(range(128, 2049, 128))
    assert [s["prefill_tok_s"] for s in m.samples][:3] == [355.7812, 604.9509, 601.7808]
    assert m.samples[-1]["prefill_tok_s"] == 556.7499
    assert {s["gen_tokens"] for s in m.samples} == {0}


def test_exllama_v1_second_speed_is_decode():
    m = p.parse_exllama_v1((V1 / "issue6-rtx3060-test-benchmark-inference-p.txt").read_text())
    (s,) = m.samples
    assert s["decode_tok_s"] == 36.62 and s["gen_tokens"] == 128
    assert s["prefill_tok_s"] == 1423.20 and s["prompt_tokens"] == 2048 - 128
    assert s["prefill_s"] == pytest.approx(1.35, abs=0.005)  # the log's "Time, Inference: 1.35 seconds"
    assert m.engine_version == "ExLlama v1" and m.build["sequence_length"] == 2048


def test_exllama_v1_later_format_with_two_decode_passes():
    text = (" -- Sequence length: 2048\n -- Inference, first pass.\n ** Time, Inference: 0.50 seconds\n"
            " ** Speed: 3840.00 tokens/second\n -- Generating 128 tokens, 1920 token prompt...\n"
            " ** Speed: 40.00 tokens/second\n -- Generating 128 tokens, 4 token prompt...\n"
            " ** Speed: 50.00 tokens/second\n")
    m = p.parse_exllama_v1(text)
    assert [(s["prompt_tokens"], s["decode_tok_s"]) for s in m.samples] == [(1920, 40.0), (4, 50.0)]
    assert "prefill_tok_s" not in m.samples[1] and len(m.notes) == 2


@pytest.mark.parametrize("parser", [p.parse_response, p.parse_speed, p.parse_prompt_speed, p.parse_exllama_v1])
def test_parsers_refuse_unrelated_text(parser):
    with pytest.raises(ParseError):
        parser("llama_print_timings:        eval time =  100.00 ms /    10 runs\n")


@pytest.mark.parametrize("name, decode", [
    ("exllamav2/readme-llama2-7b-chat-exl2-test-inference-p.txt", 84.43),
    ("exllamav2/issue33-test-inference-p-early-format.txt", 32.29),
    ("exllamav2/issue346-a100-response-line.txt", 119.64),
    ("exllamav2/pr5-rocm-6700xt-ps-s-speed-truncated.txt", 35.9594),  # -s wins over -ps
    ("exllama/issue6-rtx3060-test-benchmark-inference-p.txt", 36.62),
])
def test_every_log_imports_as_a_valid_result(name, decode):
    text = (LOGS / "public" / name).read_text()
    assert registry["exllamav2"].parse_log(text).samples[0]["decode_tok_s"] == decode
    doc = importers.to_result("exllamav2", text, source=name)  # validates against the schema
    assert doc["samples"][0]["decode_tok_s"] == decode


# --- synthetic GPTQ ----------------------------------------------------------------------------

def read_safetensors(path):
    """{name: array} through the format itself (8-byte header length, JSON header, raw bytes)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert header.pop("__metadata__") == {"format": "pt"} and (8 + n) % 8 == 0
    dtypes = {"I32": np.int32, "F16": np.float16}
    out, end = {}, 0
    for name, h in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        a, b = h["data_offsets"]
        assert a == end, "tensors must be contiguous"
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtypes[h["dtype"]]).reshape(h["shape"])
        end = b
    assert 8 + n + end == len(raw)
    return out


@pytest.fixture(scope="module")
def tiny_gptq(tmp_path_factory):
    return gptq.write_synthetic_gptq(get_model("tiny-llama"), tmp_path_factory.mktemp("w") / "tiny-gptq")


def test_gptq_tensors_have_autogptq_shapes(tiny_gptq):
    t = read_safetensors(tiny_gptq / "model.safetensors")
    spec = get_model("tiny-llama")
    assert len(t) == 2 + 1 + spec.num_hidden_layers * (2 + 7 * 4)
    q = "model.layers.0.self_attn.q_proj."
    assert t[q + "qweight"].shape == (512 // 8, 512) and t[q + "qweight"].dtype == np.int32
    assert t[q + "qzeros"].shape == (512 // 128, 512 // 8) and t[q + "qzeros"].dtype == np.int32
    assert t[q + "scales"].shape == (512 // 128, 512) and t[q + "scales"].dtype == np.float16
    assert t[q + "g_idx"].tolist() == [i // 128 for i in range(512)]
    down = "model.layers.3.mlp.down_proj."  # 1376 inputs: 11 groups, the last one partial
    assert t[down + "qweight"].shape == (1376 // 8, 512)
    assert t[down + "qzeros"].shape == (11, 64) and t[down + "scales"].shape == (11, 512)
    assert t[down + "g_idx"][-1] == 10
    assert t["model.layers.3.mlp.up_proj.qweight"].shape == (64, 1376)
    assert (t[q + "qzeros"] == gptq.SYM_QZEROS).all()
    assert 0.001 <= t[q + "scales"].min() and t[q + "scales"].max() <= 0.01
    assert t["model.embed_tokens.weight"].shape == t["lm_head.weight"].shape == (32000, 512)
    assert t["lm_head.weight"].dtype == np.float16 and np.isfinite(t["lm_head.weight"]).all()
    assert (t["model.norm.weight"] == 1).all() and t["model.layers.0.input_layernorm.weight"].shape == (512,)
    assert len({t[q + "qweight"][i, 0] for i in range(64)}) > 60  # random bits


def test_gptq_config_and_tokenizer_files(tiny_gptq):
    cfg = json.loads((tiny_gptq / "config.json").read_text())
    assert cfg["quantization_config"] == {"bits": 4, "group_size": 128, "desc_act": False, "sym": True,
                                          "quant_method": "gptq", "checkpoint_format": "gptq"}
    assert cfg["hidden_size"] == 512 and cfg["architectures"] == ["LlamaForCausalLM"] and cfg["llmperf_nb_synthetic"]
    tok = json.loads((tiny_gptq / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "BPE" and tok["model"]["byte_fallback"] and len(tok["model"]["vocab"]) == 32000
    assert tok["model"]["vocab"]["▁What"] == 1724 and tok["model"]["vocab"]["<0x0A>"] == 13
    assert "▁ t" in tok["model"]["merges"][:10]
    assert json.loads((tiny_gptq / "tokenizer_config.json").read_text())["bos_token"] == "<s>"
    assert sorted(f.name for f in tiny_gptq.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                           "tokenizer_config.json"]


def test_tokenizer_json_gives_the_workload_ids(tiny_gptq):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(tiny_gptq / "tokenizer.json"))
    # ExLlamaV2Tokenizer encodes with add_special_tokens=False and prepends config.bos_token_id
    assert [1, *tok.encode(DEFAULT_PROMPT, add_special_tokens=False).ids] == list(PROMPT_IDS)
    assert tok.decode(list(PROMPT_IDS)) == DEFAULT_PROMPT


def test_codellama_vocabulary_is_padded():
    files = gptq.tokenizer_files(32016, 16384)
    vocab = files["tokenizer.json"]["model"]["vocab"]
    assert len(vocab) == 32016 and vocab["<extra_15>"] == 32015


def test_large_checkpoints_are_sharded_with_an_index(tmp_path, monkeypatch):
    monkeypatch.setattr(gptq, "MAX_SHARD_BYTES", 20 * 10**6)
    out = gptq.write_synthetic_gptq(get_model("tiny-llama"), tmp_path / "sharded")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(out.glob("*.safetensors"))
    assert len(shards) > 2 and shards[0].name == f"model-00001-of-{len(shards):05d}.safetensors"
    assert all(f.stat().st_size < 20 * 10**6 + 10**5 for f in shards[1:-1])
    tensors = {}
    for f in shards:
        part = read_safetensors(f)
        assert all(index["weight_map"][k] == f.name for k in part)
        tensors.update(part)
    assert set(tensors) == set(index["weight_map"])
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in tensors.values())


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(gptq, "_values", boom)
    with pytest.raises(WeightsError, match="disk full"):
        gptq.write_synthetic_gptq(get_model("tiny-llama"), tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_shapes_gptq_cannot_pack_are_refused(tmp_path):
    odd = replace(get_model("tiny-llama"), name="odd", intermediate_size=1000)
    with pytest.raises(WeightsError, match="multiple of 32"):
        gptq.write_synthetic_gptq(odd, tmp_path / "odd")


# --- engine: options, compile, argv, parse ------------------------------------------------------

def test_formats_and_options(engine):
    assert engine.weight_format("int4") == "GPTQ 4-bit g128"
    with pytest.raises(ConfigError, match="no 'fp16' path"):
        engine.weight_format("fp16")
    assert engine.options().max_seq_len == 2048
    assert engine.options(gpu_split="17,17").gpu_split == "17,17"
    for bad in ({"gpu_split": "17;17"}, {"gpu_split": "0,5"}, {"max_seq_len": 0}, {"max_seq_len": "2048"},
                {"split": "17,17"}):
        with pytest.raises(ConfigError):
            engine.options(**bad)


def test_cpu_cells_are_refused(engine, tmp_path):
    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        engine.compile(cell("cpu"), {"synthetic": True}, tmp_path, None)
    with pytest.raises(EngineError, match="needs a CUDA GPU"):
        engine.benchmark_argv(cell("cpu"), Prepared("m", "GPTQ 4-bit g128", {}), tmp_path / "raw.json")


def test_prepare_synthetic_is_cached_and_builds_the_extension(engine, tmp_path):
    calls = []
    first = engine.compile(cell(), {"synthetic": True}, tmp_path, lambda argv, **kw: calls.append(argv))
    again = engine.compile(cell(), {"synthetic": True}, tmp_path, lambda argv, **kw: calls.append(argv))
    assert not first.cached and again.cached and first.artifact == again.artifact
    assert first.format == "GPTQ 4-bit g128" and first.weights["bytes"] > 70e6
    assert (tmp_path / "gptq").is_dir() and first.artifact.startswith(str(tmp_path / "gptq"))
    assert calls[0][-3:] == ["-m", "llmperf_nb.drivers.exllamav2", "check"]


def test_prepare_real_folders(engine, tiny_gptq, tmp_path):
    run = lambda argv, **kw: None  # noqa: E731
    got = engine.compile(cell(weights="local"), {"synthetic": False, "path": str(tiny_gptq)}, tmp_path, run)
    assert got.artifact == str(tiny_gptq) and got.format == "GPTQ 4-bit g128 (as given)"
    exl2 = tmp_path / "exl2"
    exl2.mkdir()
    (exl2 / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "exl2", "bits": 4.65}}))
    (exl2 / "output.safetensors").write_bytes(b"")
    assert engine.compile(cell(), {"synthetic": False, "path": str(exl2)}, tmp_path, run).format == "EXL2 4.65 bpw (as given)"
    fp16 = tmp_path / "fp16"
    fp16.mkdir()
    (fp16 / "config.json").write_text("{}")
    header = json.dumps({"lm_head.weight": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
    (fp16 / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")
    with pytest.raises(WeightsError, match="not a GPTQ or EXL2"):
        engine.compile(cell(), {"synthetic": False, "path": str(fp16)}, tmp_path, run)
    with pytest.raises(WeightsError, match="model folder"):
        engine.compile(cell(), {"synthetic": False, "path": str(fp16 / "config.json")}, tmp_path, run)


def argv_options(engine, c, tmp_path) -> dict:
    argv = engine.benchmark_argv(c, Prepared("/w/m", "GPTQ 4-bit g128", {}), tmp_path / "raw.json")
    assert argv[:6] == [sys.executable, "-m", "llmperf_nb.drivers.exllamav2", "bench", "--model", "/w/m"]
    assert argv[argv.index("--prompt-ids") + 1] == ",".join(map(str, PROMPT_IDS))
    assert argv[argv.index("--out") + 2:][0] == "--options"
    return driver_options(argv)


def test_argv_places_the_model_like_test_inference(engine, tmp_path):
    assert argv_options(engine, cell(), tmp_path) == {"gpu_split": None, "max_seq_len": 2048, "crosscheck": False}
    assert argv_options(engine, cell(count=2), tmp_path)["gpu_split"] == "auto"
    two = cell(count=2, options={"gpu_split": "17,17", "max_seq_len": 4096})
    assert argv_options(engine, two, tmp_path) == {"gpu_split": "17,17", "max_seq_len": 4096, "crosscheck": False}
    assert argv_options(engine, cell(options={"gpu_split": "auto"}), tmp_path)["gpu_split"] == "auto"
    with pytest.raises(ConfigError, match="more GPUs"):
        engine.benchmark_argv(cell(options={"gpu_split": "17,17"}), Prepared("m", "", {}), tmp_path / "r")
    with pytest.raises(ConfigError, match="do not fit"):
        engine.benchmark_argv(cell(options={"max_seq_len": 256}), Prepared("m", "", {}), tmp_path / "r")


def test_a_sweep_runs_the_drivers_sweep_without_crosscheck_and_sizes_its_own_cache(engine, tmp_path):
    sweep = new_cell("tiny-llama", "H100", "exllamav2", options={"crosscheck": True, "max_seq_len": 256},
                     workload={"kind": "sweep", "batch_sizes": [1, 16], "prompt_lengths": [8, 512], "gen_len": 256})
    argv = engine.benchmark_argv(sweep, Prepared("/w/m", "GPTQ 4-bit g128", {}), tmp_path / "raw.json")
    assert argv[2:5] == ["llmperf_nb.drivers.exllamav2", "sweep", "--model"]
    assert argv[argv.index("--batch-sizes") + 1] == "1,16" and argv[argv.index("--prompt-lengths") + 1] == "8,512"
    assert driver_options(argv) == {"gpu_split": None, "max_seq_len": 256, "crosscheck": False}
    from llmperf_nb.drivers import exllamav2 as driver

    # the driver's parser takes the grid (argparse would exit with 2), then it needs CUDA, which is not here
    with pytest.raises(SystemExit, match="CUDA"):
        driver.main(argv[3:])


def test_parse_benchmark_reads_the_driver_output(engine, tmp_path):
    sample = {"prompt_tokens": 8, "gen_tokens": 256, "prefill_tok_s": 900.0, "decode_tok_s": 250.0}
    raw = {"engine_version": "exllamav2 0.3.2; torch 2.11.0; CUDA 13.0", "prompt_token_ids": list(PROMPT_IDS),
           "samples": [sample], "warmup_samples": [], "settings": {"autosplit": False}, "model_bytes": 3893970608,
           "quantization_config": gptq.QUANTIZATION_CONFIG, "gpu_names": ["NVIDIA H100"],
           "attention_layers_per_device": {"cuda:0": 32}, "torch_max_allocated_bytes": [5]}
    (tmp_path / "raw.json").write_text(json.dumps(raw))
    m = engine.parse_benchmark(cell(), "", tmp_path / "raw.json")
    assert m.engine_version.startswith("exllamav2 0.3.2") and m.samples == [sample]
    assert m.build["model_bytes"] == 3893970608 and m.build["gpu_names"] == ["NVIDIA H100"]


def test_driver_reads_only_its_engines_options():
    from llmperf_nb.drivers import exllamav2 as driver

    with pytest.raises(SystemExit, match="unknown option 'n_batch'"):
        driver.main(["bench", "--model", "m", "--prompt-ids", "1", "--out", "o", "--options", '{"n_batch": 1}'])


# --- the real thing ------------------------------------------------------------------------------

def has_exllamav2_gpu() -> bool:
    # find_spec, not import: exllamav2's first import JIT-builds its CUDA extension (minutes), which
    # belongs to the test below (its driver process), not to collection
    import importlib.util

    return has_nvidia_gpu() and all(importlib.util.find_spec(m) for m in ("torch", "exllamav2"))


# tiny-llama's down_proj has 1376 inputs (11 groups, the last partial), which no real Llama has; the
# second shape keeps every dimension a multiple of 128, so a failure of only the first is that shape
TINY_G128 = ModelSpec("tiny-llama-g128", None, 512, 1536, 4, 8, 8, 32000, max_position_embeddings=2048)


@pytest.mark.gpu
@pytest.mark.skipif(not has_exllamav2_gpu(), reason="needs a CUDA GPU and exllamav2")
@pytest.mark.parametrize("spec", [get_model("tiny-llama"), TINY_G128], ids=lambda s: s.name)
def test_driver_runs_on_a_tiny_gptq_checkpoint(spec, tmp_path):
    model = gptq.write_synthetic_gptq(spec, tmp_path / "gptq")
    raw = tmp_path / "raw.json"
    # a 64-token cache holds one repetition (8 + 32) but not two, so a reset that did not reset fails
    process.run([sys.executable, "-m", "llmperf_nb.drivers.exllamav2", "bench", "--model", str(model),
                 "--prompt-ids", ",".join(map(str, PROMPT_IDS)), "--gen-len", "32", "--reps", "3", "--warmup", "1",
                 "--gpus", "0", "--out", str(raw), "--options", '{"max_seq_len": 64}'], timeout=1200,
                on_line=lambda line: print(line, end=""))
    doc = json.loads(raw.read_text())
    assert doc["engine_version"].startswith("exllamav2 ")
    assert len(doc["samples"]) == 3 and len(doc["warmup_samples"]) == 1
    for s in doc["samples"]:
        assert s["gen_tokens"] == 32 and s["prompt_tokens"] == 8 and s["decode_tok_s"] > 0
        assert all(0 <= t < spec.vocab_size for t in s["token_ids"])
    assert doc["quantization_config"]["quant_method"] == "gptq"
    assert doc["settings"]["max_seq_len"] == 64 and doc["peak_mem_bytes"] > 0


def test_crosscheck_note_says_how_much_the_host_side_pick_accounts_for():
    from llmperf_nb.engines.base import crosscheck_note

    check = {"tool": "ExLlamaV2 dynamic generator", "decode_tok_s_mean": 200.0, "harness_decode_tok_s_mean": 220.0,
             "difference": 0.1, "host_sampling": {"ms_per_token": 0.4545, "tokens": 256}}
    note = crosscheck_note(check)
    # 1000 / 220 = 4.545 ms a token; + 0.4545 ms is 10 % more time per token
    assert "(+10.0%)" in note and "0.455 ms a token" in note and "accounts for +10.0% of the difference" in note
    assert "host-side" not in crosscheck_note({**check, "host_sampling": {"tool": "x", "error": "E: boom"}})


def test_crosscheck_note_gives_the_forward_split_of_both_sides():
    from llmperf_nb.engines.base import crosscheck_note

    check = {"tool": "ExLlamaV2 dynamic generator", "decode_tok_s_mean": 140.0, "harness_decode_tok_s_mean": 158.0,
             "difference": 0.13,
             "forward_split": {"harness": {"forward_ms": 6.1, "outside_ms": 0.2, "steps": 255},
                               "generator": {"forward_ms": 6.12, "outside_ms": 1.01, "steps": 256}}}
    note = crosscheck_note(check)
    assert "forward took 6.120 ms in the generator and 6.100 ms in the harness" in note
    assert "the rest of the loop 1.010 ms and 0.200 ms" in note
    # a split that failed says nothing of it (the error is in build.crosscheck.forward_split)
    assert "forward took" not in crosscheck_note({**check, "forward_split": {"tool": "forward split", "error": "E"}})


def test_forward_split_times_the_decode_calls_and_the_rest_of_the_loop():
    # the arithmetic of _split on a model whose forward sleeps 20 ms while the loop sleeps 10 ms a step
    # (ExLlamaV2 needs a CUDA GPU: the real split runs in the GPU cells' cross-check)
    import time
    import types

    from llmperf_nb.drivers import exllamav2 as driver

    class Model:
        def forward(self, *a):
            time.sleep(0.02)

    model = Model()
    torch = types.SimpleNamespace(cuda=types.SimpleNamespace(synchronize=lambda: None))

    def run(_):
        model.forward()  # the prefill: not a decode step
        for _ in range(5):
            time.sleep(0.01)
            model.forward()

    split = driver._split(torch, model, "forward", run)
    assert split["steps"] == 5
    assert 19 < split["forward_ms"] < 40 and 9 < split["outside_ms"] < 30
    assert "forward" not in vars(model)  # the timing wrapper is gone
