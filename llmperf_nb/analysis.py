"""Tables and plots from result files. Used by the analysis notebook and by ``report``."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import gpus, models, results, roofline, stats

#: How the original benchmark named its models in tables.
SHORT = {
    "Llama-2-7b-chat-hf": "Llama2-7B", "Llama-2-13b-chat-hf": "Llama2-13B",
    "Llama-2-70b-chat-hf": "Llama2-70B", "CodeLlama-7b-Instruct-hf": "CodeLlama-7B",
    "CodeLlama-13b-Instruct-hf": "CodeLlama-13B", "CodeLlama-34b-Instruct-hf": "CodeLlama-34B",
}


def model_order(name: str) -> tuple[float, str]:
    """Sort key of a model: parameter count (the catalog's, else the size in its name, e.g. '34b'), then name;
    so 7B comes before 13B, as a paper orders them."""
    spec = models.MODELS.get(name)
    if spec is not None:
        return float(spec.n_params), name
    size = re.search(r"(\d+(?:\.\d+)?)\s*[bB]\b", name.replace("-", " ").replace("_", " "))
    return (float(size.group(1)) * 1e9 if size else float("inf")), name


def short_model(name: str) -> str:
    return SHORT.get(name, name)


def ordered(docs: list[dict]) -> list[dict]:
    """Result documents by model size, then cell id."""
    return sorted(docs, key=lambda d: (model_order(d["model"]), d["cell_id"]))


def engine_column(doc: dict) -> str:
    """An engine plus the options that make it a separate configuration, e.g. 'llama.cpp (split_mode=row)':
    the result's ``configuration`` (Engine.configuration, when the result was written). Files written before
    it was recorded: the label plus the options, less those whose outcome the result's ``build`` records
    (an option that only adds a measurement, such as llama.cpp's cross-check)."""
    if doc.get("configuration"):
        return doc["configuration"]
    measured = doc.get("build") or {}
    opts = {k: v for k, v in (doc.get("engine_config") or {}).items() if k not in measured}
    if not opts:
        return doc["engine_label"]
    return f"{doc['engine_label']} ({', '.join(f'{k}={v}' for k, v in sorted(opts.items()))})"


def gpu_label(doc: dict) -> str:
    name = doc["gpu"]["name"]
    if name == gpus.AUTO:
        name = (doc.get("hardware") or {}).get("gpu", {}).get("catalog_name") or "auto"
    label = gpus.GPUS[name].label if name in gpus.GPUS else name
    return label if doc["gpu"]["count"] == 1 else f"{label} x{doc['gpu']['count']}"


def bandwidth_fraction(doc: dict) -> float | None:
    """Decode tok/s over the memory-bandwidth limit of the GPU(s): see :mod:`llmperf_nb.roofline`."""
    return roofline.of(doc).decode_fraction


def rows(docs: list[dict]) -> list[dict]:
    out = []
    for d in docs:
        dec, pre, ttft = d.get("decode_tok_s"), d.get("prefill_tok_s"), d.get("ttft_s")
        roof = roofline.of(d)
        out.append({
            "cell": d["cell_id"],
            "model": d["model"],
            "gpu": gpu_label(d),
            "engine": engine_column(d),
            "quantization": d["quantization"],
            "weights": "synthetic" if d["weights"]["synthetic"] else d["weights"]["source"],
            "status": d["status"],
            "decode_tok_s": dec["mean"] if dec else None,
            "decode_std": dec["std"] if dec else None,
            "decode_ci95": (dec["ci_high"] - dec["mean"]) if dec and dec.get("ci_high") is not None else None,
            "decode_cv": dec.get("cv") if dec else None,
            "prefill_tok_s": pre["mean"] if pre else None,
            "ttft_ms": ttft["mean"] * 1e3 if ttft else None,
            "reps": d["repetitions"]["actual"],
            "prompt_tokens": d["prompt_tokens"]["actual"],
            "gen_tokens": d["gen_tokens"]["actual"],
            "peak_mem_gib": d["peak_mem_bytes"] / 2**30 if d.get("peak_mem_bytes") else None,
            **_latency_ms(d.get("token_latency_s")),
            "work": "; ".join(results.problems(d)) or ("identical" if (d.get("work") or {}).get("identical_tokens")
                                                      else ""),
            "bw_fraction": roof.decode_fraction,
            "decode_limit_tok_s": roof.decode_limit_tok_s,
            "prefill_limit_tok_s": roof.prefill_limit_tok_s,
            "prefill_fraction": roof.prefill_fraction,
            "stability": "; ".join(stats.stability_warnings(dec)) if dec else "",
            "error": (d.get("error") or {}).get("message", ""),
        })
    return out


def _latency_ms(lat: dict | None) -> dict:
    """Per-token decode latency p50 / p99 / max in ms (results written before 2026-11-29 have none)."""
    keys = ("p50", "p99", "max")
    return {f"token_{k}_ms": (lat[k] * 1e3 if lat else None) for k in keys}


#: the columns of :func:`rows`, so that a run with no cell of a kind still has a table to filter
COLUMNS = ("cell", "model", "gpu", "engine", "quantization", "weights", "status", "decode_tok_s", "decode_std",
           "decode_ci95", "decode_cv", "prefill_tok_s", "ttft_ms", "reps", "prompt_tokens", "gen_tokens",
           "peak_mem_gib", "token_p50_ms", "token_p99_ms", "token_max_ms", "work", "bw_fraction",
           "decode_limit_tok_s", "prefill_limit_tok_s", "prefill_fraction", "stability", "error")


def load(results_dir: str | Path, kind: str | None = "single"):
    """(documents, DataFrame) for every result file below ``results_dir`` of workload ``kind`` (the
    single batch-1 workload, which this module's tables show; None: every result)."""
    import pandas as pd

    docs = ordered([escaped(d) for d in results.load_dir(results_dir)])
    if kind is not None:
        docs = [d for d in docs if results.kind(d) == kind]
    return docs, pd.DataFrame(rows(docs), columns=list(COLUMNS))


#: what a value from a result file could do in a published page: open a tag or an entity (HTML),
#: end a table cell, a code span or a link (markdown)
_PUBLISHED = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
                            "|": "&#124;", "`": "&#96;", "[": "&#91;", "]": "&#93;"})


def escaped(value):
    """``value`` (a result document) with every string made inert in HTML and markdown. Everything a
    report shows from a result file (names, versions, prompts, engine output, error text) goes
    through here: a result file is input, and a GPU or model name may be ``<script>…``."""
    if isinstance(value, str):
        return value.translate(_PUBLISHED)
    if isinstance(value, dict):
        return {k: escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escaped(v) for v in value]
    return value


def as_output(text: str) -> str:
    """A value :func:`escaped` made inert, back as it was, for printing as program output: the page shows a
    cell's printed text in a ``<pre>`` and escapes it itself (escaped twice, a log would read ``&quot;``)."""
    import html

    return html.unescape(text)


#: What marks a table cell whose decode speed is not stable enough to compare (stats.stability_warnings).
UNSTABLE = "\u26a0"


def cell_text(doc: dict, ci: bool = False) -> str:
    """One table cell: 'mean ± std' when ok (with the 95 % CI if ``ci``; marked when unstable), otherwise
    why there is no number."""
    if doc["status"] == "ok":
        d = doc["decode_tok_s"]
        text = f"{d['mean']:.2f} ± {d['std']:.2f}"
        if ci and d.get("ci_low") is not None:
            text += f" (95% CI {d['ci_low']:.2f}–{d['ci_high']:.2f})"
        if results.problems(doc):
            return f"{text} {NOT_CLEAN}"
        return f"{text} {UNSTABLE}" if stats.stability_warnings(d) else text
    reason = (doc.get("error") or {}).get("message", "").splitlines()[0:1]
    word = "not run" if doc["status"] == "skipped" else "failed"
    if not reason:
        return word
    # the table keeps the first clause; the full reason is in the report's notes and the result file
    short = reason[0].split(": ")[0] if doc["status"] == "skipped" else reason[0]
    return f"{word}: {short[:160]}"


def markdown_table(docs: list[dict], ci: bool = False, footnote: bool = True) -> str:
    """The original benchmark's table: Model | GPU | one column per engine (decode tok/s), then (``footnote``)
    a line for every cell marked unstable."""
    engines = list(dict.fromkeys(engine_column(d) for d in docs))
    keyed: dict[tuple, dict] = {}
    for d in ordered(docs):
        model = SHORT.get(d["model"], d["model"])
        weights = "synthetic" if d["weights"]["synthetic"] else d["weights"]["source"]
        keyed.setdefault((model, gpu_label(d), d["quantization"], weights), {})[engine_column(d)] = d
    head = ["Model", "GPU", "Quantization", "Weights", *(f"{e} (tok/sec)" for e in engines)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (model, gpu, quant, weights), by_engine in keyed.items():
        cells = [cell_text(by_engine[e], ci=ci) if e in by_engine else "" for e in engines]
        lines.append("| " + " | ".join([model, gpu, quant, weights, *cells]) + " |")
    return "\n".join(lines) + "\n" + (stability_footnote(docs) + work_footnote(docs) if footnote else "")


def main_table(docs: list[dict], ci: bool = False) -> str:
    """The report's main table, a row per cell by model size: decode tok/s (mean ± std, ⚠ when unstable), the
    fraction of the GPU's memory-bandwidth limit it reaches (roofline), and decode energy per token; then the
    original llm-perf-bench's published figures for the same models and quantizations, marked as reference;
    then the ⚠ list."""
    head = ["Model", "GPU", "Quantization", "Engine", "Weights", "Decode tok/s", "% of roofline", "J/token"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["---"] + ["--:"] * 3) + "|"]
    for d in ordered(docs):
        weights = "synthetic" if d["weights"]["synthetic"] else d["weights"]["source"]
        fraction = roofline.of(d).decode_fraction if d["status"] == "ok" else None
        joules = (d.get("energy") or {}).get("decode_j_per_token") if d["status"] == "ok" else None
        lines.append("| " + " | ".join([
            short_model(d["model"]), gpu_label(d), d["quantization"], engine_column(d), weights,
            cell_text(d, ci=ci), f"{fraction:.0%}" if fraction is not None else "",
            f"{joules:.3f}" if joules is not None else "",
        ]) + " |")
    refs = reference_rows(docs)
    for r in refs:
        lines.append(f"| *{r['model']}* | *{r['gpu']}* | *{r['quantization']}* | *{r['engine']}* | *reference†* "
                     f"| *{r['tok_s']:.2f}* | | |")
    note = f"\n† published by the original benchmark, not measured here: {reference()['source']}.\n" if refs else ""
    return "\n".join(lines) + "\n" + note + stability_footnote(docs) + work_footnote(docs)


@lru_cache(maxsize=1)
def reference() -> dict:
    """The original llm-perf-bench's published decode figures (llmperf_nb/data/reference.json)."""
    return json.loads(resources.files("llmperf_nb").joinpath("data/reference.json").read_text())


def reference_rows(docs: list[dict]) -> list[dict]:
    """One row per published figure of a model and quantization these results also have, by model size."""
    have = {(short_model(d["model"]), d["quantization"]) for d in docs}
    size = {short_model(d["model"]): model_order(d["model"]) for d in docs}
    out = []
    for row in sorted(reference()["rows"], key=lambda r: size.get(r["model"], (float("inf"), r["model"]))):
        if (row["model"], row["quantization"]) not in have:
            continue
        gpu = row["gpu"] if row["count"] == 1 else f"{row['gpu']} x{row['count']}"
        out.extend({"model": row["model"], "gpu": gpu, "quantization": row["quantization"], "engine": engine,
                    "tok_s": tok_s} for engine, tok_s in row["tok_s"].items())
    return out


#: What marks a table cell that is not a clean number (results.problems): it stays out of comparisons.
NOT_CLEAN = "✗"


def work_footnote(docs: list[dict]) -> str:
    """A line per ok cell that did not do identical work in every repetition, or "" when none."""
    notes = [f"- {NOT_CLEAN} {SHORT.get(d['model'], d['model'])}, {gpu_label(d)}, {d['quantization']}, "
             f"{engine_column(d)}: {'; '.join(results.problems(d))}" for d in ordered(docs) if results.problems(d)]
    if not notes:
        return ""
    return (f"\n{NOT_CLEAN} not a clean number: its repetitions did not do identical work; left out of "
            "comparisons.\n\n" + "\n".join(notes) + "\n")


def work_statement(docs: list[dict]) -> list[str]:
    """Per model: did every ok cell decode the same prompt token ids and exactly gen_len tokens, and
    did each cell decode the same tokens in every repetition? One line per model, for the report."""
    lines = []
    for model in dict.fromkeys(d["model"] for d in ordered(docs) if d["status"] == "ok"):
        ok = [d for d in docs if d["status"] == "ok" and d["model"] == model]
        parts = [f"{SHORT.get(model, model)}: {len(ok)} cells", _prompt_part(ok), _count_part(ok), _tokens_part(ok)]
        line = "; ".join(parts)
        if any(results.work_check(d)["compared"] == "first 8 token ids" for d in ok):
            line += " (compared by their first 8 ids: results written before 2026-11-29 kept no more)"
        lines.append(line)
    return lines


def _prompt_part(ok: list[dict]) -> str:
    prompts = {tuple(d.get("prompt_token_ids") or ()) for d in ok}
    if len(prompts) == 1:
        return f"prompt token ids identical in every cell {list(next(iter(prompts)))}"
    return f"prompt token ids DIFFER between cells ({len(prompts)} variants)"


def _count_part(ok: list[dict]) -> str:
    gens = {s.get("gen_tokens") for d in ok for s in d["samples"]}
    wanted = {d["gen_tokens"]["requested"] for d in ok}
    if gens == wanted and len(wanted) == 1:
        return f"exactly {next(iter(wanted))} tokens decoded in every repetition"
    return f"token counts {sorted(g for g in gens if g is not None)}"


def _tokens_part(ok: list[dict]) -> str:
    same = {True: [], False: [], None: []}
    for d in ok:
        same[results.work_check(d)["identical_tokens"]].append(engine_column(d))
    if not same[False] and not same[None]:
        return "every cell decoded the same tokens in every repetition"
    said = []
    if same[False]:
        said.append(f"repetitions decoded different tokens in {', '.join(same[False])}")
    if same[None]:
        said.append(f"no token ids recorded by {', '.join(same[None])}")
    return "; ".join(said)


def stability_footnote(docs: list[dict]) -> str:
    """A line per ok cell whose decode speed is unstable, or "" when none is."""
    notes = []
    for d in ordered(docs):
        warnings = stats.stability_warnings(d.get("decode_tok_s")) if d["status"] == "ok" else []
        if warnings:
            where = f"{SHORT.get(d['model'], d['model'])}, {gpu_label(d)}, {d['quantization']}, {engine_column(d)}"
            notes.append(f"- {UNSTABLE} {where}: {'; '.join(warnings)}")
    if not notes:
        return ""
    head = (f"\n{UNSTABLE} unstable: decode speed varied more than the thresholds (CV > {stats.CV_WARN:.0%} or "
            f"95% CI half-width > ±{stats.CI_HALF_WIDTH_WARN:.0%} of the mean); compare these cells with care.\n\n")
    return head + "\n".join(notes) + "\n"


def stability_rows(docs: list[dict]) -> list[dict]:
    """Spread of decode and prefill speed over the repetitions of each ok cell."""
    out = []
    for d in docs:
        if d["status"] != "ok":
            continue
        row = {"cell": d["cell_id"], "reps": d["repetitions"]["actual"], "warmup": d["repetitions"].get("warmup")}
        for metric in ("decode_tok_s", "prefill_tok_s"):
            s = d.get(metric) or {}
            half = (s["ci_high"] - s["mean"]) / s["mean"] if s.get("ci_high") is not None and s["mean"] else None
            row.update({
                f"{metric}_mean": s.get("mean"), f"{metric}_median": s.get("median"), f"{metric}_std": s.get("std"),
                f"{metric}_cv": s.get("cv"), f"{metric}_ci_half": half,
            })
        row["warnings"] = "; ".join(stats.stability_warnings(d.get("decode_tok_s")))
        out.append(row)
    return out


def roofline_rows(docs: list[dict]) -> list[dict]:
    """Each cell's limits (roofline.of) beside what it measured."""
    out = []
    for d in docs:
        r = roofline.of(d)
        dec, pre = d.get("decode_tok_s") or {}, d.get("prefill_tok_s") or {}
        out.append({
            "cell": d["cell_id"], "gpu": gpu_label(d), "status": d["status"],
            "weight_gb_per_token": r.bytes_per_token / 1e9 if r.bytes_per_token else None, "bytes_from": r.bytes_from,
            "decode_tok_s": dec.get("mean"), "decode_limit_tok_s": r.decode_limit_tok_s,
            "decode_fraction": r.decode_fraction,
            "prefill_tok_s": pre.get("mean"), "prefill_limit_tok_s": r.prefill_limit_tok_s,
            "prefill_bound": r.prefill_bound, "prefill_fraction": r.prefill_fraction,
            "prefill_compute_limit_tok_s": r.prefill_compute_limit_tok_s,
            "note": r.note,
        })
    return out


def plot_decode(df, ax=None):
    """Grouped bars of decode tok/s per (model, GPU, quantization), one bar per engine, with std error bars."""
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    if ok.empty:
        ax.text(0.5, 0.5, "no successful cells", ha="center", va="center", transform=ax.transAxes)
        return ax
    # one bar per cell: a group is what a table row is (model, GPU, quantization), so no two cells
    # share a bar (pivot_table would average them into a number no run measured)
    ok = ok.assign(group=ok.model.map(lambda m: SHORT.get(m, m)) + "\n" + ok.gpu + ", " + ok.quantization,
                   size=ok.model.map(model_order))
    order = list(dict.fromkeys(ok.sort_values("size", kind="stable").group))  # 7B before 13B, not alphabetical
    table = ok.pivot(index="group", columns="engine", values="decode_tok_s").reindex(order)
    err = ok.pivot(index="group", columns="engine", values="decode_std").reindex(order)
    table.plot.bar(yerr=err, ax=ax, rot=0, capsize=3)
    ax.set_ylabel("decode tok/s (mean ± std)")
    ax.set_xlabel("")
    ax.legend(fontsize="small")
    return ax


def plot_token_latency(docs: list[dict], ax=None):
    """Mean per-token decode latency at each generated position, one line per cell."""
    import matplotlib.pyplot as plt
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    for d in docs:
        lat = [s.get("token_latencies_s") for s in d["samples"] if s.get("token_latencies_s")]
        if not lat:
            continue
        n = min(map(len, lat))
        mean = np.mean([x[:n] for x in lat], axis=0) * 1e3
        ax.plot(np.arange(2, n + 2), mean, label=f"{SHORT.get(d['model'], d['model'])} {gpu_label(d)} {engine_column(d)}")
    ax.set_xlabel("generated token position")
    ax.set_ylabel("latency (ms/token)")
    if ax.lines:
        ax.legend(fontsize="small")
    return ax


def plot_roofline(docs: list[dict], ax=None):
    """Decode tok/s of each ok cell (mean ± std) on a bar of its memory-bandwidth limit, labelled with the
    fraction reached. Cells with no limit (CPU, unknown GPU or format) are named in a note instead."""
    import matplotlib.pyplot as plt

    shown, left_out = [], []
    for d in docs:
        if d["status"] != "ok":
            continue
        r = roofline.of(d)
        if r.decode_limit_tok_s:
            shown.append((d, r))
        else:
            left_out.append(f"{SHORT.get(d['model'], d['model'])} {gpu_label(d)} {engine_column(d)} ({r.note})")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.6 * len(shown) + 1.4 if shown else 1.0))
    if not shown:
        ax.text(0.5, 0.5, "no cell has a roofline limit: " + "; ".join(left_out or ["no successful cells"]),
                ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize="small")
        ax.set_axis_off()
        return ax
    labels = [f"{SHORT.get(d['model'], d['model'])} · {gpu_label(d)}\n{engine_column(d)}" for d, _ in shown]
    y = range(len(shown))
    limits = [r.decode_limit_tok_s for _, r in shown]
    means = [d["decode_tok_s"]["mean"] for d, _ in shown]
    stds = [d["decode_tok_s"]["std"] for d, _ in shown]
    ax.barh(y, limits, color="#dddddd", edgecolor="#888888", label="limit: bandwidth / weight bytes per token")
    ax.barh(y, means, height=0.5, xerr=stds, capsize=3, color="#4c72b0", label="measured decode (mean ± std)")
    for i, (d, r) in enumerate(shown):
        ax.text(d["decode_tok_s"]["mean"], i, f" {r.decode_fraction:.0%}", va="center", ha="left", fontsize="small")
    ax.set_yticks(list(y), labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("decode tok/s")
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    if left_out:
        ax.annotate("no limit: " + "; ".join(left_out), (0, 0), xycoords="figure fraction", xytext=(4, 4),
                    textcoords="offset points", fontsize="x-small", va="bottom")
    return ax


def plot_repetitions(docs: list[dict], ax=None):
    """Decode tok/s of every repetition as a deviation from its cell's mean, warm-up included (hollow):
    drift, a slow first repetition or one outlier shows here before it shows in a mean."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    labelled = 0
    for d in docs:
        dec = d.get("decode_tok_s")
        if d["status"] != "ok" or not dec or not dec["mean"]:
            continue
        warm = [s.get("decode_tok_s") for s in d.get("warmup_samples") or []]
        measured = [s.get("decode_tok_s") for s in d["samples"]]
        label = f"{SHORT.get(d['model'], d['model'])} {gpu_label(d)} {engine_column(d)}"
        xs = range(1, len(measured) + 1)
        line, = ax.plot(xs, [100 * (v / dec["mean"] - 1) for v in measured], marker="o", label=label)
        labelled += 1
        if warm:
            ax.plot(range(1 - len(warm), 1), [100 * (v / dec["mean"] - 1) for v in warm], marker="o",
                    linestyle="none", markerfacecolor="none", color=line.get_color())
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.set_xlabel("repetition (≤ 0: warm-up, not counted)")
    ax.set_ylabel("decode tok/s vs cell mean (%)")
    if labelled:
        ax.legend(fontsize="small")
    return ax


def provenance_lines(docs: list[dict]) -> list[str]:
    """Which GPUs (by UUID) and which project commits the ok cells ran on: one line each, with the
    cells that differ from the most common, or that recorded none."""
    ok = [d for d in docs if d["status"] == "ok"]
    if not ok:
        return []

    def common_and_exceptions(key, what: str) -> str:
        values = [key(d) for d in ok]
        counts: dict = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        top = max(counts, key=counts.get)
        if top is None:
            return f"{what}: not recorded by any cell"
        others = [f"{d['cell_id']} ({v or 'not recorded'})" for d, v in zip(ok, values, strict=True) if v != top]
        head = f"{what}: {top} for {counts[top]} of {len(ok)} cells"
        return head + ("; the others: " + ", ".join(others) if others else " (all of them)")

    def gpus_of(d):
        uuids = (d.get("provenance") or {}).get("gpu_uuids")
        return ", ".join(u or "?" for u in uuids) if uuids else None

    def commit_of(d):
        p = (d.get("provenance") or {}).get("project") or {}
        return None if not p.get("commit") else p["commit"][:12] + (" (dirty tree)" if p.get("dirty") else "")

    gpus = ("GPUs: none, every cell ran on the CPU" if all(d["gpu"]["name"] == "cpu" for d in ok)
            else common_and_exceptions(gpus_of, "GPU UUIDs"))
    return [gpus, common_and_exceptions(commit_of, "llmperf-nb commit"), *node_lines(docs)]


def node_lines(docs: list[dict]) -> list[str]:
    """Which machines of a cluster ran the cells (the results' ``node``), when a cluster ran them."""
    counts: dict[str, int] = {}
    for d in docs:
        node = d.get("node")
        if node:
            name = f"{node['hostname'] or node['ip']} ({node['ip']}, node {node['node_id'][:8]})"
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return []
    ran = ", ".join(f"{name}: {n} cell{'s' if n > 1 else ''}" for name, n in sorted(counts.items()))
    return [f"Ray nodes: {ran}"]
