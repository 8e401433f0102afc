"""MLC LLM benchmark driver, through MLC's synchronous engine (``SyncMLCEngine``), one step at a time.

``SyncMLCEngine`` wraps MLC's C++ serving engine without its background thread: ``step()`` runs
one engine action (the prefill of a new request, or one decode step of the running ones), and
the request's stream callback receives the token ids that action produced. With one request and
speculative decoding off, the prefill step yields token 1 and each decode step one more token
(mlc-llm tests/python/serve/test_serve_sync_engine.py relies on the same: a request of
max_tokens M finishes at step M - 1), so :func:`llmperf_nb.drivers.common.generate` times it like
every other engine: each ``decode`` call steps until the next token has arrived on the host.

Request: the prompt's token ids (``data.TokenData``), greedy (temperature 0, top_p 1, no
penalties), ``max_tokens = gen_len``, ``debug_config.ignore_eos``, no stop strings or tokens.
Engine: mode "interactive" (batch 1), prefix cache off (repetitions of one prompt would
otherwise skip most of the prefill), speculative decoding off. MLC's own per-request metrics
(``SyncMLCEngine.metrics()``, ``last_finished_request``) are kept beside each sample as a
cross-check, not used for the numbers.

NOT RUN HERE: written against mlc-ai/mlc-llm's python/mlc_llm/serve/sync_engine.py,
serve/config.py, protocol/generation_config.py and protocol/debug_protocol.py; no MLC wheel or GPU
was available to the author. The class is documented by MLC as "mainly serves the test and debug
purpose", so its interface may change between nightlies: the image pins MLC's version.

    python -m llmperf_nb.drivers.mlc --model DIR --model-lib DIR/lib.so --device cuda \\
        --prompt-ids 1,1724,... --gen-len 256 --reps 5 --out raw.json
"""

from __future__ import annotations

import argparse

from llmperf_nb.drivers import common


class Stepper:
    """The common Stepper protocol over ``SyncMLCEngine``: the token fed to ``decode`` is the one the
    engine already holds, so it is only checked, not re-sent."""

    def __init__(self, args):
        from mlc_llm.protocol.debug_protocol import DebugConfig
        from mlc_llm.protocol.generation_config import GenerationConfig
        from mlc_llm.serve import data
        from mlc_llm.serve.config import EngineConfig
        from mlc_llm.serve.sync_engine import SyncMLCEngine

        self._data = data
        self.pending: list[int] = []  # tokens delivered by the engine and not yet handed out
        self.finished = None
        self.multi_token_steps = 0
        self.request_id = None
        self.n = 0
        self.config = GenerationConfig(
            n=1, temperature=0.0, top_p=1.0, frequency_penalty=0.0, presence_penalty=0.0,
            repetition_penalty=1.0, max_tokens=args.gen_len, stop_strs=[], stop_token_ids=[],
            debug_config=DebugConfig(ignore_eos=True),
        )
        engine_config = EngineConfig(
            max_single_sequence_length=args.max_seq_len,
            prefix_cache_mode="disable",
            speculative_mode="disable",
            verbose=False,
        )
        self.engine = SyncMLCEngine(model=args.model, device=args.device, model_lib=args.model_lib,
                                    mode="interactive", engine_config=engine_config,
                                    request_stream_callback=self._on_output)

    def _on_output(self, delta_outputs) -> None:
        for delta in delta_outputs:
            request_id, stream_outputs = delta.unpack()
            if str(request_id) != self.request_id:
                continue
            out = stream_outputs[0]
            ids = list(out.delta_token_ids)
            if len(ids) > 1:
                self.multi_token_steps += 1
            self.pending.extend(ids)
            if out.finish_reason is not None:
                self.finished = out.finish_reason

    def _next(self) -> int:
        while not self.pending:
            if self.finished is not None:
                raise RuntimeError(f"MLC finished the request early ({self.finished})")
            self.engine.step()  # returns once the action's tokens are on the host (callback ran)
        return self.pending.pop(0)

    def reset(self) -> None:
        if self.request_id is not None and self.finished is None:
            self.engine.abort_request(self.request_id)
        self.n += 1
        self.request_id = f"rep-{self.n}"
        self.pending, self.finished = [], None

    def prefill(self, ids: list[int]) -> int:
        request = self.engine.create_request(self.request_id, inputs=self._data.TokenData(ids),
                                             generation_config=self.config)
        self.engine.add_request(request)
        return self._next()

    def decode(self, token: int) -> int:
        return self._next()

    def engine_reported(self) -> dict:
        """MLC's own numbers for the last finished request (seconds and tok/s as MLC computes them)."""
        metrics = self.engine.metrics().metrics
        last = metrics.get("last_finished_request") or {}
        keys = ("prompt_tokens", "completion_tokens", "prefill_tokens_per_s", "decode_tokens_per_s", "ttft_s",
                "end_to_end_latency_s", "inter_token_latency_s")
        return {k: last.get(k) for k in keys if k in last}


def bench(args) -> None:
    import mlc_llm

    ids = common.parse_ids(args.prompt_ids)
    stepper = Stepper(args)
    reported = []

    def one_run(nvml):
        sample = common.generate(stepper, ids, args.gen_len, nvml)
        reported.append(stepper.engine_reported())
        return sample

    doc = common.measure(one_run, args)
    # engine_reported holds warm-up runs first, then the measured ones, in order
    doc.update(
        engine_version=f"mlc_llm {getattr(mlc_llm, '__version__', 'unknown')}",
        prompt_token_ids=ids,
        settings={"device": args.device, "model_lib": args.model_lib, "max_seq_len": args.max_seq_len,
                  "engine": "SyncMLCEngine, mode interactive, prefix cache off, speculative decoding off",
                  "multi_token_steps": stepper.multi_token_steps},
        engine_reported=reported[len(doc["warmup_samples"]):],
        tensor_parallel_shards=_tensor_parallel_shards(args.model),
    )
    common.write(doc, args.out)


def _tensor_parallel_shards(model_dir: str) -> int | None:
    import json
    from pathlib import Path

    try:
        return json.loads((Path(model_dir) / "mlc-chat-config.json").read_text()).get("tensor_parallel_shards")
    except (OSError, ValueError):
        return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m llmperf_nb.drivers.mlc")
    ap.add_argument("--model", required=True, help="folder with mlc-chat-config.json and the converted weights")
    ap.add_argument("--model-lib", required=True, help="the compiled model library (.so)")
    ap.add_argument("--device", default="cuda", help="cuda or rocm (TVM device kind)")
    ap.add_argument("--max-seq-len", type=int, default=2048)
    common.add_workload_args(ap)
    bench(ap.parse_args(argv))


if __name__ == "__main__":
    main()
