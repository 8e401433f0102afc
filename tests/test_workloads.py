"""Workload kinds in params files (llmperf_nb/workloads.py): what is accepted, what is refused and how; then
params/cpu-serving.yaml end to end (batch sweeps, llama-server under AIPerf) through `llmperf-nb run`."""

import os
from pathlib import Path

import pytest

from llmperf_nb import params, results
from llmperf_nb.exceptions import ConfigError

from .conftest import ROOT, cli, needs_llama_cpp, start_cli

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
    assert serve["rounds"] == 4  # each level sends 4 x its concurrency requests unless given
    assert serve["slo"] == {"ttft_ms": 500.0, "tpot_ms": 50.0}


def test_a_cell_json_from_before_workloads_reads_as_single(make_cell):
    from llmperf_nb.cells import Cell

    old = make_cell().to_dict()
    del old["workload"]
    assert Cell.from_dict(old).workload == {"kind": "single"}


def test_an_engine_without_the_kind_says_so_in_its_row(make_cell):
    from llmperf_nb.engines import registry

    sweep = {"kind": "sweep", "batch_sizes": [1], "prompt_lengths": [8], "gen_len": 4}
    serve = {"kind": "serve", "concurrency": [1], "input_len": 8, "output_len": 4, "rounds": 1, "slo": {}}
    said = registry["mlc"].lacks_workload(make_cell(engine="mlc", workload=sweep))
    assert said.startswith("MLC LLM: the Relax VM driver has no batched API") and said.endswith("(workload sweep)")
    assert "no server of its own" in registry["transformers"].lacks_workload(
        make_cell(engine="transformers", workload=serve)
    )
    assert "ExLlamaV2: no OpenAI-compatible server of its own" in registry["exllamav2"].lacks_workload(
        make_cell(engine="exllamav2", workload=serve)
    )
    assert registry["exllamav2"].lacks_workload(make_cell(engine="exllamav2", workload=sweep)) is None
    assert registry["vllm"].lacks_workload(make_cell(engine="vllm", workload=sweep)) is None
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
            "serve: unknown key 'requests'; valid keys: kind, concurrency, input_len, output_len, rounds, slo",
        ),
        (
            "- kind: serve\n  concurrency: [1]\n  input_len: 8\n  output_len: 8\n  rounds: 0\n",
            "rounds must be a whole number from 1",
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


# --- the CPU params file end to end: sweeps and llama-server under AIPerf, through `llmperf-nb run` -------


PARAMS = ROOT / "params" / "cpu-serving.yaml"
SWEEP, SERVE = params.load(PARAMS).workloads
REPS = params.load(PARAMS).repetitions


def aiperf() -> str | None:
    """AIPerf's command: $AIPERF (make test sets it), else the Makefile's .venv-aiperf."""
    found = os.environ.get("AIPERF") or str(ROOT / ".venv-aiperf" / "bin" / "aiperf")
    return found if os.access(found, os.X_OK) else None


def persistent_cache() -> Path:
    """A cache that outlives the session: llama-server is built once per clone (15-25 min on 2 cores)."""
    return Path(os.environ.get("LLMPERF_NB_TEST_CACHE") or ROOT / ".cache" / "tests")


needs_aiperf = pytest.mark.skipif(
    aiperf() is None, reason="AIPerf is not installed: make setup-test makes .venv-aiperf"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("cpu-serving")
    # LLAMA_SERVER empty: the binary comes from the cache, or is built there (the path a fresh clone takes)
    env = {"AIPERF": aiperf(), "LLAMA_SERVER": ""}
    done = cli("run", PARAMS, "--out", out, "--cache-dir", persistent_cache(), "--no-progress", env=env, timeout=3600)
    return out, done, {d["cell_id"]: d for d in results.load_dir(out / "results")}


def llama_servers() -> list[str]:
    """Command lines of llama-server processes running now."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"llama-server"):
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


@pytest.mark.slow
@needs_llama_cpp
@needs_aiperf
class TestCpuServing:
    def test_the_run_succeeds(self, served):
        out, done, _ = served
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"report: {out / 'index.html'}"

    def test_llama_cpp_sweep_has_every_point_with_raw_repetitions(self, served):
        doc = served[2]["tiny-llama__cpu__llama_cpp__int4__sweep"]
        assert doc["status"] == "ok" and doc["schema_version"] == 2 and doc["workload"]["kind"] == "sweep"
        grid = [(b, n) for b in SWEEP["batch_sizes"] for n in SWEEP["prompt_lengths"]]
        assert [(p["batch_size"], p["prompt_tokens"]) for p in doc["points"]] == grid
        steps = SWEEP["gen_len"] - 1
        for p in doc["points"]:
            assert len(p["samples"]) == REPS and len(p["warmup_samples"]) == 1 and p["problems"] == []
            for s in p["samples"]:
                assert s["gen_tokens"] == SWEEP["gen_len"] and s["prompt_tokens"] == p["prompt_tokens"]
                assert len(s["token_latencies_s"]) == steps  # one per decode step of all sequences
                assert s["decode_tok_s"] == pytest.approx(p["batch_size"] * s["per_seq_decode_tok_s"])
                assert s["decode_tok_s"] == pytest.approx(
                    p["batch_size"] * steps / sum(s["token_latencies_s"]), rel=1e-3
                )
            assert p["decode_tok_s"]["n"] == REPS and p["peak_mem_bytes"] > 0

    def test_transformers_sweep_runs_or_says_why(self, served):
        doc = served[2]["tiny-llama__cpu__transformers__fp16__sweep"]
        try:
            import transformers  # noqa: F401
        except ImportError:
            assert doc["status"] == "skipped"
        else:
            assert doc["status"] == "ok", doc["error"]
            assert len(doc["points"]) == len(SWEEP["batch_sizes"]) * len(SWEEP["prompt_lengths"])
            assert "static cache of batch B" in doc["engine_version"]
            # on the CPU its repetitions decode identical tokens (on an H200 they did not: reports/serving-h200)
            assert [p["problems"] for p in doc["points"]] == [[]] * len(doc["points"])

    def test_llama_server_levels_hold_raw_requests_and_their_statistics(self, served):
        out, _, docs = served
        doc = docs["tiny-llama__cpu__llama_cpp__int4__serve"]
        assert doc["status"] == "ok", doc["error"]
        assert doc["engine_version"].startswith("llama-server ") and "llama.cpp 0c1e57098bba" in doc["engine_version"]
        assert [p["concurrency"] for p in doc["points"]] == SERVE["concurrency"]
        out_len = SERVE["output_len"]
        for p in doc["points"]:
            n = SERVE["rounds"] * p["concurrency"]
            assert len(p["requests"]) == n and p["completed"] == n and p["problems"] == []
            assert {r["output_tokens"] for r in p["requests"]} == {out_len}
            assert {r["stream_events"] for r in p["requests"]} == {out_len}  # counted from each streamed event
            assert all(
                len(r["itl_s"]) == out_len - 1 for r in p["requests"]
            )  # a gap per streamed token after the first
            assert {r["server_output_tokens"] for r in p["requests"]} == {out_len}  # the server's usage, per response
            assert {r["cached_prompt_tokens"] for r in p["requests"]} == {0}  # every prompt prefilled
            assert p["ttft_s"]["p50"] <= p["ttft_s"]["p90"] <= p["ttft_s"]["p99"] <= p["ttft_s"]["max"]
            assert p["output_tok_s"] == pytest.approx(n * out_len / p["duration_s"])
            assert 0 <= p["goodput_req_s"] <= p["requests_per_s"]
            # every token the server says it generated reached the client, and no more
            assert p["token_check"]["equal"] is True and p["token_check"]["server_counter"] == n * out_len
        assert doc["build"]["loadgen"]["tool"] == "aiperf" and doc["build"]["loadgen"]["version"] == "0.13.0"
        server_log = out / "results" / doc["cell_id"] / "server.log"
        assert "127.0.0.1" in server_log.read_text()

    def test_no_server_is_left_running(self, served):
        assert llama_servers() == []

    def test_report_has_sweep_and_serving_tables_and_the_engine_without_a_server(self, served):
        out, _, docs = served
        readme = (out / "README.md").read_text()
        assert "## Batch sweeps" in readme and "## Serving" in readme
        c4 = docs["tiny-llama__cpu__llama_cpp__int4__serve"]["points"][1]
        assert f"| tiny-llama | CPU | llama.cpp | int4 | 4 | {c4['output_tok_s']:.1f} |" in readme
        assert "HF transformers (tiny-llama, CPU, fp16, serve): not run: HF transformers: no server of its own" in readme
        html = (out / "index.html").read_text()
        assert "Pareto" in html and "data:image/png;base64," in html
        # no batch-1 cell in this run: the report starts at its sweeps, without empty batch-1 sections
        # (the headings are rendered by code cells whose folded source holds their text: look for the heading)
        assert ">Decode speed<" not in html and ">Roofline<" not in html and ">Batch sweeps<" in html

    def test_a_point_or_level_with_problems_is_marked_in_its_table_and_explained_below(self, served):
        import copy

        from llmperf_nb import throughput

        docs = served[2]
        sweep = copy.deepcopy(docs["tiny-llama__cpu__llama_cpp__int4__sweep"])
        sweep["points"][0]["problems"] = ["the 3 repetitions decoded 2 different token sequences"]
        table = throughput.sweep_markdown([sweep])
        rows = [line for line in table.splitlines() if line.startswith("| tiny-llama")]
        assert "✗" in rows[0] and not any("✗" in r for r in rows[1:])
        n = len(sweep["points"])
        assert (f"- llama.cpp, int4 (tiny-llama, CPU): the 3 repetitions decoded 2 different token sequences "
                f"(1 of {n} points)") in table
        serve = copy.deepcopy(docs["tiny-llama__cpu__llama_cpp__int4__serve"])
        serve["points"][1]["problems"] = ["1 of 8 requests failed: ServerDisconnectedError('Server disconnected')"]
        table = throughput.latency_markdown([serve])
        assert f"| int4 | 4 | {serve['points'][1]['output_tok_s']:.1f} ✗ |" in table
        assert "(1 of 2 levels)" in table

    def test_compare_matches_points(self, served):
        out = served[0]
        done = cli("compare", out / "results", out / "results")
        assert done.returncode == 0, done.stderr
        assert "tiny-llama__cpu__llama_cpp__int4__serve [c=4]" in done.stdout
        assert "tiny-llama__cpu__llama_cpp__int4__sweep [B=4 P=64]" in done.stdout


@pytest.mark.slow
@needs_llama_cpp
def test_a_failing_load_generator_fails_the_cell_and_the_server_is_stopped(tmp_path):
    """The generator exits 1 at once (AIPERF=/bin/false): the cell fails with that, server.log stays beside the
    result, and no llama-server is left running."""
    path = tmp_path / "p.yaml"
    path.write_text(
        BASE.replace("engines: [llama_cpp, {name: transformers, quantization: fp16}]", "engines: [llama_cpp]")
        + "warmup: 0\ntimeout_s: 3600\nworkloads:\n  - kind: serve\n    concurrency: [2]\n"
        "    input_len: 8\n    output_len: 4\n"
    )
    done = cli(
        "run",
        path,
        "--out",
        tmp_path / "out",
        "--cache-dir",
        persistent_cache(),
        "--no-progress",
        env={"AIPERF": "/bin/false", "LLAMA_SERVER": ""},
        timeout=3600,
    )
    assert done.returncode == 1, done.stderr  # a failed cell: recorded, the report written, exit code 1
    assert "cells: 0 measured, 0 reused, 1 failed" in done.stdout
    doc = results.load(tmp_path / "out" / "results" / "tiny-llama__cpu__llama_cpp__int4__serve" / "result.json")
    assert doc["status"] == "failed" and doc["error"]["step"] == "benchmark"
    assert doc["error"]["message"].startswith("/bin/false failed (exit code 1)")
    log = tmp_path / "out" / "results" / doc["cell_id"] / "server.log"
    assert "listening on http://127.0.0.1:" in log.read_text()  # it came up, and only there
    assert llama_servers() == []


def test_roofline_at_batch_b_reads_the_weights_once_per_step_and_every_sequences_kv_cache():
    from llmperf_nb import models, roofline

    doc = {"model": "Llama-2-7b-chat-hf", "gpu": {"name": "h200", "count": 1}, "weights": {"format": "GGUF Q4_0"}}
    spec = models.get_model("Llama-2-7b-chat-hf")
    weights = (spec.n_params_per_token - 32000 * 4096) * 18 / 32 + 32000 * 4096 * 18 / 32  # Q4_0, lm_head too
    kv = 2 * 32 * 32 * 128 * 2  # K and V, 32 layers, 32 KV heads of 128, fp16: 0.5 MiB a token
    for batch in (1, 64):
        step = weights + batch * kv * (512 + 256 / 2)
        assert roofline.batch_decode_limit(doc, batch, 512, 256) == pytest.approx(batch * 4800e9 / step)
    assert round(roofline.batch_decode_limit(doc, 64, 512, 256)) == 12195  # docs/statistics.md's example
    assert roofline.batch_decode_limit({**doc, "gpu": {"name": "cpu", "count": 1}}, 4, 8, 16) is None


def _long_serve(tmp_path, timeout_s: int) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        BASE.replace("engines: [llama_cpp, {name: transformers, quantization: fp16}]", "engines: [llama_cpp]")
        + f"warmup: 0\ntimeout_s: {timeout_s}\nworkloads:\n  - kind: serve\n    concurrency: [2]\n"
        "    input_len: 8\n    output_len: 64\n    rounds: 500\n"
    )
    return path


@pytest.mark.slow
@needs_llama_cpp
@needs_aiperf
def test_ctrl_c_during_a_level_stops_the_server_and_marks_the_cell(tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    env = {"AIPERF": aiperf(), "LLAMA_SERVER": ""}
    args = ["run", _long_serve(tmp_path, 3600), "--out", out, "--cache-dir", persistent_cache(), "--no-progress"]
    proc = start_cli(*args, env=env)
    deadline = time.monotonic() + 600
    cell = out / "results" / "tiny-llama__cpu__llama_cpp__int4__serve"
    while not (cell / "loadgen" / "c2").exists() and time.monotonic() < deadline:  # AIPerf is loading the server
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
    assert llama_servers(), "the server was not running during the level"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    assert llama_servers() == []
    doc = results.load(cell / "result.json")
    assert doc["status"] == "failed" and doc["error"]["message"].startswith("interrupted")


@pytest.mark.slow
@needs_llama_cpp
@needs_aiperf
def test_a_level_past_the_time_limit_fails_the_cell_and_the_server_is_stopped(tmp_path):
    done = cli(
        "run",
        _long_serve(tmp_path, 40),
        "--out",
        tmp_path / "out",
        "--cache-dir",
        persistent_cache(),
        "--no-progress",
        env={"AIPERF": aiperf(), "LLAMA_SERVER": ""},
        timeout=600,
    )
    assert done.returncode == 1, done.stderr
    doc = results.load(tmp_path / "out" / "results" / "tiny-llama__cpu__llama_cpp__int4__serve" / "result.json")
    assert doc["status"] == "failed" and "time limit" in doc["error"]["message"]
    assert llama_servers() == []
