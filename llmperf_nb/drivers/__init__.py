"""Benchmark drivers: small programs that run inside the engine's environment (a local process or a
container), time the workload, and write raw samples as JSON. They import only the standard library,
the engine's own package and :mod:`llmperf_nb.telemetry`, so an engine image needs nothing else.
"""
