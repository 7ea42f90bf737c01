"""Per-process kernel cache folders (fastmlp/_cache_slot.py): processes running side by side
never share one; a later process takes a free (already filled) one; new ones are seeded."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX file locks")

REPORT = ("import os, sys, fastmlp; from fastmlp import _config; "
          "print(_config.CACHE_FOLDER, os.environ.get('FASTMLP_CACHE_DIR'), flush=True); "
          "sys.stdin.read()")


def _start(env):
    return subprocess.Popen([sys.executable, "-c", REPORT], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _report(proc):
    folder, env_dir = proc.stdout.readline().split()
    return Path(folder), env_dir


def test_side_by_side_processes_get_their_own_folders(tmp_path):
    base = dict(os.environ, FASTMLP_CACHE_DIR=str(tmp_path))
    base.pop("NUMBA_CACHE_DIR", None)
    shared = subprocess.run([sys.executable, "-c", REPORT], env=dict(base, FASTMLP_CACHE_SLOTS="0"),
                            input="", capture_output=True, text=True, check=True).stdout.split()[0]
    shared = Path(shared)
    assert shared.parent == tmp_path                        # no slot when switched off
    (shared / "kernels_x").mkdir(parents=True)
    (shared / "kernels_x" / "f.nbi").write_bytes(b"index")
    (shared / "kernels_x" / "f.nbi.tmp.1234").write_bytes(b"half-written")
    env = dict(base, FASTMLP_CACHE_SLOTS="1")
    first, second = _start(env), _start(env)
    try:
        (a, env_a), (b, env_b) = _report(first), _report(second)
    finally:
        for proc in (first, second):
            proc.communicate("")
    assert {a.parent.parent, b.parent.parent} == {tmp_path / "slots"}
    assert {a.parent.name, b.parent.name} == {"0", "1"} and a.name == b.name == shared.name
    assert env_a == env_b == str(tmp_path)                  # the environment is restored
    for folder in (a, b):                                    # seeded from the shared folder
        assert (folder / "kernels_x" / "f.nbi").read_bytes() == b"index"
        assert not (folder / "kernels_x" / "f.nbi.tmp.1234").exists()
    # both have exited: the next process takes slot 0 again, with what it holds
    (tmp_path / "slots" / "0" / shared.name / "kept.nbi").write_bytes(b"compiled")
    third = _start(env)
    try:
        c, _ = _report(third)
    finally:
        third.communicate("")
    assert c == tmp_path / "slots" / "0" / shared.name and (c / "kept.nbi").exists()
