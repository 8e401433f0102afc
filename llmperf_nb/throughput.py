"""Tables and plots of sweep and serving results, from result files alone: throughput per GPU against
the speed each user sees (the Pareto chart), latency percentiles, and sweep curves against the roofline
at batch B. The single workload's tables are :mod:`llmperf_nb.analysis`."""

from __future__ import annotations

from . import process, results, roofline
from .analysis import NOT_CLEAN, engine_column, gpu_label, ordered, short_model
from .points import key as point_key


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    """The results of one workload kind, by model size."""
    return ordered([d for d in docs if results.kind(d) == kind])


def _who(d: dict) -> dict:
    return {
        "model": short_model(d["model"]),
        "gpu": gpu_label(d),
        "engine": engine_column(d),
        "quantization": d["quantization"],
    }


def _not_run(d: dict) -> dict:
    word = "not run" if d["status"] == "skipped" else "failed"
    # the message's first line, and the line of its text or log tail that reads like the cause when the first
    # does not give it (results written before the server's failure named it); the rest is in the result file
    error = d.get("error") or {}
    message = error.get("message") or ""
    first = message.splitlines()[0] if message else "no reason recorded"
    rest = (message[len(first):] + "\n" + (error.get("log_tail") or "")).splitlines()
    cause = process.first_error("\n".join(line for line in rest if first not in line))
    reason = f"{first} {cause}" if cause and cause not in first else first
    return {**_who(d), "status": f"{word}: {reason}"[:300]}


def sweep_rows(docs: list[dict]) -> list[dict]:
    """One row per (batch size, prompt length) of every sweep result; one row for a cell not measured."""
    out = []
    for d in of_kind(docs, "sweep"):
        if d["status"] != "ok":
            out.append(_not_run(d))
            continue
        for p in d["points"]:
            dec, lat = p.get("decode_tok_s") or {}, p.get("token_latency_s") or {}
            limit = roofline.batch_decode_limit(d, p["batch_size"], p["prompt_tokens"], p["gen_tokens"])
            out.append(
                {
                    **_who(d),
                    "status": "ok",
                    "batch": p["batch_size"],
                    "prompt": p["prompt_tokens"],
                    "gen": p["gen_tokens"],
                    "decode_tok_s": dec.get("mean"),
                    "decode_std": dec.get("std"),
                    "per_seq_tok_s": (p.get("per_seq_decode_tok_s") or {}).get("mean"),
                    "prefill_tok_s": (p.get("prefill_tok_s") or {}).get("mean"),
                    "ttft_ms": _ms((p.get("ttft_s") or {}).get("mean")),
                    "step_p50_ms": _ms(lat.get("p50")),
                    "step_p99_ms": _ms(lat.get("p99")),
                    "peak_mem_gib": p["peak_mem_bytes"] / 2**30 if p.get("peak_mem_bytes") else None,
                    "limit_tok_s": limit,
                    "fraction": dec["mean"] / limit if limit and dec.get("mean") else None,
                    "problems": "; ".join(p.get("problems") or []),
                }
            )
    return out


def serve_rows(docs: list[dict]) -> list[dict]:
    """One row per concurrency level of every serving result; one row for a cell not measured."""
    out = []
    for d in of_kind(docs, "serve"):
        if d["status"] != "ok":
            out.append(_not_run(d))
            continue
        for p in d["points"]:
            row = {
                **_who(d),
                "status": "ok",
                "concurrency": p["concurrency"],
                "requests": p.get("completed"),
                "output_tok_s": p.get("output_tok_s"),
                "output_tok_s_per_gpu": _per_gpu(d, p.get("output_tok_s")),
                "tok_s_per_user": p.get("tok_s_per_user"),
                "requests_per_s": p.get("requests_per_s"),
                "goodput_req_s": p.get("goodput_req_s"),
                "slo_attainment": p.get("slo_attainment"),
            }
            for metric in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
                for q in ("p50", "p90", "p99"):
                    row[f"{metric[:-2]}_{q}_ms"] = _ms((p.get(metric) or {}).get(q))
            check = p.get("token_check") or {}
            row["tokens_server_vs_client"] = _check_text(check)
            row["problems"] = "; ".join(p.get("problems") or [])
            out.append(row)
    return out


def _check_text(check: dict) -> str:
    if check.get("equal") is None:
        return "no server count"
    server = check["server_counter"] if check.get("server_counter") is not None else check["server_usage"]
    return f"{'equal' if check['equal'] else 'DIFFER'} ({server:g} / {check['client_streamed']})"


def _per_gpu(doc: dict, value: float | None) -> float | None:
    return None if value is None else value / doc["gpu"]["count"]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def latency_markdown(docs: list[dict]) -> str:
    """The serving table of a report's README: throughput, goodput and latency percentiles per level."""
    rows = [r for r in serve_rows(docs) if r["status"] == "ok"]
    if not rows:
        return ""
    head = [
        "Model",
        "GPU",
        "Engine",
        "Quantization",
        "c",
        "output tok/s",
        "tok/s/user",
        "req/s",
        "goodput req/s",
        "TTFT p50/p90/p99 ms",
        "TPOT p50/p90/p99 ms",
        "ITL p50/p90/p99 ms",
        "tokens server/client",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["--:"] * (len(head) - 4)) + "|"]
    for r in rows:
        trio = [" / ".join(_f(r[f"{m}_{q}_ms"]) for q in ("p50", "p90", "p99")) for m in ("ttft", "tpot", "itl")]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["model"],
                    r["gpu"],
                    r["engine"],
                    r["quantization"],
                    str(r["concurrency"]),
                    _f(r["output_tok_s"]) + _mark(r),
                    _f(r["tok_s_per_user"]),
                    _f(r["requests_per_s"], 3),
                    _f(r["goodput_req_s"], 3),
                    *trio,
                    r["tokens_server_vs_client"],
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n" + _unclean_footnote(rows, "level")


def sweep_markdown(docs: list[dict]) -> str:
    """The sweep table of a report's README: total and per-sequence decode tok/s per point."""
    rows = [r for r in sweep_rows(docs) if r["status"] == "ok"]
    if not rows:
        return ""
    head = [
        "Model",
        "GPU",
        "Engine",
        "Quantization",
        "batch",
        "prompt",
        "decode tok/s (total)",
        "per sequence",
        "prefill tok/s",
        "step p50/p99 ms",
        "% of limit at B",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["--:"] * (len(head) - 4)) + "|"]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["model"],
                    r["gpu"],
                    r["engine"],
                    r["quantization"],
                    str(r["batch"]),
                    str(r["prompt"]),
                    f"{_f(r['decode_tok_s'])} ± {_f(r['decode_std'])}" + _mark(r),
                    _f(r["per_seq_tok_s"]),
                    _f(r["prefill_tok_s"]),
                    f"{_f(r['step_p50_ms'])} / {_f(r['step_p99_ms'])}",
                    f"{r['fraction']:.0%}" if r["fraction"] else "",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n" + _unclean_footnote(rows, "point")


def _mark(row: dict) -> str:
    """✗ after a number whose point or level has problems (not a clean number: left out of compare)."""
    return f" {NOT_CLEAN}" if row.get("problems") else ""


def _unclean_footnote(rows: list[dict], what: str) -> str:
    """Below a table: each configuration's problems, with how many of its points or levels have them."""
    found: dict[tuple, dict[str, int]] = {}
    for r in rows:
        if r.get("problems"):
            counts = found.setdefault((r["model"], r["gpu"], r["engine"], r["quantization"]), {})
            counts[r["problems"]] = counts.get(r["problems"], 0) + 1
    if not found:
        return ""
    lines = [f"\n{NOT_CLEAN} not a clean number, left out of comparisons:\n"]
    for (model, gpu, engine, quant), counts in found.items():
        total = sum(1 for r in rows if (r["model"], r["gpu"], r["engine"], r["quantization"]) == (model, gpu, engine, quant))
        said = "; ".join(f"{problem} ({n} of {total} {what}s)" for problem, n in counts.items())
        lines.append(f"- {engine}, {quant} ({model}, {gpu}): {said}")
    return "\n".join(lines) + "\n"


def not_run_lines(docs: list[dict]) -> list[str]:
    """A line per sweep or serving cell that was not measured, and why (an engine with no batched API)."""
    rows = [*(("sweep", r) for r in sweep_rows(docs)), *(("serve", r) for r in serve_rows(docs))]
    return [
        f"{r['engine']} ({r['model']}, {r['gpu']}, {r['quantization']}, {kind}): {r['status']}"
        for kind, r in rows
        if r["status"] != "ok"
    ]


def _f(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def pareto_points(docs: list[dict]) -> dict[str, list[tuple[float, float, str]]]:
    """Per configuration (model, GPU, engine, workload): (tok/s per user, output tok/s per GPU, label)
    of every measured point. Serving: 1 / TPOT median and output tok/s at each concurrency; a sweep:
    per-sequence and total decode tok/s at each batch size (its longest prompt)."""
    series: dict[str, list] = {}
    for d in docs:
        if d["status"] != "ok" or results.kind(d) == "single":
            continue
        name = f"{short_model(d['model'])} · {gpu_label(d)} · {engine_column(d)} ({results.kind(d)})"
        for p in d["points"]:
            if results.kind(d) == "serve" and p.get("tok_s_per_user") and p.get("output_tok_s"):
                series.setdefault(name, []).append(
                    (p["tok_s_per_user"], _per_gpu(d, p["output_tok_s"]), point_key("serve", p))
                )
        longest = max((p["prompt_tokens"] for p in d["points"]), default=None) if results.kind(d) == "sweep" else None
        for p in d["points"]:
            if results.kind(d) == "sweep" and p["prompt_tokens"] == longest and p.get("decode_tok_s"):
                series.setdefault(f"{name}, prompt {longest}", []).append(
                    (p["per_seq_decode_tok_s"]["mean"], _per_gpu(d, p["decode_tok_s"]["mean"]), f"B={p['batch_size']}")
                )
    return series


def frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The Pareto-optimal points: none other is at least as fast per user and per GPU, and faster in one."""
    return sorted([p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q[:2] != p[:2] for q in points)])


def plot_pareto(docs: list[dict], ax=None):
    """Output tok/s per GPU against tok/s per user, one line per configuration, the frontier marked."""
    import matplotlib.pyplot as plt

    series = pareto_points(docs)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    if not series:
        ax.text(0.5, 0.5, "no measured sweep or serving point", ha="center", va="center", transform=ax.transAxes)
        return ax
    every = [p for pts in series.values() for p in pts]
    for name, pts in series.items():
        pts = sorted(pts)
        (line,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        for x, y, label in pts:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    best = frontier(every)
    ax.plot(
        [p[0] for p in best],
        [p[1] for p in best],
        linestyle="none",
        marker="o",
        markersize=12,
        markerfacecolor="none",
        color="#333333",
        label="Pareto frontier",
    )
    ax.set_xlabel("tok/s per user (1 / time per output token)")
    ax.set_ylabel("output tok/s per GPU")
    ax.legend(fontsize="x-small")
    return ax


def plot_sweep(docs: list[dict], ax=None):
    """Total decode tok/s against batch size, one line per (configuration, prompt length), with the
    roofline limit at each batch size dashed where the GPU has one."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    rows = [r for r in sweep_rows(docs) if r["status"] == "ok"]
    if not rows:
        ax.text(0.5, 0.5, "no measured sweep point", ha="center", va="center", transform=ax.transAxes)
        return ax
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["model"], r["gpu"], r["engine"], r["quantization"], r["prompt"]), []).append(r)
    for (model, gpu, engine, quant, prompt), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["batch"])
        (line,) = ax.errorbar(
            [r["batch"] for r in rs],
            [r["decode_tok_s"] for r in rs],
            yerr=[r["decode_std"] or 0 for r in rs],
            marker="o",
            capsize=3,
            label=f"{model} · {gpu} · {engine} {quant}, prompt {prompt}",
        ).lines[:1]
        if all(r["limit_tok_s"] for r in rs):
            ax.plot(
                [r["batch"] for r in rs],
                [r["limit_tok_s"] for r in rs],
                linestyle="--",
                color=line.get_color(),
                alpha=0.6,
            )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("decode tok/s, all sequences (mean ± std)")
    ax.legend(fontsize="x-small")
    return ax


def frame(rows: list[dict]):
    """A DataFrame of table rows in which a column of whole numbers stays whole where a row that was not run
    leaves gaps (pandas would make it float, and the page would read "batch 1.00")."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in df.columns:
        values = [r[col] for r in rows if r.get(col) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            df[col] = df[col].astype("Int64")
    return df


def result_tables(doc: dict) -> list:
    """What the benchmark notebook shows of its cell's result: DataFrames of its raw samples and statistics
    (single), or of its points (sweep, serve)."""
    import pandas as pd

    if results.kind(doc) == "sweep":
        return [frame(sweep_rows([doc]))]
    if results.kind(doc) == "serve":
        return [frame(serve_rows([doc]))]
    samples = pd.DataFrame(doc["samples"]).drop(
        columns=["token_latencies_s", "token_ids", "first_token_ids"], errors="ignore"
    )
    return [samples, pd.DataFrame({m: doc[m] for m in results.METRICS}).T]
