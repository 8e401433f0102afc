import time
from pathlib import Path

import pytest

from llmperf_nb import params
from llmperf_nb.exceptions import ConfigError

from .conftest import ROOT, cli

GOOD = """
name: t
models: [tiny-llama, Llama-2-7b-chat-hf]
gpus: [cpu, {name: h100-sxm, count: 2}]
engines: [llama_cpp, {name: llama_cpp, split_mode: row}]
repetitions: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_every_shipped_params_file_is_valid():
    files = sorted((ROOT / "params").glob("*.yaml"))
    assert files, "params/ holds no matrix"
    for f in files:
        p = params.load(f)
        assert params.expand(p)


def test_defaults_and_matrix_order(tmp_path):
    p = params.load(write(tmp_path, GOOD))
    assert p.prompt == "What is the meaning of life?" and p.gen_len == 256 and p.warmup == 1
    cs = params.expand(p)
    assert len(cs) == 2 * 2 * 2
    assert cs[0].id == "tiny-llama__cpu__llama_cpp__int4"
    assert cs[3].id == "tiny-llama__h100-sxmx2__llama_cpp-row__int4"
    assert cs[3].num_shards == 2  # one shard per GPU unless num_shards says otherwise


@pytest.mark.parametrize(
    "text, needle",
    [
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ncolour: red\n", "colour: unknown key; valid keys:"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [mlc-nightly]\n", "unknown engine 'mlc-nightly'; valid engines: llama_cpp, exllamav2, transformers, mlc, vllm"),
        ("models: [Llama-3-8B]\ngpus: [cpu]\nengines: [llama_cpp]\n", "unknown model 'Llama-3-8B'; valid models: tiny-llama"),
        ("models: [tiny-llama]\ngpus: [rtx-5090]\nengines: [llama_cpp]\n", "unknown GPU 'rtx-5090'; valid GPUs: auto, cpu"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ngen_len: many\n", "gen_len: expected int, got str"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\ngen_len: 0\n", "gen_len: must be at least 1"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\nrepetitions: true\n", "repetitions: expected int"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\nquantization: int3\n", "'int3' is not one of: int4, fp16"),
        ("models: [tiny-llama]\ngpus: [{name: h100-sxm, count: 0}]\nengines: [llama_cpp]\n", "count of 'h100-sxm' must be"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [{name: llama_cpp, split_mode: diagonal}]\n",
         "engines.llama_cpp: option 'split_mode': 'diagonal' is not one of: 'layer', 'row', 'tensor', 'none'"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [{name: llama_cpp, thread: 2}]\n",
         "unknown option 'thread'; valid options: n_gpu_layers"),
        ("models: [tiny-llama]\ngpus: [cpu]\n", "engines: missing"),
        ("models: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\nweights: hub\n", "has no Hugging Face repository"),
        ("models: [tiny-llama\n", "not valid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_params_name_file_key_and_choices(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        params.load(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_cli_bad_params_one_line_exit_2_no_traceback(tmp_path):
    path = write(tmp_path, "models: [tiny-llama]\ngpus: [cpu]\nengines: [vllm-turbo]\n")
    done = cli("run", path, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmperf-nb: error: ")
    assert "vllm-turbo" in lines[0] and "valid engines:" in lines[0]
    assert not (tmp_path / "out").exists()


def test_cli_missing_params_file(tmp_path):
    done = cli("run", tmp_path / "nope.yaml")
    assert done.returncode == 2 and "params file not found" in done.stderr and "Traceback" not in done.stderr


# --- hostile input: refused early, one short line, nothing echoed at length ---------------------

BASE = "name: x\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\n"
BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)))


@pytest.mark.parametrize("text, said", [
    (BASE + "gen_len: 100000000000000000000\n", "exceed the 2048-token context of tiny-llama"),
    (BASE + "gen_len: 2041\n", "exceed the 2048-token context"),
    (BASE + "timeout_s: .inf\n", "timeout_s: must be a finite number, got inf"),
    (BASE + "timeout_s: .nan\n", "timeout_s: must be a finite number, got nan"),
    (BASE + "timeout_s: -1\n", "timeout_s: must be at least 1"),
    (BASE + "min_time_s: .inf\n", "min_time_s: must be a finite number"),
    (BASE + "repetitions: 1000000000\n", "repetitions: must be at most 10000"),
    (BASE + "prompt: " + "x" * 70_000 + "\n", "prompt: over 64 KiB"),
    (BASE + "gen_len: 16\ngen_len: 32\n", "duplicate key 'gen_len'"),
    ("name: [a, b]\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp]\n", "name: expected str, got list"),
    ("models: [[tiny-llama]]\ngpus: [cpu]\nengines: [llama_cpp]\n", "unknown model ['tiny-llama']"),
    ("models: [tiny-llama]\ngpus: [{name: [cpu]}]\nengines: [llama_cpp]\n", "unknown GPU ['cpu']"),
    ("models: [tiny-llama]\ngpus: [cpu]\nengines: [{name: [llama_cpp]}]\n", "unknown engine ['llama_cpp']"),
    (BASE.replace("[llama_cpp]", "[{name: llama_cpp, threads: " + "[" * 100_000 + "]") + "\n", "nested"),
    (BASE + BOMB, "anchors and aliases"),
    (BASE + "prompt: " + "y" * 5000 + "\ngen_len: [" + "z" * 5000 + "]\n", "expected int, got list"),
])
def test_hostile_params_are_one_short_line(tmp_path, text, said):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        params.load(p)
    assert time.monotonic() - start < 5
    assert said in str(err.value) and len(str(err.value)) < 400 and "\n" not in str(err.value)


def test_non_utf8_params_and_a_folder_are_one_line_from_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(BASE.encode() + b"prompt: \xff\xfe\n")
    for path, said in ((bad, "not UTF-8"), (tmp_path, "a folder")):
        done = cli("run", path, "--out", tmp_path / "out")
        assert done.returncode == 2 and said in done.stderr and len(done.stderr.splitlines()) == 1
        assert "Traceback" not in done.stderr


def test_an_option_must_be_finite():
    with pytest.raises(ConfigError, match="must be a finite number"):
        params.from_dict({"models": ["tiny-llama"], "gpus": ["cpu"],
                          "engines": [{"name": "vllm", "gpu_memory_utilization": float("nan")}]})
    with pytest.raises(ConfigError, match="out of range"):
        params.from_dict({"models": ["tiny-llama"], "gpus": ["cpu"], "engines": [{"name": "llama_cpp", "threads": 10**20}]})


def test_two_engine_entries_that_would_share_a_cell_id_are_refused_naming_both(tmp_path):
    # the label is the options' values in their keys' order: static + compile and static + deterministic
    # both read "transformers-static-True"; one would write over the other's folder
    path = tmp_path / "p.yaml"
    path.write_text("name: d\nmodels: [tiny-llama]\ngpus: [cpu]\nengines:\n"
                    "  - {name: transformers, quantization: fp16, cache: static, compile: true}\n"
                    "  - {name: transformers, quantization: fp16, cache: static, deterministic: true}\n")
    with pytest.raises(ConfigError) as caught:
        params.load(path)
    said = str(caught.value)
    assert "'compile': True" in said and "'deterministic': True" in said
    assert "would both be cells 'transformers-static-True__fp16'" in said and "\n" not in said
    done = cli("run", path, "--out", tmp_path / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr and not (tmp_path / "out").exists()
