import os
import subprocess
import sys
import time

import pytest

from llmperf_nb import process
from llmperf_nb.exceptions import ProcessError, StepTimeout

from .conftest import ROOT


def test_output_streams_and_returns():
    seen = []
    done = process.run([sys.executable, "-c", "print('a'); print('b')"], on_line=seen.append)
    assert done.output == "a\nb\n" and seen == ["a\n", "b\n"] and done.returncode == 0


def test_failure_carries_command_exit_code_and_tail():
    code = "import sys\nfor i in range(100): print(i)\nsys.exit(3)"
    with pytest.raises(ProcessError) as err:
        process.run([sys.executable, "-c", code])
    assert err.value.returncode == 3
    assert err.value.tail.splitlines() == [str(i) for i in range(60, 100)]  # only the last 40 lines
    assert "exit code 3" in str(err.value)


def test_failure_message_names_the_signal_and_the_first_error_line():
    code = "import os, sys; print(\"loading\"); print(\"GGML_ASSERT(x) failed\"); sys.stdout.flush(); os.abort()"
    with pytest.raises(ProcessError) as err:
        process.run([sys.executable, "-c", code])
    assert str(err.value).splitlines()[0].endswith("failed (signal SIGABRT): GGML_ASSERT(x) failed")


def test_timeout_stops_a_silent_child_and_its_children(tmp_path):
    marker = tmp_path / "grandchild-pid"
    code = (f"import subprocess,time; p = subprocess.Popen(['sleep','60']); "
            f"open({str(marker)!r},'w').write(str(p.pid)); time.sleep(60)")
    start = time.monotonic()
    with pytest.raises(StepTimeout, match="time limit"):
        process.run([sys.executable, "-c", code], timeout=2)
    assert time.monotonic() - start < 15
    assert not _running(int(marker.read_text()))


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has stopped
    except FileNotFoundError:
        return False


def test_environment_is_allow_listed(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    code = "import os; print(sorted(k for k in os.environ if 'SECRET' in k or 'TOKEN' in k))"
    assert process.run([sys.executable, "-c", code]).output.strip() == "[]"
    extra = process.run([sys.executable, "-c", "import os; print(os.environ['HF_TOKEN'])"],
                        extra_env={"HF_TOKEN": os.environ["HF_TOKEN"]})
    assert extra.output.strip() == "hf_secret_value"


def test_missing_program_is_a_clear_error():
    with pytest.raises(ProcessError, match="program not found"):
        process.run(["no-such-program-xyz"])


def test_timeout_also_ends_what_the_child_started_in_its_own_session(tmp_path):
    # the step starts the driver through process.run (a new session): the driver dies with the step
    marker = tmp_path / "grandchild-pid"
    code = ("import subprocess,sys,time; from llmperf_nb import process; "
            "p = subprocess.Popen(['sleep','60'], start_new_session=True, preexec_fn=process._die_with_parent_hook()); "
            f"open({str(marker)!r},'w').write(str(p.pid)); time.sleep(60)")
    with pytest.raises(StepTimeout):
        process.run([sys.executable, "-c", code], timeout=3, extra_env={"PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 5
    while _running(int(marker.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(int(marker.read_text()))


def test_own_tree_ends_orphans_on_the_way_out(tmp_path):
    # a child that double-forks and exits: its orphan is reparented to the subreaper and swept
    marker = tmp_path / "orphan-pid"
    code = ("import subprocess,sys\nfrom llmperf_nb import process\nwith process.own_tree():\n"
            f"    subprocess.run([sys.executable, '-c', \"import subprocess; p = subprocess.Popen(['sleep', '60'], "
            f"start_new_session=True); open({str(marker)!r}, 'w').write(str(p.pid))\"])\n")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30, check=True)
    assert not _running(int(marker.read_text()))


def test_own_tree_takes_sigint_even_if_started_ignoring_it_and_keeps_an_ignored_sighup():
    # a script's background job (`cmd &`, no job control) starts with SIGINT ignored; nohup ignores SIGHUP
    code = ("import os, signal, time\nfrom llmperf_nb import process\ntry:\n    with process.own_tree():\n"
            "        os.kill(os.getpid(), signal.SIGHUP); time.sleep(0.5); print('hangup ignored', flush=True)\n"
            "        os.kill(os.getpid(), signal.SIGINT); time.sleep(5); print('SIGINT ignored')\n"
            "except KeyboardInterrupt:\n    print('interrupted')\n")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30,
                          preexec_fn=_ignore_sigint_and_sighup, capture_output=True, text=True)
    assert done.stdout.splitlines() == ["hangup ignored", "interrupted"], done.stdout + done.stderr


def _ignore_sigint_and_sighup() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
