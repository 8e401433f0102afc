"""A result file is input: whatever it holds reaches index.html and README.md inert."""

import contextlib
import json
import os
import subprocess

import pytest

from llmperf_nb import report, results

from .conftest import cli
from .test_compare import A, make_doc, write_dir

XSS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "a|b`c[d](javascript:alert(3))"]


def test_values_from_result_files_are_escaped_in_html_and_markdown(tmp_path):
    ok, failed = make_doc(A), make_doc(A, engine="vllm", status="failed")
    ok["gpu"]["detected"] = [XSS[0]]
    ok["hardware"] = {"gpu": {"detected": [XSS[0]], "driver": XSS[1], "cuda": "12"}, "cpu": {"model": XSS[1]}}
    ok["engine_version"], ok["prompt"], ok["notes"] = XSS[1], XSS[2], [XSS[0]]
    failed["error"] = {"message": XSS[1], "step": XSS[0], "log_tail": XSS[1] + ' File "<frozen runpy>", it\'s'}
    results_dir = write_dir(tmp_path / "r", ok, failed)
    done = cli("report", results_dir)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r" / "index.html").read_text()
    readme = (tmp_path / "r" / "README.md").read_text()
    for page in (html, readme):
        assert "<img src=x" not in page and "<script>alert" not in page and "](javascript:" not in page
    assert "&lt;script&gt;alert(2)" in html and "&lt;img src=x onerror=alert(1)&gt;" in readme
    # the log tail is printed program output: escaped once, by the page (twice, it read &quot;&lt;frozen ...)
    assert "&amp;quot;" not in html and "&amp;lt;frozen" not in html and "&amp;#39;" not in html
    assert "&lt;frozen runpy&gt;" in html
    assert report.EXTERNAL.search(html) is None
    # the result files themselves are kept as they were measured
    assert json.loads((results_dir / ok["cell_id"] / results.RESULT_NAME).read_text())["engine_version"] == XSS[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")
def test_a_full_disk_fails_the_report_in_one_line_and_keeps_the_last_good_one(tmp_path):
    results_dir = write_dir(tmp_path / "r", make_doc(A))
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], check=True)
    try:
        assert cli("report", results_dir, "--out", disk).returncode == 0
        before = {p.name: p.read_bytes() for p in disk.iterdir()}
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill what is left of the disk
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        done = cli("report", results_dir, "--out", disk)
        assert done.returncode == 1 and "No space left on device" in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
        after = {p.name: p.read_bytes() for p in disk.iterdir() if p != filler}
        assert after == before  # the previous report whole, and no partial file beside it
    finally:
        subprocess.run(["umount", str(disk)], check=True)
