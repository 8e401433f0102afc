"""Numbers that hold up: identical work across repetitions, token-latency percentiles, provenance.

The result documents here are built by results.build from samples chosen per test (the token ids a
driver would record); the published int4 results are checked as they are on disk.
"""

import json
from pathlib import Path

import pytest

from llmperf_nb import analysis, compare, provenance, results, stats
from llmperf_nb.drivers import common

from .test_compare import make_doc

ROOT = Path(__file__).resolve().parent.parent


def with_tokens(doc: dict, sequences: list[list[int]]) -> dict:
    """``doc`` rebuilt as if each measured repetition had decoded ``sequences[i]``."""
    doc = json.loads(json.dumps(doc))
    for s, ids in zip(doc["samples"], sequences, strict=True):
        s.update(token_ids=ids, token_ids_sha256=common.token_digest(ids), gen_tokens=len(ids))
    doc["work"] = results.work_check(doc)
    return doc


SAME = [list(range(256))] * 5
DRIFT = [[k] + list(range(255)) for k in range(5)]  # a different first token each repetition


def test_token_digest_is_sha256_of_decimal_ids():
    import hashlib

    assert common.token_digest([1, 22, 333]) == hashlib.sha256(b"1,22,333").hexdigest()


def test_identical_repetitions_are_clean():
    doc = with_tokens(make_doc([100.0] * 5), SAME)
    assert doc["work"]["identical_tokens"] is True
    assert doc["work"]["token_ids_sha256"] == common.token_digest(SAME[0])
    assert results.problems(doc) == []


def test_drifting_tokens_mark_the_cell_and_keep_it_out_of_compare():
    doc = with_tokens(make_doc([100.0] * 5), DRIFT)
    [problem] = results.problems(doc)
    assert "5 different token sequences" in problem and "from the first token on" in problem
    assert analysis.NOT_CLEAN in analysis.cell_text(doc)
    assert "not a clean number" in analysis.markdown_table([doc])
    cmp = compare.compare_docs([doc], [with_tokens(make_doc([50.0] * 5), SAME)])
    [c] = cmp.cells
    assert c.verdict.startswith("not compared: not a clean number") and not c.regression


def test_a_late_parting_is_marked_with_where_it_parts():
    late = [list(range(256)), list(range(200)) + [7] * 56] + [list(range(256))] * 3
    [problem] = results.problems(with_tokens(make_doc([100.0] * 5), late))
    assert "2 different token sequences, all alike for the first 200 tokens" in problem


def test_short_repetitions_are_a_problem():
    doc = with_tokens(make_doc([100.0] * 5), [list(range(256))] * 4 + [list(range(200))])
    assert any("not exactly 256" in p for p in results.problems(doc))


def test_results_without_ids_are_unverified_not_unclean():
    doc = make_doc([100.0] * 5)
    assert doc["work"]["identical_tokens"] is None and results.problems(doc) == []
    [line] = analysis.work_statement([doc])
    assert "no token ids recorded" in line


def test_work_statement_names_prompt_and_counts():
    docs = [with_tokens(make_doc([100.0] * 5, engine=e), SAME) for e in ("llama_cpp", "exllamav2")]
    [line] = analysis.work_statement(docs)
    assert "prompt token ids identical in every cell [0, 1, 2, 3, 4, 5, 6, 7]" in line
    assert "exactly 256 tokens decoded in every repetition" in line
    assert "every cell decoded the same tokens in every repetition" in line


def test_percentiles_are_measured_values():
    p = stats.percentiles([float(i) for i in range(1, 101)])
    assert (p["p50"], p["p99"], p["max"], p["n"]) == (50.0, 99.0, 100.0, 100)
    assert stats.percentiles([]) is None


def test_gc_policy_is_applied_and_recorded():
    import argparse
    import gc

    seen = []

    def one_run(nvml):
        seen.append(gc.isenabled())
        return {"decode_tok_s": 1.0, "gen_tokens": 1, "prompt_tokens": 1}

    args = argparse.Namespace(gpus="", warmup=1, reps=2, min_time=0.0, max_reps=10)
    doc = common.measure(one_run, args)
    assert seen == [False, False, False] and gc.isenabled()
    assert doc["gc_policy"] == common.GC_POLICY
    gc.unfreeze()


def test_files_sha256_covers_names_and_content_and_is_cached(tmp_path):
    import hashlib

    art = tmp_path / "model"
    art.mkdir()
    (art / "a.bin").write_bytes(b"abc")
    (art / "b.json").write_text("{}")
    d = provenance.files_sha256(art)
    want = hashlib.sha256(b"a.bin\0abc" + b"b.json\0{}").hexdigest()
    assert d == {"sha256": want, "bytes": 5, "files": 2}
    assert (tmp_path / "model.sha256.json").exists()
    (art / "a.bin").write_bytes(b"abd")  # content changes: the cache's stamp no longer matches
    assert provenance.files_sha256(art)["sha256"] != want


def test_project_commit_from_git_or_environment(monkeypatch):
    monkeypatch.delenv("LLMPERF_NB_COMMIT", raising=False)
    p = provenance.project()
    if (ROOT / ".git").exists():
        assert p["source"] == "git" and len(p["commit"]) == 40 and isinstance(p["dirty"], bool)
    monkeypatch.setenv("LLMPERF_NB_COMMIT", "abc123")
    monkeypatch.setenv("LLMPERF_NB_DIRTY", "0")
    assert provenance.project()["commit"] == "abc123" and provenance.project()["dirty"] is False


def test_provenance_lines_name_the_odd_cell_out():
    docs = []
    for uuid in ("GPU-a", "GPU-a", "GPU-b"):
        d = make_doc([100.0] * 5)
        d["provenance"] = {"project": {"commit": "f" * 40, "dirty": False}, "gpu_indices": [0], "gpu_uuids": [uuid]}
        d["cell_id"] += uuid
        docs.append(d)
    gpus, commit = analysis.provenance_lines(docs)
    assert gpus.startswith("GPU UUIDs: GPU-a for 2 of 3 cells; the others:") and "(GPU-b)" in gpus
    assert commit == "llmperf-nb commit: ffffffffffff for 3 of 3 cells (all of them)"


@pytest.mark.parametrize("report", ["int4-single-gpu", "fp16-multi-gpu"])
def test_published_cells_are_clean_or_marked(report):
    """Every published ok cell either did identical work or is marked in its report's table."""
    docs = results.load_dir(ROOT / "reports" / report / "results")
    table = (ROOT / "reports" / report / "README.md").read_text()
    for d in docs:
        if results.problems(d):
            assert analysis.NOT_CLEAN in table, d["cell_id"]
