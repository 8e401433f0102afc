"""MLC LLM: parsers on real captured output (tests/data/logs/public/mlc; SOURCES.md says where each
file comes from), the compile commands, options and cell checks. Nothing here runs MLC: no MLC wheel
or GPU is available to the tests."""

import json
import sys
import types
from pathlib import Path

import pytest

from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Prepared
from llmperf_nb.engines.mlc import Mlc
from llmperf_nb.exceptions import ConfigError, ParseError
from llmperf_nb.importers import mlc as p
from llmperf_nb.importers import result as importers

from .conftest import LOGS, new_cell

PUBLIC = LOGS / "public" / "mlc"


def read(name):
    return (PUBLIC / name).read_text()


@pytest.fixture
def engine(monkeypatch):
    # registered for this test only: the built-in list is the lead's to change (engines/__init__.py)
    monkeypatch.setattr(registry, "_engines", dict(registry._engines))
    registry.register(Mlc())
    return registry["mlc"]


def cell(gpu="h100-sxm", count=1, shards=None, quantization="int4", weights="synthetic", **options):
    return new_cell("Llama-2-7b-chat-hf", gpu, "mlc", count=count, options=options, quantization=quantization,
                    weights=weights, num_shards=shards or count)


# -- parsers on real output -----------------------------------------------------------------------

@pytest.mark.parametrize("name, prefill, decode", [
    ("docs-python-sample-mlc-chat-stats.txt", 3477.5, 153.6),  # "Statistics: " + one line, CUDA
    ("issue931-statistics-line.txt", 78.3, 46.8),
    ("pr652-rocm-mlc-chat-cli-stats.txt", 507.3, 92.0),  # mlc_chat_cli /stats on ROCm
])
def test_one_line_stats_with_counts_from_the_caller(name, prefill, decode):
    [s] = p.parse_stats(read(name), gen_tokens=256, prompt_tokens=7).samples
    assert (s["prefill_tok_s"], s["decode_tok_s"]) == (prefill, decode)
    assert (s["gen_tokens"], s["prompt_tokens"]) == (256, 7)


@pytest.mark.parametrize("name", ["docs-python-sample-mlc-chat-stats.txt", "issue931-statistics-line.txt",
                                  "pr652-rocm-mlc-chat-cli-stats.txt"])
def test_one_line_stats_never_guess_the_token_count(name):
    with pytest.raises(ParseError, match="not how many tokens were generated"):
        p.parse_stats(read(name))


def test_pr1007_verbose_block_proposed_format():
    # PR #1007's description shows its branch's output ("current output"): section names without
    # spaces and no "total time" lines; the merged format (below) differs. Its "previous output"
    # one-liner prints "216" with no decimal.
    [s] = p.parse_verbose(read("pr1007-runtime-stats-proposed-verbose.txt")).samples
    assert s == {"prompt_tokens": 15, "gen_tokens": 355, "prefill_tok_s": 216.6, "decode_tok_s": 107.5}
    [old] = p.parse_stats(read("pr1007-runtime-stats-proposed-verbose.txt"), gen_tokens=355).samples
    assert (old["prefill_tok_s"], old["decode_tok_s"]) == (216.0, 107.5)


# The merged VerboseRuntimeStatsText() format exists only in MLC's source (cpp/llm_chat.cc, late 2023):
# no public paste of it was found (SOURCES.md, "Not found"). These texts are built from that source's
# string literals, with mlc_chat.cli.benchmark's f"Statistics: {stats(verbose=True)}" prefix.
SOURCE_VERBOSE = (
    "Statistics: ----------- prefill -----------\n"
    "throughput: 1250.3 tok/s\n"
    "total tokens: 8 tok\n"
    "total time: 0.0 s\n"
    "------------ decode ------------\n"
    "throughput: 186.7 tok/s\n"
    "total tokens: 255 tok\n"
    "total time: 1.4 s\n"
)


def test_verbose_block_from_source_on_the_statistics_line():
    m = p.parse_verbose(SOURCE_VERBOSE)
    [s] = m.samples
    assert s == {"prompt_tokens": 8, "gen_tokens": 256, "prefill_tok_s": 1250.3, "decode_tok_s": 186.7,
                 "decode_s": 1.4}  # "0.0 s" is below MLC's print precision: no prefill_s
    assert any("+ 1" in n for n in m.notes)


def test_verbose_blocks_of_mlc_chat_bench_are_one_sample_each():
    text = "Generated text:\nhello\n\nStatistics:\n" + SOURCE_VERBOSE.removeprefix("Statistics: ") * 2
    assert len(p.parse_verbose(text).samples) == 2


def test_pr2834_metrics_text():
    m = p.parse_metrics_text(read("pr2834-serve-metrics-and-stats.txt"))
    [s] = m.samples
    assert s["decode_tok_s"] == 5.658155349407193 and s["gen_tokens"] == 73
    assert any("decode_tokens_sum" in n for n in m.notes)


def test_metrics_json_prefers_the_last_request():
    # no pasted metrics JSON was found; keys from mlc-llm's EngineMetrics::AsJSON (SOURCES.md)
    doc = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "extra": {
        "decode_tokens_per_s": 99.0, "decode_tokens_sum": 1000, "completion_tokens_sum": 1010,
        "last_finished_request": {"prompt_tokens": 8, "completion_tokens": 256, "prefill_tokens_per_s": 900.5,
                                  "decode_tokens_per_s": 201.25, "ttft_s": 0.012, "end_to_end_latency_s": 1.28}}}
    [s] = p.parse_metrics_json(json.dumps(doc)).samples
    assert s == {"prompt_tokens": 8, "gen_tokens": 256, "prefill_tok_s": 900.5, "decode_tok_s": 201.25,
                 "ttft_s": 0.012, "e2e_s": 1.28}
    del doc["extra"]["last_finished_request"]
    [s] = p.parse_metrics_json(json.dumps(doc["extra"])).samples
    assert (s["gen_tokens"], s["decode_tok_s"]) == (1010, 99.0)


def test_engine_picks_the_format_by_itself(engine):
    assert engine.parse_log(read("pr1007-runtime-stats-proposed-verbose.txt")).build["tool"] == "MLC runtime stats (verbose)"
    assert engine.parse_log(read("pr2834-serve-metrics-and-stats.txt")).build["tool"] == "MLC engine metrics (text)"
    with pytest.raises(ParseError, match="not how many tokens were generated"):
        engine.parse_log(read("issue931-statistics-line.txt"))


def test_import_of_a_verbose_log_is_a_valid_result(engine):
    doc = importers.to_result("mlc", read("pr1007-runtime-stats-proposed-verbose.txt"), source="pr1007")
    assert doc["decode_tok_s"]["mean"] == 107.5 and doc["gen_tokens"]["actual"] == 355


# -- options and cells ----------------------------------------------------------------------------

def test_options_are_validated(engine):
    assert engine.options().target == "auto"
    with pytest.raises(ConfigError, match="unknown option 'num_shards'"):
        engine.options(num_shards=2)
    with pytest.raises(ConfigError, match="'cuda', 'rocm', 'auto'"):
        engine.options(target="vulkan")
    with pytest.raises(ConfigError, match="use_cuda_graph"):
        engine.options(use_cuda_graph="yes")
    with pytest.raises(ConfigError, match="max_seq_len"):
        engine.options(max_seq_len=0)


def test_cpu_cell_is_refused_clearly(engine, tmp_path):
    with pytest.raises(ConfigError, match="GPU only .* the cell asks for the CPU"):
        engine.compile(cell("cpu"), {"synthetic": True}, tmp_path, run=None)
    with pytest.raises(ConfigError, match="GPU only"):
        engine.benchmark_argv(cell("cpu"), Prepared("x", "MLC q4f16_1", {}), tmp_path / "raw.json")


def test_target_follows_the_gpu_vendor(engine):
    assert engine.build_settings(cell("h100-sxm"))["target"] == "cuda"
    assert engine.build_settings(cell("mi300x"))["target"] == "rocm"
    with pytest.raises(ConfigError, match="does not fit the cell's amd GPU"):
        engine.build_settings(cell("mi300x", target="cuda"))


def test_gpu_auto_asks_the_machine(engine, monkeypatch):
    from llmperf_nb import hardware

    monkeypatch.setattr(hardware, "detect", lambda: {"gpu": {"devices": [{"vendor": "amd", "name": "MI300X"}]}})
    assert engine.build_settings(cell("auto"))["target"] == "rocm"


# -- compile commands -----------------------------------------------------------------------------

def _cmds(engine, c):
    return engine.commands(Path("/hf"), Path("/out"), engine.build_settings(c))


def test_compile_commands_one_shard_cuda(engine):
    cmds = _cmds(engine, cell())
    assert cmds["convert_weight"][1:] == ["-m", "mlc_llm", "convert_weight", "/hf", "--quantization", "q4f16_1",
                                          "-o", "/out"]
    assert cmds["gen_config"][3:] == ["gen_config", "/hf", "--quantization", "q4f16_1", "--conv-template", "llama-2",
                                      "--context-window-size", "2048", "--tensor-parallel-shards", "1", "-o", "/out"]
    assert cmds["compile"][3:] == [
        "compile", "/out/mlc-chat-config.json", "--device", "cuda",
        "--opt", "flashinfer=1;cublas_gemm=1;faster_transformer=0;cutlass=1;cudagraph=1",
        "--overrides", "tensor_parallel_shards=1;context_window_size=2048", "-o", "/out/lib-partial.so"]


def test_compile_commands_two_shards_fp16_without_cuda_graph(engine):
    cmds = _cmds(engine, cell(count=2, quantization="fp16", use_cuda_graph=False, max_seq_len=4096))
    assert cmds["convert_weight"][cmds["convert_weight"].index("--quantization") + 1] == "q0f16"
    gen = cmds["gen_config"]
    assert gen[gen.index("--tensor-parallel-shards") + 1] == "2" and gen[gen.index("--context-window-size") + 1] == "4096"
    comp = cmds["compile"]
    assert comp[comp.index("--overrides") + 1] == "tensor_parallel_shards=2;context_window_size=4096"
    assert comp[comp.index("--opt") + 1].endswith("cudagraph=0")


def test_rocm_compiles_for_rocm_without_cuda_graphs(engine):
    comp = _cmds(engine, cell("mi300x", count=2))["compile"]
    assert comp[comp.index("--device") + 1] == "rocm"
    assert comp[comp.index("--opt") + 1].endswith("cudagraph=0")


def test_benchmark_argv(engine, tmp_path, monkeypatch):
    import llmperf_nb.engines.mlc as mlc_mod

    monkeypatch.setattr(mlc_mod, "workload_args", lambda c, raw: ["--out", str(raw)])
    prepared = Prepared("/cache/m", "MLC q4f16_1", {}, extra={"model_lib": "/cache/m/lib.so"})
    argv = engine.benchmark_argv(cell("mi300x"), prepared, tmp_path / "raw.json")
    assert argv[1:] == ["-m", "llmperf_nb.drivers.mlc", "--model", "/cache/m", "--model-lib", "/cache/m/lib.so",
                        "--device", "rocm", "--max-seq-len", "2048", "--out", str(tmp_path / "raw.json")]


# -- compile: commands run through `run`, cached by inputs ----------------------------------------

@pytest.fixture
def fake_hf_writer(monkeypatch):
    """Stand-in for llmperf_nb.weights.hf (its real writer needs a tokenizer build; tested elsewhere)."""
    calls = []

    def write_synthetic_hf(spec, out_dir, seed=0, weights=True):
        calls.append((spec.name, seed, weights))
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(json.dumps(spec.hf_config()))
        return out_dir

    def tensor_shapes(spec):
        yield "model.embed_tokens.weight", (spec.vocab_size, spec.hidden_size)

    fake = types.SimpleNamespace(write_synthetic_hf=write_synthetic_hf, tensor_shapes=tensor_shapes, WRITER_VERSION=1)
    monkeypatch.setitem(sys.modules, "llmperf_nb.weights.hf", fake)
    return calls


def test_prepare_runs_the_three_steps_once(engine, tmp_path, fake_hf_writer):
    ran = []

    def run(argv, **kw):
        ran.append(argv[3])
        out = Path(argv[argv.index("-o") + 1])
        if argv[3] == "convert_weight":
            out.mkdir(parents=True)
            (out / "tensor-cache.json").write_text("{}")
        elif argv[3] == "gen_config":
            (out / "mlc-chat-config.json").write_text("{}")
        else:
            out.write_bytes(b"lib")

    c = cell(count=2)
    first = engine.compile(c, {"synthetic": True}, tmp_path, run)
    assert ran == ["convert_weight", "gen_config", "compile"] and not first.cached
    assert Path(first.extra["model_lib"]).read_bytes() == b"lib"
    assert first.extra["settings"]["tensor_parallel_shards"] == 2
    hf_dirs = list((tmp_path / "hf").iterdir())
    assert json.loads((hf_dirs[0] / "model.safetensors.index.json").read_text())["weight_map"]
    again = engine.compile(c, {"synthetic": True}, tmp_path, run)
    assert again.cached and ran == ["convert_weight", "gen_config", "compile"] and again.artifact == first.artifact
    other = engine.compile(cell(count=1), {"synthetic": True}, tmp_path, run)
    assert other.artifact != first.artifact and fake_hf_writer == [("Llama-2-7b-chat-hf", 0, True)]


# -- the driver's control flow, against a stand-in for MLC's SyncMLCEngine ------------------------
# (the real engine needs an MLC wheel and a GPU; this checks only our side: one token per step,
# requests, warm-up, the raw document)

class FakeSyncEngine:
    def __init__(self, model, device, *, model_lib, mode, engine_config, request_stream_callback):
        assert mode == "interactive" and engine_config.kw["prefix_cache_mode"] == "disable"
        self.callback, self.request, self.made = request_stream_callback, None, 0

    def create_request(self, request_id, inputs, generation_config):
        return types.SimpleNamespace(id=request_id, ids=inputs.ids, cfg=generation_config.kw)

    def add_request(self, request):
        self.request, self.made = request, 0

    def abort_request(self, request_id):
        raise AssertionError("no request should be left running")

    def step(self):
        r = self.request
        self.made += 1
        done = self.made == r.cfg["max_tokens"]
        out = types.SimpleNamespace(delta_token_ids=[1000 + self.made], finish_reason="length" if done else None)
        self.callback([types.SimpleNamespace(unpack=lambda: (r.id, [out]))])

    def metrics(self):
        return types.SimpleNamespace(metrics={"last_finished_request": {"completion_tokens": self.made,
                                                                        "decode_tokens_per_s": 123.0}})


@pytest.fixture
def fake_mlc(monkeypatch):
    def kw_class(name):
        return type(name, (), {"__init__": lambda self, **kw: setattr(self, "kw", kw)})

    mods = {
        "mlc_llm": types.SimpleNamespace(__version__="0.0.test"),
        "mlc_llm.protocol.debug_protocol": types.SimpleNamespace(DebugConfig=kw_class("DebugConfig")),
        "mlc_llm.protocol.generation_config": types.SimpleNamespace(GenerationConfig=kw_class("GenerationConfig")),
        "mlc_llm.serve": types.SimpleNamespace(data=types.SimpleNamespace(TokenData=lambda ids: types.SimpleNamespace(ids=ids))),
        "mlc_llm.serve.config": types.SimpleNamespace(EngineConfig=kw_class("EngineConfig")),
        "mlc_llm.serve.sync_engine": types.SimpleNamespace(SyncMLCEngine=FakeSyncEngine),
    }
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def test_driver_steps_one_token_at_a_time(fake_mlc, tmp_path):
    from llmperf_nb.drivers import mlc as driver
    from llmperf_nb.engines.base import measurement_from_raw

    (tmp_path / "mlc-chat-config.json").write_text('{"tensor_parallel_shards": 2}')
    raw = tmp_path / "raw.json"
    driver.main(["--model", str(tmp_path), "--model-lib", str(tmp_path / "lib.so"), "--prompt-ids", "1,1724,338",
                 "--gen-len", "16", "--reps", "2", "--warmup", "1", "--out", str(raw)])
    doc = json.loads(raw.read_text())
    assert [s["gen_tokens"] for s in doc["samples"]] == [16, 16] and len(doc["warmup_samples"]) == 1
    assert doc["samples"][0]["token_ids"][:8] == list(range(1001, 1009))
    assert len(doc["samples"][0]["token_latencies_s"]) == 15
    assert doc["engine_reported"] == [{"completion_tokens": 16, "decode_tokens_per_s": 123.0}] * 2
    m = measurement_from_raw(cell(), raw, ("engine_reported", "tensor_parallel_shards"))
    assert m.build["tensor_parallel_shards"] == 2 and m.engine_version == "mlc_llm 0.0.test"
