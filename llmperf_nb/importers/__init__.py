"""``llmperf-nb import``: a run made by hand (an engine's own tool, its printed output) becomes a result
file that joins the same report as runs of the pipeline.

One module per engine holds the parsers of what that engine and its own tools print: pure functions, text
in, :class:`llmperf_nb.measurement.Measurement` out, each tested on real captured output. An engine lists
its parsers in ``Engine.parsers``; :func:`llmperf_nb.importers.result.to_result` picks one and builds the
result. This package imports nothing itself, so an engine (or a driver) may import one parser module
without pulling in the engine registry.
"""
