"""The quickstart end to end, as a user runs it: papermill notebooks, a real llama.cpp, the report."""

import json
import os
import signal
import time

import pytest

from llmperf_nb import report, results

from .conftest import ROOT, cli, needs_llama_cpp, start_cli

pytestmark = [pytest.mark.slow, needs_llama_cpp]

LLAMA_IDS = [1, 1724, 338, 278, 6593, 310, 2834, 29973]
SECRET = "hf_" + "notarealtoken" * 3  # built at run time: the source holds no token-like string


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("quickstart")
    done = cli("run", ROOT / "params" / "quickstart.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress",
               env={"HF_TOKEN": SECRET})
    return out, done


def test_run_succeeds_and_prints_the_report_path(quickstart):
    out, done = quickstart
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"report: {out / 'index.html'}"


def llama_doc(out):
    return next(d for d in results.load_dir(out / "results") if d["engine"] == "llama_cpp")


def test_result_is_a_real_llama_cpp_run(quickstart):
    out, _ = quickstart
    doc = llama_doc(out)
    assert doc["status"] == "ok" and doc["engine"] == "llama_cpp"
    assert doc["prompt_token_ids"] == LLAMA_IDS
    assert doc["prompt_tokens"] == {"requested": 8, "actual": 8}
    assert doc["gen_tokens"] == {"requested": 256, "actual": 256}
    assert doc["repetitions"] == {"requested": 5, "actual": 5, "warmup": 1}
    assert all(len(s["token_latencies_s"]) == 255 for s in doc["samples"])
    assert doc["decode_tok_s"]["mean"] > 0 and doc["peak_mem_kind"] == "process_max_rss"
    assert doc["weights"]["synthetic"] is True and doc["weights"]["format"] == "GGUF Q4_0"
    assert doc["engine_version"].startswith("llama-cpp-python 0.3.36")
    cell_dir = out / "results" / doc["cell_id"]
    for name in ("01_setup.ipynb", "02_compile.ipynb", "03_benchmark.ipynb", "raw.json", "benchmark.log"):
        assert (cell_dir / name).exists(), name


def test_html_is_self_contained_and_shows_the_result_numbers(quickstart):
    out, _ = quickstart
    doc = llama_doc(out)
    html = (out / "index.html").read_text()
    assert report.EXTERNAL.search(html) is None
    assert "data:image/png;base64," in html  # plots embedded
    assert "<details class=\"llmperf-code\">" in html  # code folded away
    shown = f"{doc['decode_tok_s']['mean']:.2f} ± {doc['decode_tok_s']['std']:.2f}"
    assert shown in html
    for section in ("Decode speed", "Roofline", "Stability", "Per-token latency"):  # the batch-1 sections
        assert f">{section}<" in html, section
    readme = (out / "README.md").read_text()
    assert f"| tiny-llama | CPU | int4 | synthetic | {shown}" in readme  # a ⚠ may follow: CPU runs are noisy


def test_transformers_row_runs_or_says_why(quickstart):
    out, _ = quickstart
    hf = next(d for d in results.load_dir(out / "results") if d["engine"] == "transformers")
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        assert hf["status"] == "skipped" and "not installed" in hf["error"]["message"]
        assert "not run: HF transformers is not installed here" in (out / "README.md").read_text()
    else:
        assert hf["status"] == "ok" and hf["gen_tokens"]["actual"] == 256


def test_no_secret_in_any_file(quickstart):
    out, _ = quickstart
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f


def test_second_run_reuses_and_report_rebuilds_from_results_alone(quickstart, cache_dir):
    out, _ = quickstart
    before = (out / "results").glob("*/result.json")
    before = {p: p.read_text() for p in before}
    start = time.monotonic()
    again = cli("run", ROOT / "params" / "quickstart.yaml", "--out", out, "--cache-dir", cache_dir, "--no-progress")
    assert again.returncode == 0
    # the llama.cpp cell is reused; the HF cell too where torch is installed, else it is tried again
    assert "1 reused" in again.stdout or "2 reused" in again.stdout
    llama = next(p for p in before if "llama_cpp" in str(p))
    assert llama.read_text() == before[llama]
    assert time.monotonic() - start < 120
    (out / "index.html").unlink()
    (out / "README.md").unlink()
    rebuilt = cli("report", out / "results")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (out / "index.html").exists() and (out / "README.md").exists()


def test_failing_cell_is_recorded_and_matrix_goes_on(tmp_path, cache_dir):
    # n_batch 1 cannot take the 8-token prompt in one llama_decode: a real engine failure
    p = tmp_path / "m.yaml"
    p.write_text("name: m\nmodels: [tiny-llama]\ngpus: [cpu]\nengines: [{name: llama_cpp, n_batch: 1}, llama_cpp]\n"
                 "gen_len: 16\nrepetitions: 2\n")
    done = cli("run", p, "--out", tmp_path / "out", "--cache-dir", cache_dir, "--no-progress")
    assert done.returncode == 1 and "1 failed" in done.stdout
    docs = {d["cell_id"]: d for d in results.load_dir(tmp_path / "out" / "results")}
    bad = docs["tiny-llama__cpu__llama_cpp-1__int4"]
    assert bad["status"] == "failed" and bad["error"]["step"] == "benchmark"
    assert "signal SIGABRT" in bad["error"]["message"] and "GGML_ASSERT" in bad["error"]["message"]
    assert bad["error"]["log_tail"]
    assert docs["tiny-llama__cpu__llama_cpp__int4"]["status"] == "ok"
    html = (tmp_path / "out" / "index.html").read_text()
    assert "GGML_ASSERT" in html
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "failed: " in readme
    # the failed step's traceback names source files, but not where this repo lies on this machine
    executed = (tmp_path / "out" / "results" / "tiny-llama__cpu__llama_cpp-1__int4" / "03_benchmark.ipynb").read_text()
    assert "llmperf_nb/" in executed and str(ROOT) + "/" not in executed


def test_interrupted_run_keeps_finished_cells(tmp_path, cache_dir):
    p = tmp_path / "m.yaml"
    p.write_text("name: m\nmodels: [tiny-llama]\ngpus: [cpu]\n"
                 "engines: [llama_cpp, {name: llama_cpp, threads: 1}]\ngen_len: 64\nrepetitions: 2\n")
    out = tmp_path / "out"
    proc = start_cli("run", p, "--out", out, "--cache-dir", cache_dir, "--no-progress")
    first = out / "results" / "tiny-llama__cpu__llama_cpp__int4" / "result.json"
    deadline = time.monotonic() + 300
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "finished cells are kept" in err
    assert json.loads(first.read_text())["status"] == "ok"
    again = cli("run", p, "--out", out, "--cache-dir", cache_dir, "--no-progress")
    assert again.returncode == 0 and "1 measured, 1 reused" in again.stdout
    assert not list(out.rglob("*.tmp"))
    assert os.path.exists(out / "index.html")
