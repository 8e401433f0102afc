"""Compare two folders of result files cell by cell: did decode speed change, and is the change real?

Cells are matched by ``cell_id`` (model, GPU, engine, quantization and workload kind); the points of a
sweep or serving result by batch size and prompt length, or concurrency (:func:`comparable`). For a cell that is ok on both
sides, the raw per-repetition decode samples of A and B go through Welch's t-test (unequal variances);
the change is significant when p < alpha, and a **regression** is a significant slowdown of more than
``threshold`` (relative to A). ``llmperf-nb compare`` exits with :data:`REGRESSION_EXIT` when it finds
one, so a CI job can fail on it. docs/statistics.md has the definitions.
"""

from __future__ import annotations

import html
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from . import points, published, results
from .exceptions import ConfigError, SchemaError

#: Exit code of ``llmperf-nb compare`` when at least one cell regressed.
REGRESSION_EXIT = 3
#: Exit code when the comparison cannot vouch for the candidate: one of its cells failed, or no
#: cell is in both folders (a CI gate must not pass on that).
INCOMPLETE_EXIT = 4


@dataclass(frozen=True)
class MetricChange:
    """One metric of one cell, A against B, from the raw per-repetition samples."""

    mean_a: float | None
    mean_b: float | None
    n_a: int
    n_b: int
    change: float | None  # (mean B - mean A) / mean A
    t: float | None
    p: float | None  # two-sided Welch p-value; None when not testable
    why_untestable: str = ""


@dataclass(frozen=True)
class CellComparison:
    cell_id: str
    status_a: str
    status_b: str
    decode: MetricChange | None  # None unless ok on both sides
    prefill: MetricChange | None
    verdict: str
    regression: bool = False


@dataclass
class Comparison:
    a: str
    b: str
    threshold: float
    alpha: float
    cells: list[CellComparison] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    failed_b: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.regression]

    def exit_code(self) -> int:
        if self.regressions:
            return REGRESSION_EXIT
        return INCOMPLETE_EXIT if self.failed_b or not self.cells else 0


def welch(a: list[float], b: list[float]) -> tuple[float | None, float | None, str]:
    """(t, two-sided p, "") of Welch's t-test, or (None, None, why) when it cannot be computed."""
    if len(a) < 2 or len(b) < 2:
        return None, None, f"not testable: n={len(a)} vs {len(b)} (needs 2 or more each)"
    if statistics.stdev(a) == 0 and statistics.stdev(b) == 0:
        return None, None, "not testable: no spread on either side"
    from scipy import stats

    res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue), ""


def metric_change(doc_a: dict, doc_b: dict, metric: str) -> MetricChange:
    a = _samples(doc_a, metric)
    b = _samples(doc_b, metric)
    mean_a = statistics.fmean(a) if a else None
    mean_b = statistics.fmean(b) if b else None
    change = (mean_b - mean_a) / mean_a if mean_a and mean_b is not None else None
    t, p, why = welch(a, b)
    return MetricChange(mean_a, mean_b, len(a), len(b), change, t, p, why)


def compare_docs(docs_a: list[dict], docs_b: list[dict], threshold: float = 0.05, alpha: float = 0.05,
                 a: str = "A", b: str = "B") -> Comparison:
    by_a, by_b = _by_cell(docs_a, a), _by_cell(docs_b, b)
    out = Comparison(a=a, b=b, threshold=threshold, alpha=alpha)
    out.only_a = [c for c in by_a if c not in by_b]
    out.only_b = [c for c in by_b if c not in by_a]
    out.failed_b = [c for c, d in by_b.items() if d["status"] == "failed"]
    for cell_id in (c for c in by_a if c in by_b):
        da, db = by_a[cell_id], by_b[cell_id]
        if da["status"] != "ok" or db["status"] != "ok":
            out.cells.append(CellComparison(cell_id, da["status"], db["status"], None, None,
                                            f"not compared: {da['status']} in A, {db['status']} in B"))
            continue
        unclean = [f"{side}: {'; '.join(results.problems(d))}" for side, d in (("A", da), ("B", db))
                   if results.problems(d)]
        if unclean:
            out.cells.append(CellComparison(cell_id, "ok", "ok", None, None,
                                            "not compared: not a clean number (" + " / ".join(unclean) + ")"))
            continue
        pa, pb = dict(comparable(da)), dict(comparable(db))
        out.only_a += [k for k in pa if k not in pb]
        out.only_b += [k for k in pb if k not in pa]
        for key in (k for k in pa if k in pb):
            decode = metric_change(pa[key], pb[key], "decode_tok_s")
            prefill = metric_change(pa[key], pb[key], "prefill_tok_s")
            verdict, regression = _verdict(decode, threshold, alpha)
            out.cells.append(CellComparison(key, "ok", "ok", decode, prefill, verdict, regression))
    return out


def comparable(doc: dict) -> list[tuple[str, dict]]:
    """What is compared of a result, each with its raw samples: a single result is itself; a sweep, each
    (batch size, prompt length) with its repetitions' total decode tok/s; a serving result, each
    concurrency level with its requests' own decode tok/s (1 / TPOT; no prefill)."""
    kind = results.kind(doc)
    if kind == "single":
        return [(doc["cell_id"], doc)]
    out = []
    for p in doc.get("points") or []:
        if kind == "sweep":
            samples = p["samples"]
        else:
            samples = [{"decode_tok_s": points.decode_tok_s(r)} for r in p["requests"] if not r.get("error")]
        out.append((f"{doc['cell_id']} [{points.key(kind, p)}]", {"samples": samples}))
    return out


def compare_dirs(dir_a: str | Path, dir_b: str | Path, threshold: float = 0.05, alpha: float = 0.05) -> Comparison:
    if not (math.isfinite(threshold) and 0 <= threshold < 1):
        raise ConfigError(f"--threshold {threshold}: must be a fraction from 0 up to 1 (0.05 is 5%)")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1")
    return compare_docs(_load(dir_a), _load(dir_b), threshold, alpha, a=str(dir_a), b=str(dir_b))


def text(cmp: Comparison) -> str:
    """The comparison as an aligned plain-text table with a summary, for the terminal."""
    head = ["cell", "decode A", "decode B", "change", "p", "prefill A", "prefill B", "change", "verdict"]
    rows = [head]
    for c in cmp.cells:
        d, p = c.decode, c.prefill
        rows.append([
            c.cell_id, _num(d and d.mean_a), _num(d and d.mean_b), _pct(d and d.change), _p(d),
            _num(p and p.mean_a), _num(p and p.mean_b), _pct(p and p.change), c.verdict,
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = {1, 2, 3, 4, 5, 6, 7}
    lines = [
        f"A: {cmp.a}",
        f"B: {cmp.b}",
        f"decode tok/s, mean of the measured repetitions; change = (B - A) / A; Welch's t-test p; "
        f"regression = p < {cmp.alpha:g} and slower by more than {cmp.threshold:.1%}",
        "",
    ]
    for r in rows:
        cells = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    if not cmp.cells:
        lines.append("(no cell is in both)")
    lines += [""] + [f"only in A: {c}" for c in cmp.only_a] + [f"only in B: {c}" for c in cmp.only_b]
    lines.append(summary(cmp))
    return "\n".join(lines) + "\n"


def summary(cmp: Comparison) -> str:
    n, both = len(cmp.regressions), len(cmp.cells)
    parts = [f"{n} regression{'s' if n != 1 else ''}", f"{both} cell{'s' if both != 1 else ''} in both"]
    if cmp.only_a or cmp.only_b:
        parts.append(f"{len(cmp.only_a)} only in A, {len(cmp.only_b)} only in B")
    if cmp.failed_b:
        parts.append(f"{len(cmp.failed_b)} failed in B: {', '.join(cmp.failed_b)}")
    if not cmp.cells:
        parts.append("nothing compared")
    return "; ".join(parts)


def html_page(cmp: Comparison) -> str:
    """A self-contained HTML page of the comparison (inline style, nothing fetched); the folders it
    names are written from named roots, as in every published file (published.py)."""
    e = html.escape

    def where(folder: str) -> str:
        return published.shorten_text(os.path.abspath(folder), published.roots())

    head = ["cell", "decode A", "decode B", "change", "n A/B", "p", "prefill A", "prefill B", "change", "verdict"]
    body = []
    for c in cmp.cells:
        d, p = c.decode, c.prefill
        n = f"{d.n_a}/{d.n_b}" if d else ""
        cls = ' class="regression"' if c.regression else ""
        cells = [c.cell_id, _num(d and d.mean_a), _num(d and d.mean_b), _pct(d and d.change), n, _p(d),
                 _num(p and p.mean_a), _num(p and p.mean_b), _pct(p and p.change), c.verdict]
        body.append(f"<tr{cls}>" + "".join(f"<td>{e(v)}</td>" for v in cells) + "</tr>")
    only = [f"<li>only in A: <code>{e(c)}</code></li>" for c in cmp.only_a]
    only += [f"<li>only in B: <code>{e(c)}</code></li>" for c in cmp.only_b]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>llmperf-nb compare</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; }}
td:not(:first-child):not(:last-child) {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.regression td {{ background: #fde0dc; font-weight: bold; }}
</style></head><body>
<h1>Comparison</h1>
<p>A: <code>{e(where(cmp.a))}</code><br>B: <code>{e(where(cmp.b))}</code></p>
<p>Decode and prefill tok/s: mean of the measured repetitions (warm-up excluded). change = (B &minus; A) / A.
p: Welch's t-test on the per-repetition decode samples. A regression is p &lt; {cmp.alpha:g} and a slowdown of
more than {cmp.threshold:.1%}.</p>
<table><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table>
<ul>{''.join(only)}</ul>
<p><strong>{e(summary(cmp))}</strong></p>
</body></html>
"""


def _verdict(decode: MetricChange, threshold: float, alpha: float) -> tuple[str, bool]:
    if decode.p is None or decode.change is None:
        return decode.why_untestable or "not testable", False
    if decode.p >= alpha:
        return "no significant change", False
    if decode.change < -threshold:
        return "REGRESSION", True
    if decode.change > threshold:
        return "faster", False
    return f"significant, within ±{threshold:.1%}", False


def _samples(doc: dict, metric: str) -> list[float]:
    return [float(s[metric]) for s in doc["samples"] if s.get(metric) is not None]


def _by_cell(docs: list[dict], where: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in docs:
        if d["cell_id"] in out:
            raise ConfigError(f"{where}: two result files for cell {d['cell_id']!r}; give one run's results folder")
        out[d["cell_id"]] = d
    return out


def _load(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path}: not a folder of result files")
    try:
        docs = results.load_dir(path)
    except SchemaError as e:
        raise ConfigError(str(e)) from None
    if not docs:
        raise ConfigError(f"{path}: no result files ({results.RESULT_NAME}) below it")
    return docs


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "" if v is None else f"{v:+.1%}"


def _p(m: MetricChange | None) -> str:
    if m is None or m.p is None or math.isnan(m.p):
        return "n/a" if m is not None else ""
    return f"{m.p:.3g}"
