"""kernels/late_call.py: a kernel calling another through a pointer filled on first use.

The kernels live in a module written to a temporary folder (Numba caches only functions
defined in files), and each check runs in fresh processes: the case that matters is a
caller loaded from the on-disk cache, whose slot the callback must fill before the
callee has been compiled or loaded in that process.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

KERNELS = '''
import numpy as np
from numba import njit
from fastmlp.kernels.late_call import late_call


@njit(cache=True, nogil=True, no_cpython_wrapper=True)
def weighted_sum(x, w):
    """sum_i w * x[i]; raises on a negative weight."""
    if w < 0:
        raise ValueError("negative weight")
    total = 0.0
    for i in range(x.shape[0]):
        total += w * x[i]
    return total


weighted_sum_late = late_call(weighted_sum)


@njit(cache=True, nogil=True)
def caller(x, w, reps):
    """reps late calls; returns their results summed."""
    out = 0.0
    for _ in range(reps):
        out += weighted_sum_late(x, w)
    return out
'''

RUN = '''
import json, sys, threading
import numpy as np
sys.path.insert(0, sys.argv[1])
import kernels

x32 = np.arange(5, dtype=np.float32)
x64 = np.linspace(0.0, 1.0, 7)
results = {"f32": kernels.caller(x32, 2.0, 3), "f64": kernels.caller(x64, 0.5, 2)}
try:
    kernels.caller(x64, -1.0, 1)
    results["error"] = None
except ValueError as e:
    results["error"] = str(e)
# two threads race for a slot the first call of the process fills (a third dtype)
x16 = np.arange(4, dtype=np.int64)
threaded = [None, None]
def work(i):
    threaded[i] = kernels.caller(x16, 1.5, 10)
threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results["threaded"] = threaded
results["caller_cache_hits"] = sum(kernels.caller.stats.cache_hits.values())
# the callee's error message is a constant of its code: in the caller's only if linked
results["caller_ir_has_callee"] = any(
    "negative weight" in ir for ir in kernels.caller.inspect_llvm().values())
print(json.dumps(results))
'''


def run_fresh(folder, cache):
    out = subprocess.run([sys.executable, "-c", RUN, str(folder)], check=True,
                         capture_output=True, text=True,
                         env=dict(os.environ, NUMBA_CACHE_DIR=str(cache)))
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("late_call")
    (folder / "kernels.py").write_text(textwrap.dedent(KERNELS))
    cache = folder / "cache"
    return run_fresh(folder, cache), run_fresh(folder, cache)


def test_results_match_plain_python(two_runs):
    for run in two_runs:
        assert run["f32"] == pytest.approx(3 * 2.0 * sum(range(5)))
        assert run["f64"] == pytest.approx(2 * 0.5 * sum(i / 6 for i in range(7)))
        assert run["threaded"] == [pytest.approx(10 * 1.5 * 6)] * 2


def test_second_process_loads_the_caller_from_the_cache(two_runs):
    first, second = two_runs
    assert first["caller_cache_hits"] == 0
    assert second["caller_cache_hits"] >= 3   # f32, f64 and int64 signatures


def test_callee_exception_reaches_python(two_runs):
    assert [run["error"] for run in two_runs] == ["negative weight"] * 2


def test_caller_holds_no_copy_of_the_callee(two_runs):
    """The point of a late call: the callee's code is not linked into the caller."""
    assert not two_runs[0]["caller_ir_has_callee"]
