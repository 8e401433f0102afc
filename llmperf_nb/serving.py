"""The serve workload: the engine's own OpenAI-compatible server, driven by a real load generator.

Inside the benchmark step (the engine's environment, so in its container under --runner docker):

1. a free port on 127.0.0.1 (the server listens nowhere else);
2. ``Engine.server_argv`` started through :func:`llmperf_nb.process.background`, its output in
   ``server.log`` beside the result; stopped on the way out whatever happens (the end, an error, the
   cell's time limit, Ctrl-C);
3. ``GET /health`` until it answers 200 (the server died, or the time ran out: the cell fails with the
   log's tail);
4. ``warmup`` requests of the workload's lengths, one at a time (kept apart, in ``build.warmup_requests``;
   a request, not a generator run: AIPerf takes 30-45 s to start on a busy 2-core machine), then each
   concurrency level (``rounds`` x its concurrency requests): the server's token counters (``/metrics``) read, the load generator (:mod:`llmperf_nb.loadgen`)
   run to completion, the counters read again; its per-request records are the level's raw data.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import loadgen, process, workloads
from .exceptions import EngineError, StepTimeout
from .measurement import Measurement

SERVER_LOG = "server.log"
LOADGEN_DIR = "loadgen"
HEALTH_PATH = "/health"
POLL_S = 0.5


def measure(cell, engine, prepared, cell_dir: Path, cache_dir: Path, env: dict) -> Measurement:
    """Start the server, load it at every concurrency level, stop it; the levels as raw points."""
    w = cell.workload
    deadline = time.monotonic() + cell.timeout_s
    loadgen.executable()  # no load generator: say so before a server loads the model (minutes on a GPU)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tokenizer = loadgen.tokenizer_dir(cell.model, cache_dir)
    log = Path(cell_dir) / SERVER_LOG
    runs = Path(cell_dir) / LOADGEN_DIR
    with process.background(engine.server_argv(cell, prepared, port), log, extra_env=env) as server:
        started = wait_healthy(server, base, log, deadline)
        print(f"{engine.label} server up on 127.0.0.1:{port} after {started:.1f} s", flush=True)
        name = engine.served_model(cell, prepared)
        warm = [warm_up(base, name, w) for _ in range(cell.warmup)]
        levels = [
            _level(
                engine, base, name, tokenizer, c, workloads.requests_at(w, c), w, runs / f"c{c}", deadline, cell.seed
            )
            for c in w["concurrency"]
        ]
    text = log.read_text(errors="replace")
    return Measurement(
        engine_version=engine.server_version(cell, prepared, text),
        prompt_token_ids=None,
        samples=[],
        points=levels,
        build={
            "server": {
                "argv": _portable(engine.server_argv(cell, prepared, port)),
                "startup_s": started,
                **prepared.extra.get("server", {}),
            },
            "loadgen": loadgen.describe(),
            "warmup_requests": warm,
        },
        notes=[f"load from {loadgen.TOOL} {loadgen.version()}: {loadgen.WORKLOAD_NOTE}"],
    )


def warm_up(base: str, name: str, w: dict) -> dict:
    """One untimed request of the workload's lengths (prompt as token ids, EOS ignored): the server's
    first requests pay for lazy allocations; what it answered is kept, not counted."""
    import json

    body = {
        "model": name,
        "prompt": [1] + [29871] * (w["input_len"] - 1),
        "max_tokens": w["output_len"],
        "min_tokens": w["output_len"],
        "ignore_eos": True,
        "temperature": 0,
        "stream": False,
    }
    req = urllib.request.Request(
        base + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=3600) as r:
        usage = json.loads(r.read()).get("usage") or {}
    return {"seconds": time.monotonic() - t0, "usage": usage}


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(server, base: str, log: Path, deadline: float) -> float:
    """Seconds until ``GET /health`` answered 200; an EngineError if the server died or time ran out."""
    t0 = time.monotonic()
    while True:
        if server.poll() is not None:
            text = log.read_text(errors="replace")
            cause = process.first_error(text)  # the first line: what a report's one-line reason shows
            raise EngineError(
                f"the server exited (code {server.returncode}) before it was ready"
                + (f": {cause}" if cause else "") + f"; its log ({log.name}) ends:\n{process.tail(text)}"
            )
        if time.monotonic() > deadline:
            raise StepTimeout(
                f"the server did not answer {HEALTH_PATH} within the cell's time limit; its log ends:\n"
                f"{process.tail(log.read_text(errors='replace'))}"
            )
        try:
            with urllib.request.urlopen(base + HEALTH_PATH, timeout=5) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 while it loads the model
        time.sleep(POLL_S)


def _level(engine, base, name, tokenizer, concurrency, requests, w, out: Path, deadline, seed) -> dict:
    before = counters(base, engine.server_counters)
    argv = loadgen.argv(base, name, tokenizer, concurrency, requests, w["input_len"], w["output_len"], out, seed,
                        engine.server_request_extras)
    left = deadline - time.monotonic()
    if left <= 0:
        raise StepTimeout(f"no time left for concurrency {concurrency} within the cell's time limit")
    process.run(argv, timeout=left, on_line=lambda line: print(line, end="") if _worth_showing(line) else None)
    after = counters(base, engine.server_counters)
    records, duration = loadgen.parse(out)
    server = {k: after[k] - before[k] for k in after if k in before} if before and after else None
    print(f"c={concurrency}: {len(records)} requests in {duration:.2f} s", flush=True)
    return {
        "concurrency": concurrency,
        "requests": records,
        "duration_s": duration,
        "server_tokens": server,
        "loadgen_argv": _portable(argv),
    }


def counters(base: str, names: dict[str, str]) -> dict[str, float] | None:
    """The server's token counters from its Prometheus ``/metrics`` page (summed over label sets)."""
    if not names:
        return None
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            text = r.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return {key: parse_counter(text, metric) for key, metric in names.items()}


def parse_counter(text: str, metric: str) -> float | None:
    """The value of ``metric`` in a Prometheus text page, summed over its label sets; None if absent."""
    pattern = re.compile(rf"^{re.escape(metric)}(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)
    values = [float(v) for v in pattern.findall(text)]
    return sum(values) if values else None


def _worth_showing(line: str) -> bool:
    return bool(line.strip()) and "\r" not in line  # the generator's progress bar redraws itself


def _portable(argv: list[str]) -> list[str]:
    """An argv as a result keeps it: programs by name (their folders are this machine's layout)."""
    import os

    return [os.path.basename(argv[0]), *argv[1:]] if argv else argv
