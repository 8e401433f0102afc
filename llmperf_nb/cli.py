"""The ``llmperf-nb`` command.

    llmperf-nb run PARAMS [--out DIR] [--force] [--runner local|docker] [--executor local|ray [--address ADDR]]
    llmperf-nb report RESULTS_DIR [--out DIR]
    llmperf-nb compare RESULTS_A RESULTS_B [--threshold 0.05] [--alpha 0.05] [--html OUT.html]
    llmperf-nb import --engine NAME LOGFILE
    llmperf-nb list {models,engines,gpus}

Errors print one line for the person at the terminal, never a traceback, and exit non-zero
(2 for bad input). ``compare`` exits 3 when it finds a regression (compare.REGRESSION_EXIT).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .exceptions import LlmPerfError


def _run(args) -> int:
    from . import params, pipeline, report
    from .executors import get_executor

    p = params.load(args.params)
    pipeline.check_runner(args.runner)
    options = {k: v for k, v in (("address", args.address), ("per_host", args.per_host)) if v is not None}
    executor = get_executor(args.executor, **options)
    out = Path(args.out) if args.out else Path("reports") / p.name
    # no --cache-dir: each machine's own default (a cluster's nodes have their own homes)
    cache = Path(args.cache_dir) if args.cache_dir else None
    s = pipeline.run(p, out, cache, executor=executor, runner=args.runner, force=args.force,
                     progress=not args.no_progress, only=args.only)
    print(f"cells: {s.measured} measured, {s.reused} reused, {s.failed} failed, {s.skipped} not run here (see the report)")
    if s.kept:
        print(f"kept the earlier result of {len(s.kept)} cell(s) whose new run did not finish ok "
              f"(its record: {out / pipeline.ATTEMPTS}/<cell>): {', '.join(s.kept)}")
    if args.no_report:
        print(f"results: {out / 'results'} (report not built: llmperf-nb report {out / 'results'})")
    else:
        print(f"report: {report.build(out / 'results', out, title=p.name)}")
    return 1 if s.failed else 0


def _report(args) -> int:
    from . import report

    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise LlmPerfError(f"{results_dir}: not a folder of result files")
    out = Path(args.out) if args.out else (results_dir.parent if results_dir.name == "results" else results_dir)
    print(f"report: {report.build(results_dir, out)}")
    return 0


def _compare(args) -> int:
    from . import compare

    cmp = compare.compare_dirs(args.results_a, args.results_b, threshold=args.threshold, alpha=args.alpha)
    print(compare.text(cmp), end="")
    if args.html:
        out = Path(args.html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(compare.html_page(cmp))
        print(f"html: {out}")
    return cmp.exit_code()


def _import(args) -> int:
    from .importers import result as importers

    text = Path(args.logfile).read_text(errors="replace") if args.logfile != "-" else sys.stdin.read()
    doc = importers.to_result(args.engine, text, fmt=args.format, model=args.model, gpu=args.gpu,
                              source=args.logfile, gen_tokens=args.gen_len, prompt_tokens=args.prompt_tokens)
    json.dump(doc, sys.stdout, indent=1)
    print()
    return 0


def _list(args) -> int:
    from . import gpus, models
    from .engines import registry

    if args.what == "models":
        for m in models.MODELS.values():
            print(f"{m.name:28} {m.n_params / 1e9:6.2f} B params  {m.hf_repo or '(no HF repo: CPU quickstarts)'}")
    elif args.what == "engines":
        for e in registry.values():
            quants = ", ".join(f"{q} -> {f}" for q, f in e.formats.items())
            print(f"{e.name:14} {e.label:16} workloads: {', '.join(e.workloads):21} quantizations: {quants}")
    else:
        for g in gpus.GPUS.values():
            bw = f"{g.bandwidth_gb_s:g} GB/s" if g.bandwidth_gb_s else ""
            print(f"{g.name:12} {g.label:16} {bw}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="llmperf-nb", description="Notebook-driven benchmark of LLM inference engines.")
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a params matrix and publish its report")
    r.add_argument("params", help="params file, e.g. params/quickstart.yaml")
    r.add_argument("--out", help="report folder (default: reports/<name>)")
    r.add_argument("--cache-dir", help="weights cache (default: $LLMPERF_NB_CACHE or ~/.cache/llmperf-nb)")
    r.add_argument("--runner", default="local", help="local (default) or docker")
    r.add_argument("--executor", default="local",
                   help="local (default: here, one cell after another) or ray (a Ray cluster, docs/ray.md)")
    r.add_argument("--address", help="ray: the cluster's head, HEAD_IP:6379 (default: $RAY_ADDRESS, else the "
                                     "cluster started on this machine)")
    r.add_argument("--per-host", type=int, metavar="N",
                   help="ray: cells at once on one host (default 1: concurrent benchmarks disturb each other)")
    r.add_argument("--force", action="store_true", help="run finished cells again")
    r.add_argument("--only", metavar="GLOB", help="run only the cells whose id matches, e.g. '*__h200x2__*'")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true",
                   help="run the cells only; build the report later with `llmperf-nb report OUT/results`")
    r.set_defaults(func=_run)
    rep = sub.add_parser("report", help="rebuild a report from result files alone")
    rep.add_argument("results_dir")
    rep.add_argument("--out", help="report folder (default: the folder above RESULTS_DIR)")
    rep.set_defaults(func=_report)
    cmp = sub.add_parser("compare", help="compare two results folders cell by cell (exit 3 on a regression)")
    cmp.add_argument("results_a", help="results folder of the baseline")
    cmp.add_argument("results_b", help="results folder of the candidate")
    cmp.add_argument("--threshold", type=float, default=0.05,
                     help="a slowdown counts as a regression above this fraction (default 0.05: 5%%)")
    cmp.add_argument("--alpha", type=float, default=0.05, help="significance level of Welch's t-test (default 0.05)")
    cmp.add_argument("--html", help="also write the comparison as a self-contained HTML page here")
    cmp.set_defaults(func=_compare)
    imp = sub.add_parser("import", help="turn an engine's printed output into a result JSON (stdout)")
    imp.add_argument("--engine", required=True)
    imp.add_argument("--format", help="which of the engine's formats (default: recognise it)")
    imp.add_argument("--model", default="unknown", help="model name to record")
    imp.add_argument("--gpu", default="unknown", help="GPU name to record")
    imp.add_argument("--gen-len", type=int, help="tokens the command generated per run, for logs that print rates "
                     "only (MLC's 'prefill: X tok/s, decode: Y tok/s'); checked against logs that print it")
    imp.add_argument("--prompt-tokens", type=int, help="prompt tokens of the command, for logs that do not print it")
    imp.add_argument("logfile", help="log file, or - for standard input")
    imp.set_defaults(func=_import)
    ls = sub.add_parser("list", help="list models, engines or GPUs")
    ls.add_argument("what", choices=["models", "engines", "gpus"])
    ls.set_defaults(func=_list)
    return ap


def main(argv=None) -> int:
    from .process import Interrupted, own_tree

    args = parser().parse_args(argv)
    try:
        with own_tree():
            return args.func(args)
    except LlmPerfError as e:
        print(f"llmperf-nb: error: {e}", file=sys.stderr)
        return e.exit_code
    except FileNotFoundError as e:
        print(f"llmperf-nb: error: {e.filename}: file not found", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, an I/O error: what failed and where, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"llmperf-nb: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        # only our own Interrupted names its signal; another KeyboardInterrupt's text can be anything
        # (nbclient's, when the kernel died under the same Ctrl-C, carries a whole traceback)
        how = f"stopped by {e}" if isinstance(e, Interrupted) else "interrupted"
        print(f"llmperf-nb: {how}; finished cells are kept, run again to go on", file=sys.stderr)
        _quiet_shutdown()
        return 130


def _quiet_shutdown() -> None:
    """After the one line an interrupt prints, nothing more: what the interpreter prints while it
    shuts down (an nbclient task that saw the kernel die under the same signal, left unawaited) is
    the interrupt's echo, not news."""
    import os

    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
