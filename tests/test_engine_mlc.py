"""MLC LLM: parsers on real captured output (tests/data/logs/public/mlc; SOURCES.md says where each
file comes from), the compile commands, options and cell checks, the compat module on PyPI's TVM,
and (slow) the whole path on the CPU: tiny-llama converted, compiled for llvm and run by the Relax
VM driver through ``llmperf-nb run``.

What needs what: the parsers and commands need nothing; the compat tests need apache-tvm 0.26.0
(``pip install -e '.[mlc]'``); the end-to-end tests also need mlc-llm's Python source
($MLC_LLM_SOURCE or .gpu/mlc-llm-src, never in the repo; docs/mlc.md), and skip, saying so,
where it is absent (CI: no GitHub there)."""

import json
import sys
import types
from pathlib import Path

import pytest

from llmperf_nb import process, results
from llmperf_nb.drivers import mlc_compat
from llmperf_nb.engines import registry
from llmperf_nb.engines.base import Prepared
from llmperf_nb.engines.mlc import Mlc
from llmperf_nb.exceptions import ConfigError, ParseError
from llmperf_nb.importers import mlc as p
from llmperf_nb.importers import result as importers

from .conftest import LOGS, ROOT, cli, driver_options, new_cell

PUBLIC = LOGS / "public" / "mlc"


def read(name):
    return (PUBLIC / name).read_text()


@pytest.fixture
def engine(monkeypatch):
    # registered for this test only: the built-in list is the lead's to change (engines/__init__.py)
    monkeypatch.setattr(registry, "_engines", dict(registry._engines))
    registry.register(Mlc())
    return registry["mlc"]


def cell(gpu="h100-sxm", count=1, shards=None, quantization="int4", weights="synthetic", model="Llama-2-7b-chat-hf",
         **options):
    return new_cell(model, gpu, "mlc", count=count, options=options, quantization=quantization,
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
    with pytest.raises(ParseError, match="not how many tokens were generated.*--gen-len N"):
        p.parse_stats(read(name))


def test_import_of_one_line_stats_takes_the_count_from_the_user(engine, tmp_path):
    doc = importers.to_result("mlc", read("issue931-statistics-line.txt"), gen_tokens=256, prompt_tokens=7)
    assert doc["decode_tok_s"]["mean"] == 46.8 and doc["gen_tokens"]["actual"] == 256
    log = tmp_path / "stats.txt"
    log.write_text(read("docs-python-sample-mlc-chat-stats.txt"))
    done = cli("import", "--engine", "mlc", "--gen-len", "256", log)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decode_tok_s"]["mean"] == 153.6
    refused = cli("import", "--engine", "mlc", log)
    assert refused.returncode != 0 and "--gen-len N" in refused.stderr


def test_a_count_given_must_agree_with_the_log(engine):
    with pytest.raises(ParseError, match="gen_tokens .355. differs from the 256 given"):
        engine.parse_log(read("pr1007-runtime-stats-proposed-verbose.txt"), "verbose", gen_tokens=256)


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
    assert engine.options().target == "auto" and engine.options().flashinfer is False
    with pytest.raises(ConfigError, match="unknown option 'num_shards'"):
        engine.options(num_shards=2)
    with pytest.raises(ConfigError, match="'cuda', 'rocm', 'llvm', 'auto'"):
        engine.options(target="vulkan")
    with pytest.raises(ConfigError, match="use_cuda_graph"):
        engine.options(use_cuda_graph="yes")
    with pytest.raises(ConfigError, match="max_seq_len"):
        engine.options(max_seq_len=0)


def test_target_follows_the_device(engine):
    assert engine.build_settings(cell("h100-sxm"))["target"] == "cuda"
    assert engine.build_settings(cell("mi300x"))["target"] == "rocm"
    assert engine.build_settings(cell("cpu"))["target"] == "llvm"
    with pytest.raises(ConfigError, match="does not fit the cell's amd GPU"):
        engine.build_settings(cell("mi300x", target="cuda"))
    with pytest.raises(ConfigError, match="does not fit the cell's CPU"):
        engine.build_settings(cell("cpu", target="cuda"))


def test_gpu_auto_asks_the_machine(engine, monkeypatch):
    from llmperf_nb import hardware

    monkeypatch.setattr(hardware, "detect", lambda: {"gpu": {"devices": [{"vendor": "amd", "name": "MI300X"}]}})
    assert engine.build_settings(cell("auto"))["target"] == "rocm"
    monkeypatch.setattr(hardware, "detect", lambda: {"gpu": {"devices": []}})
    assert engine.build_settings(cell("auto"))["target"] == "llvm"


def test_configuration_says_relax_vm_driver(engine):
    assert engine.configuration({}) == "MLC LLM (Relax VM driver)"
    assert engine.configuration({"target": "cuda", "flashinfer": True}) == "MLC LLM (Relax VM driver, flashinfer=True)"


def test_settings_record_the_toolchain(engine, monkeypatch):
    monkeypatch.setattr(mlc_compat, "source_commit", lambda src=None: "abc123")
    s = engine.build_settings(cell())
    assert s["mlc_llm_commit"] == "abc123" and set(s) >= {"tvm", "tvm_ffi", "opt", "cuda_graph"}


def test_unavailable_says_what_is_missing(engine, monkeypatch, tmp_path):
    monkeypatch.setenv("MLC_LLM_SOURCE", str(tmp_path))
    monkeypatch.setattr(mlc_compat, "DEFAULT_SOURCE", tmp_path / "none")
    why = engine.unavailable(cell())
    assert "mlc-llm's Python source was not found: set MLC_LLM_SOURCE" in why
    (tmp_path / "mlc_llm").mkdir()
    (tmp_path / "mlc_llm" / "__init__.py").write_text("")
    assert mlc_compat.source_dir() == tmp_path
    assert "source" not in (engine.unavailable(cell()) or "")


# -- compile commands -----------------------------------------------------------------------------

def _cmds(engine, c):
    return engine.commands(Path("/hf"), Path("/out"), engine.build_settings(c), Path("/w"))


def test_compile_commands_one_shard_cuda(engine):
    cmds = _cmds(engine, cell())
    assert cmds["convert_weight"][1:] == ["-m", "llmperf_nb.drivers.mlc_compat", "convert_weight", "/hf",
                                          "--quantization", "q4f16_1", "--device", "cuda", "-o", "/w"]
    assert cmds["gen_config"][3:] == ["gen_config", "/hf", "--quantization", "q4f16_1", "--conv-template", "llama-2",
                                      "--context-window-size", "2048", "--tensor-parallel-shards", "1", "-o", "/out"]
    assert cmds["compile"][3:] == [
        "compile", "/out/mlc-chat-config.json", "--device", "cuda",
        "--opt", "flashinfer=0;cublas_gemm=0;faster_transformer=0;cutlass=0;cudagraph=1",
        "--overrides", "tensor_parallel_shards=1;context_window_size=2048", "-o", "/out/lib-partial.so"]


def test_compile_commands_two_shards_fp16_without_cuda_graph(engine):
    cmds = _cmds(engine, cell(count=2, quantization="fp16", use_cuda_graph=False, max_seq_len=4096, flashinfer=True))
    assert cmds["convert_weight"][cmds["convert_weight"].index("--quantization") + 1] == "q0f16"
    gen = cmds["gen_config"]
    assert gen[gen.index("--tensor-parallel-shards") + 1] == "2" and gen[gen.index("--context-window-size") + 1] == "4096"
    comp = cmds["compile"]
    assert comp[comp.index("--overrides") + 1] == "tensor_parallel_shards=2;context_window_size=4096"
    assert comp[comp.index("--opt") + 1] == "flashinfer=1;cublas_gemm=0;faster_transformer=0;cutlass=0;cudagraph=0"


def test_rocm_and_cpu_compile_without_cuda_only_flags(engine):
    comp = _cmds(engine, cell("mi300x", count=2, flashinfer=True))["compile"]
    assert comp[comp.index("--device") + 1] == "rocm"
    assert comp[comp.index("--opt") + 1] == "flashinfer=0;cublas_gemm=0;faster_transformer=0;cutlass=0;cudagraph=0"
    cmds = _cmds(engine, cell("cpu"))
    assert cmds["compile"][cmds["compile"].index("--device") + 1] == "llvm"
    assert cmds["convert_weight"][cmds["convert_weight"].index("--device") + 1] == "cpu"


def test_benchmark_argv(engine, tmp_path, monkeypatch):
    import llmperf_nb.engines.mlc as mlc_mod

    monkeypatch.setattr(mlc_mod, "workload_args", lambda c, raw: ["--out", str(raw)])
    prepared = Prepared("/cache/m", "MLC q4f16_1", {}, extra={"model_lib": "/cache/m/lib.so"})
    argv = engine.benchmark_argv(cell("mi300x"), prepared, tmp_path / "raw.json")
    assert argv[1:] == ["-m", "llmperf_nb.drivers.mlc", "--model", "/cache/m", "--model-lib", "/cache/m/lib.so",
                        "--device", "rocm", "--options", argv[argv.index("--options") + 1], "--out", str(tmp_path / "raw.json")]
    assert driver_options(argv)["max_seq_len"] == 2048 and driver_options(argv)["target"] == "rocm"
    argv = engine.benchmark_argv(cell("cpu"), prepared, tmp_path / "raw.json")
    assert argv[argv.index("--device") + 1] == "cpu"


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


def test_compile_converts_once_and_compiles_per_setting(engine, tmp_path, fake_hf_writer):
    ran = []

    def run(argv, **kw):
        ran.append(argv[3])
        out = Path(argv[argv.index("-o") + 1])
        if argv[3] == "convert_weight":
            out.mkdir(parents=True)
            (out / "tensor-cache.json").write_text("{}")
            (out / "params_shard_0.bin").write_bytes(b"w" * 10)
        elif argv[3] == "gen_config":
            out.mkdir(parents=True, exist_ok=True)
            (out / "mlc-chat-config.json").write_text("{}")
        else:
            out.write_bytes(b"lib")

    first = engine.compile(cell(count=2), {"synthetic": True}, tmp_path, run)
    assert ran == ["convert_weight", "gen_config", "compile"] and not first.cached
    art = Path(first.artifact)
    assert (art / "lib.so").read_bytes() == b"lib" and (art / "params_shard_0.bin").read_bytes() == b"w" * 10
    assert (art / "tensor-cache.json").is_symlink() and first.weights["bytes"] == 12
    build = json.loads((art / "llmperf-mlc-build.json").read_text())
    assert build["tensor_parallel_shards"] == 2 and set(build["timings"]) == {"convert_weight_s", "gen_config_s",
                                                                              "compile_s"}
    assert build["commands"]["compile"][0] == "python"
    hf_dirs = list((tmp_path / "hf").iterdir())
    assert json.loads((hf_dirs[0] / "model.safetensors.index.json").read_text())["weight_map"]
    again = engine.compile(cell(count=2), {"synthetic": True}, tmp_path, run)
    assert again.cached and len(ran) == 3 and again.artifact == first.artifact and again.extra["build"] == build
    # another compile setting: compiled again, the converted weights reused
    other = engine.compile(cell(count=1, use_cuda_graph=False), {"synthetic": True}, tmp_path, run)
    assert ran[3:] == ["gen_config", "compile"] and other.artifact != first.artifact
    assert fake_hf_writer == [("Llama-2-7b-chat-hf", 0, True)]


# -- the compat module, on PyPI's TVM (no mlc-llm source needed) ----------------------------------

def test_tokenizer_info_of_the_llama_tokenizer(tmp_path):
    from llmperf_nb.models import get_model
    from llmperf_nb.weights.hf import write_tokenizer

    spec = get_model("tiny-llama")
    write_tokenizer(tmp_path, spec.vocab_size, spec.max_position_embeddings)
    # what MLC's C++ DetectTokenizerInfo gives for Llama-2 (mlc-chat-config.json of mlc-ai's Llama-2 builds)
    assert mlc_compat.tokenizer_info(tmp_path) == {"token_postproc_method": "byte_fallback",
                                                   "prepend_space_in_encode": True, "strip_space_in_decode": True}


def test_tvm_adaptations():
    pytest.importorskip("tvm", reason="apache-tvm is not installed (pip install -e '.[mlc]')")
    assert not [m for m in mlc_compat.missing() if "apache-tvm" in m], mlc_compat.missing()
    from tvm import relax, te

    mlc_compat._var_name_hint()
    mlc_compat._primfunc_buffer_map()
    assert relax.Var("x", relax.TensorType((1,), "float32")).name_hint == "x"
    n = te.var("n")
    a = te.placeholder((n,), name="A", dtype="float16")
    b = te.compute((n,), lambda i: a[i] + 1, name="B")
    f = te.create_prim_func([a, b, n])
    # buffers only, as PrimFunc.buffer_map held them; the shape variable n is not a buffer
    assert {k.name: [str(d) for d in v.shape] for k, v in f.buffer_map.items()} == {"A": ["n"], "B": ["n"]}


# -- end to end on the CPU: needs TVM and mlc-llm's source ----------------------------------------

needs_mlc = pytest.mark.skipif(bool(mlc_compat.missing()), reason="MLC path not available here: "
                               + "; ".join(mlc_compat.missing()))


@needs_mlc
def test_mlc_llm_imports_with_the_adaptations():
    import subprocess

    code = ("from llmperf_nb.drivers import mlc_compat; m = mlc_compat.activate(); "
            "import mlc_llm.cli.compile, mlc_llm.cli.convert_weight, mlc_llm.cli.gen_config; "
            "print(' | '.join(mlc_compat.applied()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tokenizer_info" in done.stdout and "pipeline without" in done.stdout


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("mlc-run")
    params = out / "params.yaml"
    text = (ROOT / "params" / "mlc-cpu-smoke.yaml").read_text()
    params.write_text(text.replace("gen_len: 16", "gen_len: 8"))
    done = cli("run", params, "--out", out / "report", "--cache-dir", cache_dir, "--no-progress", "--no-report")
    return out / "report", done


@pytest.mark.slow
@needs_mlc
def test_cpu_compile_and_run_through_the_product(cpu_run):
    out, done = cpu_run
    assert done.returncode == 0, done.stderr[-3000:]
    [doc] = [d for d in results.load_dir(out / "results") if d["engine"] == "mlc"]
    assert doc["status"] == "ok", doc["error"]
    assert results.check_counts(doc) is None
    assert doc["gen_tokens"] == {"requested": 8, "actual": 8} and doc["prompt_tokens"]["actual"] == 8
    assert doc["decode_tok_s"]["mean"] > 0 and "Relax VM driver" in doc["engine_version"]
    s = doc["build"]["settings"]
    assert s["engine"].endswith("not MLC's serve engine") and s["same_tokens_every_run"] is True
    assert s["flashinfer"].startswith("off:") and s["cuda_graph"] is False
    compiled = s["library"]["compile"]
    assert compiled["target"] == "llvm" and compiled["tvm"] == mlc_compat.TVM_VERSION
    assert compiled["mlc_llm_commit"] == mlc_compat.source_commit()
    assert set(compiled["timings"]) == {"convert_weight_s", "gen_config_s", "compile_s"}
    assert s["library"]["quantization"] == "q4f16_1" and doc["build"]["tensor_parallel_shards"] == 1
    assert doc["build"]["versions"] == mlc_compat.versions() and doc["configuration"] == "MLC LLM (Relax VM driver)"
    assert all(len(x["token_ids"]) == 8 for x in doc["samples"])


@pytest.mark.slow
@needs_mlc
def test_second_run_reuses_the_compiled_library(cpu_run, cache_dir, tmp_path):
    _, first = cpu_run
    assert first.returncode == 0
    prepared = registry["mlc"].compile(cell("cpu", model="tiny-llama"), {"synthetic": True}, cache_dir, process.run)
    assert prepared.cached and Path(prepared.extra["model_lib"]).exists()


def test_step_processes_see_mlc_llm_source(tmp_path, monkeypatch):
    """A step or driver runs through process.run with an allow-listed environment: MLC_LLM_SOURCE
    must reach it (on the GPU machine it was dropped, and the cell was skipped as 'source not found')."""
    src = tmp_path / "mlc-llm-src"
    (src / "mlc_llm").mkdir(parents=True)
    (src / "mlc_llm" / "__init__.py").write_text("")
    monkeypatch.setenv("MLC_LLM_SOURCE", str(src))
    done = process.run(
        [sys.executable, "-c", "from llmperf_nb.drivers import mlc_compat; print(mlc_compat.source_dir())"]
    )
    assert done.output.strip().splitlines()[-1] == str(src)
