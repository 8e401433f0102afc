"""Workload kinds in params files (llmperf_nb/workloads.py): what is accepted, what is refused and how."""

import pytest

from llmperf_nb import params
from llmperf_nb.exceptions import ConfigError

from .conftest import cli

BASE = "name: w\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [llama_cpp, {name: transformers, quantization: fp16}]\n"
BOTH = (
    BASE
    + """workloads:
  - kind: sweep
    batch_sizes: [4, 1]
    prompt_lengths: [8]
  - kind: serve
    concurrency: [1, 4]
    input_len: 64
    output_len: 32
    slo: {ttft_ms: 500, tpot_ms: 50}
"""
)


def load(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return params.load(path)


def test_without_workloads_a_file_runs_the_single_workload_and_keeps_its_cell_ids(tmp_path):
    cells = params.expand(load(tmp_path, BASE))
    assert [c.workload for c in cells] == [{"kind": "single"}] * 2
    assert cells[0].id == "tiny-llama__cpu__llama_cpp__int4"


def test_workloads_multiply_the_matrix_and_name_their_cells(tmp_path):
    cells = params.expand(load(tmp_path, BOTH))
    assert [c.id for c in cells] == [
        "tiny-llama__cpu__llama_cpp__int4__sweep",
        "tiny-llama__cpu__llama_cpp__int4__serve",
        "tiny-llama__cpu__transformers__fp16__sweep",
        "tiny-llama__cpu__transformers__fp16__serve",
    ]
    sweep, serve = cells[0].workload, cells[1].workload
    assert sweep == {"kind": "sweep", "batch_sizes": [1, 4], "prompt_lengths": [8], "gen_len": 256}
    assert serve["requests"] == 16  # 4 x the highest concurrency unless given
    assert serve["slo"] == {"ttft_ms": 500.0, "tpot_ms": 50.0}


def test_a_cell_json_from_before_workloads_reads_as_single(make_cell):
    from llmperf_nb.cells import Cell

    old = make_cell().to_dict()
    del old["workload"]
    assert Cell.from_dict(old).workload == {"kind": "single"}


def test_an_engine_without_the_kind_says_so_in_its_row(make_cell):
    from llmperf_nb.engines import registry

    sweep = {"kind": "sweep", "batch_sizes": [1], "prompt_lengths": [8], "gen_len": 4}
    serve = {"kind": "serve", "concurrency": [1], "input_len": 8, "output_len": 4, "requests": 1, "slo": {}}
    said = registry["mlc"].lacks_workload(make_cell(engine="mlc", workload=sweep))
    assert said.startswith("MLC LLM: the Relax VM driver has no batched API") and said.endswith("(workload sweep)")
    assert "no server of its own" in registry["transformers"].lacks_workload(
        make_cell(engine="transformers", workload=serve)
    )
    assert "ExLlamaV2: no batched driver yet" in registry["exllamav2"].lacks_workload(
        make_cell(engine="exllamav2", workload=sweep)
    )
    assert registry["llama_cpp"].workloads == ("single", "sweep", "serve")


@pytest.mark.parametrize(
    "entry, said",
    [
        ("- kind: offline\n", "each entry needs a kind, one of: single, sweep, serve; got 'offline'"),
        ("- kind: sweep\n  prompt_lengths: [8]\n", "sweep: batch_sizes is missing"),
        ("- kind: sweep\n  batch_sizes: [1, 1]\n  prompt_lengths: [8]\n", "lists a value twice"),
        ("- kind: sweep\n  batch_sizes: [0]\n  prompt_lengths: [8]\n", "batch_sizes must be a whole number from 1"),
        (
            "- kind: sweep\n  batch_sizes: [1]\n  prompt_lengths: [4096]\n",
            "exceed the 2048-token context of tiny-llama",
        ),
        ("- kind: sweep\n  batch_sizes: [1]\n  prompt_lengths: [8]\n  batch: 2\n", "sweep: unknown key 'batch'"),
        ("- kind: serve\n  concurrency: [1]\n  input_len: 8\n", "serve: output_len is missing"),
        (
            "- kind: serve\n  concurrency: [1, 8]\n  input_len: 8\n  output_len: 8\n  requests: 4\n",
            "requests (4) must be at least the highest concurrency (8)",
        ),
        (
            "- kind: serve\n  concurrency: [1]\n  input_len: 8\n  output_len: 8\n  slo: {ttft: 5}\n",
            "slo: unknown key 'ttft'; valid keys: ttft_ms, tpot_ms, itl_ms, e2e_ms",
        ),
        (
            "- kind: serve\n  concurrency: [1]\n  input_len: 8\n  output_len: 8\n  slo: {ttft_ms: -1}\n",
            "ttft_ms must be a positive number",
        ),
        ("- single\n- kind: single\n", "single is listed twice"),
        ("[]\n", "expected a non-empty list of workloads"),
    ],
)
def test_bad_workloads_are_one_clear_line(tmp_path, entry, said):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, BASE + "workloads:" + ("\n" + entry if not entry.startswith("[") else " " + entry))
    assert said in str(err.value) and "workloads" in str(err.value)


def test_cli_refuses_a_bad_workload_with_one_line_and_exit_2(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        BASE + "workloads:\n  - kind: serve\n    concurrency: [many]\n    input_len: 8\n    output_len: 8\n"
    )
    done = cli("run", path, "--out", tmp_path / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "concurrency must be a whole number" in lines[0]
