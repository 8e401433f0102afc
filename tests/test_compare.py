"""``llmperf-nb compare``: matching cells across two results folders, Welch's t-test, exit codes.

These are unit tests of the comparison's arithmetic and of the command on result documents constructed
here (results.build from a Cell and a Measurement with chosen per-repetition samples), not measurements.
The p-values are checked against scipy directly.
"""

from pathlib import Path

import pytest
from scipy import stats as sps

from llmperf_nb import compare, report, results
from llmperf_nb.exceptions import SchemaError
from llmperf_nb.measurement import Measurement

from .conftest import cli, new_cell

A = [100.0, 101.0, 99.0, 100.0, 100.0]
SLOWER = [90.0, 91.0, 89.0, 90.0, 90.0]
NOISE = [100.01, 100.99, 99.02, 99.98, 100.0]  # A plus a little noise


def make_doc(decode, *, model="Llama-2-7b-chat-hf", engine="llama_cpp", status="ok", prefill=None):
    cell = new_cell(model, "h200", engine, prompt="p", repetitions=len(decode), warmup=0)
    prefill = prefill or [5000.0 + i for i in range(len(decode))]
    samples = [{"prompt_tokens": 8, "gen_tokens": 256, "decode_tok_s": d, "prefill_tok_s": p}
               for d, p in zip(decode, prefill, strict=True)]
    m = Measurement(engine_version="test", prompt_token_ids=list(range(8)), samples=samples)
    error = None if status == "ok" else {"message": "it broke", "step": "benchmark", "log_tail": ""}
    return results.build(cell=cell, status=status, started_at=results.now(), engine_label=engine,
                         weights={"source": "synthetic", "synthetic": True, "format": "GGUF Q4_0", "bytes": None},
                         hardware={"gpu": {"catalog_name": "h200"}}, measurement=m if status == "ok" else None,
                         error=error)


def write_dir(path: Path, *docs) -> Path:
    for d in docs:
        results.write(d, path / "results" / d["cell_id"] / results.RESULT_NAME)
    return path / "results"


def test_a_clear_slowdown_is_a_significant_regression():
    cmp = compare.compare_docs([make_doc(A)], [make_doc(SLOWER)])
    [c] = cmp.cells
    ref = sps.ttest_ind(A, SLOWER, equal_var=False)
    assert c.decode.p == pytest.approx(ref.pvalue) and c.decode.t == pytest.approx(ref.statistic)
    assert c.decode.p < 1e-6
    assert c.decode.change == pytest.approx((90.0 - 100.0) / 100.0)
    assert c.prefill.change == pytest.approx(0.0)
    assert c.regression and c.verdict == "REGRESSION"
    assert cmp.exit_code() == compare.REGRESSION_EXIT == 3


def test_noise_is_not_significant():
    cmp = compare.compare_docs([make_doc(A)], [make_doc(NOISE)])
    [c] = cmp.cells
    assert c.decode.p == pytest.approx(sps.ttest_ind(A, NOISE, equal_var=False).pvalue)
    assert c.decode.p > 0.05
    assert c.verdict == "no significant change" and not c.regression and cmp.exit_code() == 0


def test_faster_is_not_a_regression_and_the_threshold_decides_small_slowdowns():
    faster = [v * 1.1 for v in A]
    assert compare.compare_docs([make_doc(A)], [make_doc(faster)]).cells[0].verdict == "faster"
    slightly = [97.0, 98.0, 96.0, 97.0, 97.0]  # 3 % slower, clearly significant
    within = compare.compare_docs([make_doc(A)], [make_doc(slightly)], threshold=0.05).cells[0]
    assert within.decode.p < 0.05 and not within.regression and within.verdict.startswith("significant, within")
    assert compare.compare_docs([make_doc(A)], [make_doc(slightly)], threshold=0.02).cells[0].regression
    # a stricter alpha than the p-value: not significant, so not a regression
    p = sps.ttest_ind(A, slightly, equal_var=False).pvalue
    assert not compare.compare_docs([make_doc(A)], [make_doc(slightly)], threshold=0.02, alpha=p / 2).cells[0].regression


def test_too_few_repetitions_are_not_testable():
    [c] = compare.compare_docs([make_doc([100.0])], [make_doc([50.0, 51.0])]).cells
    assert c.decode.p is None and c.verdict.startswith("not testable") and not c.regression
    assert c.decode.change == pytest.approx(-0.495)
    [c] = compare.compare_docs([make_doc([100.0, 100.0])], [make_doc([50.0, 50.0])]).cells
    assert c.decode.p is None and "no spread" in c.verdict


def test_cells_only_on_one_side_and_failed_cells_are_listed():
    a = [make_doc(A), make_doc(A, engine="vllm"), make_doc(A, model="Llama-2-13b-chat-hf")]
    b = [make_doc(A), make_doc(A, engine="vllm", status="failed"), make_doc(A, engine="mlc")]
    cmp = compare.compare_docs(a, b)
    assert cmp.only_a == ["Llama-2-13b-chat-hf__h200__llama_cpp__int4"]
    assert cmp.only_b == ["Llama-2-7b-chat-hf__h200__mlc__int4"]
    failed = next(c for c in cmp.cells if c.cell_id.endswith("vllm__int4"))
    assert failed.decode is None and failed.verdict == "not compared: ok in A, failed in B"
    out = compare.text(cmp)
    assert "only in A: Llama-2-13b-chat-hf__h200__llama_cpp__int4" in out
    assert out.rstrip().splitlines()[-1] == ("0 regressions; 2 cells in both; 1 only in A, 1 only in B; "
                                              "1 failed in B: Llama-2-7b-chat-hf__h200__vllm__int4")
    assert cmp.exit_code() == compare.INCOMPLETE_EXIT


def test_cli_exits_3_on_a_regression_and_writes_self_contained_html(tmp_path):
    a = write_dir(tmp_path / "a", make_doc(A), make_doc(A, engine="vllm"))
    b = write_dir(tmp_path / "b", make_doc(SLOWER), make_doc(NOISE, engine="vllm"))
    page = tmp_path / "cmp" / "compare.html"
    done = cli("compare", a, b, "--html", page, env={"HOME": str(tmp_path)})
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    row = next(line for line in lines if line.startswith("Llama-2-7b-chat-hf__h200__llama_cpp__int4"))
    assert "-10.0%" in row and row.endswith("REGRESSION")
    assert next(line for line in lines if "vllm" in line).endswith("no significant change")
    assert "1 regression; 2 cells in both" in done.stdout
    html = page.read_text()
    assert report.EXTERNAL.search(html) is None
    assert '<tr class="regression">' in html and "llama_cpp" in html
    assert "<code>~/a/results</code>" in html and str(tmp_path) not in html  # the folders, from named roots


def test_cli_exits_0_without_a_regression(tmp_path):
    a = write_dir(tmp_path / "a", make_doc(A))
    b = write_dir(tmp_path / "b", make_doc(NOISE))
    done = cli("compare", a, b, "--threshold", "0.05", "--alpha", "0.05")
    assert done.returncode == 0, done.stderr
    assert "0 regressions" in done.stdout


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    a = write_dir(tmp_path / "a", make_doc(A))
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken" / "x"
    broken.mkdir(parents=True)
    (broken / results.RESULT_NAME).write_text("{not json")
    for args in ([a, tmp_path / "missing"], [a, tmp_path / "empty"], [broken.parent, a], [a, a, "--alpha", "2"]):
        done = cli("compare", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("llmperf-nb: error: ") and len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr


def _edit(results_dir: Path, change) -> Path:
    """Rewrite the one result file below ``results_dir`` as a hostile user would, with json's NaN."""
    import json

    [path] = results_dir.rglob(results.RESULT_NAME)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1281.5])
def test_nonsense_numbers_in_a_result_file_are_refused_with_the_file_named(tmp_path, value):
    b = write_dir(tmp_path / "b", make_doc(SLOWER))
    path = _edit(b, lambda d: d["samples"][0].update(decode_tok_s=value))
    with pytest.raises(SchemaError, match=r"samples/0/decode_tok_s"):
        results.load(path)
    done = cli("compare", write_dir(tmp_path / "a", make_doc(A)), b)
    assert done.returncode == 2 and str(path) in done.stderr and len(done.stderr.splitlines()) == 1
    summary = _edit(b, lambda d: (d["samples"][0].update(decode_tok_s=90.0), d["decode_tok_s"].update(mean=value)))
    with pytest.raises(SchemaError, match="decode_tok_s/mean"):
        results.load(summary)


@pytest.mark.parametrize("threshold", ["nan", "inf", "-0.1", "1", "5"])
def test_a_nonsense_threshold_is_refused(tmp_path, threshold):
    a = write_dir(tmp_path / "a", make_doc(A))
    done = cli("compare", a, write_dir(tmp_path / "b", make_doc([50.0, 51.0, 49.0, 50.0, 50.0])),
               f"--threshold={threshold}")
    assert done.returncode == 2 and "--threshold" in done.stderr and len(done.stderr.splitlines()) == 1


def test_a_failed_candidate_cell_or_nothing_in_common_fails_the_gate(tmp_path):
    a = write_dir(tmp_path / "a", make_doc(A))
    failed = cli("compare", a, write_dir(tmp_path / "b", make_doc(A, status="failed")))
    assert failed.returncode == compare.INCOMPLETE_EXIT == 4 and "1 failed in B" in failed.stdout
    disjoint = cli("compare", a, write_dir(tmp_path / "c", make_doc(A, engine="vllm")))
    assert disjoint.returncode == 4 and "nothing compared" in disjoint.stdout


@pytest.mark.parametrize("kind", ["loop", "folder", "not-utf8", "deep"])
def test_an_unreadable_result_file_is_one_line_never_silently_left_out(tmp_path, kind):
    a = write_dir(tmp_path / "a", make_doc(A))
    cell = tmp_path / "a" / "results" / "x"
    cell.mkdir()
    bad = cell / results.RESULT_NAME
    if kind == "loop":
        bad.symlink_to(bad)
    elif kind == "folder":
        bad.mkdir()
    elif kind == "not-utf8":
        bad.write_bytes(b"\xff\xfe{}")
    else:
        bad.write_text("[" * 100_000)
    with pytest.raises(SchemaError, match=str(bad)):
        results.load_dir(a)
    done = cli("report", a)
    assert done.returncode != 0 and str(bad) in done.stderr and len(done.stderr.splitlines()) == 1
