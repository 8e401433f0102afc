"""scripts/xfer.sh: a real tar, split into three parts, received out of order, joined and extracted.

The "GPU machine" is a second folder here: XFER_DIR points receive at a copy of the packed folder
(what a device call's carry puts in the repository), XFER_RECV_DIR stands for /tmp/xfer."""

import os
import re
import shutil
import subprocess

import pytest

from .conftest import ROOT

XFER = ROOT / "scripts" / "xfer.sh"
PART = 100_000


def xfer(*args, cwd, env, check=True):
    out = subprocess.run(["bash", str(XFER), *map(str, args)], cwd=cwd, env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"xfer.sh {' '.join(map(str, args))} failed ({out.returncode}): {out.stderr}")
    return out


@pytest.fixture
def here(tmp_path):
    """A folder with files worth 2.5 parts, and the environment of both sides."""
    src = tmp_path / "here"
    (src / "wheels" / "sub").mkdir(parents=True)
    (src / "wheels" / "a.whl").write_bytes(os.urandom(140_000))
    (src / "wheels" / "sub" / "b.whl").write_bytes(os.urandom(100_000))
    (src / "notes.txt").write_text("hello\n")
    env = {"XFER_DIR": str(src / ".xfer"), "XFER_RECV_DIR": str(tmp_path / "recv"), "XFER_PART_BYTES": str(PART)}
    return src, env


def packed_parts(src):
    return sorted(p.name for p in (src / ".xfer" / "w").iterdir() if p.is_dir())


def test_pack_splits_into_parts_each_carrying_its_sums(here):
    src, env = here
    xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    d = src / ".xfer" / "w"
    assert packed_parts(src) == ["00", "01", "02"]
    sizes = [(d / k / f"part-{k}").stat().st_size for k in ("00", "01", "02")]
    assert sizes[:2] == [PART, PART] and 0 < sizes[2] <= PART
    assert (d / "MANIFEST").read_text() == "wheels\nnotes.txt\n"
    sums = (d / "SHA256SUMS").read_text()
    assert re.search(r"^[0-9a-f]{64}  w\.tar$", sums, re.M)
    assert len(re.findall(r"^[0-9a-f]{64}  part-0[012]$", sums, re.M)) == 3
    for k in ("00", "01", "02"):  # one carry path a call: the chunk and the sums travel together
        assert (d / k / "SHA256SUMS").read_text() == sums and (d / k / "MANIFEST").exists()


def test_repack_with_unchanged_inputs_does_nothing(here):
    src, env = here
    xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    part = src / ".xfer" / "w" / "01" / "part-01"
    before = part.stat().st_mtime_ns
    out = xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    assert "w: unchanged" in out.stderr and part.stat().st_mtime_ns == before
    (src / "notes.txt").write_text("changed, longer\n")
    out = xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    assert "w: unchanged" not in out.stderr and packed_parts(src) == ["00", "01", "02"]


def test_plan_names_one_carry_path_and_command_per_part(here):
    src, env = here
    xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    calls = [line for line in xfer("plan", "w", cwd=src, env=env).stdout.splitlines() if line.startswith("call")]
    assert calls == [f'call {i + 1}/3: carry [".xfer/w/0{i}"]  command: scripts/xfer.sh receive w 0{i}'
                     for i in range(3)]


def test_plan_warns_when_a_part_no_longer_fits_a_call_beside_the_tracked_files(here):
    src, env = here
    xfer("pack", "w", "wheels", cwd=src, env=env)
    assert "WARNING" not in xfer("plan", "w", cwd=src, env=env).stdout  # 100 kB parts, 64 MiB a call
    tight = xfer("plan", "w", cwd=src, env={**env, "XFER_CALL_BYTES": str(PART)}).stdout  # the repo's files too
    assert "exceed the 100000 a call carries: pack again with a smaller XFER_PART_BYTES" in tight, tight


def test_receive_out_of_order_resumable_then_unpack(here, tmp_path):
    src, env = here
    xfer("pack", "w", "wheels", "notes.txt", cwd=src, env=env)
    there = tmp_path / "there"  # the GPU machine's copy of the repo: one part carried a call
    env_there = {**env, "XFER_DIR": str(there / ".xfer")}

    def carry(k):
        shutil.rmtree(there, ignore_errors=True)
        shutil.copytree(src / ".xfer" / "w" / k, there / ".xfer" / "w" / k)

    out = xfer("unpack", "w", tmp_path / "dest", cwd=there.parent, env=env_there, check=False)
    assert out.returncode == 1 and "nothing received" in out.stderr
    carry("02")
    out = xfer("receive", "w", "02", cwd=tmp_path, env=env_there)
    assert "1 of 3 parts received; missing: 00 01" in out.stdout
    out = xfer("unpack", "w", tmp_path / "dest", cwd=tmp_path, env=env_there, check=False)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()  # one line, naming the missing parts
    assert "missing parts 00 01" in line
    # a part already received is skipped, even when the call did not carry it again
    shutil.rmtree(there)
    out = xfer("receive", "w", "02", cwd=tmp_path, env=env_there)
    assert "already received" in out.stderr
    for k in ("00", "01"):
        carry(k)
        out = xfer("receive", "w", k, cwd=tmp_path, env=env_there)
    assert "all 3 parts received" in out.stdout
    xfer("unpack", "w", tmp_path / "dest", cwd=tmp_path, env=env_there)
    for rel in ("wheels/a.whl", "wheels/sub/b.whl", "notes.txt"):
        assert (tmp_path / "dest" / rel).read_bytes() == (src / rel).read_bytes()


def test_a_corrupt_part_is_refused_and_not_kept(here, tmp_path):
    src, env = here
    xfer("pack", "w", "wheels", cwd=src, env=env)
    there = tmp_path / "there"
    shutil.copytree(src / ".xfer" / "w" / "01", there / ".xfer" / "w" / "01")
    part = there / ".xfer" / "w" / "01" / "part-01"
    data = bytearray(part.read_bytes())
    data[10] ^= 0xFF
    part.write_bytes(bytes(data))
    out = xfer("receive", "w", "01", cwd=tmp_path, env={**env, "XFER_DIR": str(there / ".xfer")}, check=False)
    assert out.returncode == 1 and "sha256 mismatch" in out.stderr
    assert not (tmp_path / "recv" / "w" / "part-01").exists()


def test_a_part_not_carried_says_what_to_carry(here, tmp_path):
    src, env = here
    xfer("pack", "w", "wheels", cwd=src, env=env)
    out = xfer("receive", "w", "00", cwd=tmp_path, env={**env, "XFER_DIR": str(tmp_path / "none")}, check=False)
    assert out.returncode == 1 and "carry .xfer/w/00" in out.stderr


def test_xfer_folder_is_git_ignored():
    out = subprocess.run(["git", "check-ignore", "-q", ".xfer/x/00/part-00"], cwd=ROOT)
    assert out.returncode == 0
