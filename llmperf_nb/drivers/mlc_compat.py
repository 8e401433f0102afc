"""mlc-llm's Python package (from source) on PyPI's Apache TVM 0.26: where to find it, and the few
adaptations it needs. Written for llmperf-nb; no mlc-llm code is copied here.

MLC publishes its wheels only on its own index, and they bundle a TVM fork. This project instead
imports mlc-llm's *source* (``python/mlc_llm`` of github.com/mlc-ai/mlc-llm, packed by
``scripts/pack-mlc-source.sh``; never committed) on top of ``apache-tvm==0.26.0`` with
``apache-tvm-ffi==0.1.13.post2`` from PyPI. Without ``libmlc_llm`` (MLC's C++ engine, which needs a
Rust toolchain to build) the package still compiles models and its model libraries run in TVM's
Relax VM: that is the path :mod:`llmperf_nb.drivers.mlc` benchmarks.

:func:`activate` puts the source on ``sys.path`` and applies, before and after ``import mlc_llm``:

* ``SKIP_LOADING_MLCLLM_SO=1``: mlc_llm/base.py's own switch to not load libmlc_llm.
* tvm_ffi's ``registry._SKIP_UNKNOWN_OBJECTS``: ``@register_object("mlc.serve.Data")`` and the other
  C++ types of libmlc_llm are not registered without it; the switch makes the decorator a no-op
  (tvm_ffi/registry.py) instead of raising.
* the rest, one function each below, each naming the upstream change it follows.

Run mlc_llm's command line through it: ``python -m llmperf_nb.drivers.mlc_compat compile ...``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: the mlc-llm commit the adaptations were written and tested against (2026-07-23)
TESTED_COMMIT = "79d603f085f50500e9509fa01785ffa7ecfaaa93"
TVM_VERSION = "0.26.0"
TVM_FFI_VERSION = "0.1.13.post2"
ENV_SOURCE = "MLC_LLM_SOURCE"
#: where scripts/pack-mlc-source.sh's tarball is unpacked when MLC_LLM_SOURCE is unset
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / ".gpu" / "mlc-llm-src"

_applied: list[str] = []


def source_dir() -> Path | None:
    """The folder holding ``mlc_llm/`` (mlc-llm's python/): $MLC_LLM_SOURCE, else .gpu/mlc-llm-src."""
    env = os.environ.get(ENV_SOURCE)
    for cand in ([Path(env)] if env else []) + [DEFAULT_SOURCE]:
        if (cand / "mlc_llm" / "__init__.py").exists():
            return cand
        if (cand / "python" / "mlc_llm" / "__init__.py").exists():  # a whole checkout
            return cand / "python"
    return None


def source_commit(src: Path | None = None) -> str | None:
    """The commit recorded by the packing script (MLC_LLM_COMMIT), or None."""
    src = src or source_dir()
    if src is None:
        return None
    for f in (src / "MLC_LLM_COMMIT", src.parent / "MLC_LLM_COMMIT"):
        if f.exists():
            return f.read_text().split()[0]
    return None


def versions() -> dict:
    """What a compiled library and a run depend on: TVM, its FFI, and the mlc-llm source commit
    (None for what is absent). The compile step keys its cache on them; the driver records them."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {"tvm": v("apache-tvm"), "tvm_ffi": v("apache-tvm-ffi"), "mlc_llm_commit": source_commit()}


def missing() -> list[str]:
    """What is missing to import mlc_llm this way, as sentences; empty when nothing is."""
    out = []
    try:
        from importlib.metadata import version

        tvm_v = version("apache-tvm")
        ffi_v = version("apache-tvm-ffi")
        if tvm_v != TVM_VERSION:
            out.append(f"apache-tvm is {tvm_v}; this path is written for apache-tvm=={TVM_VERSION}")
        if ffi_v != TVM_FFI_VERSION:
            out.append(f"apache-tvm-ffi is {ffi_v}; TVM {TVM_VERSION} needs apache-tvm-ffi=={TVM_FFI_VERSION} "
                       "(a newer ffi crashes it)")
    except Exception:  # noqa: BLE001 - PackageNotFoundError, or no metadata at all
        out.append(f"apache-tvm=={TVM_VERSION} and apache-tvm-ffi=={TVM_FFI_VERSION} are not installed "
                   f"(pip install apache-tvm=={TVM_VERSION} apache-tvm-ffi=={TVM_FFI_VERSION})")
    if source_dir() is None:
        out.append(f"mlc-llm's Python source was not found: set {ENV_SOURCE} to a folder holding mlc_llm/ "
                   f"(scripts/pack-mlc-source.sh packs it from a clone of github.com/mlc-ai/mlc-llm, commit "
                   f"{TESTED_COMMIT[:12]}) or unpack that tarball into .gpu/")
    return out


def activate():
    """Import and return ``mlc_llm`` from its source, with every adaptation applied (idempotent)."""
    if "mlc_llm" in sys.modules and _applied:
        return sys.modules["mlc_llm"]
    src = source_dir()
    if src is None:
        raise ImportError("; ".join(missing()))
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    os.environ.setdefault("SKIP_LOADING_MLCLLM_SO", "1")
    os.environ.setdefault(ENV_SOURCE, str(src))  # child processes (mlc_llm compile's workers) find it too
    import tvm_ffi.registry

    tvm_ffi.registry._SKIP_UNKNOWN_OBJECTS = True
    for patch in _BEFORE:
        patch()
    import mlc_llm

    for patch in _AFTER:
        patch()
    return mlc_llm


def applied() -> list[str]:
    """Names of the adaptations applied in this process."""
    return list(_applied)


# -- the adaptations ----------------------------------------------------------------------------


def _detect_tokenizer_info() -> None:
    """gen_config's one call into libmlc_llm: ``Tokenizer.detect_tokenizer_info`` (C++
    ``DetectTokenizerInfo``, cpp/tokenizers/tokenizers.cc). Replaced by the same reading of
    tokenizer.json's decoder and normalizer in Python. The result only steers detokenization;
    the benchmark feeds and reads token ids."""
    from mlc_llm.tokenizers import tokenizers as tk

    def detect(tokenizer_path: str):
        return tk.TokenizerInfo(**tokenizer_info(Path(tokenizer_path)))

    tk.Tokenizer.detect_tokenizer_info = staticmethod(detect)
    _applied.append("tokenizer_info")


def tokenizer_info(folder: Path) -> dict:
    """MLC's TokenizerInfo fields from a HF tokenizer.json (the rules of its C++ detector)."""
    f = folder / "tokenizer.json"
    if not f.exists():
        return {"token_postproc_method": "byte_fallback", "prepend_space_in_encode": False,
                "strip_space_in_decode": False}
    doc = json.loads(f.read_text())
    text = json.dumps({k: doc.get(k) for k in ("decoder", "normalizer", "pre_tokenizer")})
    return {
        "token_postproc_method": "byte_level" if '"ByteLevel"' in text else "byte_fallback",
        "prepend_space_in_encode": '"Prepend"' in text or '"prepend_scheme": "always"' in text,
        "strip_space_in_decode": '"Strip"' in text,
    }


def _device_exists_in_process() -> None:
    """``support/auto_device._device_exists`` asks a child ``python -m mlc_llm.cli.check_device``,
    which imports mlc_llm without these adaptations and fails (unknown ``mlc.serve.Data``). The same
    question, ``tvm.runtime.Device.exist``, is asked in this process instead."""
    import tvm
    from mlc_llm.support import auto_device

    def exists(device) -> bool:
        key = auto_device.device2str(device)
        if key not in auto_device._RESULT_CACHE:
            try:
                auto_device._RESULT_CACHE[key] = bool(tvm.runtime.device(key.split(":")[0], device.index).exist)
            except Exception:  # noqa: BLE001 - no such runtime in this TVM build
                auto_device._RESULT_CACHE[key] = False
        return auto_device._RESULT_CACHE[key]

    auto_device._device_exists = exists
    _applied.append("device_exists_in_process")


def _var_name_hint() -> None:
    """apache/tvm #20016 renamed ``Var.name_hint`` to ``Var.name`` (tvm.ir.expr.Var, which relax
    and tirx variables now share); mlc-llm's compiler passes still read ``name_hint``
    (e.g. compiler_pass/scatter_tuple_get_item.py). A read-only alias, only where it is missing."""
    from tvm.ir.expr import Var

    if not hasattr(Var, "name_hint"):
        Var.name_hint = property(lambda self: self.name)
        _applied.append("Var.name_hint")


def _primfunc_buffer_map() -> None:
    """apache/tvm #20086 removed ``PrimFunc.buffer_map``: a buffer is now a parameter itself
    (``tirx.Buffer`` is ``tvm.ir.Var``; a buffer parameter's type is a ``tirx.BufferType``).
    mlc-llm #3534 adapts its passes; the packed commit predates it, so ``buffer_map`` is given back
    as {parameter: parameter} over the buffer-typed parameters, which is what
    compiler_pass/low_batch_specialization.py and fuse_dequantize_transpose.py read (shapes)."""
    from tvm import tirx
    from tvm.tirx.buffer import BufferType

    if not hasattr(tirx.PrimFunc, "buffer_map"):
        tirx.PrimFunc.buffer_map = property(
            lambda self: {p: p for p in self.params if isinstance(p.ty, BufferType)})
        _applied.append("PrimFunc.buffer_map")


def _pipeline_without_removed_apis() -> None:
    """Two passes of mlc-llm's compile pipeline (compiler_pass/pipeline.py) call TVM APIs that
    0.26 removed, and only on GPU targets (both skip llvm):

    * ``LiftTIRGlobalBufferAlloc`` rebuilds each PrimFunc from ``buffer_map`` and a root ``SBlock``
      of the old signature (apache/tvm #20086); left out, a kernel's global scratch buffer stays
      allocated by TVM's runtime inside the kernel's host function instead of by the Relax VM.
    * ``AttachGPUSamplingFunc`` adds the GPU sampling kernels (argsort, top-p, multinomial) that
      MLC's serve engine calls; the Relax-VM driver samples greedily on the host and never calls them.

    Both are replaced by an empty pass, in the pipeline module only."""
    import tvm
    from mlc_llm.compiler_pass import pipeline

    pipeline.LiftTIRGlobalBufferAlloc = lambda *a, **k: tvm.transform.Sequential([])
    pipeline.AttachGPUSamplingFunc = lambda *a, **k: tvm.transform.Sequential([])
    _applied.append("pipeline without LiftTIRGlobalBufferAlloc, AttachGPUSamplingFunc")


_BEFORE: list = [_var_name_hint, _primfunc_buffer_map]
_AFTER: list = [_detect_tokenizer_info, _device_exists_in_process, _pipeline_without_removed_apis]


def main(argv: list[str] | None = None) -> None:
    """``mlc_llm``'s command line, with the adaptations applied."""
    activate()
    from mlc_llm.__main__ import main as mlc_main

    sys.argv = ["mlc_llm", *(sys.argv[1:] if argv is None else argv)]
    mlc_main()


if __name__ == "__main__":
    main()
