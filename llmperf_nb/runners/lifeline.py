"""Remove a container when the process that started it ends, however it ends.

    python -m llmperf_nb.runners.lifeline CONTAINER_NAME     (standard input: a pipe from its owner)

A container is the Docker daemon's child, not ours: the parent-death signal and the CLI's sweep of
its process tree (process.own_tree) never reach it. So :func:`containers.run_container` starts one
lifeline per container (process.companion) and holds the write end of its standard input. The owner
writes ``done`` once it has removed the container itself. If the pipe closes without it (the owner
was killed: SIGKILL, its kernel ended by the CLI's death), or a SIGTERM arrives (the CLI ending its
tree on Ctrl-C), the lifeline removes the container, within seconds.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time

from .containers import LIFELINE_DONE


class _Stop(Exception):
    pass


def main(argv: list[str]) -> int:
    [name] = argv

    def stop(signum, frame):
        raise _Stop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the owner; it says what to do
    signal.signal(signal.SIGTERM, stop)
    said = b""
    try:
        said = sys.stdin.buffer.read()
    except _Stop:
        pass
    if said == LIFELINE_DONE:
        return 0
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM does not stop the removal half-way
    return remove(name)


def remove(name: str, patience: float = 120.0) -> int:
    """Stop and remove the container ``name``. One that is not there yet may still appear (a create()
    in flight when the owner died takes a while on a busy daemon): look again for ``patience`` seconds."""
    import docker

    from .containers import connect

    client = connect()
    deadline = time.monotonic() + patience
    try:
        while True:
            try:
                container = client.containers.get(name)
            except docker.errors.NotFound:
                if time.monotonic() > deadline:
                    return 0
                time.sleep(1.0)
                continue
            with contextlib.suppress(docker.errors.APIError):
                container.kill()  # stopped at once; removing its files may take longer
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: its removal is already under way
                    print(f"lifeline: cannot remove container {name}: {e}", file=sys.stderr)
                    return 1
            return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
