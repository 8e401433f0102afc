"""llama.cpp parsers on real captured output (tests/data/logs; SOURCES.md and README.md say where
each file comes from)."""

import json

import pytest

from llmperf_nb.engines import registry
from llmperf_nb.exceptions import ParseError
from llmperf_nb.importers import llama_cpp as p

from .conftest import LOGS

PUBLIC = LOGS / "public" / "llamacpp"


def read(name):
    return (PUBLIC / name).read_text()


def test_bench_json_keeps_every_repetition():
    m = p.parse_bench_json(read("llama-bench-readme-2025-04-o-json.txt"))
    assert [s["decode_tok_s"] for s in m.samples] == [119.03, 120.178, 119.43, 118.307, 117.464]
    assert [s["prefill_tok_s"] for s in m.samples] == [6863.1, 7147.55, 7136.37, 7115.79, 7237.21]
    assert {s["gen_tokens"] for s in m.samples} == {128} and {s["prompt_tokens"] for s in m.samples} == {512}
    assert m.engine_version == "llama.cpp build 5163 (8cf427ff)"
    assert m.build["gpu_info"] == "NVIDIA GeForce RTX 4080"


def test_bench_jsonl_equals_json_of_same_release():
    m = p.parse_bench_jsonl(read("llama-bench-readme-2023-09-o-jsonl.txt"))
    j = p.parse_bench_json(read("llama-bench-readme-2023-09-o-json.txt"))
    assert m.samples == j.samples and len(m.samples) == 5


@pytest.mark.parametrize(
    "name, decode, prefill",
    [("llama-bench-readme-2023-09-o-md.txt", 131.42, 2368.80),  # old test names "tg 128"
     ("chraac-pr7-llama-bench-md-new-test-names.txt", 0.70, 18.46)],  # new names "tg128"
)
def test_bench_md_mean_and_note(name, decode, prefill):
    m = p.parse_bench_md(read(name))
    assert len(m.samples) == 1
    assert m.samples[0]["decode_tok_s"] == decode and m.samples[0]["prefill_tok_s"] == prefill
    assert any("mean ± std only" in n for n in m.notes)


def test_bench_csv_with_misaligned_rows_is_refused():
    # the 2023 README's csv example has 27 values under a 26-column header
    with pytest.raises(ParseError, match="row 1 does not have the header's 26 columns"):
        p.parse_bench_csv(read("llama-bench-readme-2023-09-o-csv.txt"))


@pytest.mark.parametrize(
    "name, prompt, gen, decode",
    [
        ("readme-m2-ultra-13b-q4_0-main-llama_print_timings.txt", 19, 400, 16.28),
        ("issue34-llama_perf-i5-13400f.txt", 9, 128, 57.04),
        ("pr17382-common_perf_print-newest.txt", 8, 512, 105.30),
        ("pr1773-llama_print_timings-comma-decimal-locale.txt", 5, 37, 9.85),
        ("issue34-old-timings-no-tps-7b-q4.txt", 353, 100, 3.94),
    ],
)
def test_timing_lines_of_every_era(name, prompt, gen, decode):
    [s] = p.parse_timings(read(name)).samples
    assert s["prompt_tokens"] == prompt and s["gen_tokens"] == gen
    assert s["decode_tok_s"] == pytest.approx(decode, abs=0.01)


def test_timings_refuse_text_without_timings():
    with pytest.raises(ParseError, match="eval time"):
        p.parse_timings("hello\nworld\n")


def test_engine_recognises_format_by_itself():
    engine = registry["llama_cpp"]
    assert engine.parse_log(read("llama-bench-readme-2025-04-o-json.txt")).build["tool"] == "llama-bench"
    assert engine.parse_log(read("pr17382-common_perf_print-newest.txt")).build["tool"] == "completion timings"
    with pytest.raises(ParseError, match="no llama.cpp output recognised"):
        engine.parse_log("nothing to see")


OWN = LOGS / "llama_cpp"  # captured here from the llama.cpp vendored in llama-cpp-python 0.3.36


def test_own_llama_bench_json_of_the_pinned_build():
    m = p.parse_bench_json((OWN / "llama-bench-tiny.json.txt").read_text())
    assert m.engine_version == "llama.cpp build 1 (0c1e570)"
    assert [s["decode_tok_s"] for s in m.samples] == [8.47788, 91.8719, 64.6527]
    assert {(s["prompt_tokens"], s["gen_tokens"]) for s in m.samples} == {(8, 32)}


def test_own_completion_log_with_time_prefixed_lines():
    text = (OWN / "llama-completion-tiny.stderr.txt").read_text(errors="replace")
    [s] = p.parse_timings(text).samples
    assert (s["prompt_tokens"], s["gen_tokens"]) == (8, 64)  # -n 64: 63 eval runs after the prompt
    assert s["decode_tok_s"] == pytest.approx(63 / 2.41914)


def test_import_cli_writes_a_valid_result(tmp_path):
    from llmperf_nb import results

    from .conftest import cli

    done = cli("import", "--engine", "llama_cpp", "--model", "tiny-llama", OWN / "llama-bench-tiny.jsonl.txt")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    results.validate(doc)
    assert doc["status"] == "ok" and doc["weights"]["source"] == "imported"
    assert doc["gen_tokens"]["actual"] == 32 and len(doc["samples"]) == 3
    bad = cli("import", "--engine", "llama_cpp", OWN / "README.md")
    assert bad.returncode == 1 and "no llama.cpp output recognised" in bad.stderr and "Traceback" not in bad.stderr
