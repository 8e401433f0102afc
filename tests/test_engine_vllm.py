"""vLLM: latency-benchmark parsers on real captured output (tests/data/logs/public/vllm; SOURCES.md
says where each file comes from), argv building, options, the driver's sample arithmetic. Nothing
here runs vLLM: it needs a CUDA GPU."""

import json
import sys
import types
from pathlib import Path

import pytest

from llmperf_nb.drivers import vllm as driver
from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Prepared
from llmperf_nb.engines.vllm import Vllm
from llmperf_nb.exceptions import ConfigError, ParseError
from llmperf_nb.importers import result as importers
from llmperf_nb.importers import vllm as p

from .conftest import LOGS, new_cell

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
    assert engine.options() == engine.options_class("awq", False, 0.9)
    with pytest.raises(ConfigError, match="'awq', 'gptq'"):
        engine.options(quant_method="squeezellm")
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        engine.options(gpu_memory_utilization=1.5)
    with pytest.raises(ConfigError, match="unknown option 'tensor_parallel_size'"):
        engine.options(tensor_parallel_size=2)


def test_cpu_cell_is_refused_clearly(engine, tmp_path):
    with pytest.raises(ConfigError, match="GPU only .* the cell asks for the CPU"):
        engine.compile(cell("cpu"), {"synthetic": True}, tmp_path, run=None)
    with pytest.raises(ConfigError, match="GPU only"):
        engine.benchmark_argv(cell("cpu"), Prepared("x", "safetensors fp16", {}), tmp_path / "raw.json")


@pytest.fixture
def no_tokenizer(monkeypatch):
    import llmperf_nb.engines.vllm as vllm_mod

    monkeypatch.setattr(vllm_mod, "workload_args", lambda c, raw: ["--out", str(raw)])


@pytest.mark.parametrize("count", [1, 2])
def test_benchmark_argv(engine, tmp_path, no_tokenizer, count):
    prepared = Prepared("/cache/d", "AWQ 4-bit", {}, extra={"load_format": "dummy", "quantization": "awq"})
    argv = engine.benchmark_argv(cell(count=count, quantization="int4", enforce_eager=True,
                                      gpu_memory_utilization=0.8), prepared, tmp_path / "r.json")
    assert argv[1:] == ["-m", "llmperf_nb.drivers.vllm", "--model", "/cache/d", "--load-format", "dummy",
                        "--tensor-parallel-size", str(count), "--dtype", "float16", "--gpu-memory-utilization", "0.8",
                        "--seed", "0", "--enforce-eager", "--out", str(tmp_path / "r.json")]


@pytest.fixture
def fake_hf_writer(monkeypatch):
    def write_synthetic_hf(spec, out_dir, seed=0, weights=True):
        assert weights is False
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(json.dumps(spec.hf_config()))
        return out_dir

    monkeypatch.setitem(sys.modules, "llmperf_nb.weights.hf",
                        types.SimpleNamespace(write_synthetic_hf=write_synthetic_hf, WRITER_VERSION=1))


@pytest.mark.parametrize("method, keys", [("awq", {"bits", "group_size", "zero_point"}),
                                          ("gptq", {"bits", "group_size", "desc_act", "sym"})])
def test_prepare_dummy_int4_writes_the_quantization_config(engine, tmp_path, fake_hf_writer, method, keys):
    prepared = engine.compile(cell(quantization="int4", quant_method=method), {"synthetic": True}, tmp_path, None)
    config = json.loads((Path(prepared.artifact) / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == method and keys <= set(config["quantization_config"])
    assert prepared.extra == {"load_format": "dummy", "quantization": method}
    assert prepared.format == {"awq": "AWQ 4-bit", "gptq": "GPTQ 4-bit"}[method]
    assert engine.compile(cell(quantization="int4", quant_method=method), {"synthetic": True}, tmp_path, None).cached


def test_prepare_fp16_dummy_and_real(engine, tmp_path, fake_hf_writer):
    dummy = engine.compile(cell(), {"synthetic": True}, tmp_path, None)
    assert "quantization_config" not in json.loads((Path(dummy.artifact) / "config.json").read_text())
    assert dummy.format == "safetensors fp16" and dummy.extra["load_format"] == "dummy"
    real = engine.compile(cell(weights="hub"), {"synthetic": False, "path": "/hf/snap"}, tmp_path, None)
    assert (real.artifact, real.extra["load_format"]) == ("/hf/snap", "auto")


# -- the driver's arithmetic, on RequestOutput-shaped objects ------------------------------------

def _output(tokens, metrics):
    return types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=tokens)], metrics=metrics)


def test_sample_from_vllm_metrics():
    stats = types.SimpleNamespace(scheduled_ts=100.0, first_token_ts=100.02, last_token_ts=101.295,
                                  first_token_latency=0.025)
    s = driver.sample_from_output(_output(list(range(256)), stats), 8, t_call=99.99, t_done=101.3)
    assert s["gen_tokens"] == 256 and s["ttft_s"] == 0.025
    assert s["prefill_s"] == pytest.approx(0.02) and s["prefill_tok_s"] == pytest.approx(400)
    assert s["decode_s"] == pytest.approx(1.275) and s["decode_tok_s"] == pytest.approx(255 / 1.275)
    assert s["e2e_s"] == pytest.approx(1.31) and s["timing_source"] == driver.SPLIT


def test_sample_without_metrics_has_no_invented_split():
    s = driver.sample_from_output(_output([5] * 200, None), 8, t_call=1.0, t_done=3.0)
    assert s["gen_tokens"] == 200 and s["e2e_s"] == 2.0 and s["timing_source"] == driver.NO_SPLIT
    assert "decode_tok_s" not in s and "ttft_s" not in s


# -- the driver's plumbing, against a stand-in for vllm.LLM (the real one needs a CUDA GPU) --------

class FakeLLM:
    made = []

    def __init__(self, model, **kw):
        assert kw["disable_log_stats"] is False and kw["enable_prefix_caching"] is False and kw["skip_tokenizer_init"]
        FakeLLM.made.append(kw)
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=4096, quantization=None))
        self.clock = 1000.0

    def generate(self, prompts, params, use_tqdm=True):
        [prompt] = prompts
        assert params.kw["ignore_eos"] and params.kw["min_tokens"] == params.kw["max_tokens"] and not params.kw["detokenize"]
        self.clock += 10
        stats = types.SimpleNamespace(scheduled_ts=self.clock, first_token_ts=self.clock + 0.01,
                                      last_token_ts=self.clock + 0.01 + 0.004 * (params.kw["max_tokens"] - 1),
                                      first_token_latency=0.012)
        return [_output([7] * params.kw["max_tokens"], stats)]


def test_driver_writes_a_raw_document(monkeypatch, tmp_path):
    sampling = type("SamplingParams", (), {"__init__": lambda self, **kw: setattr(self, "kw", kw)})
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=sampling,
                                                                   __version__="0.0.test"))
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "")  # records the original for teardown; the driver's default is tested
    monkeypatch.delenv("NCCL_NVLS_ENABLE")
    raw = tmp_path / "raw.json"
    driver.main(["--model", "/m", "--load-format", "dummy", "--tensor-parallel-size", "2", "--prompt-ids", "1,2,3",
                 "--gen-len", "11", "--reps", "3", "--out", str(raw)])
    doc = json.loads(raw.read_text())
    assert FakeLLM.made[-1]["tensor_parallel_size"] == 2 and FakeLLM.made[-1]["load_format"] == "dummy"
    assert [s["decode_tok_s"] for s in doc["samples"]] == pytest.approx([250.0] * 3)
    assert doc["settings"]["NCCL_NVLS_ENABLE"] == "0" and doc["timing_source"] == driver.SPLIT
    assert doc["engine_version"] == "vllm 0.0.test" and doc["prompt_token_ids"] == [1, 2, 3]
