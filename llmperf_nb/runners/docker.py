"""Run steps in a container of the engine's image, through the Docker SDK.

The image is built from ``docker/`` and tagged by its inputs, ``llmperf-nb/<engine>:<platform>-<hash12>``
(the Dockerfile, the files it copies, the build arguments), so it is built once and rebuilt only when one of
them changes. A step runs as ``python -m llmperf_nb.steps STEP /results/<cell> --cache-dir /cache`` with the
repository mounted read-only at /workspace, the cell's folder and the cache read-write, the cell's GPUs, no
network (except the setup step of hub weights), the allow-listed environment, and the host user's uid:gid.
The container is removed whatever happens: success, failure, time limit or Ctrl-C.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

from .. import hardware, process, steps
from ..engines import registry
from ..exceptions import ContainerError
from ..jsonfile import write_json
from ..layout import CellDir
from ..paths import ROOT
from .containers import LABEL, WORKSPACE, connect, container_name, explain, run_container
from .dockerfile import base_images, image_tag

DOCKER_DIR = ROOT / "docker"
RESULTS, CACHE = "/results", "/cache"
#: vendor of a GPU (gpus.GpuSpec.vendor) -> the platform key of Engine.dockerfiles
PLATFORMS = {"cpu": "cpu", "nvidia": "cuda", "amd": "rocm"}
#: images no registry has: how to make them
LOCAL_BASES = {"llmperf-nb/base:bookworm": "docker/base/make-base-image.sh (as root, about 1 min)"}
#: allow-listed variables that name places on the host; inside, the image's own values hold
HOST_SPECIFIC = frozenset({
    "PATH", "HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "CUDA_HOME", "LLAMA_CPP_LIB_PATH",
    "HF_HOME", "HF_HUB_CACHE", "LLMPERF_NB_CACHE", "LLAMA_BENCH", "LLAMA_CPP_DIR", "TORCH_EXTENSIONS_DIR",
    "JUPYTER_PATH", "LLAMA_SERVER", "LLAMA_CPP_SDIST", "AIPERF", "MLC_LLM_SOURCE",
})
GPU_SELECTION = frozenset({"CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"})
#: a download needs a network; "host" also works on daemons without a bridge (the dev/CI one)
DOWNLOAD_NETWORK = "host"
BUILD_TAIL = 25


class DockerRunner:
    name = "docker"

    def __init__(self, client=None, docker_dir: Path = DOCKER_DIR, build_args: Mapping[str, str] | None = None):
        self.client = client or connect()
        self.docker_dir = Path(docker_dir)
        self.build_args = dict(build_args or {})

    # --- images ---

    def image(self, engine_name: str, platform: str, on_line: Callable[[str], None] | None = None):
        """(tag, image) of the engine's image for ``platform``, built first if no image has this tag yet."""
        import docker

        engine = registry[engine_name]
        try:
            dockerfile = self.docker_dir / engine.dockerfiles[platform]
        except KeyError:
            have = ", ".join(f"{p} ({f})" for p, f in engine.dockerfiles.items()) or "none"
            raise ContainerError(f"{engine.label} has no Dockerfile for {platform}; its Dockerfiles: {have}") from None
        tag = image_tag(engine_name, platform, dockerfile, self.docker_dir, self.build_args)
        try:
            return tag, self.client.images.get(tag)
        except docker.errors.ImageNotFound:
            pass
        self._check_bases(dockerfile)
        return tag, self.build(tag, dockerfile, on_line)

    def build(self, tag: str, dockerfile: Path, on_line: Callable[[str], None] | None = None):
        import docker

        say = on_line or (lambda line: None)
        rel = dockerfile.relative_to(self.docker_dir).as_posix()
        say(f"building {tag} from {rel} (once; later runs reuse it)\n")
        recent: deque[str] = deque(maxlen=BUILD_TAIL)
        start = time.monotonic()
        try:
            for chunk in self.client.api.build(
                path=str(self.docker_dir), dockerfile=rel, tag=tag, buildargs=self.build_args or None,
                network_mode="host", rm=True, forcerm=True, decode=True,
            ):
                for line in _build_lines(chunk):
                    recent.append(line.rstrip("\n"))
                    say(line)
                if "error" in chunk:
                    say(chunk["error"].rstrip("\n") + "\n")
                    raise ContainerError(f"building {tag} from docker/{rel} failed: {chunk['error'].strip()}\n"
                                         + "\n".join(recent))
        except docker.errors.APIError as e:
            raise ContainerError(f"building {tag} from docker/{rel} failed: {explain(e)}\n"
                                 + "\n".join(recent)) from None
        say(f"built {tag} in {time.monotonic() - start:.0f} s\n")
        return self.client.images.get(tag)

    def _check_bases(self, dockerfile: Path) -> None:
        import docker

        for base in base_images(dockerfile.read_text(), self.build_args):
            if base not in LOCAL_BASES:
                continue  # the build pulls it from its registry
            try:
                self.client.images.get(base)
            except docker.errors.ImageNotFound:
                raise ContainerError(f"{dockerfile.name} starts from {base}, which is missing: make it with "
                                     f"{LOCAL_BASES[base]}") from None

    # --- steps ---

    def run_step(
        self,
        step: str,
        cell,
        cell_dir: Path,
        cache_dir: Path,
        *,
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
        extra_env: dict | None = None,
    ) -> process.Completed:
        vendor = hardware.gpu_vendor(cell.gpu.name)
        engine = registry[cell.engine.name]
        if PLATFORMS[vendor] not in engine.dockerfiles:
            have = ", ".join(engine.dockerfiles) or "none"
            reason = f"{engine.label} has no Docker image for {PLATFORMS[vendor]} (its images: {have})"
            if step == "setup":  # nothing to run it in: not run here, as a missing engine is for a local run
                return _record_skip(cell, Path(cell_dir), reason, on_line)
            raise ContainerError(reason)
        self._check_gpu_support(vendor, cell.gpu.label)
        tag, image = self.image(cell.engine.name, PLATFORMS[vendor], on_line)
        cell_dir, cache_dir = Path(cell_dir).resolve(), Path(cache_dir).resolve()
        cache_dir.mkdir(parents=True, exist_ok=True)
        inside = f"{RESULTS}/{cell.id}"
        volumes = {
            str(ROOT): {"bind": WORKSPACE, "mode": "ro"},
            str(cell_dir): {"bind": inside, "mode": "rw"},
            str(cache_dir): {"bind": CACHE, "mode": "rw"},
        }
        if cell.weights == "local" and cell.local_path:
            # the steps record and open the path as the params file gives it: mount the weights there
            if not os.path.isabs(cell.local_path):
                raise ContainerError(f"local_weights: {cell.local_path!r} must be an absolute path with "
                                     "--runner docker (the container mounts it at the same place)")
            volumes[cell.local_path] = {"bind": cell.local_path, "mode": "ro"}
        argv = steps.command("python", step, inside, CACHE)
        network = DOWNLOAD_NETWORK if step == "setup" and cell.weights == "hub" else "none"
        return run_container(
            self.client, image.id, argv, timeout=timeout, on_line=on_line,
            name=container_name(f"{cell.id}-{step}"), environment=container_env(vendor, f"{tag}@{image.id}", extra_env),
            volumes=volumes, network_mode=network, labels={LABEL: "1", f"{LABEL}.cell": cell.id, f"{LABEL}.step": step},
            **gpu_kwargs(vendor, gpu_ids(cell, vendor), cell.gpu.count),
        )

    def _check_gpu_support(self, vendor: str, label: str) -> None:
        if vendor == "nvidia":
            runtimes = self.client.info().get("Runtimes") or {}
            if "nvidia" not in runtimes:
                raise ContainerError(
                    f"the cell asks for {label} but this Docker daemon has no 'nvidia' runtime (it has: "
                    f"{', '.join(runtimes) or 'none'}): install the NVIDIA Container Toolkit, run "
                    "'nvidia-ctk runtime configure --runtime=docker' and restart dockerd"
                )
        elif vendor == "amd" and not os.path.exists("/dev/kfd"):
            raise ContainerError(f"the cell asks for {label} but this host has no /dev/kfd: the amdgpu kernel "
                                 "driver (ROCm) is not loaded, so no container can use an AMD GPU")


def _record_skip(cell, cell_dir: Path, reason: str, on_line) -> process.Completed:
    """Write the setup.json of a cell that is not run, as the setup step does (``skip``)."""
    doc = {"hardware": hardware.detect(), "weights": {"source": cell.weights, "synthetic": cell.weights == "synthetic"},
           "skip": reason, "format": registry[cell.engine.name].weight_format(cell.quantization)}
    write_json(CellDir(cell_dir).output("setup"), doc)
    said = f"skipped: {reason}\n"
    if on_line:
        on_line(said)
    return process.Completed([], 0, said, 0.0)


# --- what goes into a container ---


def gpu_ids(cell, vendor: str) -> list[int]:
    """Host indices of the cell's GPUs (what CUDA_VISIBLE_DEVICES selects here, as a local run)."""
    from ..engines.base import gpu_indices

    return gpu_indices(cell) if vendor != "cpu" else []


def gpu_kwargs(vendor: str, indices: list[int] | None, count: int = 1) -> dict:
    """``containers.create`` arguments that hand a container its GPUs (None: all of them)."""
    import docker

    kw: dict = {}
    if vendor == "nvidia":
        ids = {"device_ids": [str(i) for i in indices]} if indices else {"count": -1}
        kw["device_requests"] = [docker.types.DeviceRequest(driver="nvidia", capabilities=[["gpu"]], **ids)]
    elif vendor == "amd":
        # ROCm sees every GPU of /dev/dri; the allow-listed *_VISIBLE_DEVICES pick them, as in a local run
        kw.update(devices=["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"], group_add=["video"],
                  security_opt=["seccomp=unconfined"])
    if vendor != "cpu" and count > 1:
        kw["shm_size"] = "16g"  # NCCL/RCCL between the GPUs of one container go through /dev/shm
    return kw


def container_env(vendor: str, image_ref: str, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment (process.child_env), less what describes the host, plus the container's."""
    env = {k: v for k, v in process.child_env().items() if k not in HOST_SPECIFIC}
    if vendor != "amd":
        # NVIDIA: the container's GPUs are numbered from 0 again; a host index would point at the wrong one
        env = {k: v for k, v in env.items() if k not in GPU_SELECTION}
    env.update(
        HOME="/tmp", PYTHONPATH=WORKSPACE, PYTHONDONTWRITEBYTECODE="1", LLMPERF_NB_CACHE=CACHE,
        HF_HOME=f"{CACHE}/huggingface",  # hub downloads outlive the setup container
        LLMPERF_NB_IMAGE=image_ref,  # provenance: the setup step records it with the hardware
    )
    env.update(extra_env or {})  # HF_TOKEN, for the setup step only (notebook.run_step)
    return env


def _build_lines(chunk: dict) -> list[str]:
    if "stream" in chunk:
        return [line + "\n" for line in chunk["stream"].splitlines() if line.strip()]
    if "status" in chunk and not chunk.get("progressDetail"):  # pulls: one line per layer state, no bars
        return [f"{chunk.get('id', '')} {chunk['status']}".strip() + "\n"]
    return []
