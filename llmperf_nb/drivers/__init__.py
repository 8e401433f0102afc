"""Benchmark drivers: small programs that run inside the engine's environment (a local process or a
container), time the workload, and write raw samples as JSON (``raw.json``, read back by
:func:`llmperf_nb.engines.base.measurement_from_raw`).

The rule they keep, so that an engine's image needs nothing but the engine and this repository's
standard-library modules (tests/test_architecture.py checks it): a driver imports the standard library,
its engine's own packages (inside functions, so ``--help`` works without them), and from llmperf_nb only

- :mod:`llmperf_nb.drivers.common`: the workload's arguments and the timed loop,
- :mod:`llmperf_nb.options` and ``llmperf_nb.options.<its engine>``: its engine's options, declared once, read
  from the one document the engine passes (``--options``),
- :mod:`llmperf_nb.telemetry`: memory and energy readings,
- :mod:`llmperf_nb.jsonfile`: the atomic JSON writer,
- :mod:`llmperf_nb.process` and :mod:`llmperf_nb.exceptions`: running one of the engine's own tools,
- ``llmperf_nb.importers.<its engine>``: parsing what that tool prints (llama.cpp's ``llama-bench``
  cross-check),
- ``llmperf_nb.drivers.<its engine>_compat``: where its engine's packages need adapting before they import
  (:mod:`llmperf_nb.drivers.mlc_compat`: mlc-llm's source on PyPI's TVM, also run as the compile step's
  command line). Such a module keeps this rule too, and imports nothing from llmperf_nb.

None of these imports pandas, the engine registry or the pipeline.
"""
