"""Publish a run: execute the analysis notebook on result files, export it as self-contained HTML,
and write the original benchmark's markdown table beside it.

    reports/<name>/index.html   the executed analysis, plots embedded, code folded away
    reports/<name>/README.md    Model | GPU | one column per engine (decode tok/s)
    reports/<name>/analysis.ipynb
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from . import analysis, published, results, throughput
from .exceptions import LlmPerfError, SchemaError
from .execute import execute
from .jsonfile import write_text
from .paths import notebook

#: anything the page would fetch from elsewhere (scripts, images, styles, fonts): the report must
#: open offline. Plain links (<a href>) fetch nothing and are fine.
EXTERNAL = re.compile(r"""(?:\bsrc\s*=|<link\b[^>]*\bhref\s*=|@import|url\()\s*["']?(?:https?:)?//""", re.IGNORECASE)


def build(results_dir: Path, out_dir: Path, title: str | None = None) -> Path:
    """Rebuild index.html and README.md in ``out_dir`` from the result files alone."""
    results_dir, out_dir = Path(results_dir).resolve(), Path(out_dir).resolve()
    docs = [analysis.escaped(d) for d in results.load_dir(results_dir)]
    if not docs:
        raise SchemaError(f"no result files (result.json) under {results_dir}")
    title = analysis.escaped(title) if title else docs[0]["run"]
    out_dir.mkdir(parents=True, exist_ok=True)
    # the notebook runs into a new file: a failure (a full disk) leaves the last good report whole
    executed, new = out_dir / "analysis.ipynb", out_dir / "analysis.new.ipynb"
    # relative to the report folder, where the notebook runs: no machine path in the published page
    rel = os.path.relpath(results_dir, out_dir)
    try:
        execute(notebook("analysis"), new, {"results_dir": rel, "title": title}, cwd=out_dir,
                named=published.roots(report_dir=out_dir))
        write_text(out_dir / "index.html", export_html(new))
        write_text(out_dir / "README.md", readme(docs, title, results_dir, out_dir))
        os.replace(new, executed)
        if _log(new).exists():
            os.replace(_log(new), _log(executed))
        else:  # the kernel said nothing this time: an earlier build's log is not this notebook's
            _log(executed).unlink(missing_ok=True)
    except OSError as e:
        raise LlmPerfError(f"{out_dir}: report not written ({e.strerror or e}); the previous one is kept") from None
    finally:
        new.unlink(missing_ok=True)
        _log(new).unlink(missing_ok=True)
    return out_dir / "index.html"


def _log(notebook_path: Path) -> Path:
    return notebook_path.with_name(notebook_path.name + ".kernel.log")


def export_html(executed: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    templates = resources.files("llmperf_nb").joinpath("templates")
    exporter = HTMLExporter(template_name="report", extra_template_basedirs=[str(templates)], embed_images=True)
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    html, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    found = EXTERNAL.search(html)
    if found:
        raise LlmPerfError(f"report would fetch from the internet ({html[found.start():found.start() + 80]!r})")
    return html


def readme(docs: list[dict], title: str, results_dir: Path, out_dir: Path) -> str:
    try:
        rel = results_dir.relative_to(out_dir)
    except ValueError:
        rel = results_dir
    single = throughput.of_kind(docs, "single")
    lines = [f"# {title}", ""]
    if single:
        lines += [
            "Decode speed (tok/s, mean ± standard deviation over the measured repetitions, warm-up excluded), the",
            "fraction of the GPU's memory-bandwidth limit it reaches (% of roofline) and GPU energy per decoded token.",
            "",
            analysis.main_table(single),
            "## In the original benchmark's layout",
            "",
            analysis.markdown_table(single, footnote=False),
        ]
    lines += [
        *_workload_sections(docs),
        _notes(docs),
        *_checks(single),
        *_run_notes(out_dir),
        f"Every number above comes from a result file under `{rel}/`; the full report is `index.html`.",
        "",
    ]
    return "\n".join(lines)


def _workload_sections(docs: list[dict]) -> list[str]:
    """The README's sweep and serving tables, and the cells of those kinds that were not measured."""
    out = []
    sweep, serve = throughput.sweep_markdown(docs), throughput.latency_markdown(docs)
    if sweep:
        out += ["## Batch sweeps", "", "Decode tok/s of all sequences together (mean ± std over the repetitions) "
                "and per sequence, per batch size and prompt length; one decode step's latency (p50 / p99).", "",
                sweep]
    if serve:
        out += ["## Serving", "", "Each engine's own server under load at each concurrency level (c): output tok/s "
                "and requests/s over the level's wall time, goodput (requests/s meeting every SLO), latency "
                "percentiles from the raw per-request records, and the server's generated-token count against "
                "the client's.", "", serve]
    gaps = throughput.not_run_lines(docs)
    if gaps:
        out += ["Sweep and serving cells not measured:", "", *(f"- {line}" for line in gaps), ""]
    return out


def _checks(docs: list[dict]) -> list[str]:
    """What a reader checks first: the same work in every cell, and where and by what code it ran."""
    work, where = analysis.work_statement(docs), analysis.provenance_lines(docs)
    if not work and not where:
        return []
    return ["## Identical work and provenance", "", *(f"- {line}" for line in [*work, *where]), ""]


def _run_notes(out_dir: Path) -> list[str]:
    """NOTES.md beside the report, written by whoever ran it (what was not run and why)."""
    notes = out_dir / "NOTES.md"
    return ["## Notes on this run", "", notes.read_text().strip(), ""] if notes.is_file() else []


def _notes(docs: list[dict]) -> str:
    notes = []
    if any(d["weights"]["synthetic"] for d in docs):
        notes.append(
            "- *synthetic*: weights of the model's exact shapes with random values, made locally. Decode speed "
            "of a dense model does not depend on weight values; the generated text is meaningless."
        )
    first = next((d for d in docs if d["status"] == "ok" and results.kind(d) == "single"), None)
    if first:
        notes.append(
            f"- Workload: prompt {first['prompt']!r} ({first['prompt_tokens']['actual']} tokens), "
            f"{first['gen_tokens']['requested']} generated tokens, greedy, EOS ignored, batch 1."
        )
    for d in docs:
        if d["status"] == "skipped":
            notes.append(f"- `{d['cell_id']}` not run: {(d.get('error') or {}).get('message', '')}")
        if d["status"] == "ok":
            hw = d.get("hardware") or {}
            gpu = ", ".join(hw.get("gpu", {}).get("detected") or []) or hw.get("cpu", {}).get("model", "?")
            g = hw.get("gpu", {})
            driver = f", driver {g['driver']}, CUDA {g['cuda']}" if g.get("driver") else ""
            notes.append(f"- `{d['cell_id']}`: {d['engine_version']}; on {gpu}{driver}.")
            notes.extend(f"  - {n}" for n in d.get("notes", []) if not n.startswith("prompt tokenized"))
    return "\n".join(notes) + "\n" if notes else ""
