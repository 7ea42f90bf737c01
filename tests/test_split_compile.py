"""A cold first fit compiles in two processes (kernels/split_compile.py): the model it
trains is the one a fit compiling alone trains, the helper's kernels are loaded from
the cache, a warm cache starts no helper, and a helper that fails only costs time."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

import fastmlp as fm
from fastmlp.kernels import c_entry, split_compile

FIT = r"""
import json, sys
import numpy as np
import fastmlp as fm
from fastmlp.kernels import loop, split_compile
if sys.argv[1] == "no-helper":
    def refuse(*args):
        raise AssertionError("a helper was started")
    split_compile.start_helper = refuse
elif sys.argv[1] == "broken-helper":
    sys.executable = "false"          # the helper's command fails at once
X = np.random.default_rng(0).standard_normal((120, 12)).astype(np.float32)
y = np.arange(120) % 4
m = fm.Sequential([fm.Dense(16), fm.BatchNorm(), fm.ReLU(), fm.Dense(4), fm.Softmax()], seed=3)
m.fit(X, y, epochs=2, batch_size=32, optimizer=fm.SGD(0.05, momentum=0.9), verbose=0,
      n_threads=2)
stats = loop.run_batches.stats
print(json.dumps({"weights": [w.tolist() for w in m.get_weights()],
                  "loop_loaded": sum(stats.cache_hits.values()),
                  "loop_compiled": sum(stats.cache_misses.values())}))
"""


def fit_in_fresh_process(mode, cache):
    env = dict(os.environ, FASTMLP_CACHE_DIR=str(cache), NUMBA_CACHE_DIR=str(cache),
               FASTMLP_SPLIT_COMPILE="1", FASTMLP_CACHE_SLOTS="0")
    out = subprocess.run([sys.executable, "-c", FIT, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fit_here():
    X = np.random.default_rng(0).standard_normal((120, 12)).astype(np.float32)
    y = np.arange(120) % 4
    m = fm.Sequential([fm.Dense(16), fm.BatchNorm(), fm.ReLU(), fm.Dense(4), fm.Softmax()],
                      seed=3)
    m.fit(X, y, epochs=2, batch_size=32, optimizer=fm.SGD(0.05, momentum=0.9), verbose=0,
          n_threads=2)
    return m.get_weights()


def assert_same_weights(run, expected):
    assert len(run["weights"]) == len(expected)
    for got, want in zip(run["weights"], expected):
        np.testing.assert_array_equal(np.asarray(got, dtype=want.dtype), want)


def test_a_cold_fit_with_a_helper_trains_the_same_model_and_loads_its_loop(tmp_path):
    if not split_compile.enabled():
        pytest.skip("the helper is off here (one usable CPU, or no abort() symbol)")
    expected = fit_here()
    cold = fit_in_fresh_process("helper", tmp_path)
    # run_batches came from the cache the helper filled, not from a compile here
    assert cold["loop_loaded"] == 1 and cold["loop_compiled"] == 0, cold
    assert_same_weights(cold, expected)
    assert list((tmp_path.glob(f"*/{split_compile.MARKER_FOLDER}/run_batches-*")))
    # the next process finds everything in the cache and starts no helper
    warm = fit_in_fresh_process("no-helper", tmp_path)
    assert warm["loop_loaded"] == 1 and warm["loop_compiled"] == 0, warm
    assert_same_weights(warm, expected)


def test_a_helper_that_fails_leaves_the_fit_to_compile_alone(tmp_path):
    if not split_compile.enabled():
        pytest.skip("the helper is off here (one usable CPU, or no abort() symbol)")
    run = fit_in_fresh_process("broken-helper", tmp_path)
    assert run["loop_compiled"] == 1, run
    assert_same_weights(run, fit_here())


def test_the_helper_stays_off_when_asked_or_without_a_cache(monkeypatch):
    monkeypatch.setenv("FASTMLP_SPLIT_COMPILE", "0")
    assert not split_compile.enabled()
    monkeypatch.setenv("FASTMLP_SPLIT_COMPILE", "1")
    monkeypatch.setattr(split_compile._config, "CACHE", False)
    assert not split_compile.enabled()
    monkeypatch.setattr(split_compile._config, "CACHE", True)
    on_here = split_compile.usable_cpus() >= 2 and split_compile.stand_in_address() is not None
    assert split_compile.enabled() == on_here     # the control: on where it can run
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert not split_compile.enabled()


@njit
def body(a, k):
    a[0] = k


def entry(args):
    return body(*c_entry.load_arguments(args))


def test_a_stand_in_lets_callers_compile_and_the_real_entry_replaces_it():
    name = "split_compile_test_entry"
    sample = (np.zeros(2), 0)
    arg_type = c_entry.canonical(types.Tuple([types.float64[::1], types.int64]))
    call = c_entry.caller(name, types.void)

    @njit
    def unlinked(a, k):
        call((a, k))

    with pytest.raises(TypingError, match=name):
        unlinked.compile((types.float64[::1], types.int64))
    # (Numba remembers a call's failed typing, hence a fresh intrinsic and kernel below)
    c_entry.stand_in(name, arg_type, split_compile.stand_in_address())
    call_stand_in = c_entry.caller(name, types.void)

    @njit
    def stand_in_caller(a, k):
        call_stand_in((a, k))

    stand_in_caller.compile((types.float64[::1], types.int64))   # compiles; never run
    # linking the real entry registers its address for code compiled from then on
    assert c_entry.link(name, entry, types.void, sample) == c_entry.symbol_of(name, arg_type)
    call_real = c_entry.caller(name, types.void)

    @njit
    def real_caller(a, k):
        call_real((a, k))

    a = np.zeros(2)
    real_caller(a, 7)
    assert a[0] == 7.0
