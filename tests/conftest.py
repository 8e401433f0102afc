import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "data" / "logs"


def has_llama_cpp() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def has_nvidia_gpu() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


needs_llama_cpp = pytest.mark.skipif(not has_llama_cpp(), reason="llama-cpp-python is not installed")
needs_gpu = pytest.mark.skipif(not has_nvidia_gpu(), reason="no NVIDIA GPU here")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One weights cache for the session: synthetic GGUF files are written once."""
    return tmp_path_factory.mktemp("cache")


def cli(*args, env=None, cwd=ROOT, timeout=900):
    """Run the installed console script as a user would."""
    exe = Path(sys.executable).with_name("llmperf-nb")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=timeout)
