"""--runner docker: unit tests of what goes into a container (no daemon), then tests against a real Docker
Engine (marked ``docker``; skipped when none answers): the image built through the runner, the quickstart
cell run in containers, a crashing and a hanging container, and no container left behind by any test."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmperf_nb import cells, hardware, params, results
from llmperf_nb.exceptions import ContainerError, ProcessError, StepTimeout
from llmperf_nb.runners import containers, dockerfile
from llmperf_nb.runners import docker as dr

from .conftest import ROOT, cli, needs_llama_cpp, start_cli

docker = pytest.importorskip("docker", reason="the docker SDK is not installed (pip install '.[docker]')")

SECRET = "hf_" + "notarealtoken" * 3  # built at run time: the source holds no token-like string
BASE = "llmperf-nb/base:bookworm"


def _cell(tmp_path, **overrides):
    raw = {"name": "t", "models": ["tiny-llama"], "gpus": ["cpu"], "engines": ["llama_cpp"], **overrides}
    cell = params.expand(params.from_dict(raw))[0]
    cell_dir = tmp_path / "results" / cell.id
    cell.save(cell_dir)
    return cell, cell_dir


# --- no daemon needed ---


def test_nvidia_cell_gets_a_device_request_for_its_gpus():
    kw = dr.gpu_kwargs("nvidia", [0, 1], count=2)
    want = docker.types.DeviceRequest(driver="nvidia", device_ids=["0", "1"], capabilities=[["gpu"]])
    assert kw == {"device_requests": [want], "shm_size": "16g"}
    assert kw["device_requests"][0]["DeviceIDs"] == ["0", "1"] and kw["device_requests"][0]["Count"] == 0


def test_nvidia_without_indices_asks_for_every_gpu_and_one_gpu_needs_no_big_shm():
    kw = dr.gpu_kwargs("nvidia", None, count=1)
    assert kw == {"device_requests": [docker.types.DeviceRequest(driver="nvidia", count=-1, capabilities=[["gpu"]])]}


def test_amd_cell_gets_kfd_dri_video_and_unconfined_seccomp():
    kw = dr.gpu_kwargs("amd", [0, 1], count=2)
    assert kw == {"devices": ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"], "group_add": ["video"],
                  "security_opt": ["seccomp=unconfined"], "shm_size": "16g"}
    assert dr.gpu_kwargs("cpu", [], count=1) == {}


@pytest.mark.parametrize("vendor", ["nvidia", "amd"])
def test_the_sdk_turns_the_gpu_kwargs_into_a_host_config(vendor, monkeypatch):
    client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")  # never connects
    made = {}
    monkeypatch.setattr(client.api, "create_container", lambda **kw: made.update(kw) or {"Id": "x"})
    monkeypatch.setattr(docker.models.containers.ContainerCollection, "get", lambda self, cid: cid)
    client.containers.create("img", ["true"], **dr.gpu_kwargs(vendor, [1], count=2))
    client.close()
    host = made["host_config"]
    assert host["ShmSize"] == 16 * 1024**3
    if vendor == "nvidia":
        assert host["DeviceRequests"] == [{"Driver": "nvidia", "Count": 0, "DeviceIDs": ["1"],
                                           "Capabilities": [["gpu"]], "Options": {}}]
    else:
        assert [d["PathOnHost"] for d in host["Devices"]] == ["/dev/kfd", "/dev/dri"]
        assert host["GroupAdd"] == ["video"] and host["SecurityOpt"] == ["seccomp=unconfined"]


def test_vendor_comes_from_the_gpu_catalog():
    assert (hardware.gpu_vendor("h100-sxm"), hardware.gpu_vendor("mi300x"), hardware.gpu_vendor("cpu")) == ("nvidia", "amd", "cpu")


def test_container_environment_is_the_allow_list_without_host_paths(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv("VIRTUAL_ENV", "/home/me/.venv")
    monkeypatch.setenv("AIPERF", "/home/me/.venv-aiperf/bin/aiperf")  # the image sets its own (serve cells)
    monkeypatch.setenv("LLAMA_SERVER", "/home/me/llama-server")
    env = dr.container_env("nvidia", "llmperf-nb/x:cpu-0@sha256:1")
    assert "HF_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["OMP_NUM_THREADS"] == "2" and env["PYTHONUNBUFFERED"] == "1"
    # host paths would hide the image's own; a host GPU index means another GPU once the container renumbers
    assert not {"PATH", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "AIPERF", "LLAMA_SERVER"} & set(env)
    assert env["HOME"] == "/tmp" and env["PYTHONPATH"] == "/workspace"
    assert env["LLMPERF_NB_IMAGE"] == "llmperf-nb/x:cpu-0@sha256:1"
    assert dr.container_env("amd", "i")["CUDA_VISIBLE_DEVICES"] == "2,3"  # ROCm containers see every GPU
    assert dr.container_env("cpu", "i", {"HF_TOKEN": SECRET})["HF_TOKEN"] == SECRET  # the setup step's


def test_the_images_with_a_server_pin_the_aiperf_the_project_runs():
    """The serve workload's load generator, in the images whose engine has a server and whose Python can hold it
    (AIPerf needs >= 3.11; the Ubuntu 22.04 CUDA and ROCm bases have 3.10 and say so); one version everywhere."""
    import re

    from llmperf_nb import loadgen

    pinned = {p.name: re.findall(r"AIPERF_SPEC=(\S+)", p.read_text()) for p in (ROOT / "docker").glob("Dockerfile.*")}
    pinned = {name: found for name, found in pinned.items() if found}
    assert set(pinned) == {"Dockerfile.cpu.llama_cpp", "Dockerfile.cu130.vllm"}
    assert {spec for found in pinned.values() for spec in found} == {f"aiperf=={loadgen.VERSION}"}
    assert f"AIPERF_SPEC ?= aiperf=={loadgen.VERSION}" in (ROOT / "Makefile").read_text()
    for name in pinned:
        assert "AIPERF=/opt/aiperf/bin/aiperf" in (ROOT / "docker" / name).read_text()


def test_tag_follows_the_dockerfile_its_copied_files_and_build_args(tmp_path):
    (tmp_path / "sub").mkdir()
    script = tmp_path / "sub" / "build.sh"
    script.write_text("echo 1\n")
    df = tmp_path / "Dockerfile.cpu.x"
    df.write_text("ARG BASE_IMAGE=llmperf-nb/base:bookworm\nFROM ${BASE_IMAGE}\n"
                  "COPY --chmod=755 sub/build.sh \\\n  # a comment inside the instruction\n  /opt/\nRUN sh /opt/build.sh\n")
    tag = dockerfile.image_tag("llama_cpp", "cpu", df, tmp_path)
    assert tag.startswith("llmperf-nb/llama_cpp:cpu-") and len(tag.rsplit("-", 1)[1]) == 12
    assert dockerfile.image_tag("llama_cpp", "cpu", df, tmp_path) == tag  # nothing changed: the same tag, no build
    assert [rel for rel, _ in dockerfile.copied_files(df.read_text(), tmp_path)] == ["sub/build.sh"]
    assert dockerfile.base_images(df.read_text()) == [BASE]
    assert dockerfile.base_images(df.read_text(), {"BASE_IMAGE": "debian:bookworm-slim"}) == ["debian:bookworm-slim"]
    assert dockerfile.image_tag("llama_cpp", "cpu", df, tmp_path, {"BUILD_JOBS": "2"}) != tag
    script.write_text("echo 2\n")
    changed = dockerfile.image_tag("llama_cpp", "cpu", df, tmp_path)
    assert changed != tag
    df.write_text(df.read_text() + "RUN true\n")
    assert dockerfile.image_tag("llama_cpp", "cpu", df, tmp_path) not in (tag, changed)


def test_every_engine_dockerfile_exists_and_is_tagged():
    from llmperf_nb.engines import registry

    for engine in registry.values():
        for platform, name in engine.dockerfiles.items():
            assert platform in dr.PLATFORMS.values()
            path = dr.DOCKER_DIR / name
            assert path.exists(), path
            dockerfile.image_tag(engine.name, platform, path, dr.DOCKER_DIR)
            for rel, found in dockerfile.copied_files(path.read_text(), dr.DOCKER_DIR):
                assert found is not None, f"{name} copies {rel}, which docker/ does not have"


def test_daemon_errors_say_what_to_do():
    where = "unix:///var/run/docker.sock"
    denied = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', PermissionError(13, 'Permission denied'))")
    missing = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file'))")
    refused = docker.errors.DockerException("('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))")
    assert containers.unreachable(denied, where).startswith(f"permission denied on the Docker socket {where}: add your user")
    assert "socket is missing" in containers.unreachable(missing, where) and "start-dockerd.sh" in containers.unreachable(missing, where)
    assert "refuses connections" in containers.unreachable(refused, where)
    for e in (denied, missing, refused):
        assert "\n" not in containers.unreachable(e, where)


def test_no_daemon_is_a_one_line_container_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(ContainerError, match=r"^no Docker daemon at unix://.*/docker.sock \(the socket is missing\)"):
        dr.DockerRunner()
    done = cli("run", ROOT / "params" / "quickstart.yaml", "--runner", "docker", "--out", tmp_path / "out",
               env={"DOCKER_HOST": f"unix://{tmp_path}/docker.sock"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("llmperf-nb: error: no Docker daemon at") and len(done.stderr.splitlines()) == 1


def test_stale_socket_of_a_stopped_daemon_is_a_one_line_error(monkeypatch, tmp_path):
    import socket

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "docker.sock"))  # the file stays, nobody listens: as after a daemon died
    stale.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(ContainerError, match=r"^the Docker daemon at unix://.* refuses connections: is it running\?$"):
        containers.connect()


class _FakeClient:
    def info(self):
        return {"Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}}


def test_gpu_cell_without_nvidia_runtime_is_a_clear_error(tmp_path):
    cell, cell_dir = _cell(tmp_path, gpus=["h100-sxm"])
    with pytest.raises(ContainerError, match=r"asks for h100-sxm but this Docker daemon has no 'nvidia' runtime"):
        dr.DockerRunner(client=_FakeClient()).run_step("setup", cell, cell_dir, tmp_path / "cache")


@pytest.mark.skipif(os.path.exists("/dev/kfd"), reason="this host has an AMD GPU driver")
def test_amd_cell_without_kfd_is_a_clear_error(tmp_path):
    cell, cell_dir = _cell(tmp_path, gpus=["mi300x"])
    with pytest.raises(ContainerError, match=r"asks for mi300x but this host has no /dev/kfd"):
        dr.DockerRunner(client=_FakeClient()).run_step("setup", cell, cell_dir, tmp_path / "cache")


def test_engine_without_an_image_for_the_platform_is_not_run(tmp_path):
    cell, cell_dir = _cell(tmp_path, engines=[{"name": "transformers", "quantization": "fp16"}])
    seen = []
    dr.DockerRunner(client=_FakeClient()).run_step("setup", cell, cell_dir, tmp_path / "cache", on_line=seen.append)
    setup = json.loads((cell_dir / "setup.json").read_text())
    assert setup["skip"] == "HF transformers has no Docker image for cpu (its images: cuda)"
    assert seen == [f"skipped: {setup['skip']}\n"]


def test_local_weights_must_be_an_absolute_path(tmp_path, monkeypatch):
    raw = {"name": "t", "models": ["tiny-llama"], "gpus": ["cpu"], "engines": ["llama_cpp"],
           "local_weights": {"tiny-llama": "models/tiny.gguf"}}
    cell = params.expand(params.from_dict(raw))[0]
    runner = dr.DockerRunner(client=_FakeClient())
    monkeypatch.setattr(runner, "image", lambda *a, **k: ("t", None))
    with pytest.raises(ContainerError, match="must be an absolute path with --runner docker"):
        runner.run_step("setup", cell, tmp_path, tmp_path / "cache")


# --- a real daemon ---


@pytest.mark.docker
def test_image_is_built_once_and_reused(docker_client, llama_cpp_cpu_image):
    tag, image, _, _ = llama_cpp_cpu_image
    assert tag == dockerfile.image_tag("llama_cpp", "cpu", dr.DOCKER_DIR / "Dockerfile.cpu.llama_cpp", dr.DOCKER_DIR)
    seen = []
    start = time.monotonic()
    again_tag, again = dr.DockerRunner(client=docker_client).image("llama_cpp", "cpu", on_line=seen.append)
    assert (again_tag, again.id) == (tag, image.id) and seen == []  # nothing built, nothing said
    assert time.monotonic() - start < 5


@pytest.mark.docker
def test_failed_build_raises_with_the_end_of_its_log(docker_client, docker_base_image, tmp_path):
    (tmp_path / "Dockerfile.broken").write_text(f"FROM {BASE}\nRUN echo 'compiling...' && echo 'boom: no compiler' && exit 3\n")
    runner = dr.DockerRunner(client=docker_client, docker_dir=tmp_path)
    seen = []
    with pytest.raises(ContainerError) as err:
        runner.build("llmperf-nb/test-broken:cpu-0", tmp_path / "Dockerfile.broken", on_line=seen.append)
    first, *rest = str(err.value).splitlines()
    assert first.startswith("building llmperf-nb/test-broken:cpu-0 from docker/Dockerfile.broken failed:")
    assert "returned a non-zero code: 3" in first and "boom: no compiler" in rest
    assert any(line.startswith("Step 2/2 : RUN") for line in seen)  # progress was streamed
    # forcerm: the failed step's container is gone too (conftest.no_process_left checks ours; this one is the builder's)
    assert not docker_client.containers.list(all=True, filters={"ancestor": BASE})


@pytest.mark.docker
def test_missing_local_base_image_says_how_to_make_it(docker_client, tmp_path, monkeypatch):
    df = tmp_path / "Dockerfile.cpu.x"
    df.write_text("ARG BASE_IMAGE=llmperf-nb/base:nosuch\nFROM ${BASE_IMAGE}\n")
    monkeypatch.setitem(dr.LOCAL_BASES, "llmperf-nb/base:nosuch", "docker/base/make-base-image.sh (as root)")
    with pytest.raises(ContainerError, match=r"starts from llmperf-nb/base:nosuch, which is missing: make it with "
                                             r"docker/base/make-base-image.sh"):
        dr.DockerRunner(client=docker_client, docker_dir=tmp_path)._check_bases(df)


@pytest.mark.docker
def test_container_runs_as_the_host_user_without_network_or_secrets(docker_client, docker_base_image, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    done = containers.run_container(docker_client, docker_base_image.id,
                            ["sh", "-c", "id -u; id -g; ls /sys/class/net; env"],
                            environment=dr.container_env("cpu", "ref"), network_mode="none")
    uid, gid, *rest = done.output.splitlines()
    assert (uid, gid) == (str(os.getuid()), str(os.getgid()))
    assert rest[0] == "lo"  # network "none": a loopback and nothing else
    assert SECRET not in done.output and "LLMPERF_NB_IMAGE=ref" in rest


@pytest.mark.docker
def test_crashing_container_gives_exit_signal_and_tail(docker_client, docker_base_image):
    with pytest.raises(ProcessError) as err:
        containers.run_container(docker_client, docker_base_image.id,
                         ["sh", "-c", "for i in $(seq 100); do echo line $i; done; echo 'GGML_ASSERT(x) failed'; kill -ABRT $$"])
    assert err.value.returncode == -6 and "failed (signal SIGABRT): GGML_ASSERT(x) failed" in str(err.value)
    assert err.value.tail.splitlines()[-1] == "GGML_ASSERT(x) failed" and len(err.value.tail.splitlines()) == 40
    with pytest.raises(ProcessError, match=r"failed \(exit code 3\)"):
        containers.run_container(docker_client, docker_base_image.id, ["sh", "-c", "exit 3"])


@pytest.mark.docker
def test_time_limit_kills_a_silent_container(docker_client, docker_base_image):
    start = time.monotonic()
    with pytest.raises(StepTimeout, match=r"^stopped after 3 s \(time limit\): sh -c") as err:
        containers.run_container(docker_client, docker_base_image.id, ["sh", "-c", "echo started; sleep 600"], timeout=3)
    assert str(err.value).splitlines()[-1] == "started"
    assert time.monotonic() - start < 60


@pytest.mark.docker
def test_ctrl_c_removes_the_container(docker_client, docker_base_image):
    def interrupt(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        containers.run_container(docker_client, docker_base_image.id, ["sh", "-c", "echo hi; sleep 600"], on_line=interrupt)


# a process that runs a container and prints its output: killed below, as a CLI or a kernel can be
OWNER = """
import sys
from llmperf_nb.runners import containers
containers.run_container(containers.connect(), sys.argv[1], ["sh", "-c", "echo started; sleep 600"],
                         name=sys.argv[2], on_line=lambda line: print(line, end="", flush=True))
"""


def _gone(client, name: str, within: float) -> float:
    """Seconds until no container is named ``name`` (fails after ``within``)."""
    start = time.monotonic()
    while client.containers.list(all=True, filters={"name": name}, ignore_removed=True):  # gone between list and inspect
        assert time.monotonic() - start < within, f"{name} still there after {within:.0f} s"
        time.sleep(0.2)
    return time.monotonic() - start


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_container_of_a_killed_owner_is_removed_within_seconds(docker_client, docker_base_image, sig):
    name = containers.container_name("owner")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, docker_base_image.id, name], stdout=subprocess.PIPE, text=True)
    assert owner.stdout.readline() == "started\n"
    assert docker_client.containers.get(name).status == "running"
    owner.send_signal(sig)  # no handler runs for either: the owner's finally never removes it
    owner.wait(timeout=10)
    owner.stdout.close()
    seconds = _gone(docker_client, name, within=15)
    print(f"container of an owner ended by {sig.name} removed {seconds:.1f} s later")


@pytest.mark.docker
def test_gpu_cell_on_this_daemon(docker_client, tmp_path):
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this daemon has the nvidia runtime")
    cell, cell_dir = _cell(tmp_path, gpus=["h100-sxm"])
    with pytest.raises(ContainerError, match="has no 'nvidia' runtime"):
        dr.DockerRunner(client=docker_client).run_step("setup", cell, cell_dir, tmp_path / "cache")


# --- the quickstart cell in containers, through the CLI ---

QUICK = ("name: q\nmodels: [tiny-llama]\ngpus: [cpu]\nquantization: int4\ngen_len: 32\nrepetitions: 2\n"
         "engines: [llama_cpp, {name: transformers, quantization: fp16}]\n")


def _run(tmp_path_factory, cache_dir, text, *extra, env=None):
    out = tmp_path_factory.mktemp("docker-run")
    p = out / "params.yaml"
    p.write_text(text)
    start = time.monotonic()
    done = cli("run", p, "--out", out / "report", "--cache-dir", cache_dir, "--no-progress", *extra, env=env)
    return out / "report", done, time.monotonic() - start


@pytest.fixture(scope="module")
def in_docker(tmp_path_factory, cache_dir, llama_cpp_cpu_image):
    return _run(tmp_path_factory, cache_dir, QUICK, "--runner", "docker", env={"HF_TOKEN": SECRET})


@pytest.fixture(scope="module")
def local(tmp_path_factory, cache_dir):
    return _run(tmp_path_factory, cache_dir, QUICK.replace(", {name: transformers, quantization: fp16}", ""))


def _keys(value):
    if isinstance(value, dict):
        return {k: _keys(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_keys(value[0])]
    return None


@pytest.mark.docker
@pytest.mark.slow
def test_quickstart_cell_runs_in_containers(in_docker, llama_cpp_cpu_image):
    out, done, seconds = in_docker
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 measured, 0 reused, 0 failed, 1 not run here" in done.stdout
    docs = {d["engine"]: d for d in results.load_dir(out / "results")}  # load_dir validates each
    doc = docs["llama_cpp"]
    assert doc["status"] == "ok" and doc["gen_tokens"] == {"requested": 32, "actual": 32}
    assert doc["repetitions"]["actual"] == 2 and doc["engine_version"].startswith("llama-cpp-python 0.3.36")
    tag, image, _, _ = llama_cpp_cpu_image
    assert doc["hardware"]["container_image"] == f"{tag}@{image.id}"
    assert docs["transformers"]["status"] == "skipped"
    assert "no Docker image for cpu" in docs["transformers"]["error"]["message"]
    cell_dir = out / "results" / doc["cell_id"]
    # made inside, in the container's cache, which compile.json names <cache> (published.py)
    assert json.loads((cell_dir / "compile.json").read_text())["artifact"].startswith("<cache>/gguf/")
    assert all(f.stat().st_uid == os.getuid() for f in cell_dir.iterdir())
    print(f"quickstart cell in docker: {seconds:.0f} s")


@pytest.mark.docker
@pytest.mark.slow
@needs_llama_cpp
def test_result_has_the_keys_of_a_local_run(in_docker, local):
    local_doc = results.load_dir(local[0] / "results")[0]
    docker_doc = [d for d in results.load_dir(in_docker[0] / "results") if d["engine"] == "llama_cpp"][0]
    assert local[1].returncode == 0, local[1].stderr
    assert _keys(docker_doc) == _keys(local_doc)
    print(f"the same cell run locally: {local[2]:.0f} s, in docker: {in_docker[2]:.0f} s")


@pytest.mark.docker
@pytest.mark.slow
def test_no_secret_reaches_any_file(in_docker):
    out, _, _ = in_docker
    for f in out.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f


@pytest.mark.docker
@pytest.mark.slow
def test_engine_crash_in_a_container_is_a_failed_cell(tmp_path_factory, cache_dir, llama_cpp_cpu_image):
    # n_batch 1 cannot take the 8-token prompt in one llama_decode: GGML_ASSERT, abort (as in test_pipeline)
    out, done, _ = _run(tmp_path_factory, cache_dir, QUICK.replace("llama_cpp, {name: transformers, quantization: fp16}",
                                                                    "{name: llama_cpp, n_batch: 1}"), "--runner", "docker")
    assert done.returncode == 1 and "1 failed" in done.stdout
    [doc] = results.load_dir(out / "results")
    assert doc["status"] == "failed" and doc["error"]["step"] == "benchmark"
    assert "signal SIGABRT" in doc["error"]["message"] and "GGML_ASSERT" in doc["error"]["message"]
    assert "GGML_ASSERT" in doc["error"]["log_tail"]


@pytest.mark.docker
@pytest.mark.slow
def test_hanging_step_in_a_container_is_a_failed_cell(tmp_path_factory, cache_dir, llama_cpp_cpu_image):
    text = QUICK.replace("gen_len: 32", "gen_len: 2000\ntimeout_s: 1").replace(
        ", {name: transformers, quantization: fp16}", "")
    out, done, seconds = _run(tmp_path_factory, cache_dir, text, "--runner", "docker")
    assert done.returncode == 1 and "1 failed" in done.stdout
    [doc] = results.load_dir(out / "results")
    assert doc["status"] == "failed" and doc["error"]["step"] == "benchmark"
    assert "stopped after 1 s (time limit)" in doc["error"]["message"]
    assert doc["error"]["log_tail"]


@pytest.mark.docker
@pytest.mark.slow
def test_runner_time_limit_stops_the_step_container(docker_client, in_docker, tmp_path, cache_dir):
    """The runner's own limit (the notebook gives it timeout_s + 60): the container is killed, then removed."""
    import shutil

    done_dir = next(p.parent for p in (in_docker[0] / "results").glob("*/compile.json"))
    cell_dir = tmp_path / done_dir.name
    shutil.copytree(done_dir, cell_dir)
    cell = cells.Cell.load(cell_dir)
    cell = cells.Cell.from_dict({**cell.to_dict(), "gen_len": 100_000})  # minutes of decoding
    cell.save(cell_dir)
    seen = []
    start = time.monotonic()
    with pytest.raises(StepTimeout, match=r"^stopped after 20 s \(time limit\): python -m llmperf_nb.steps benchmark"):
        dr.DockerRunner(client=docker_client).run_step("benchmark", cell, cell_dir, cache_dir, timeout=20,
                                                        on_line=seen.append)
    assert any("llama" in line for line in seen)  # it was running, not starting
    assert time.monotonic() - start < 120


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_the_cli_stopped_or_killed_stops_the_cells_container(docker_client, llama_cpp_cpu_image, tmp_path, cache_dir, sig):
    p = tmp_path / "long.yaml"
    p.write_text(QUICK.replace("gen_len: 32\nrepetitions: 2", "gen_len: 512\nrepetitions: 50").replace(
        ", {name: transformers, quantization: fp16}", ""))
    run = start_cli("run", p, "--out", tmp_path / "out", "--cache-dir", cache_dir, "--no-progress", "--runner", "docker")
    benchmark = {"label": [f"{containers.LABEL}.step=benchmark"], "status": "running"}
    deadline = time.monotonic() + 600
    while not docker_client.containers.list(filters=benchmark):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.5)
    time.sleep(2)  # the driver is measuring
    [container] = docker_client.containers.list(filters=benchmark)
    run.send_signal(sig)
    _, err = run.communicate(timeout=60)
    start = time.monotonic()
    while container.name in {c.name for c in docker_client.containers.list(filters={"status": "running"})}:
        assert time.monotonic() - start < 20, f"{container.name} still running 20 s after the CLI ended"
        time.sleep(0.2)
    stopped = time.monotonic() - start
    # removing its files takes longer on a busy daemon with the vfs driver (seen: 47 s)
    seconds = _gone(docker_client, container.name, within=180)
    print(f"{sig.name} to the CLI: its container stopped {stopped:.1f} s, removed {seconds:.1f} s after the CLI ended")
    if sig != signal.SIGKILL:
        assert run.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        doc = json.loads((tmp_path / "out" / "results" / container.labels[f"{containers.LABEL}.cell"] / "result.json").read_text())
        assert doc["status"] == "failed" and doc["error"]["message"].startswith("interrupted (")


SERVE = ("name: s\nmodels: [tiny-llama]\ngpus: [cpu]\nquantization: int4\nengines: [llama_cpp]\nwarmup: 1\n"
         "workloads:\n  - kind: serve\n    concurrency: [1, 2]\n    input_len: 16\n    output_len: 8\n    rounds: 2\n")


@pytest.mark.docker
@pytest.mark.slow
def test_a_serve_cell_runs_its_server_and_load_generator_in_the_engines_container(
    docker_client, llama_cpp_cpu_image, tmp_path_factory, cache_dir
):
    """--runner docker: llama-server and AIPerf are the image's (LLAMA_SERVER, AIPERF there; the host's values of
    those names stay out), the server is a child of the benchmark step inside its container, gone with it."""
    env = {"AIPERF": "/nonexistent/aiperf", "LLAMA_SERVER": "/nonexistent/llama-server"}  # host paths: not inside
    out, done, seconds = _run(tmp_path_factory, cache_dir, SERVE, "--runner", "docker", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [doc] = results.load_dir(out / "results")
    assert doc["status"] == "ok", doc["error"]
    tag, image, _, _ = llama_cpp_cpu_image
    assert doc["hardware"]["container_image"] == f"{tag}@{image.id}"
    server, loadgen = doc["build"]["server"], doc["build"]["loadgen"]
    assert server["path"] == "/usr/local/bin/llama-server" and "0c1e570" in server["version"]
    assert server["source"] == "LLAMA_SERVER, on the libllama the bindings load (one build)"  # found through ldd
    assert loadgen == {"tool": "aiperf", "version": "0.13.0", "records": "profile_export.jsonl",
                       "stream": "profile_export_raw.jsonl"}
    assert [p["concurrency"] for p in doc["points"]] == [1, 2]
    for p in doc["points"]:
        n = 2 * p["concurrency"]
        assert p["completed"] == n and p["problems"] == [] and len(p["requests"]) == n
        assert p["token_check"]["equal"] is True and p["token_check"]["server_counter"] == n * 8
    assert "127.0.0.1" in (out / "results" / doc["cell_id"] / "server.log").read_text()
    assert docker_client.containers.list(all=True, filters={"label": containers.LABEL}) == []
    print(f"serve cell in docker (2 levels): {seconds:.0f} s")


def test_setup_json_of_a_skip_has_what_the_pipeline_reads(tmp_path):
    cell, cell_dir = _cell(tmp_path, engines=[{"name": "transformers", "quantization": "fp16"}])
    dr.DockerRunner(client=_FakeClient()).run_step("setup", cell, cell_dir, tmp_path / "cache")
    setup = json.loads((cell_dir / "setup.json").read_text())
    assert set(setup) == {"hardware", "weights", "skip", "format"} and setup["format"] == "safetensors fp16"
    assert Path(cell_dir / "setup.json.tmp").exists() is False
