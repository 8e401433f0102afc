"""The ExLlamaV2 extension's trip: scripts/gpu-jobs/save-exllamav2-build.sh packs what torch's JIT build wrote
on one GPU machine, scripts/gpu-run.sh stage unpacks it on the next, and its env puts it on PYTHONPATH (where
exllamav2 imports a module of that name before it would build one). The payload here is a real shared
object of this venv, under the extension's name: the bytes must come back exactly."""

import os
import subprocess
import sysconfig
from pathlib import Path

from .conftest import ROOT

SAVE = ROOT / "scripts" / "gpu-jobs" / "save-exllamav2-build.sh"
RUN = ROOT / "scripts" / "gpu-run.sh"


def sh(script, *args, env):
    return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_a_built_extension_is_saved_staged_and_put_on_pythonpath(tmp_path):
    payload = next(Path(sysconfig.get_paths()["platlib"]).rglob("*.so")).read_bytes()
    first = tmp_path / "first-machine"
    (first / "torch_extensions" / "exllamav2_ext").mkdir(parents=True)
    (first / "torch_extensions" / "exllamav2_ext" / "exllamav2_ext.so").write_bytes(payload)
    out = tmp_path / "out"
    saved = sh(SAVE, out, env={"GPU_BUILD_DIR": str(first)})
    assert saved.returncode == 0, saved.stderr
    parts = sorted(p.name for p in out.iterdir())
    assert parts and parts[0] == "exllamav2_ext.so.xz.00"

    nxt = tmp_path / "next-machine"
    env = {"GPU_BUILD_DIR": str(nxt), "EXL_PREBUILT": str(out), "LLAMA_PREBUILT": str(tmp_path / "none")}
    assert "exllamav2-ext" not in sh(RUN, "env", env=env).stdout  # nothing staged yet: not on the path
    staged = sh(RUN, "stage", env=env)
    assert staged.returncode == 0, staged.stderr
    assert "ExLlamaV2: using the carried extension" in staged.stderr
    assert (nxt / "exllamav2-ext" / "exllamav2_ext.so").read_bytes() == payload
    said = sh(RUN, "env", env=env).stdout
    [pythonpath] = [line for line in said.splitlines() if line.startswith("export PYTHONPATH=")]
    assert pythonpath.endswith(f":{nxt / 'exllamav2-ext'}")


def test_nothing_to_save_or_stage_is_said(tmp_path):
    none = sh(SAVE, tmp_path / "out", env={"GPU_BUILD_DIR": str(tmp_path)})
    assert none.returncode == 1 and "no JIT-built ExLlamaV2 extension" in none.stderr
    env = {"GPU_BUILD_DIR": str(tmp_path / "b"), "EXL_PREBUILT": str(tmp_path / "x"),
           "LLAMA_PREBUILT": str(tmp_path / "y")}
    nothing = sh(RUN, "stage", env=env)
    assert nothing.returncode == 1 and "nothing to stage" in nothing.stderr
