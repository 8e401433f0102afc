"""What the original benchmark's HF transformers script prints.

mlc-ai/llm-perf-bench ``scripts/benchmark_hf.py`` times each forward pass of its own sampling loop
and prints, per run::

    Using model from PATH, max_new_tokens = 256, format = q4f16, prompt = ...
    ==========
    prefill 0.01234 s / 8 tokens (0.001543 s/tok, 648.3 tok/s)
    decode 2.345 s / 255 runs (0.009196 s/tok, 108.7 tok/s)
    ==========

Numbers are ``{:.4g}``, so they may be in exponent notation (``4.5e-05``). ``runs`` is
max_new_tokens - 1 single-token passes after the prompt, so runs + 1 tokens were generated.
"""

from __future__ import annotations

import re

from ..exceptions import ParseError
from ..measurement import Measurement

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|nan"
_LINE = re.compile(
    rf"^(?P<what>prefill|decode) (?P<t>{_NUM}) s / (?P<n>\d+) (?:tokens|runs) "
    rf"\((?P<lat>{_NUM}) s/tok, (?P<tps>{_NUM}) tok/s\)\s*$",
    re.MULTILINE,
)
_HEADER = re.compile(
    r"^Using model from (?P<model>.*?), max_new_tokens = (?P<max_new>\d+), format = (?P<format>\S+), "
    r"prompt = (?P<prompt>.*)$",
    re.MULTILINE,
)

NOTES = [
    "benchmark_hf.py times each forward pass alone: sampling, input bookkeeping and the Python loop "
    "between passes are outside its timers",
    "benchmark_hf.py samples with torch.multinomial over the model's generation_config (top-k 50 by "
    "default), not greedily; EOS did not stop it in the transformers it pinned (4.33)",
]


def parse_benchmark_hf(text: str) -> Measurement:
    """One sample per prefill/decode pair (a log may hold several runs)."""
    samples, current = [], None
    for m in _LINE.finditer(text):
        seconds, n = float(m.group("t")), int(m.group("n"))
        if m.group("what") == "prefill":
            current = {"prompt_tokens": n, "prefill_s": seconds, "prefill_tok_s": n / seconds if seconds > 0 else None}
        else:
            s = current if current is not None else {"prompt_tokens": None}
            s.update(gen_tokens=n + 1, decode_s=seconds, decode_tok_s=n / seconds if seconds > 0 else None)
            samples.append(s)
            current = None
    if not samples:
        raise ParseError("no benchmark_hf.py 'decode T s / N runs (...)' line found")
    headers = list(_HEADER.finditer(text))
    build = {"tool": "llm-perf-bench scripts/benchmark_hf.py"}
    if headers:
        h = headers[0]
        # the requested count, kept beside the samples' actual one (the script asserts they agree)
        build.update(model=h.group("model"), format=h.group("format"), max_new_tokens=int(h.group("max_new")),
                     prompt=h.group("prompt"))
    return Measurement(engine_version="HF transformers (benchmark_hf.py)", prompt_token_ids=None,
                       samples=samples, build=build, notes=list(NOTES))
