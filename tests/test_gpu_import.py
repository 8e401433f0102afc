"""scripts/gpu-import.sh on the real cells of reports/serving-h200: the tarball a GPU job brings back is
laid into a copy of the published report, which is rebuilt; a failed new cell never replaces an ok one."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from .conftest import ROOT

IMPORT = ROOT / "scripts" / "gpu-import.sh"
PUBLISHED = ROOT / "reports" / "serving-h200" / "results"
SWEEP = "Llama-2-7b-chat-hf__auto__llama_cpp__int4__sweep"  # ok
SERVE = "Llama-2-7b-chat-hf__auto__llama_cpp__int4__serve"  # ok, with loadgen/
FAILED = "Llama-2-7b-chat-hf__auto__vllm__int4__serve"
#: that cell as first published (2026-11-30 05:24 UTC): its server died at start
FAILED_DOC = ROOT / "tests" / "data" / "results" / "vllm-serve-died-at-start.json"


def failed_cell(folder):
    folder.mkdir(parents=True)
    shutil.copy(FAILED_DOC, folder / "result.json")


def gpu_import(tarball, reports):
    """The script, its temporary extraction under ``reports`` (the tests' own folder)."""
    return subprocess.run(["bash", str(IMPORT), str(tarball), str(reports)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TMPDIR": str(reports)})


@pytest.mark.slow
def test_a_job_tarball_lands_in_the_report_and_loses_no_ok_result(tmp_path):
    reports = tmp_path / "reports"
    for cell in (SWEEP, SERVE):  # two of the published cells and a failed one: the report is rebuilt over them
        shutil.copytree(PUBLISHED / cell, reports / "serving-h200" / "results" / cell)
    failed_cell(reports / "serving-h200" / "results" / FAILED)
    stale = reports / "serving-h200" / "analysis.ipynb.kernel.log"  # an earlier build's kernel log
    stale.write_text("MissingIDFieldWarning: from an earlier build\n")
    # what a GPU job tars: .gpu-build/reports/serving-h200/results/<cell>
    job = tmp_path / "job" / ".gpu-build" / "reports" / "serving-h200" / "results"
    shutil.copytree(PUBLISHED / SERVE, job / SERVE)  # an ok cell measured again, with AIPerf's inputs
    (job / SERVE / "loadgen" / "c1" / "inputs.json").write_text("{}")
    (job / SERVE / "loadgen" / "c1" / "profile_export.jsonl").write_text("{}\n")
    (job / SERVE / "loadgen" / "c1" / "profile_export_raw.jsonl").write_text("{}\n")
    (job / SERVE / "loadgen" / "c1" / ".aiperf_results_ready.json").write_text("{}")
    failed_cell(job / SWEEP)  # a failed result under an ok cell's name
    shutil.copytree(PUBLISHED / SWEEP, job / FAILED)  # an ok result under a failed cell's name
    tarball = tmp_path / "s1.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "job" / ".gpu-build", arcname=".gpu-build")

    done = gpu_import(tarball, reports)
    assert done.returncode == 0, done.stdout + done.stderr
    dest = reports / "serving-h200" / "results"
    assert f"serving-h200/{SWEEP}: kept the published ok result; the new one is failed" in done.stdout
    assert json.loads((dest / SWEEP / "result.json").read_text())["status"] == "ok"
    assert (dest / SWEEP / "result.json").read_bytes() == (PUBLISHED / SWEEP / "result.json").read_bytes()
    assert f"serving-h200/{FAILED}: ok (replaced failed)" in done.stdout
    assert json.loads((dest / FAILED / "result.json").read_text())["status"] == "ok"
    assert f"serving-h200/{SERVE}: ok (replaced ok)" in done.stdout
    assert not list((dest / SERVE / "loadgen").rglob("inputs.json"))
    assert not list((dest / SERVE / "loadgen").rglob("profile_export.jsonl"))
    assert not list((dest / SERVE / "loadgen").rglob("profile_export_raw.jsonl"))
    assert not list((dest / SERVE / "loadgen").rglob(".aiperf_results_ready.json"))
    assert (dest / SERVE / "loadgen" / "c1" / "profile_export_aiperf.json").exists()
    assert not list(dest.glob("*.importing"))
    [kept] = reports.glob("gpu-import.*")  # the extraction stays for a look at the failed cell set aside
    assert str(kept) in done.stdout
    # the report was rebuilt from what is there now
    readme = (reports / "serving-h200" / "README.md").read_text()
    assert (reports / "serving-h200" / "index.html").stat().st_mtime > (dest / SERVE / "result.json").stat().st_mtime
    assert "llama.cpp" in readme
    assert not stale.exists() or "earlier build" not in stale.read_text()  # only this build's log, if any


def test_bad_input_is_one_line(tmp_path):
    missing = gpu_import(tmp_path / "nope.tgz", tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip() == f"gpu-import: error: no such tarball: {tmp_path / 'nope.tgz'}"
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.add(IMPORT, arcname="x.sh")
    said = gpu_import(empty, tmp_path)
    assert said.returncode == 2 and said.stderr.strip() == f"gpu-import: error: no reports/NAME/results folder in {empty}"
    junk = tmp_path / "junk.tgz"
    junk.write_text("not a tar")
    bad = gpu_import(junk, tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == f"gpu-import: error: {junk} is not a gzipped tar"
    assert not list(tmp_path.glob("gpu-import.*"))  # nothing set aside: no extraction left
