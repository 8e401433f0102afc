"""The HF transformers engine: options, the benchmark_hf.py parser on real captured output, the
synthetic HF checkpoint, and real CPU runs of its driver on the tiny Llama."""

import dataclasses
import json
import os
from pathlib import Path

import pytest

from llmperf_nb import engines, params, process, results
from llmperf_nb.cells import Cell
from llmperf_nb.engines import transformers as engine_module
from llmperf_nb.engines.base import Prepared
from llmperf_nb.engines.transformers import Transformers
from llmperf_nb.exceptions import ConfigError, EngineError, ParseError
from llmperf_nb.importers.transformers import parse_benchmark_hf
from llmperf_nb.models import get_model
from llmperf_nb.params import DEFAULT_PROMPT

from .conftest import LOGS, driver_options, needs_gpu, new_cell

LLAMA_IDS = [1, 1724, 338, 278, 6593, 310, 2834, 29973]
ENGINE = Transformers()


def cell(gpu="cpu", quantization="fp16", gen_len=32, reps=2, **options) -> Cell:
    return new_cell("tiny-llama", gpu, "transformers", options=options, quantization=quantization, gen_len=gen_len,
                    repetitions=reps, timeout_s=900.0)


# --- options ---------------------------------------------------------------------------------------

def test_default_options():
    opts = ENGINE.options()
    assert (opts.cache, opts.compile, opts.attn, opts.dtype) == ("dynamic", False, "sdpa", None)


def test_compile_needs_the_static_cache():
    with pytest.raises(ConfigError, match="'compile' needs cache: static"):
        ENGINE.options(compile=True)
    assert ENGINE.options(cache="static", compile=True).compile is True


@pytest.mark.parametrize("values, message", [
    ({"cache": "paged"}, "option 'cache': 'paged' is not one of: 'dynamic', 'static'"),
    ({"dtype": "float8"}, "option 'dtype'"),
    ({"compile": "yes"}, "option 'compile'"),
    ({"attn": "flash"}, "option 'attn'"),
    ({"threads": 4}, "unknown option 'threads'; valid options: cache, compile, attn, dtype"),
])
def test_bad_options_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        ENGINE.options(**values)


def test_params_file_reports_a_bad_option():
    raw = {"models": ["tiny-llama"], "gpus": ["cpu"], "engines": [{"name": "transformers", "compile": True}]}
    with pytest.raises(ConfigError, match="engines.transformers: option 'compile' needs cache: static"):
        params.from_dict(raw)
    ok = params.from_dict({**raw, "engines": [{"name": "transformers", "cache": "static", "compile": True}]})
    assert ok.engines[0].options == {"cache": "static", "compile": True}


def test_int4_on_the_cpu_is_refused(tmp_path):
    assert "runs on CUDA GPUs only" in ENGINE.unavailable(cell(quantization="int4"))
    with pytest.raises(EngineError, match="bitsandbytes 4-bit, which runs on CUDA GPUs only"):
        ENGINE.compile(cell(quantization="int4"), {"synthetic": True}, tmp_path, process.run)


def test_registered():
    assert isinstance(engines.registry["transformers"], Transformers)


def test_argv_carries_the_options():
    prepared = Prepared("/ckpt", "safetensors fp16", {}, extra={"random_init": True})
    argv = ENGINE.benchmark_argv(cell(gpu="auto", quantization="int4", cache="static", compile=True), prepared,
                                 Path("raw.json"))
    joined = " ".join(argv)
    for part in ("--device cuda", "--num-gpus 1", "--quant bnb4", "--random-init", "--gen-len 32"):
        assert part in joined
    assert driver_options(argv) == {"cache": "static", "compile": True, "attn": "sdpa", "dtype": "float16",
                                    "crosscheck": False, "deterministic": False}
    cpu = ENGINE.benchmark_argv(cell(), Prepared("/ckpt", "f", {}), Path("r"))
    assert "--device cpu" in " ".join(cpu) and "--quant none" in " ".join(cpu)
    assert driver_options(cpu)["dtype"] == "float32" and driver_options(cpu)["compile"] is False


def test_compile_needs_a_warmup_run():
    c = dataclasses.replace(cell(cache="static", compile=True), warmup=0)
    with pytest.raises(ConfigError, match="needs warmup: 1 or more"):
        ENGINE.benchmark_argv(c, Prepared("/ckpt", "f", {}), Path("r"))


# --- parser ----------------------------------------------------------------------------------------

def test_parser_on_captured_cpu_log():
    m = ENGINE.parse_log((LOGS / "transformers" / "benchmark_hf-cpu-tiny.txt").read_text(), "benchmark_hf")
    [s] = m.samples
    assert s["prompt_tokens"] == 8 and s["gen_tokens"] == 256  # 255 decode runs + the prefill's token
    assert s["prefill_s"] == 1.232 and s["decode_s"] == 114.0
    assert s["decode_tok_s"] == pytest.approx(255 / 114) and s["prefill_tok_s"] == pytest.approx(8 / 1.232)
    assert m.build["format"] == "q0f16" and m.build["max_new_tokens"] == 256
    assert m.build["prompt"] == DEFAULT_PROMPT
    assert any("not greedily" in n for n in m.notes)


def test_parser_reads_exponent_notation_and_several_runs():
    text = ("prefill 0.0123 s / 7 tokens (0.001757 s/tok, 569.1 tok/s)\n"
            "decode 2.5 s / 255 runs (0.009804 s/tok, 102 tok/s)\n"
            "prefill 9.5e-05 s / 7 tokens (1.357e-05 s/tok, 7.368e+04 tok/s)\n"
            "decode 1.2e+01 s / 255 runs (0.04706 s/tok, 21.25 tok/s)\n")
    m = parse_benchmark_hf(text)
    assert [s["decode_s"] for s in m.samples] == [2.5, 12.0]
    assert m.samples[1]["prefill_s"] == 9.5e-05 and m.samples[1]["prompt_tokens"] == 7
    assert "max_new_tokens" not in m.build  # no header line in this text


def test_parser_refuses_other_text():
    with pytest.raises(ParseError, match="no benchmark_hf.py 'decode"):
        parse_benchmark_hf("llama_print_timings:        eval time =   100.00 ms /    31 runs")


# --- synthetic checkpoint --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(cache_dir):
    pytest.importorskip("transformers")
    return ENGINE.compile(cell(), {"synthetic": True, "source": "synthetic"}, cache_dir, process.run)


def test_synthetic_checkpoint_round_trip(tiny_checkpoint):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from llmperf_nb.weights.hf import tensor_shapes

    path = tiny_checkpoint.artifact
    assert tiny_checkpoint.weights["generator"] == "llmperf_nb.weights.hf v1 seed 0"
    assert tiny_checkpoint.extra == {"random_init": False}
    with safe_open(f"{path}/model.safetensors", "pt") as f:
        stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        assert f.metadata()["format"] == "pt"
        norm, q = f.get_tensor("model.norm.weight"), f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    assert stored == {k: tuple(v.shape) for k, v in model.state_dict().items()} == dict(tensor_shapes(get_model("tiny-llama")))
    assert norm.dtype == torch.float16 and bool((norm == 1).all())
    assert abs(float(q.float().std()) - 0.02) < 0.001
    assert AutoTokenizer.from_pretrained(path)(DEFAULT_PROMPT)["input_ids"] == LLAMA_IDS
    assert tiny_checkpoint.weights["bytes"] > 2 * get_model("tiny-llama").n_params


def test_prepare_is_cached(tiny_checkpoint, cache_dir):
    again = ENGINE.compile(cell(), {"synthetic": True}, cache_dir, process.run)
    assert again.cached and again.artifact == tiny_checkpoint.artifact


def test_big_models_get_config_and_tokenizer_only(cache_dir, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setattr(engine_module, "RANDOM_INIT_ABOVE", 0)
    prepared = ENGINE.compile(cell(), {"synthetic": True}, cache_dir, process.run)
    files = sorted(p.name for p in Path(prepared.artifact).iterdir())
    assert files == ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert prepared.extra == {"random_init": True}
    assert prepared.weights["generator"] == "random init on device from config (no file), seed 0"


# --- real runs of the driver -----------------------------------------------------------------------

def run_cell(c: Cell, prepared, tmp_path):
    raw = tmp_path / "raw.json"
    out = process.run(ENGINE.benchmark_argv(c, prepared, raw), timeout=c.timeout_s)
    return ENGINE.parse_benchmark(c, out.output, raw), json.loads(raw.read_text())


@pytest.fixture(scope="module")
def cpu_runs(tiny_checkpoint, tmp_path_factory):
    pytest.importorskip("torch")
    # the dynamic cell also runs the cross-check against transformers' own generate()
    return {cache: run_cell(cell(cache=cache, crosscheck=cache == "dynamic"), tiny_checkpoint,
                            tmp_path_factory.mktemp(cache))
            for cache in ("dynamic", "static")}


@pytest.mark.slow
@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_cpu_run(cpu_runs, cache):
    m, raw = cpu_runs[cache]
    assert len(m.samples) == 2 and len(m.warmup_samples) == 1
    for s in m.samples:
        assert s["gen_tokens"] == 32 and s["prompt_tokens"] == 8
        assert s["decode_tok_s"] > 0 and len(s["token_latencies_s"]) == 31
    assert m.prompt_token_ids == LLAMA_IDS
    assert m.engine_version.startswith("transformers ") and f"cpu, float32, {cache} cache, eager, sdpa" in m.engine_version
    settings = raw["settings"]
    assert settings["cache"] == cache and settings["dtype"] == "float32" and settings["tensor_parallel"] is False
    assert m.peak_mem_kind == "process_max_rss"
    doc = results.build(cell=cell(cache=cache), status="ok", started_at=results.now(), engine_label=ENGINE.label,
                        measurement=m)
    results.validate(doc)
    assert results.check_counts(doc) is None


@pytest.mark.slow
def test_dynamic_and_static_caches_decode_the_same_tokens(cpu_runs):
    # Same weights, same greedy argmax: the cache layout must not change what is computed.
    firsts = {cache: [s["token_ids"][:8] for s in m.samples + m.warmup_samples] for cache, (m, _) in cpu_runs.items()}
    assert firsts["dynamic"] == firsts["static"]
    assert len({tuple(f) for f in firsts["dynamic"]}) == 1  # and every repetition agrees


@pytest.mark.slow
def test_every_repetition_decodes_the_same_tokens_with_a_fresh_dynamic_cache(cpu_runs):
    # the bug this guards: DynamicCache.reset() kept the last repetition's (zeroed) keys, so each
    # repetition attended over more positions and decoded other tokens from the first one on
    for cache, (m, _) in cpu_runs.items():
        assert len({s["token_ids_sha256"] for s in m.samples + m.warmup_samples}) == 1, cache
        doc = results.build(cell=cell(cache=cache), status="ok", started_at=results.now(),
                            engine_label=ENGINE.label, measurement=m)
        assert doc["work"]["identical_tokens"] is True and results.problems(doc) == []


@pytest.mark.slow
def test_crosscheck_against_generate(cpu_runs):
    m, raw = cpu_runs["dynamic"]
    check = raw["crosscheck"]
    assert check["tool"] == "transformers generate()" and "error" not in check
    assert check["gen_tokens"] == [32] * 3 and len(check["decode_tok_s_samples"]) == 2
    assert check["same_tokens_as_harness"] is True  # greedy, same weights, same cache kind
    assert check["difference"] == pytest.approx(check["harness_decode_tok_s_mean"] / check["decode_tok_s_mean"] - 1)
    assert any(n.startswith("cross-check: transformers generate() on the same weights gave") for n in m.notes)
    # dynamic cache: one generate() after each harness repetition (1 warm-up + 2 measured)
    assert check["order"].startswith("alternating")
    assert any("alternating with the harness's" in n for n in m.notes)
    # the medians of each side's per-token times, pooled over the measured runs (not the warm-up's)
    ours = sorted(t for s in raw["samples"] for t in s["token_latencies_s"])
    assert len(ours) == 2 * 31 and check["harness_token_latency_p50_s"] == pytest.approx((ours[30] + ours[31]) / 2)
    assert 0 < check["token_latency_p50_s"] < 10
    assert check["difference_p50"] == pytest.approx(check["token_latency_p50_s"] / check["harness_token_latency_p50_s"] - 1)
    assert any("median per-token time" in n for n in m.notes)
    assert raw["versions"]["transformers"] and raw["gc_policy"]


@pytest.mark.slow
def test_cpu_run_with_random_init_on_device(cache_dir, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(engine_module, "RANDOM_INIT_ABOVE", 0)
    c = cell(gen_len=8, reps=1)
    prepared = ENGINE.compile(c, {"synthetic": True}, cache_dir, process.run)
    m, raw = run_cell(c, prepared, tmp_path)
    assert [s["gen_tokens"] for s in m.samples] == [8]
    assert raw["settings"]["weights"].startswith("random init on device")


# --- GPU only --------------------------------------------------------------------------------------

@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("quantization, options", [
    ("int4", {}),
    ("fp16", {"cache": "static", "compile": True}),
])
def test_gpu_run(tiny_checkpoint, tmp_path, quantization, options):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    if quantization == "int4":
        pytest.importorskip("bitsandbytes")
    c = cell(gpu="auto", quantization=quantization, **options)
    m, raw = run_cell(c, tiny_checkpoint, tmp_path)
    assert [s["gen_tokens"] for s in m.samples] == [32, 32] and all(s["decode_tok_s"] > 0 for s in m.samples)
    assert raw["settings"]["torch_max_memory_allocated_bytes"] > 0


def test_the_deterministic_option_turns_on_torchs_deterministic_algorithms(monkeypatch):
    import types

    torch = pytest.importorskip("torch")
    from llmperf_nb.drivers import transformers as driver
    from llmperf_nb.options.transformers import Options

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert driver._deterministic(torch, types.SimpleNamespace(opts=Options())) is False
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    try:
        assert driver._deterministic(torch, types.SimpleNamespace(opts=Options(deterministic=True))) is True
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
