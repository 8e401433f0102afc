"""Containers through the Docker SDK: connect to the daemon, run one command in a new container, remove it.

What a container runs and with which GPUs is the docker runner's business (runners/docker.py); this
module knows only the daemon.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable

from .. import process
from ..exceptions import ContainerError, ProcessError, StepTimeout

WORKSPACE = "/workspace"
#: every container and build this runner starts carries it (tests look for leftovers by it)
LABEL = "llmperf-nb"

#: what run_container tells a container's lifeline once it has removed the container itself
LIFELINE_DONE = b"done\n"
#: seconds the daemon may take to answer one call (a create copies the image's files on the vfs driver)
API_TIMEOUT_S = 300


def run_container(
    client,
    image: str,
    argv: list[str],
    *,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    **create_kwargs,
) -> process.Completed:
    """Run ``argv`` in a new container of ``image`` as the host user, streaming its output; always remove it.

    A non-zero exit raises ProcessError (exit code, first error line, output tail), as a local process does;
    the time limit kills the container and raises StepTimeout.
    """
    import requests

    import docker

    create_kwargs.setdefault("labels", {LABEL: "1"})
    create_kwargs.setdefault("name", container_name("run"))
    name = create_kwargs["name"]
    lines: list[str] = []
    recent: deque[str] = deque(maxlen=process.TAIL_LINES)
    container = None
    lifeline = _lifeline(name)
    try:
        try:
            container = client.containers.create(
                image, argv, user=f"{os.getuid()}:{os.getgid()}", working_dir=WORKSPACE, init=True,
                stdin_open=False, tty=False, **create_kwargs,
            )
            start = time.monotonic()
            container.start()
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise ContainerError(f"cannot start a container of {image[:19]}: {explain(e)}") from None
        deadline = None if timeout is None else start + timeout
        try:
            _pump(container, lines, recent, on_line, deadline)
            remaining = None if deadline is None else max(1.0, deadline - time.monotonic())
            try:
                state = container.wait(timeout=remaining)
            except requests.exceptions.RequestException:  # wait's own timeout
                raise process.Deadline from None
        except process.Deadline:  # the finally below kills the container as it removes it
            raise StepTimeout(f"stopped after {timeout:.0f} s (time limit): {' '.join(argv)[:200]} in a container "
                              f"of {image[:19]}\n" + "\n".join(recent)) from None
        code = state["StatusCode"]
        output = "".join(lines)
        if code != 0:
            container.reload()
            if container.attrs.get("State", {}).get("OOMKilled"):
                raise ContainerError(f"{' '.join(argv[:4])}: the container ran out of memory and was killed\n"
                                     + process.tail(output))
            raise ProcessError(argv, _returncode(code), process.tail(output), process.first_error(output))
        return process.Completed(argv, code, output, time.monotonic() - start)
    finally:
        _remove_and_release(client, container, name, lifeline)


def _remove_and_release(client, container, name: str, lifeline) -> None:
    try:
        _remove(client, container, name)
    finally:
        # a create() that gave up waiting may still land: then the lifeline watches for it
        _release(lifeline, removed=container is not None)


def _lifeline(name: str):
    """A process that removes the container ``name`` if this one dies before it does (runners/lifeline.py)."""
    docker_env = {k: v for k, v in os.environ.items() if k in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
    return process.companion([process.python(), "-m", "llmperf_nb.runners.lifeline", name], extra_env=docker_env)


def _release(lifeline, removed: bool) -> None:
    """The container is gone (``removed``): tell the lifeline so, and let it end. Otherwise it goes on
    alone, as when this process dies, and removes the container if it appears."""
    try:
        if removed:
            lifeline.stdin.write(LIFELINE_DONE)
        lifeline.stdin.close()
    except OSError:
        pass  # it has ended already (a SIGTERM made it remove the container)
    if not removed:
        return
    try:
        lifeline.wait(timeout=10)
    except subprocess.TimeoutExpired:
        lifeline.kill()
        lifeline.wait()


def _remove(client, container, name: str) -> None:
    """Remove the container, also one whose create() was interrupted after the daemon made it."""
    import docker

    try:
        (container or client.containers.get(name)).remove(force=True)
    except docker.errors.NotFound:
        pass  # never created, or already gone
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: its removal is already in progress
            raise ContainerError(f"cannot remove container {name}: {explain(e)} (docker rm -f {name})") from None


def _log_lines(container):
    """The container's merged output, decoded, a line at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
        pending += decoder.decode(chunk)
        *done, pending = pending.split("\n")
        for line in done:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


def _pump(container, lines, recent, on_line, deadline) -> None:
    try:
        process.pump(_log_lines(container), lines, recent, on_line, deadline)
    except process.Deadline:
        raise
    except Exception as e:  # the SDK's stream broke: docker.errors.APIError, a closed connection
        raise ContainerError(f"lost the output of the container: {e}") from None


def _returncode(status: int) -> int:
    """docker-init reports a death by signal N as 128 + N: give it as -N, as subprocess does."""
    if status > 128:
        try:
            return -signal.Signals(status - 128).value
        except ValueError:
            pass
    return status


def container_name(what: str) -> str:
    return f"{LABEL}-" + re.sub(r"[^a-zA-Z0-9_.-]", "-", what)[:80] + f"-{uuid.uuid4().hex[:8]}"


def connect():
    """A client of the daemon DOCKER_HOST names (default: /var/run/docker.sock), checked with a ping."""
    import docker

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):
        # try the socket first: the SDK leaves the socket of a failed connection open (a ResourceWarning)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(10)
        try:
            probe.connect(where[len("unix://"):])
        except OSError as e:
            raise ContainerError(unreachable(e, where)) from None
        finally:
            probe.close()
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S)
    except docker.errors.DockerException as e:
        raise ContainerError(unreachable(e, where)) from None
    try:
        client.ping()
    except docker.errors.DockerException as e:
        client.close()
        raise ContainerError(unreachable(e, where)) from None
    return client


def unreachable(error: Exception, where: str) -> str:
    """One line on why the daemon at ``where`` does not answer, and what to do."""
    said = str(error)
    if "PermissionError" in said or "Permission denied" in said:
        return (f"permission denied on the Docker socket {where}: add your user to the 'docker' group "
                "(then log in again), or set DOCKER_HOST to a daemon you may use")
    if "FileNotFoundError" in said or "No such file" in said:
        return (f"no Docker daemon at {where} (the socket is missing): start one (as root: "
                "docker/dev/start-dockerd.sh, then export the DOCKER_HOST it prints)")
    if "ConnectionRefused" in said or "Connection refused" in said:
        return f"the Docker daemon at {where} refuses connections: is it running?"
    return f"cannot reach the Docker daemon at {where}: {said.splitlines()[0] if said else type(error).__name__}"


def explain(error) -> str:
    import requests

    if isinstance(error, requests.exceptions.RequestException):  # no answer in time, a dropped connection
        return f"the Docker daemon did not answer ({type(error).__name__}, limit {API_TIMEOUT_S} s): is it overloaded?"
    explanation = getattr(error, "explanation", None)
    return str(explanation or error).strip().splitlines()[0]
