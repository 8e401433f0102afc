"""A result file is input: whatever it holds reaches index.html and README.md inert."""

import json

from llmperf_nb import report, results

from .conftest import cli
from .test_compare import A, make_doc, write_dir

XSS = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", "a|b`c[d](javascript:alert(3))"]


def test_values_from_result_files_are_escaped_in_html_and_markdown(tmp_path):
    ok, failed = make_doc(A), make_doc(A, engine="vllm", status="failed")
    ok["gpu"]["detected"] = [XSS[0]]
    ok["hardware"] = {"gpu": {"detected": [XSS[0]], "driver": XSS[1], "cuda": "12"}, "cpu": {"model": XSS[1]}}
    ok["engine_version"], ok["prompt"], ok["notes"] = XSS[1], XSS[2], [XSS[0]]
    failed["error"] = {"message": XSS[1], "step": XSS[0], "log_tail": XSS[1]}
    results_dir = write_dir(tmp_path / "r", ok, failed)
    done = cli("report", results_dir)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r" / "index.html").read_text()
    readme = (tmp_path / "r" / "README.md").read_text()
    for page in (html, readme):
        assert "<img src=x" not in page and "<script>alert" not in page and "](javascript:" not in page
    assert "&lt;script&gt;alert(2)" in html and "&lt;img src=x onerror=alert(1)&gt;" in readme
    assert report.EXTERNAL.search(html) is None
    # the result files themselves are kept as they were measured
    assert json.loads((results_dir / ok["cell_id"] / results.RESULT_NAME).read_text())["engine_version"] == XSS[1]
