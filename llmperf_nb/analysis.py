"""Tables and plots from result files. Used by the analysis notebook and by ``report``."""

from __future__ import annotations

from pathlib import Path

from . import gpus, models, results, stats

#: How the original benchmark named its models in tables.
SHORT = {
    "Llama-2-7b-chat-hf": "Llama2-7B", "Llama-2-13b-chat-hf": "Llama2-13B",
    "Llama-2-70b-chat-hf": "Llama2-70B", "CodeLlama-7b-Instruct-hf": "CodeLlama-7B",
    "CodeLlama-13b-Instruct-hf": "CodeLlama-13B", "CodeLlama-34b-Instruct-hf": "CodeLlama-34B",
}


def engine_column(doc: dict) -> str:
    """An engine plus the options that make it a separate configuration, e.g. 'llama.cpp (split_mode=row)'."""
    opts = doc.get("engine_config") or {}
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
    """Decode tok/s x weight bytes read per token / the GPU's memory bandwidth (summed over GPUs)."""
    name = (doc.get("hardware") or {}).get("gpu", {}).get("catalog_name") or doc["gpu"]["name"]
    spec = gpus.GPUS.get(name)
    size = (doc.get("weights") or {}).get("bytes")
    decode = doc.get("decode_tok_s")
    if not (spec and spec.bandwidth_gb_s and size and decode and doc["model"] in models.MODELS):
        return None
    m = models.MODELS[doc["model"]]
    per_token = size * m.n_params_per_token / m.n_params  # the embedding table is not read whole
    return decode["mean"] * per_token / (spec.bandwidth_gb_s * 1e9 * doc["gpu"]["count"])


def rows(docs: list[dict]) -> list[dict]:
    out = []
    for d in docs:
        dec, pre, ttft = d.get("decode_tok_s"), d.get("prefill_tok_s"), d.get("ttft_s")
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
            "bw_fraction": bandwidth_fraction(d),
            "stability": "; ".join(stats.stability_warnings(dec)) if dec else "",
            "error": (d.get("error") or {}).get("message", ""),
        })
    return out


def load(results_dir: str | Path):
    """(documents, DataFrame) for every result file below ``results_dir``."""
    import pandas as pd

    docs = results.load_dir(results_dir)
    return docs, pd.DataFrame(rows(docs))


def cell_text(doc: dict) -> str:
    """One table cell: 'mean ± std' when ok, otherwise why there is no number."""
    if doc["status"] == "ok":
        d = doc["decode_tok_s"]
        return f"{d['mean']:.2f} ± {d['std']:.2f}"
    reason = (doc.get("error") or {}).get("message", "").splitlines()[0:1]
    word = "not run" if doc["status"] == "skipped" else "failed"
    return f"{word}: {reason[0]}" if reason else word


def markdown_table(docs: list[dict]) -> str:
    """The original benchmark's table: Model | GPU | one column per engine (decode tok/s)."""
    engines = list(dict.fromkeys(engine_column(d) for d in docs))
    keyed: dict[tuple, dict] = {}
    for d in docs:
        model = SHORT.get(d["model"], d["model"])
        weights = "synthetic" if d["weights"]["synthetic"] else d["weights"]["source"]
        keyed.setdefault((model, gpu_label(d), d["quantization"], weights), {})[engine_column(d)] = d
    head = ["Model", "GPU", "Quantization", "Weights", *(f"{e} (tok/sec)" for e in engines)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (model, gpu, quant, weights), by_engine in keyed.items():
        cells = [cell_text(by_engine[e]) if e in by_engine else "" for e in engines]
        lines.append("| " + " | ".join([model, gpu, quant, weights, *cells]) + " |")
    return "\n".join(lines) + "\n"


def plot_decode(df, ax=None):
    """Grouped bars of decode tok/s per (model, GPU), one bar per engine, with std error bars."""
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.5))
    if ok.empty:
        ax.text(0.5, 0.5, "no successful cells", ha="center", va="center", transform=ax.transAxes)
        return ax
    ok = ok.assign(group=ok.model.map(lambda m: SHORT.get(m, m)) + "\n" + ok.gpu)
    table = ok.pivot_table(index="group", columns="engine", values="decode_tok_s", sort=False)
    err = ok.pivot_table(index="group", columns="engine", values="decode_std", sort=False)
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
