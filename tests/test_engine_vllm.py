"""vLLM: latency-benchmark parsers on real captured output (tests/data/logs/public/vllm; SOURCES.md
says where each file comes from), argv building, options, the driver's sample arithmetic. Nothing
here runs vLLM: it needs a CUDA GPU."""

import argparse
import json
import os
import sys
import types
from pathlib import Path
from unittest import mock

import pytest

from llmperf_nb.drivers import common
from llmperf_nb.drivers import vllm as driver
from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Prepared, crosscheck_note
from llmperf_nb.engines.vllm import Vllm
from llmperf_nb.exceptions import ConfigError, ParseError
from llmperf_nb.importers import result as importers
from llmperf_nb.importers import vllm as p

from .conftest import LOGS, driver_options, new_cell

PUBLIC = LOGS / "public" / "vllm"


def read(name):
    return (PUBLIC / name).read_text()


@pytest.fixture
def engine(monkeypatch):
    # registered for this test only: the built-in list is the lead's to change (engines/__init__.py)
    monkeypatch.setattr(registry, "_engines", dict(registry._engines))
    registry.register(Vllm())
    return registry["vllm"]


def cell(gpu="h100-sxm", count=1, quantization="fp16", weights="synthetic", **options):
    return new_cell("Llama-2-7b-chat-hf", gpu, "vllm", count=count, options=options, quantization=quantization,
                    weights=weights)


# -- parsers on real output -----------------------------------------------------------------------

AVG_ONLY = [  # early benchmark_latency.py: 3 iterations, "Avg latency" only, full float repr
    ("dennislee22-benchmark_latency-tp1-vicuna13b.txt", 4.545180882016818),
    ("dennislee22-benchmark_latency-tp2-vicuna13b.txt", 14.08749227412045),
    ("dennislee22-benchmark_latency-tp4-vicuna13b.txt", 23.70484172180295),
]
WITH_PERCENTILES = [
    ("unidentified-mi300x-benchmark_latency-py-v0-excerpt.txt", 6.522189523799898, 6.518479874999684, 1024, 1024),
    ("unidentified-rocm-mi325x-vllm-bench-latency-qwen3-8b.txt", 1.475279240796808, 1.4726597834960558, 256, 128),
    ("unidentified-vllm-metal-bench-latency-gemma-single-iter.txt", 3.5717069590464234, 3.5717069590464234, 2205, 128),
]


@pytest.mark.parametrize("name, avg", AVG_ONLY)
def test_avg_latency_logs_with_the_output_length_given(name, avg):
    m = p.parse_latency_text(read(name), output_len=128)
    [s] = m.samples
    assert s["e2e_s"] == avg and s["gen_tokens"] == 128
    assert s["e2e_tok_s"] == pytest.approx(128 / avg)
    assert "decode_tok_s" not in s and m.build["latency_percentiles_s"] is None


@pytest.mark.parametrize("name, avg, p50, input_len, output_len", WITH_PERCENTILES)
def test_percentile_logs_with_their_commands_lengths(name, avg, p50, input_len, output_len):
    # input/output lengths are those of the command quoted beside each paste (SOURCES.md)
    m = p.parse_latency_text(read(name), output_len=output_len, input_len=input_len)
    [s] = m.samples
    assert s == {"prompt_tokens": input_len, "gen_tokens": output_len, "e2e_s": avg, "e2e_tok_s": output_len / avg}
    assert m.build["latency_percentiles_s"]["p50"] == p50
    assert set(m.build["latency_percentiles_s"]) == {"p10", "p25", "p50", "p75", "p90", "p99"}


@pytest.mark.parametrize("name", [n for n, _ in AVG_ONLY] + [n for n, *_ in WITH_PERCENTILES])
def test_no_output_length_no_rate(name):
    with pytest.raises(ParseError, match=r"--output-len.*Namespace"):
        p.parse_latency_text(read(name))


def test_namespace_line_supplies_the_workload():
    # benchmark_latency.py printed print(args) first; this line is built in argparse's Namespace repr
    # from the command quoted with the MI300X paste (the paste itself is an excerpt without it)
    namespace = ("Namespace(input_len=1024, output_len=1024, batch_size=1, n=1, use_beam_search=False, "
                 "num_iters_warmup=2, num_iters=5, profile=False, output_json=None, model='/dockerx/models/Qwen2_5-VL-7B', "
                 "tensor_parallel_size=1, dtype='float16', max_model_len=4096, min_tokens=0)\n")
    m = p.parse_latency_text(namespace + read("unidentified-mi300x-benchmark_latency-py-v0-excerpt.txt"))
    [s] = m.samples
    assert (s["prompt_tokens"], s["gen_tokens"]) == (1024, 1024)
    assert s["e2e_tok_s"] == pytest.approx(1024 / 6.522189523799898)
    assert m.build["batch_size"] == 1 and m.build["dtype"] == "float16" and m.build["num_iters"] == 5
    assert not any("batch_size=" in n for n in m.notes)


def test_batch_size_other_than_one_is_said():
    m = p.parse_latency_text(read(WITH_PERCENTILES[1][0]), output_len=128, input_len=256, batch_size=8)
    assert any("batch_size=8" in n for n in m.notes)


def test_output_json_one_sample_per_repetition():
    # no real --output-json file was found; the document is built as vllm/benchmarks/latency.py
    # writes it (json.dump of avg_latency, latencies, percentiles with int keys -> strings)
    doc = {"avg_latency": 2.0, "latencies": [1.9, 2.0, 2.1],
           "percentiles": {"10": 1.92, "25": 1.95, "50": 2.0, "75": 2.05, "90": 2.08, "99": 2.1}}
    m = p.parse_latency_json(json.dumps(doc, indent=4), output_len=256, input_len=8, batch_size=1)
    assert [s["e2e_s"] for s in m.samples] == [1.9, 2.0, 2.1]
    assert [s["e2e_tok_s"] for s in m.samples] == [256 / 1.9, 256 / 2.0, 256 / 2.1]
    assert m.build["latency_percentiles_s"]["p99"] == 2.1 and m.build["avg_latency_s"] == 2.0
    with pytest.raises(ParseError, match="--output-len"):
        p.parse_latency_json(json.dumps(doc))
    with pytest.raises(ParseError, match="not JSON"):
        p.parse_latency_json(read(AVG_ONLY[0][0]))


def test_engine_parse_log_explains_what_is_missing(engine):
    with pytest.raises(ParseError, match="latency-text: .*--output-len"):
        engine.parse_log(read(AVG_ONLY[0][0]))


def test_import_with_namespace_is_a_valid_result(engine):
    text = "Namespace(input_len=8, output_len=256, batch_size=1, n=1)\n" + read(WITH_PERCENTILES[2][0])
    doc = importers.to_result("vllm", text, source="test")
    assert doc["gen_tokens"]["actual"] == 256 and doc["decode_tok_s"] is None
    assert doc["samples"][0]["e2e_tok_s"] == pytest.approx(256 / 3.5717069590464234)


# -- options, cells, argv -------------------------------------------------------------------------

def test_options_are_validated(engine):
    assert engine.options() == engine.options_class(enforce_eager=False, gpu_memory_utilization=0.9, crosscheck=False)
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        engine.options(gpu_memory_utilization=1.5)
    with pytest.raises(ConfigError, match="unknown option 'tensor_parallel_size'"):
        engine.options(tensor_parallel_size=2)
    with pytest.raises(ConfigError, match="unknown option 'quant_method'"):  # int4 is GPTQ files, detected by vLLM
        engine.options(quant_method="awq")
    assert "crosscheck" in engine.label_ignores


def test_not_installed_is_said_cleanly(engine, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    assert engine.unavailable(cell()) == ("vLLM is not installed here (no vllm): pip install vllm (CUDA), "
                                          "or docker/Dockerfile.cu130.vllm")


def test_cpu_cell_is_refused_clearly(engine, tmp_path):
    with pytest.raises(ConfigError, match="GPU only .* the cell asks for the CPU"):
        engine.compile(cell("cpu"), {"synthetic": True}, tmp_path, run=None)
    with pytest.raises(ConfigError, match="GPU only"):
        engine.benchmark_argv(cell("cpu"), Prepared("x", "safetensors fp16", {}), tmp_path / "raw.json")


@pytest.fixture
def no_tokenizer(monkeypatch):
    import llmperf_nb.engines.vllm as vllm_mod

    monkeypatch.setattr(vllm_mod, "workload_args", lambda c, raw: ["--out", str(raw)])


@pytest.mark.parametrize("count", [1, 2, 4])
def test_benchmark_argv(engine, tmp_path, no_tokenizer, count):
    # the tensor-parallel path is the same argv with the cell's GPU count (34B/70B on 2 and 4 GPUs)
    prepared = Prepared("/cache/gptq", "GPTQ 4-bit g128", {}, extra={"load_format": "auto"})
    argv = engine.benchmark_argv(cell(count=count, quantization="int4", enforce_eager=True,
                                      gpu_memory_utilization=0.8, crosscheck=True), prepared, tmp_path / "r.json")
    assert argv[1:] == ["-m", "llmperf_nb.drivers.vllm", "--model", "/cache/gptq", "--load-format", "auto",
                        "--tensor-parallel-size", str(count), "--dtype", "float16", "--seed", "0",
                        "--options", argv[argv.index("--options") + 1], "--out", str(tmp_path / "r.json")]
    assert driver_options(argv) == {"enforce_eager": True, "gpu_memory_utilization": 0.8, "crosscheck": True}
    assert "--quantization" not in argv  # vLLM detects GPTQ from config.json
    plain = engine.benchmark_argv(cell(), Prepared("/d", "safetensors fp16", {}, extra={"load_format": "dummy"}),
                                  tmp_path / "r.json")
    assert driver_options(plain) == {"enforce_eager": False, "gpu_memory_utilization": 0.9, "crosscheck": False}
    assert plain[plain.index("--load-format") + 1] == "dummy"


@pytest.fixture
def fake_writers(monkeypatch):
    written = []

    def write_synthetic_hf(spec, out_dir, seed=0, weights=True):
        assert weights is False
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(json.dumps(spec.hf_config()))
        written.append(("hf", out_dir))
        return out_dir

    def write_synthetic_gptq(spec, out_dir, seed=0):
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(json.dumps({**spec.hf_config(), "quantization_config": {"bits": 4}}))
        (out_dir / "model.safetensors").write_bytes(b"x" * 10)
        written.append(("gptq", out_dir))
        return out_dir

    monkeypatch.setitem(sys.modules, "llmperf_nb.weights.hf",
                        types.SimpleNamespace(write_synthetic_hf=write_synthetic_hf, WRITER_VERSION=1))
    monkeypatch.setitem(sys.modules, "llmperf_nb.weights.gptq",
                        types.SimpleNamespace(write_synthetic_gptq=write_synthetic_gptq))
    return written


def test_compile_int4_is_the_synthetic_gptq_folder_exllamav2_uses(engine, tmp_path, fake_writers):
    from llmperf_nb.engines.exllamav2 import ExLlamaV2Engine

    prepared = engine.compile(cell(quantization="int4"), {"synthetic": True}, tmp_path, None)
    assert prepared.extra == {"load_format": "auto"} and prepared.format == "GPTQ 4-bit g128"
    assert "llmperf_nb.weights.gptq" in prepared.weights["generator"] and prepared.weights["bytes"] == 10
    assert Path(prepared.artifact).parent == tmp_path / "gptq" and fake_writers == [("gptq", Path(prepared.artifact))]
    again = engine.compile(cell(quantization="int4"), {"synthetic": True}, tmp_path, None)
    assert again.cached and again.artifact == prepared.artifact and len(fake_writers) == 1
    # ExLlamaV2 finds the same folder in the cache (it then checks its extension, stubbed here)
    exl = ExLlamaV2Engine().compile(cell(quantization="int4"), {"synthetic": True}, tmp_path, run=lambda *a, **k: None)
    assert exl.artifact == prepared.artifact and exl.cached


def test_compile_fp16_dummy_is_labelled_and_real_is_as_given(engine, tmp_path, fake_writers):
    dummy = engine.compile(cell(), {"synthetic": True}, tmp_path, None)
    assert "quantization_config" not in json.loads((Path(dummy.artifact) / "config.json").read_text())
    assert dummy.format == "safetensors fp16" and dummy.extra == {"load_format": "dummy"}
    assert "load_format=dummy" in dummy.weights["generator"]
    assert engine.compile(cell(), {"synthetic": True}, tmp_path, None).cached
    real = engine.compile(cell(weights="hub"), {"synthetic": False, "path": "/hf/snap"}, tmp_path, None)
    assert (real.artifact, real.extra["load_format"]) == ("/hf/snap", "auto")


# -- the driver's arithmetic, on RequestOutput-shaped objects ------------------------------------

def _output(tokens, metrics):
    return types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=tokens)], metrics=metrics)


def test_sample_from_vllm_metrics():
    stats = types.SimpleNamespace(scheduled_ts=100.0, first_token_ts=100.02, last_token_ts=101.295,
                                  first_token_latency=0.025)
    s = driver.sample_from_output(_output(list(range(256)), stats), 8, t_call=99.99, t_done=101.3,
                                  latencies=[0.005] * 255)
    assert s["gen_tokens"] == 256 and s["ttft_s"] == 0.025 and s["token_ids"] == list(range(256))
    assert s["prefill_s"] == pytest.approx(0.02) and s["prefill_tok_s"] == pytest.approx(400)
    assert s["decode_s"] == pytest.approx(1.275) and s["decode_tok_s"] == pytest.approx(255 / 1.275)
    assert s["e2e_s"] == pytest.approx(1.31) and s["timing_source"] == driver.SPLIT
    assert s["token_latencies_s"] == [0.005] * 255 and "first_token_ids" not in s
    assert s["token_ids_sha256"] == common.token_digest(range(256))


def test_sample_without_metrics_has_no_invented_split():
    s = driver.sample_from_output(_output([5] * 200, None), 8, t_call=1.0, t_done=3.0)
    assert s["gen_tokens"] == 200 and s["e2e_s"] == 2.0 and s["timing_source"] == driver.NO_SPLIT
    assert "decode_tok_s" not in s and "ttft_s" not in s and s["token_ids"] == [5] * 200
    assert s["token_ids_sha256"] == common.token_digest([5] * 200)


def _engine_output(n):
    return types.SimpleNamespace(new_token_ids=[1] * n)


def test_step_clock_turns_engine_steps_into_token_latencies():
    calls = []
    proc = types.SimpleNamespace(process_outputs=lambda outs, engine_core_timestamp=None, iteration_stats=None:
                                 calls.append(engine_core_timestamp) or "processed")
    clock = driver.StepClock(types.SimpleNamespace(llm_engine=types.SimpleNamespace(output_processor=proc)))
    assert clock.installed
    # LLMEngine.step's call: process_outputs(outputs.outputs, engine_core_timestamp=..., iteration_stats=...)
    assert proc.process_outputs([_engine_output(1)], engine_core_timestamp=10.0, iteration_stats=None) == "processed"
    proc.process_outputs([], engine_core_timestamp=10.001)  # a step with no token of ours
    proc.process_outputs([_engine_output(1)], 10.004)
    proc.process_outputs([_engine_output(2)], engine_core_timestamp=10.010)  # two tokens in one step
    assert calls == [10.0, 10.001, 10.004, 10.010]
    assert clock.token_latencies(4) == pytest.approx([0.004, 0.003, 0.003])
    assert sum(clock.token_latencies(4)) == pytest.approx(10.010 - 10.0)  # = last_token_ts - first_token_ts
    assert clock.token_latencies(5) is None  # the steps do not account for every token: no invented times
    clock.reset()
    assert clock.token_latencies(1) is None
    assert not driver.StepClock(types.SimpleNamespace()).installed


# -- the cross-check: vllm bench latency -----------------------------------------------------------

def _args(**kw):
    base = dict(model="/m", load_format="dummy", tensor_parallel_size=2, dtype="float16", gpu_memory_utilization=0.9,
                seed=0, gen_len=256, warmup=1, reps=5, quantization=None, enforce_eager=False, max_model_len=None,
                out="/r/raw.json", crosscheck=True, crosscheck_timeout=60.0)
    return argparse.Namespace(**{**base, **kw})


def test_crosscheck_argv_is_vllm_bench_latency_with_the_same_settings():
    argv = driver.crosscheck_argv(_args(), 8, "/r/raw.bench-latency.json")
    assert argv == ["--model", "/m", "--load-format", "dummy", "--tensor-parallel-size", "2", "--dtype", "float16",
                    "--gpu-memory-utilization", "0.9", "--seed", "0", "--input-len", "8", "--output-len", "256",
                    "--batch-size", "1", "--num-iters-warmup", "1", "--num-iters", "5",
                    "--output-json", "/r/raw.bench-latency.json", "--skip-tokenizer-init", "--disable-detokenize"]
    eager = driver.crosscheck_argv(_args(enforce_eager=True, quantization="gptq", max_model_len=512, warmup=0), 8, "j")
    assert eager[-5:] == ["--quantization", "gptq", "--enforce-eager", "--max-model-len", "512"]
    assert eager[eager.index("--num-iters-warmup") + 1] == "1"


# vllm/benchmarks/latency.py (vllm 0.25.0), main(): json.dump({"avg_latency": np.mean(latencies),
# "latencies": latencies.tolist(), "percentiles": dict(zip([10, 25, 50, 75, 90, 99], ...))}, indent=4)
BENCH_JSON = {"avg_latency": 1.3, "latencies": [1.28, 1.30, 1.32],
              "percentiles": {"10": 1.284, "25": 1.29, "50": 1.30, "75": 1.31, "90": 1.316, "99": 1.3196}}


def _samples(e2e, decode=200.0):
    return [{"gen_tokens": 256, "e2e_s": x, "decode_tok_s": decode} for x in e2e]


def test_crosscheck_arithmetic_compares_like_with_like():
    run = {"argv": ["vllm", "bench", "latency", "--model", "/m"], "doc": json.loads(json.dumps(BENCH_JSON, indent=4)),
           "seconds": 80.0}
    check = driver.crosscheck_summary(run, _samples([1.26, 1.27, 1.28]), gen_len=256, input_len=8)
    theirs = [256 / 1.28, 256 / 1.30, 256 / 1.32]
    ours = [256 / 1.26, 256 / 1.27, 256 / 1.28]
    assert check["tool"] == "vllm bench latency" and check["argv"][:3] == ["vllm", "bench", "latency"]
    assert check["decode_tok_s_samples"] == pytest.approx(theirs)
    assert check["decode_tok_s_mean"] == pytest.approx(sum(theirs) / 3)
    assert check["harness_decode_tok_s_mean"] == pytest.approx(sum(ours) / 3)
    assert check["difference"] == pytest.approx((sum(ours) / 3) / (sum(theirs) / 3) - 1)
    assert 0 < check["difference"] < 0.03 and check["harness_engine_decode_tok_s_mean"] == 200.0
    assert check["latencies_s"] == [1.28, 1.30, 1.32] and check["avg_latency_s"] == 1.3
    assert "LLM.generate" in check["basis"]
    failed = driver.crosscheck_summary({"argv": ["vllm", "bench", "latency"], "error": "ProcessError: boom",
                                        "seconds": 1.0}, _samples([1.0]), 256, 8)
    assert failed["error"] == "ProcessError: boom" and "difference" not in failed
    # what guarded_crosscheck records when run_crosscheck raises (no argv of its own)
    guarded = driver.crosscheck_summary({"tool": "vllm bench latency", "error": "RuntimeError: x"}, [], 256, 8)
    assert guarded["error"] == "RuntimeError: x" and "argv" not in guarded


def test_bench_latency_runs_vllms_own_parser_and_main(monkeypatch):
    seen = {}

    class Sub:
        @classmethod
        def add_cli_args(cls, parser):
            parser.add_argument("--model")
            parser.add_argument("--input-len", type=int)

        @staticmethod
        def cmd(args):
            seen["args"] = args

    parser_cls = argparse.ArgumentParser
    platform = types.SimpleNamespace(is_unspecified=lambda: False)  # CUDA on the GPU machine
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(platforms=types.SimpleNamespace(
        current_platform=platform)))
    monkeypatch.setitem(sys.modules, "vllm.entrypoints.cli.benchmark.latency",
                        types.SimpleNamespace(BenchmarkLatencySubcommand=Sub))
    monkeypatch.setitem(sys.modules, "vllm.utils.argparse_utils",
                        types.SimpleNamespace(FlexibleArgumentParser=parser_cls))
    # the driver sets its defaults in this process's environment: put it back whole afterwards (delenv of a
    # variable that is not set records nothing to undo, and HF_HUB_OFFLINE=1 reached the later tests' runs)
    with mock.patch.dict(os.environ):
        for key in ["VLLM_WORKER_MULTIPROC_METHOD", *driver.ENV_DEFAULTS]:
            os.environ.pop(key, None)
        driver.main(["bench-latency", "--model", "/m", "--input-len", "8"])
        assert os.environ["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn" and os.environ["NCCL_NVLS_ENABLE"] == "0"
    assert seen["args"].model == "/m" and seen["args"].input_len == 8


# -- what vLLM logs about its choices, and the notes ---------------------------------------------

# the lines as vllm 0.25.0 formats them: model_executor/layers/quantization/auto_gptq.py
# logger.info("Using %s for AutoGPTQLinearMethod", ...) and platforms/cuda.py logger.info_once(
# "Using %s attention backend out of potential backends: %s.", ...), from the engine-core process
LOG = """[vllm bench latency] (EngineCore pid=11) INFO 11-29 10:00:01 [auto_gptq.py:357] Using ExllamaLinearKernel for AutoGPTQLinearMethod
llmperf-nb: starting the measured vLLM engine
(EngineCore pid=42) INFO 11-29 10:01:02 [auto_gptq.py:357] Using MarlinLinearKernel for AutoGPTQLinearMethod
(EngineCore pid=42) INFO 11-29 10:01:03 [cuda.py:476] Using FLASH_ATTN attention backend out of potential backends: ['FLASH_ATTN', 'FLASHINFER'].
"""


def test_engine_choices_come_from_the_measured_engines_log():
    from llmperf_nb.engines.vllm import engine_choices

    assert engine_choices(LOG) == {"linear_kernel": "MarlinLinearKernel (AutoGPTQLinearMethod)",
                                   "attention_backend": "FLASH_ATTN"}
    assert engine_choices("nothing") == {"linear_kernel": None, "attention_backend": None}


def test_parse_benchmark_records_kernel_crosscheck_versions_and_identical_work(engine, tmp_path, monkeypatch):
    import llmperf_nb.tokenizer

    monkeypatch.setattr(llmperf_nb.tokenizer, "prompt_ids", lambda prompt: ([1] * 8, "stub tokenizer"))
    raw = tmp_path / "raw.json"
    check = driver.crosscheck_summary({"argv": ["vllm", "bench", "latency"], "doc": BENCH_JSON, "seconds": 1.0},
                                      _samples([1.26, 1.27, 1.28]), 256, 8)
    raw.write_text(json.dumps({"engine_version": "vllm 0.25.0", "prompt_token_ids": [1, 1724, 338, 278, 6593, 310,
                                                                                      2834, 29973],
                               "samples": _samples([1.25]), "warmup_samples": [], "identical_tokens": False,
                               "quantization_in_use": "auto_gptq", "crosscheck": check,
                               "versions": {"vllm": "0.25.0", "torch": "2.9.0", "cuda": "12.9"}}))
    m = engine.parse_benchmark(cell(quantization="int4"), LOG, raw)
    assert m.build["linear_kernel"] == "MarlinLinearKernel (AutoGPTQLinearMethod)"
    assert m.build["quantization_in_use"] == "auto_gptq" and m.build["crosscheck"] == check
    assert any("did not all generate the same token ids" in n for n in m.notes)
    assert m.build["versions"] == {"vllm": "0.25.0", "torch": "2.9.0", "cuda": "12.9"}
    [note] = [n for n in m.notes if n.startswith("cross-check")]  # one note, added by measurement_from_raw
    assert note == crosscheck_note(check) and "vllm bench latency" in note and "(+2.4%)" in note


# -- the driver's plumbing, against a stand-in for vllm.LLM (the real one needs a CUDA GPU) --------

class FakeLLM:
    """Steps like vLLM 0.25's LLM.generate: one engine step a token, each handed with its engine-core
    timestamp to llm_engine.output_processor.process_outputs, the metrics filled from the same clock."""

    made = []

    def __init__(self, model, **kw):
        assert kw["disable_log_stats"] is False and kw["enable_prefix_caching"] is False and kw["skip_tokenizer_init"]
        assert kw["quantization"] is None  # left to vLLM's detection from config.json
        FakeLLM.made.append(kw)
        self.llm_engine = types.SimpleNamespace(
            model_config=types.SimpleNamespace(max_model_len=4096, quantization="auto_gptq"),
            output_processor=types.SimpleNamespace(process_outputs=lambda outs, engine_core_timestamp=None,
                                                   iteration_stats=None: None))
        self.clock = 1000.0

    def generate(self, prompts, params, use_tqdm=True):
        """Every prompt prefilled in the first step (the scheduler's budget allowing), then a token for each
        in every step: 1 ms a step plus 0.1 ms a sequence."""
        assert params.kw["ignore_eos"] and params.kw["min_tokens"] == params.kw["max_tokens"] and not params.kw["detokenize"]
        assert params.kw["temperature"] == 0.0
        b = len(prompts)
        assert len({tuple(p["prompt_token_ids"]) for p in prompts}) == 1
        self.clock += 10
        n = params.kw["max_tokens"]
        first = self.clock + 0.01
        step = 0.004 if b == 1 else 0.001 + 0.0001 * b
        stamps = [first + step * i for i in range(n)]
        for ts in stamps:
            self.llm_engine.output_processor.process_outputs([_engine_output(1)] * b, engine_core_timestamp=ts,
                                                             iteration_stats=None)
        stats = types.SimpleNamespace(scheduled_ts=self.clock, first_token_ts=first, last_token_ts=stamps[-1],
                                      first_token_latency=0.012)
        return [_output([7] * n, stats) for _ in prompts]


@pytest.fixture
def fake_vllm(monkeypatch):
    sampling = type("SamplingParams", (), {"__init__": lambda self, **kw: setattr(self, "kw", kw)})
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=sampling,
                                                                   __version__="0.0.test"))
    for key in {**driver.ENV_DEFAULTS, **driver.SWEEP_ENV}:
        monkeypatch.setenv(key, "")  # records the original for teardown; the driver's defaults are tested
        monkeypatch.delenv(key)


def test_driver_writes_a_raw_document(fake_vllm, tmp_path):
    raw = tmp_path / "raw.json"
    driver.main(["--model", "/m", "--load-format", "dummy", "--tensor-parallel-size", "2", "--prompt-ids", "1,2,3",
                 "--gen-len", "11", "--reps", "3", "--out", str(raw)])
    doc = json.loads(raw.read_text())
    assert FakeLLM.made[-1]["tensor_parallel_size"] == 2 and FakeLLM.made[-1]["load_format"] == "dummy"
    assert [s["decode_tok_s"] for s in doc["samples"]] == pytest.approx([250.0] * 3)
    assert [len(s["token_latencies_s"]) for s in doc["samples"]] == [10] * 3
    assert doc["samples"][0]["token_latencies_s"] == pytest.approx([0.004] * 10)
    assert doc["samples"][0]["token_ids"] == [7] * 11 and doc["identical_tokens"] is True
    assert {s["token_ids_sha256"] for s in doc["samples"]} == {common.token_digest([7] * 11)}
    assert doc["versions"]["vllm"] == "0.0.test" and doc["gc_policy"] == common.GC_POLICY
    assert doc["settings"]["NCCL_NVLS_ENABLE"] == "0" and doc["settings"]["VLLM_ALLREDUCE_USE_SYMM_MEM"] == "0"
    assert doc["timing_source"] == driver.SPLIT and doc["quantization_in_use"] == "auto_gptq"
    assert doc["engine_version"] == "vllm 0.0.test" and doc["prompt_token_ids"] == [1, 2, 3]
    assert "crosscheck" not in doc


def test_driver_runs_the_crosscheck_first_and_stores_it(fake_vllm, tmp_path, monkeypatch):
    from llmperf_nb import process

    order = []

    def fake_run(argv, timeout=None, extra_env=None, on_line=None, **kw):
        order.append("bench")
        assert argv[1:4] == ["-m", "llmperf_nb.drivers.vllm", "bench-latency"] and not FakeLLM.made[len_before:]
        assert extra_env["NCCL_NVLS_ENABLE"] == "0"
        out = argv[argv.index("--output-json") + 1]
        Path(out).write_text(json.dumps({"avg_latency": 0.05, "latencies": [0.05, 0.05, 0.05],
                                         "percentiles": {"50": 0.05}}, indent=4))
        on_line("Avg latency: 0.05 seconds\n")

    len_before = len(FakeLLM.made)
    monkeypatch.setattr(process, "run", fake_run)
    raw = tmp_path / "raw.json"
    driver.main(["--model", "/m", "--load-format", "auto", "--prompt-ids", "1,2,3", "--gen-len", "11",
                 "--reps", "3", "--out", str(raw), "--options", '{"crosscheck": true}'])
    doc = json.loads(raw.read_text())
    check = doc["crosscheck"]
    assert order == ["bench"] and check["argv"][:3] == ["vllm", "bench", "latency"]
    assert check["argv"][check["argv"].index("--input-len") + 1] == "3"
    assert check["decode_tok_s_mean"] == pytest.approx(11 / 0.05)
    ours = [11 / s["e2e_s"] for s in doc["samples"]]
    assert check["harness_decode_tok_s_mean"] == pytest.approx(sum(ours) / 3)

    def failing_run(*a, **k):
        raise RuntimeError("no GPU")

    monkeypatch.setattr(process, "run", failing_run)
    driver.main(["--model", "/m", "--prompt-ids", "1,2,3", "--gen-len", "11", "--reps", "3", "--out", str(raw),
                 "--options", '{"crosscheck": true}'])
    doc = json.loads(raw.read_text())
    check = doc["crosscheck"]
    assert check["error"] == "RuntimeError: no GPU" and len(doc["samples"]) == 3
    assert check["tool"] == "vllm bench latency" and check["argv"][:3] == ["vllm", "bench", "latency"]
    assert crosscheck_note(check).startswith("cross-check: vllm bench latency failed")


@pytest.mark.parametrize("log, version", [
    # vLLM 0.25.0's logo lines, as its server printed them (captured on the CPU stand-in of the GPU image)
    ((Path(__file__).parent / "data" / "vllm" / "server-banner-0.25.0.log").read_text(), "0.25.0"),
    ("(APIServer pid=1) INFO 11-30 06:04:29 [api_utils.py:270] vLLM server version 0.25.0, serving model m\n",
     "0.25.0"),
    ("INFO 01-01 00:00:00 [api_server.py:1] vLLM API server version 0.11.0\n", "0.11.0"),
])
def test_the_server_version_is_read_from_its_log(log, version):
    from llmperf_nb.engines.vllm import Vllm

    said = Vllm().server_version(None, None, log)
    assert said == f"vLLM {version} (OpenAI-compatible server)"


def test_driver_sweeps_a_grid_in_one_engine(fake_vllm, tmp_path):
    raw = tmp_path / "raw.json"
    driver.main(["sweep", "--model", "/m", "--load-format", "dummy", "--prompt-ids", "1,2,3", "--gen-len", "11",
                 "--reps", "2", "--warmup", "1", "--batch-sizes", "1,4", "--prompt-lengths", "3,600",
                 "--out", str(raw)])
    doc = json.loads(raw.read_text())
    made = FakeLLM.made[-1]  # one engine for the grid, its scheduler sized to prefill 4 x 600 in one step
    assert made["max_num_batched_tokens"] == 8192 and made["max_num_seqs"] == 256
    assert doc["samples"] == [] and [(p["batch_size"], p["prompt_tokens"]) for p in doc["points"]] == [
        (1, 3), (1, 600), (4, 3), (4, 600)]
    b4 = doc["points"][3]
    assert len(b4["samples"]) == 2 and len(b4["warmup_samples"]) == 1
    s = b4["samples"][0]
    assert s["batch_size"] == 4 and s["prompt_tokens"] == 600 and s["gen_tokens"] == 11 and s["prefill_steps"] == 1
    assert s["decode_tok_s"] == pytest.approx(4 / 0.0014) and s["per_seq_decode_tok_s"] == pytest.approx(1 / 0.0014)
    assert s["token_latencies_s"] == pytest.approx([0.0014] * 10) and s["distinct_sequences"] == 1
    assert s["prefill_tok_s"] == pytest.approx(4 * 600 / 0.01)
    assert doc["settings"]["max_num_batched_tokens"] == 8192 and doc["identical_tokens"] is True
    assert doc["settings"]["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # all B requests queued before a step
    assert doc["timing_source"] == driver.SPLIT and "crosscheck" not in doc


def test_sweep_scheduler_prefills_the_largest_point_in_one_step():
    assert driver.sweep_scheduler([1, 4, 16, 64], [8, 512, 2048]) == {"max_num_batched_tokens": 64 * 2048,
                                                                       "max_num_seqs": 256}
    assert driver.sweep_scheduler([1, 512], [8]) == {"max_num_batched_tokens": 8192, "max_num_seqs": 512}


def _req(tokens, scheduled, first, last, ttft=0.02):
    return _output(tokens, types.SimpleNamespace(scheduled_ts=scheduled, first_token_ts=first, last_token_ts=last,
                                                 first_token_latency=ttft))


def test_batch_sample_when_the_prefill_took_two_steps():
    """Sequence 0 got its first token at 10.0, sequence 1 at 10.1 (its prompt in the next chunk): the decode
    starts when both have one; the tokens after it are what the steps say, sequence 0's second included."""
    steps = [(10.0, 1), (10.1, 2), (10.2, 2), (10.3, 1)]  # (timestamp, new tokens): 6 tokens = 3 + 3
    outs = [_req([5, 6, 7], 9.9, 10.0, 10.2), _req([5, 6, 9], 9.9, 10.1, 10.3, ttft=0.25)]
    s = driver.batch_sample(outs, 100, t_call=9.85, t_done=10.31, steps=steps)
    assert s["prefill_steps"] == 2 and s["gen_tokens"] == 3 and s["distinct_sequences"] == 2
    assert s["prefill_s"] == pytest.approx(0.2) and s["prefill_tok_s"] == pytest.approx(200 / 0.2)
    assert s["decode_s"] == pytest.approx(0.2) and s["decode_tok_s"] == pytest.approx(3 / 0.2)
    assert s["token_latencies_s"] == pytest.approx([0.1, 0.1]) and s["ttft_s"] == 0.25
    assert s["per_seq_decode_tok_s"] == pytest.approx(2 / 0.2)
    from llmperf_nb import points

    point = points.summarize("sweep", {"batch_size": 2, "prompt_tokens": 100, "gen_tokens": 3, "samples": [s]},
                             {"gen_len": 3})
    assert point["problems"] == ["the batch's prefill took 2 engine steps, so decode steps overlapped it"]


def test_batch_sample_without_metrics_stops_with_why():
    with pytest.raises(SystemExit, match="no request metrics for a batch of 2"):
        driver.batch_sample([_output([1, 2], None)] * 2, 8, 0.0, 1.0, steps=[])


def test_sweep_argv_runs_the_drivers_sweep_without_crosscheck(engine, tmp_path, no_tokenizer):
    sweep = new_cell("Llama-2-7b-chat-hf", "h100-sxm", "vllm", options={"crosscheck": True}, quantization="fp16",
                     workload={"kind": "sweep", "batch_sizes": [1, 4], "prompt_lengths": [8], "gen_len": 256})
    argv = engine.benchmark_argv(sweep, Prepared("/d", "safetensors fp16", {}, extra={"load_format": "dummy"}),
                                 tmp_path / "r.json")
    assert argv[1:4] == ["-m", "llmperf_nb.drivers.vllm", "sweep"]
    assert driver_options(argv)["crosscheck"] is False
    assert "sweep" in engine.workloads and "sweep" not in engine.workload_gaps
