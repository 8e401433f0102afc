"""AIPerf's exported records (llmperf_nb/loadgen.py) read into a serve point, on records captured on an H200."""

import json
from pathlib import Path

import jsonschema
import pytest

from llmperf_nb import loadgen, points
from llmperf_nb.engines import registry

DATA = Path(__file__).parent / "data" / "aiperf"
SCHEMA = Path(loadgen.__file__).parent / "schema" / "result.schema.json"
WORKLOAD = {"kind": "serve", "concurrency": [64], "input_len": 512, "output_len": 256, "rounds": 4,
            "slo": {"ttft_ms": 500, "tpot_ms": 50}}


def test_the_level_command_opens_a_connection_per_request(tmp_path, monkeypatch):
    monkeypatch.setenv("AIPERF", "/opt/aiperf")  # the command is built, not run
    argv = loadgen.argv("http://127.0.0.1:1", "m", tmp_path, 4, 16, 512, 256, tmp_path, 0)
    assert argv[argv.index("--connection-reuse-strategy") + 1] == "never"


def test_a_failed_request_is_kept_in_the_point_and_marks_the_level():
    records, duration = loadgen.parse(DATA)
    assert [r.get("error") for r in records] == [None, None, "ServerDisconnectedError('Server disconnected')"]
    failed = records[2]
    assert failed["ttft_s"] is None and failed["e2e_s"] is None and failed["output_tokens"] == 0
    assert [r["output_tokens"] for r in records[:2]] == [256, 256]
    assert duration > 8  # the two completed requests took about 8.6 s each

    point = points.summarize("serve", {"concurrency": 64, "requests": records, "duration_s": duration,
                                       "server_tokens": None}, WORKLOAD)
    assert point["completed"] == 2 and point["errored"] == 1
    assert point["problems"] == ["1 of 3 requests failed: ServerDisconnectedError('Server disconnected')"]
    assert point["token_check"]["client_streamed"] == 512
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(point, {**schema["$defs"]["serve_point"], "$defs": schema["$defs"]})


def test_the_version_of_an_aiperf_behind_a_wrapper_is_what_it_prints(tmp_path, monkeypatch):
    # the GPU machine runs AIPerf through a shell wrapper (no venv metadata beside it): its --version answers
    wrapper = tmp_path / "aiperf"
    wrapper.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 0.13.0\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("AIPERF", str(wrapper))
    loadgen.version.cache_clear()
    try:
        assert loadgen.version() == "0.13.0"
        wrapper.write_text("#!/bin/sh\nexit 1\n")
        loadgen.version.cache_clear()
        assert loadgen.version() == "unknown version"
    finally:
        loadgen.version.cache_clear()


def test_a_server_that_died_at_start_is_named_by_its_cause_in_the_report():
    # the result of a vLLM serve cell on an H200 (2026-11-30), written when the message's first line gave no cause
    from llmperf_nb import throughput

    doc = json.loads((Path(__file__).parent / "data" / "results" / "vllm-serve-died-at-start.json").read_text())
    [line] = throughput.not_run_lines([doc])
    assert line.endswith("ends: ModuleNotFoundError: No module named 'uvicorn'"), line
    assert "vLLM (Llama2-7B, H200 141GB, int4, serve): failed: the server exited (code 1)" in line


def test_a_server_that_exits_before_it_is_ready_fails_with_its_cause_first(tmp_path):
    # a real process that dies at import, as vLLM's server did without uvicorn
    import sys
    import time

    import pytest

    from llmperf_nb import process, serving
    from llmperf_nb.exceptions import EngineError

    log = tmp_path / "server.log"
    with process.background([sys.executable, "-c", "import uvicorn_is_not_here"], log) as server:
        with pytest.raises(EngineError) as caught:
            serving.wait_healthy(server, f"http://127.0.0.1:{serving.free_port()}", log, time.monotonic() + 60)
    first = str(caught.value).splitlines()[0]
    assert first == ("the server exited (code 1) before it was ready: ModuleNotFoundError: No module named "
                     "'uvicorn_is_not_here'; its log (server.log) ends:")


def test_a_given_llama_server_is_one_build_with_the_bindings_when_it_loads_their_libllama(tmp_path, monkeypatch):
    """In the Docker images llama-server is in /usr/local/bin and loads /usr/local/lib/libllama.so.0, the library the
    bindings load (LLAMA_CPP_LIB_PATH): ldd says so (captured in the CPU image). Elsewhere it is built elsewhere."""
    from llmperf_nb.engines import llama_server
    from llmperf_nb.process import Completed

    ldd = (Path(__file__).parent / "data" / "logs" / "llama_cpp" / "ldd-llama-server-docker-cpu.txt").read_text()
    server = tmp_path / "bin" / "llama-server"
    server.parent.mkdir()
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    monkeypatch.setenv("LLAMA_SERVER", str(server))
    asked = []

    def run(argv, **kw):
        asked.append(argv[0])
        return Completed(list(argv), 0, ldd, 0.0)

    found = lambda: llama_server._find_or_build(tmp_path, "cpu", run)["source"]  # noqa: E731
    one, elsewhere = "LLAMA_SERVER, on the libllama the bindings load (one build)", "LLAMA_SERVER (built elsewhere)"
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", "/usr/local/lib")
    assert found() == one and asked == ["ldd"]
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(tmp_path / "other"))
    assert found() == elsewhere
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(server.parent))  # beside it (scripts/gpu-run.sh): no ldd asked
    asked.clear()
    assert found() == one and asked == []
    monkeypatch.delenv("LLAMA_CPP_LIB_PATH")
    assert found() == elsewhere


def test_whole_number_columns_stay_whole_beside_a_cell_that_failed():
    """The published serving-h200 cells beside vLLM's server that died at start on 2026-11-30 (a row of gaps).
    pandas alone makes the concurrency column float ("c 1.00" on the page); throughput.frame keeps it whole."""
    from llmperf_nb import results, throughput

    docs = results.load_dir(Path(__file__).parents[1] / "reports" / "serving-h200" / "results")
    docs.append(json.loads((Path(__file__).parent / "data" / "results" / "vllm-serve-died-at-start.json").read_text()))
    rows = throughput.serve_rows(docs)
    assert any(r["status"] != "ok" for r in rows)
    import pandas as pd

    assert pd.DataFrame(rows)["concurrency"].dtype == "float64"  # what the page showed before
    serving = throughput.frame(rows)
    assert str(serving["concurrency"].dtype) == "Int64" and str(serving["requests"].dtype) == "Int64"
    assert serving["concurrency"].dropna().tolist() == [r["concurrency"] for r in rows if r["status"] == "ok"]
    assert serving["output_tok_s"].dtype == "float64"  # measured figures stay as they are


def test_without_aiperf_a_serve_cell_fails_before_its_server_starts_and_says_where_to_get_it(make_cell, tmp_path,
                                                                                         monkeypatch):
    from llmperf_nb import process, serving
    from llmperf_nb.exceptions import EngineError

    monkeypatch.delenv("AIPERF", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no aiperf on it
    monkeypatch.delenv("LLMPERF_NB_IMAGE", raising=False)

    def no_server(*args, **kwargs):
        raise AssertionError("a server was started")

    monkeypatch.setattr(process, "background", no_server)
    cell = make_cell("tiny-llama", "cpu", "llama_cpp", workload={"kind": "serve", "concurrency": [1],
                                                                 "input_len": 8, "output_len": 4})
    with pytest.raises(EngineError, match=r"AIPerf 0\.13\.0: install it in its own environment"):
        serving.measure(cell, None, None, tmp_path, tmp_path, {})
    monkeypatch.setenv("LLMPERF_NB_IMAGE", "llmperf-nb/llama_cpp:cu121-0@sha256:1")  # inside a container
    with pytest.raises(EngineError, match=r"and this image has none \(llmperf-nb/llama_cpp:cu121-0@sha256:1\): run"):
        serving.measure(cell, None, None, tmp_path, tmp_path, {})


STREAM = DATA / "llama-server-cpu"


def test_the_streamed_events_give_the_same_ttft_and_gaps_as_aiperf_where_every_event_has_text():
    records, _ = loadgen.parse(STREAM)
    lines = [json.loads(t) for t in (STREAM / loadgen.RECORDS_FILE).read_text().splitlines()]
    assert len(records) == 2
    for r, line in zip(records, lines, strict=True):
        m = line["metrics"]
        assert r["output_tokens"] == r["stream_events"] == r["server_output_tokens"] == 16  # the closing event has none
    # asked with timings_per_token, every event carries the server's running count: 1, 2, ..., 16, and the closing 16
    for line in (STREAM / loadgen.STREAM_FILE).read_text().splitlines():
        events = [json.loads(p["value"]) for r in json.loads(line)["responses"] for p in r.get("packets") or []
                  if p.get("name") == "data" and p["value"].strip() != "[DONE]"]
        assert [e["timings"]["predicted_n"] for e in events] == [*range(1, 17), 16]
        assert r["ttft_s"] == pytest.approx(m["time_to_first_token"]["value"] / 1e3, abs=1e-9)
        assert r["itl_s"] == pytest.approx([v / 1e3 for v in m["inter_chunk_latency"]["value"]], abs=1e-9)


def test_an_event_counts_its_token_ids_else_the_growth_of_the_servers_count_else_one_token_if_it_has_text():
    # the forms of vLLM 0.25's streamed completion events (vllm/entrypoints/openai/completion/serving.py,
    # return_token_ids): a token whose bytes end inside a UTF-8 character comes with empty text; and of
    # llama-server's with timings_per_token (its server-task.cpp): the tokens generated so far in each event
    def event(choices, **rest):
        return {"name": "data", "value": json.dumps({"object": "text_completion", "choices": choices, **rest})}

    after = loadgen._tokens_after
    assert after(event([{"index": 0, "text": "", "token_ids": [31739], "finish_reason": None}]), 5) == 6
    assert after(event([{"index": 0, "text": " ab", "token_ids": [263, 29890]}]), 0) == 2
    assert after(event([], usage={"completion_tokens": 256}), 7) == 7  # the closing usage-only event
    assert after(event([{"index": 0, "text": "", "finish_reason": "length"}]), 256) == 256  # llama-server's
    assert after(event([{"index": 0, "text": "x"}]), 0) == 1
    assert after({"name": "data", "value": "[DONE]"}, 3) == 3
    # llama-server sends a held-back byte token with the next token's text: one event, two tokens
    assert after(event([{"index": 0, "text": "\ufffd\u0441\u0442\u0432\u0443"}], timings={"predicted_n": 3}), 1) == 3
    assert after(event([{"index": 0, "text": "", "finish_reason": "length"}], timings={"predicted_n": 256}), 256) == 256


def test_llama_server_holds_a_byte_token_back_and_its_running_count_puts_it_where_it_was_sent():
    # the H200 capture (tests/data/aiperf/README.md), asked without timings_per_token: 256 tokens generated, as
    # the server's usage says, in 255 events with text, one of them a byte token's replacement character and
    # the next token's text together; only the closing event carries the server's count (its final timings)
    short = DATA / "llama-server-h200-fp16"
    events = [json.loads(p["value"]) for r in json.loads((short / loadgen.STREAM_FILE).read_text())["responses"]
              for p in r.get("packets") or [] if p.get("name") == "data" and p["value"].strip() != "[DONE]"]
    assert sum(1 for e in events if e["choices"][0]["text"]) == 255
    assert events[1]["choices"][0]["text"].startswith("\ufffd") and len(events[1]["choices"][0]["text"]) > 1
    assert [i for i, e in enumerate(events) if "timings" in e] == [255] and events[255]["timings"]["predicted_n"] == 256
    # so the count comes out right, the held-back token counted at the closing event, late by the rest of the
    # stream (1.3 s here); with the running count in every event it is counted at the event that sent it
    [record], _ = loadgen.parse(short)
    assert record["output_tokens"] == record["server_output_tokens"] == 256 and record["stream_events"] == 256
    assert registry["llama_cpp"].server_request_extras == {"timings_per_token": "true"}


def test_vllm_asks_its_server_to_list_the_token_ids_of_each_event(tmp_path, monkeypatch):
    from llmperf_nb.engines import registry

    monkeypatch.setenv("AIPERF", "/opt/aiperf")
    for name, extra in (("vllm", ["return_token_ids:true"]), ("llama_cpp", ["timings_per_token:true"])):
        argv = loadgen.argv("http://127.0.0.1:1", "m", tmp_path, 4, 16, 512, 256, tmp_path, 0,
                            registry[name].server_request_extras)
        given = [argv[i + 1] for i, a in enumerate(argv) if a == "--extra-inputs"]
        assert given == ["ignore_eos:true", "min_tokens:256", *extra]
        assert argv[argv.index("--export-level") + 1] == "raw"
