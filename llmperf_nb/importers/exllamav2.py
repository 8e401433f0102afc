"""What ExLlamaV2's ``test_inference.py`` and Exllama v1's ``test_benchmark_inference.py -p`` print.

test_inference.py (formats checked against its f-strings; tests/data/logs/public/SOURCES.md):

- ``-p PROMPT -t N``: `` -- Response generated in S seconds, N tokens, T tokens/second (includes
  prompt eval.)``. S times ``generate_simple`` as a whole (prompt, sampling, N tokens), and N is the
  requested ``-t``, not a count. Early versions (2023-09) printed ``Prompt processed in ...`` and
  ``Response generated in ...`` without the `` -- `` prefix, timing the prompt pass and the greedy
  token loop apart.
- ``-s``: `` ** Position P + N tokens: T t/s`` per stretch of N single-token forwards (argmax each)
  from position P: each row is at a longer context, not a repetition.
- ``-ps``: `` ** Length L tokens: T t/s``, one prompt pass (no lm_head) of L random tokens per row.

Exllama v1 ``test_benchmark_inference.py -p``: `` ** Speed: X tokens/second`` after `` -- Inference,
first pass.`` is the prompt pass (sequence length - 128 random tokens); each later one follows
`` -- Generating 128 tokens...`` and is decode.
"""

from __future__ import annotations

import re

from ..exceptions import ParseError
from ..measurement import Measurement

ENGINE = "ExLlamaV2"
ENGINE_V1 = "ExLlama v1"

_NUM = r"(\d+(?:\.\d+)?)"
_PROMPT = re.compile(rf"^\s*(?:-- )?Prompt processed in {_NUM} seconds, (\d+) tokens, {_NUM} tokens/second", re.M)
_RESPONSE = re.compile(
    rf"^\s*(?:-- )?Response generated in {_NUM} seconds, (\d+) tokens, {_NUM} tokens/second"
    r"( \(includes prompt eval\.\))?", re.M)
_POSITION = re.compile(rf"^\s*\*\* Position\s+(\d+)\s*\+\s*(\d+) tokens:\s*{_NUM} t/s", re.M)
_LENGTH = re.compile(rf"^\s*\*\* Length\s+(\d+) tokens:\s*{_NUM} t/s", re.M)


def parse_response(text: str) -> Measurement:
    """``Response generated in ...`` lines of test_inference.py -p: one sample each."""
    samples, prompt, styles = [], None, set()
    events = sorted([(m.start(), "prompt", m) for m in _PROMPT.finditer(text)]
                    + [(m.start(), "response", m) for m in _RESPONSE.finditer(text)], key=lambda e: e[0])
    for _, kind, m in events:
        if kind == "prompt":
            prompt = m
            continue
        seconds, n, tps, includes = float(m.group(1)), int(m.group(2)), float(m.group(3)), m.group(4)
        s = {"prompt_tokens": int(prompt.group(2)) if prompt else None, "gen_tokens": n,
             "decode_s": seconds, "decode_tok_s": tps}
        if prompt:
            s.update(prefill_s=float(prompt.group(1)), prefill_tok_s=float(prompt.group(3)))
        styles.add("includes" if includes else "split" if prompt else "bare")
        samples.append(s)
        prompt = None
    if not samples:
        raise ParseError("no ExLlamaV2 'Response generated in S seconds, N tokens, T tokens/second' line found")
    notes = [_RESPONSE_NOTES[k] for k in ("includes", "split", "bare") if k in styles]
    tool = "test_inference.py -p" if styles - {"bare"} else "not named in the log ('Response generated' line)"
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": tool}, notes=notes)


_RESPONSE_NOTES = {
    "includes": "'(includes prompt eval.)': the time covers generate_simple as a whole (prompt, sampling with "
                "temperature 0.75 / top-k 100 / top-p 0.75, token healing), so tokens/second understates decode "
                "speed; N is the requested -t, not a count of generated tokens",
    "split": "early test_inference.py format: 'Prompt processed' times the prompt pass, 'Response generated' "
             "the greedy token loop alone (N is the requested -t)",
    "bare": "no 'Prompt processed' line and no '(includes prompt eval.)' suffix: whether the time includes "
            "the prompt is not in the log",
}


def parse_speed(text: str) -> Measurement:
    """``-s`` rows: one decode sample per position."""
    samples = []
    for m in _POSITION.finditer(text):
        pos, n, tps = int(m.group(1)), int(m.group(2)), float(m.group(3))
        # the speed test feeds its first token through a pass without the cache, so a stretch
        # printed at position P starts with P - 1 tokens in the cache
        samples.append({"prompt_tokens": pos - 1, "gen_tokens": n, "decode_tok_s": tps,
                        "decode_s": n / tps if tps else None, "position": pos})
    if not samples:
        raise ParseError("no ExLlamaV2 '** Position P + N tokens: T t/s' line (test_inference.py -s) found")
    notes = ["test_inference.py -s: each sample is N single-token forwards (argmax each) starting at a later "
             "position, so samples are at growing context, not repetitions (prompt_tokens: the tokens already in the "
             "cache); rows before position 264 cover this benchmark's context"]
    if _LENGTH.search(text):
        notes.append("the log also holds -ps prompt-speed rows: import it with format 'prompt-speed' to read them")
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": "test_inference.py -s"}, notes=notes)


def parse_prompt_speed(text: str) -> Measurement:
    """``-ps`` rows: one prefill sample per prompt length."""
    samples = []
    for m in _LENGTH.finditer(text):
        n, tps = int(m.group(1)), float(m.group(2))
        samples.append({"prompt_tokens": n, "gen_tokens": 0, "prefill_tok_s": tps,
                        "prefill_s": n / tps if tps else None})
    if not samples:
        raise ParseError("no ExLlamaV2 '** Length L tokens: T t/s' line (test_inference.py -ps) found")
    notes = ["test_inference.py -ps: one forward of L random tokens per sample with preprocess_only (no lm_head); "
             "samples are different prompt lengths, not repetitions"]
    return Measurement(engine_version=ENGINE, prompt_token_ids=None, samples=samples,
                       build={"tool": "test_inference.py -ps"}, notes=notes)


_V1 = re.compile(
    r"^\s*(?:-- Sequence length: (?P<seq>\d+)"
    r"|-- Inference, first pass\."
    r"|-- Generating (?P<gen>\d+) tokens(?:, (?P<ctx>\d+) token prompt)?"
    r"|\*\* Speed: (?P<tps>\d+(?:\.\d+)?) tokens/second)", re.M)


def parse_exllama_v1(text: str) -> Measurement:
    """Exllama v1 ``test_benchmark_inference.py -p``: the prompt pass, then one sample per decode pass."""
    seq, prefill_tps, state, gen, ctx, samples = None, None, None, None, None, []
    for m in _V1.finditer(text):
        if m.group("seq"):
            seq = int(m.group("seq"))
        elif m.group("gen"):
            state, gen = "decode", int(m.group("gen"))
            ctx = int(m.group("ctx")) if m.group("ctx") else None
        elif m.group("tps") is None:  # "-- Inference, first pass."
            state = "prefill"
        elif state == "prefill" or (state is None and prefill_tps is None):
            prefill_tps, state = float(m.group("tps")), None
        elif state == "decode":
            tps = float(m.group("tps"))
            prompt = ctx if ctx is not None else (seq - gen if seq and not samples else None)
            s = {"prompt_tokens": prompt, "gen_tokens": gen, "decode_tok_s": tps, "decode_s": gen / tps}
            if not samples and prefill_tps:
                s["prefill_tok_s"] = prefill_tps
                if prompt:
                    s["prefill_s"] = prompt / prefill_tps
            samples.append(s)
            state = None
    if not samples:
        raise ParseError("no Exllama v1 '-- Generating N tokens' + '** Speed: X tokens/second' pair found")
    notes = ["Exllama v1 test_benchmark_inference.py -p: the prompt is (sequence length - 128) random tokens and "
             "the first decode pass runs after it, at far longer context than this benchmark's"]
    if len(samples) > 1:
        notes.append(f"{len(samples)} decode passes in the log, each a sample; later ones restart at a short context")
    return Measurement(engine_version=ENGINE_V1, prompt_token_ids=None, samples=samples,
                       build={"tool": "test_benchmark_inference.py -p", "sequence_length": seq}, notes=notes)
