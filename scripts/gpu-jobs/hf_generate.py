"""HF transformers 7B fp16 on one GPU: this project's per-token loop (dynamic cache) against
transformers' own ``generate()``, each in its own process, no NVML. Prints one line per variant.

    python3 scripts/gpu-jobs/hf_generate.py [MODEL]     (after gpu-run.sh prepare and its env)
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab_nvml  # noqa: E402

from llmperf_nb import process  # noqa: E402
from llmperf_nb.models import get_model  # noqa: E402

model = sys.argv[1] if len(sys.argv) > 1 else "Llama-2-7b-chat-hf"
with tempfile.TemporaryDirectory() as d:
    (Path(d) / "config.json").write_text(json.dumps(get_model(model).hf_config()))
    tf = ["--model", d, "--random-init", "--device", "cuda", "--num-gpus", "1", "--dtype", "float16"]
    r = ab_nvml.driver("llmperf_nb.drivers.transformers", tf, "none", 2)
    print(f"{r['mean']:9.2f}  per-token loop, dynamic cache, decode tok/s {r['decode_tok_s']}", flush=True)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import ab_nvml; "
            f"r = ab_nvml.hf_generate({d!r}, 2); "
            "print(f\"{r['mean']:9.2f}  generate(), tok/s including prefill {r['tok_s_incl_prefill']}\")")
    done = process.run([sys.executable, "-c", code], timeout=900, check=False)
    last = done.output.strip().splitlines()[-1:] or [""]
    print(last[0] if done.returncode == 0 else f"generate() failed (exit {done.returncode}): {done.output[-400:]}")
