"""The load generator of the serve workload: NVIDIA's AIPerf (PyPI ``aiperf``, 0.13), not our own.

Why AIPerf and not GuideLLM (both tried, docs/serving.md): AIPerf records when every streamed chunk
arrived (``inter_chunk_latency``), so inter-token latency percentiles are measured; GuideLLM 0.8.1 keeps
only the first and last token times of a request and spaces the others evenly between them, so its ITL
is each request's mean. GuideLLM also requires torch, which the engines' images need not have.

AIPerf runs from its own environment: it pins ``huggingface_hub<2`` and ``pandas~=2.3``, which the
engines' environments need not agree with. ``$AIPERF`` names its executable, else ``aiperf`` on PATH
(``make setup-test`` makes ``.venv-aiperf``; docs/serving.md).

One level = one ``aiperf profile`` run: ``requests`` requests to ``/v1/completions``, streamed, at most
``concurrency`` in flight, synthetic prompts of exactly ``input_len`` tokens of the model's tokenizer,
``max_tokens = min_tokens = output_len`` with ``ignore_eos`` (llama-server and vLLM both honour it).
This module builds the argv and reads what it exports: the per-request records (``profile_export.jsonl``:
latencies, the server's ``usage``) and every streamed event with its arrival time
(``profile_export_raw.jsonl``), from which the tokens the client received are counted and timed.

Counting streamed tokens: AIPerf counts an event only if it carries text. vLLM sends an event for every
token, with empty text when the token's bytes end inside a UTF-8 character (random weights write such
tokens now and then; its own ``vllm bench serve`` counts those events), so AIPerf's count fell short of
the server's by 1-5 tokens of 256 on an H200 (2026-11-30). llama-server does the opposite: it holds back
a token whose bytes end inside a UTF-8 character and sends its text with the next token's, one event for
two tokens (``process_token`` in its server-context.cpp), so counting events fell short the same way (fp16,
same day). Here an event counts as the token ids it lists where the server lists them (vLLM with
``return_token_ids``); else as the growth of the server's running count of generated tokens where it
reports one (llama-server with ``timings_per_token``: ``timings.predicted_n``); else as one token if it
carries text. A closing event that carries no new token counts none.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from .exceptions import EngineError, LlmPerfError, ParseError

TOOL = "aiperf"
RECORDS_FILE = "profile_export.jsonl"
STREAM_FILE = "profile_export_raw.jsonl"
WORKLOAD_NOTE = (
    "streamed /v1/completions, fixed input and output lengths, ignore_eos; TTFT, inter-chunk "
    "latencies and end-to-end latency per request as the client saw them"
)


def argv(
    base: str,
    model: str,
    tokenizer: Path,
    concurrency: int,
    requests: int,
    input_len: int,
    output_len: int,
    out: Path,
    seed: int,
    extras: dict[str, str] | None = None,
) -> list[str]:
    """The command of one level; ``extras``: the engine's ``server_request_extras``, added to every request."""
    added = [a for k, v in (extras or {}).items() for a in ("--extra-inputs", f"{k}:{v}")]
    return [
        executable(),
        "profile",
        "--model",
        model,
        "--url",
        base,
        "--endpoint-type",
        "completions",
        "--streaming",
        "--tokenizer",
        str(tokenizer),
        "--concurrency",
        str(concurrency),
        "--request-count",
        str(requests),
        "--prompt-input-tokens-mean",
        str(input_len),
        "--prompt-input-tokens-stddev",
        "0",
        "--prompt-output-tokens-mean",
        str(output_len),
        "--prompt-output-tokens-stddev",
        "0",
        "--extra-inputs",
        "ignore_eos:true",
        "--extra-inputs",
        f"min_tokens:{output_len}",
        *added,
        "--random-seed",
        str(seed),
        # a new connection for every request: with AIPerf's pool (the default), a request sent on a kept-alive
        # connection that llama-server had just closed failed 0.7 ms after it started (ServerDisconnectedError,
        # 1 of 256 at concurrency 64 on an H200, 2026-11-30); on 127.0.0.1 a connect costs microseconds
        "--connection-reuse-strategy",
        "never",
        "--output-artifact-dir",
        str(out),
        "--export-level",
        "raw",  # the records, and every streamed event (STREAM_FILE)
        "--ui-type",
        "none",
        "--no-server-metrics",
        "--no-gpu-telemetry",
        "--no-auto-plot",
    ]


def parse(out: Path) -> tuple[list[dict], float]:
    """(per-request records, the level's wall time in s) from what one run exported.

    A record: ``ttft_s``, ``itl_s`` (the gap before each streamed event that carried a token, after the
    first), ``e2e_s``, ``output_tokens`` (the tokens the client received, counted per event as the module
    docstring says), ``stream_events`` (the events that carried them),
    ``server_output_tokens`` and ``prompt_tokens`` (the server's ``usage`` of that response, BOS included),
    ``client_prompt_tokens`` (the prompt as the generator made it, in the tokenizer's tokens),
    ``cached_prompt_tokens`` (prompt tokens the server took from a cache), ``retokenized_output_tokens``
    (AIPerf's count of the output text tokenized again: off for text that does not tokenize back the same,
    as random weights write), ``start_s`` (from the level's first request), ``error`` when it failed."""
    path = Path(out) / RECORDS_FILE
    try:
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise ParseError(f"{TOOL} wrote no readable {RECORDS_FILE} in {out}: {e}") from None
    raw = [_record(line) for line in lines]
    if not raw:
        raise ParseError(f"{TOOL}: {path} holds no request")
    streams = _streams(Path(out) / STREAM_FILE)
    if streams is not None:
        for r, line in zip(raw, lines, strict=True):
            _from_stream(r, streams.get(line["metadata"].get("x_request_id")))
    t0 = min(r.pop("_start_ns") for r in raw)
    end = max(r.pop("_end_ns") for r in raw)
    for r, line in zip(raw, lines, strict=True):
        r["start_s"] = (line["metadata"]["request_start_ns"] - t0) / 1e9
    return raw, (end - t0) / 1e9


def _record(line: dict) -> dict:
    m = line.get("metrics") or {}
    meta = line["metadata"]
    start = meta["request_start_ns"]
    e2e = _seconds(m, "request_latency")
    itl = [v / 1e3 for v in _value(m, "inter_chunk_latency", "ms") or []]
    ttft = _seconds(m, "time_to_first_token")
    rec = {
        "ttft_s": ttft,
        "e2e_s": e2e,
        "itl_s": itl,
        "output_tokens": len(itl) + 1 if ttft is not None else 0,
        "server_output_tokens": _int(_value(m, "usage_completion_tokens", "tokens")),
        "prompt_tokens": _int(_value(m, "usage_prompt_tokens", "tokens")),
        "client_prompt_tokens": _int(_value(m, "input_sequence_length", "tokens")),
        "cached_prompt_tokens": _int(_value(m, "usage_prompt_cache_read_tokens", "tokens")),
        "retokenized_output_tokens": _int(_value(m, "output_sequence_length", "tokens")),
        "_start_ns": start,
        "_end_ns": start + int((e2e or 0) * 1e9),
    }
    if line.get("error"):
        rec["error"] = str((line["error"] or {}).get("message") or line["error"])[:300]
    elif rec["ttft_s"] is None or e2e is None:
        rec["error"] = "no first token or no end time recorded"
    return rec


def _streams(path: Path) -> dict[str, dict] | None:
    """Each request's streamed events from STREAM_FILE, by request id: ``start_ns`` (AIPerf's clock, as
    its ``time_to_first_token`` counts from) and ``events``, (arrival ns, tokens) of each event that
    carried a token. None when the file is absent (results of runs before it was exported)."""
    if not path.exists():
        return None
    try:
        with path.open() as f:  # a line at a time: a level at concurrency 64 exports tens of MB
            return dict(_stream(json.loads(text)) for text in f if text.strip())
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ParseError(f"{TOOL}: {path} is not a stream export this project reads: {e!r}") from None


def _stream(line: dict) -> tuple[str, dict]:
    """One request of the stream export: its id, and its start and token-carrying events."""
    events, seen = [], 0  # seen: the tokens counted so far in this request
    for response in line.get("responses") or []:
        before = seen
        for packet in response.get("packets") or []:
            seen = _tokens_after(packet, seen)
        if seen > before:
            events.append((response["perf_ns"], seen - before))
    return line["metadata"]["x_request_id"], {"start_ns": line["start_perf_ns"], "events": events}


def _tokens_after(packet: dict, seen: int) -> int:
    """The request's token count after one server-sent event, ``seen`` before it (module docstring,
    Counting streamed tokens)."""
    if packet.get("name") != "data" or packet.get("value", "").strip() in ("", "[DONE]"):
        return seen
    data = json.loads(packet["value"])
    choice = (data.get("choices") or [{}])[0]  # none: the closing usage-only event
    if choice.get("token_ids") is not None:
        return seen + len(choice["token_ids"])
    generated = (data.get("timings") or {}).get("predicted_n")
    if generated is not None:
        return max(seen, int(generated))
    return seen + 1 if choice.get("text") else seen


def _from_stream(rec: dict, stream: dict | None) -> None:
    """A record's token count, TTFT and gaps from its streamed events, where they were exported."""
    if stream is None or "error" in rec:
        return
    events = stream["events"]
    if not events:
        rec["error"] = "no streamed event carried a token"
        return
    times = [t for t, _ in events]
    rec["ttft_s"] = (times[0] - stream["start_ns"]) / 1e9
    rec["itl_s"] = [(b - a) / 1e9 for a, b in zip(times[:-1], times[1:], strict=True)]
    rec["output_tokens"] = sum(n for _, n in events)
    rec["stream_events"] = len(events)


def _value(metrics: dict, name: str, unit: str):
    found = metrics.get(name)
    if found is None:
        return None
    if found.get("unit") not in (unit, None):
        raise ParseError(f"{TOOL}: {name} in {found.get('unit')!r}, expected {unit!r}")
    return found.get("value")


def _seconds(metrics: dict, name: str) -> float | None:
    ms = _value(metrics, name, "ms")
    return None if ms is None else ms / 1e3


def _int(value) -> int | None:
    return None if value is None else int(value)


#: the version this project runs and documents (pyproject.toml's ``serve`` extra, the Makefile's AIPERF_SPEC)
VERSION = "0.13.0"


def executable() -> str:
    """AIPerf's ``aiperf``: ``$AIPERF``, else on PATH."""
    import os
    import shutil

    found = os.environ.get("AIPERF") or shutil.which("aiperf")
    if found:
        return found
    image = os.environ.get("LLMPERF_NB_IMAGE")  # set by --runner docker: advice for the host would mislead
    where = (
        f", and this image has none ({image}): run the cell without --runner docker, or in an image that holds it "
        "(docker/README.md)"
        if image
        else f": install it in its own environment (python -m venv .venv-aiperf && .venv-aiperf/bin/pip install "
        f"aiperf=={VERSION}; make setup-test does) and set AIPERF=.venv-aiperf/bin/aiperf, or put aiperf on PATH"
    )
    raise EngineError(f"the serve workload's load generator is AIPerf {VERSION}{where}")


@lru_cache(maxsize=1)
def version() -> str:
    """The installed AIPerf's version: from its environment's metadata next to its executable (a venv), else
    as ``aiperf --version`` prints it (a wrapper script, as on the GPU machine: docs/gpu-machine.md)."""
    from . import process

    exe = Path(executable()).resolve()
    for meta in exe.parent.parent.glob("lib/python3*/site-packages/aiperf-*.dist-info"):
        return meta.name[len("aiperf-") : -len(".dist-info")]
    try:
        said = process.run([str(exe), "--version"], timeout=120, check=False).output
    except (OSError, LlmPerfError):  # a version is a label: it never fails a measured level
        said = ""
    found = re.search(r"^\s*v?(\d+\.\d+\.\d+\S*)\s*$", said, re.M)
    return found.group(1) if found else "unknown version"


def describe() -> dict:
    return {"tool": TOOL, "version": version(), "records": RECORDS_FILE, "stream": STREAM_FILE}


def tokenizer_dir(model: str, cache_dir: Path) -> Path:
    """A Hugging Face tokenizer folder of the model's vocabulary (the Llama SentencePiece vocabulary the
    prompt ids come from, padded to the model's size), for the generator to make prompts of exact length."""
    from .models import get_model
    from .weights.gptq import tokenizer_files

    spec = get_model(model)
    out = Path(cache_dir) / "tokenizer" / f"llama-spm-{spec.vocab_size}-{spec.max_position_embeddings}"
    if not (out / "tokenizer.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        for name, doc in tokenizer_files(spec.vocab_size, spec.max_position_embeddings).items():
            (out / name).write_text(json.dumps(doc))
    return out
