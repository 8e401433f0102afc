"""What llama.cpp prints: llama-bench (-o md, csv, json, jsonl) and the timing lines of its
completion programs (main, llama-cli, llama-completion; ``llama_print_timings:``,
``llama_perf_context_print:`` or ``common_perf_print:``).

llama-bench's prompt test (``pp N``: n_prompt > 0, n_gen == 0) is prefill, its generation test
(``tg N``: n_gen > 0, n_prompt == 0) is decode. A completion program's ``eval time = X ms / N runs``
covers N single-token passes after the prompt, so N + 1 tokens were generated.
"""

from __future__ import annotations

import csv
import io
import json
import re

from ..exceptions import ParseError
from ..measurement import Measurement

ENGINE = "llama.cpp"


def _num(text: str) -> float:
    # some locales print a decimal comma ("285,92 ms")
    return float(text.replace(",", "."))


def _version(test: dict) -> str:
    commit, number = test.get("build_commit"), test.get("build_number")
    return f"llama.cpp build {number} ({commit})" if commit else ENGINE


def _from_tests(tests: list[dict], source: str) -> Measurement:
    """Pair llama-bench's prompt and generation tests into per-repetition samples."""
    pp = [t for t in tests if int(t.get("n_prompt", 0)) > 0 and int(t.get("n_gen", 0)) == 0]
    tg = [t for t in tests if int(t.get("n_gen", 0)) > 0 and int(t.get("n_prompt", 0)) == 0]
    if not tg and not pp:
        raise ParseError(f"llama-bench {source}: no pp or tg test found")
    notes = []
    if len(tg) > 1 or len(pp) > 1:
        notes.append(f"{len(pp)} prompt and {len(tg)} generation tests in the log; the first of each is used")
    gen, pre = (tg[0] if tg else None), (pp[0] if pp else None)

    def series(t):
        if t is None:
            return []
        if t.get("samples_ts"):
            return [float(x) for x in t["samples_ts"]]
        notes.append(f"{source} holds mean ± std only ({float(t['avg_ts']):.2f} ± {float(t.get('stddev_ts') or 0):.2f}); "
                     "per-repetition samples are not in this format")
        return [float(t["avg_ts"])]

    dec, pf = series(gen), series(pre)
    n = max(len(dec), len(pf))
    samples = []
    for i in range(n):
        s = {"prompt_tokens": int(pre["n_prompt"]) if pre else 0,
             "gen_tokens": int(gen["n_gen"]) if gen else 0}
        if i < len(dec):
            s["decode_tok_s"] = dec[i]
            s["decode_s"] = int(gen["n_gen"]) / dec[i]
        if i < len(pf):
            s["prefill_tok_s"] = pf[i]
            s["prefill_s"] = int(pre["n_prompt"]) / pf[i]
        samples.append(s)
    first = gen or pre
    build = {k: first.get(k) for k in ("build_commit", "build_number", "backends", "gpu_info", "cpu_info",
                                        "model_type", "model_size", "n_gpu_layers", "split_mode", "flash_attn",
                                        "n_threads", "n_batch", "n_ubatch", "type_k", "type_v") if k in first}
    return Measurement(engine_version=_version(first), prompt_token_ids=None, samples=samples,
                       build={"tool": "llama-bench", **build}, notes=notes)


def parse_bench_json(text: str) -> Measurement:
    try:
        tests = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParseError(f"llama-bench json: not JSON ({e.msg})") from None
    if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
        raise ParseError("llama-bench json: expected a list of tests")
    return _from_tests(tests, "json")


def parse_bench_jsonl(text: str) -> Measurement:
    try:
        tests = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
    except json.JSONDecodeError as e:
        raise ParseError(f"llama-bench jsonl: a line is not JSON ({e.msg})") from None
    if not tests:
        raise ParseError("llama-bench jsonl: no JSON lines")
    return _from_tests(tests, "jsonl")


def parse_bench_csv(text: str) -> Measurement:
    lines = [line for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("build_commit,")), None)
    if start is None:
        raise ParseError("llama-bench csv: no header line starting with build_commit")
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
    for i, r in enumerate(rows, start=1):
        if None in r or None in r.values():
            raise ParseError(f"llama-bench csv: row {i} does not have the header's {len(r) - (None in r)} columns")
    for r in rows:
        if r.get("samples_ts"):
            r["samples_ts"] = [float(x) for x in r["samples_ts"].strip("[] ").split()]
    return _from_tests(rows, "csv")


_MD_TEST = re.compile(r"^(pp|tg)\s*(\d+)$")
_MD_TS = re.compile(r"^([\d.]+)\s*±\s*([\d.]+)$")


def parse_bench_md(text: str) -> Measurement:
    header, tests = None, []
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "test" in cells and "t/s" in cells:
            header = cells
            continue
        if header is None or set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        kind, ts = _MD_TEST.match(row.get("test", "")), _MD_TS.match(row.get("t/s", ""))
        if not (kind and ts):
            continue  # e.g. combined "pp512+tg128" or depth tests: not part of this workload
        n = int(kind.group(2))
        tests.append({"n_prompt": n if kind.group(1) == "pp" else 0, "n_gen": n if kind.group(1) == "tg" else 0,
                      "avg_ts": ts.group(1), "stddev_ts": ts.group(2), "model_type": row.get("model"),
                      "backends": row.get("backend"), "n_gpu_layers": row.get("ngl")})
    if header is None:
        raise ParseError("llama-bench md: no table with 'test' and 't/s' columns")
    return _from_tests(tests, "md")


_TIMING = re.compile(
    # llama-completion prefixes each log line with a time stamp and a level when stderr is no terminal
    r"^(?:[\d.]+ [A-Z] )?(?P<prefix>\w+):\s+(?P<what>prompt eval time|eval time)\s*=\s*(?P<ms>[\d.,]+) ms\s*/\s*"
    r"(?P<n>\d+) (?:tokens|runs)(?:\s*\(\s*(?P<per>[\d.,]+) ms per token(?:,\s*(?P<tps>[\d.,]+) tokens per second)?\))?",
    re.MULTILINE,
)


def parse_timings(text: str) -> Measurement:
    """One sample per block of timing lines (a log may hold several runs)."""
    samples, current = [], {}
    prefixes = set()
    for m in _TIMING.finditer(text):
        prefixes.add(m.group("prefix"))
        seconds, n = _num(m.group("ms")) / 1000, int(m.group("n"))
        if m.group("what") == "prompt eval time":
            if current:
                samples.append(current)
            current = {"prompt_tokens": n, "prefill_s": seconds,
                       "prefill_tok_s": n / seconds if seconds else None}
        else:
            current.setdefault("prompt_tokens", None)
            current.update(gen_tokens=n + 1, decode_s=seconds, decode_tok_s=n / seconds if seconds else None)
            samples.append(current)
            current = {}
    if current:
        samples.append(current)
    samples = [s for s in samples if "gen_tokens" in s]
    if not samples:
        raise ParseError("no llama.cpp 'eval time = ... ms / N runs' line found")
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": "completion timings", "prefix": ", ".join(sorted(prefixes))})
