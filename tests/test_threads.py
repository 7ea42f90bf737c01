"""Threads come from Numba's parallel runtime (fastmlp/_threads.py, kernels/passes.py):
the passes are parallel=True kernels with prange loops, set_num_threads and
fit(n_threads=) set Numba's thread count for the call, fits from several Python threads
at once neither crash nor deadlock, and a thread count gives the same bits every run."""
import os
import re
import threading
from pathlib import Path

import numba
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _threads
from fastmlp.kernels import augment, optim, passes

PACKAGE = Path(fm.__file__).parent


def _data(n=96, d=300, k=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, k, n)


def _rich_model():
    """BN, dropout, a residual block, a K-split (300 -> 64 at 2 threads) and a
    column-split (256 wide) dense layer: every phase of every pass."""
    return fm.Sequential([fm.Dense(64), fm.BatchNorm(), fm.ReLU(), fm.Dropout(0.2),
                          fm.Residual([fm.Dense(64), fm.ReLU()]), fm.Dense(256), fm.ReLU(),
                          fm.Dense(4), fm.Softmax()], seed=5)


def _train(X, y, n_threads):
    m = _rich_model()
    m.fit(X, y, epochs=2, batch_size=24, optimizer=fm.Adam(1e-2), verbose=0,
          n_threads=n_threads)
    return m.get_weights() + [m.bn_run.copy()]


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_the_passes_are_numba_parallel_kernels():
    for f in (passes.gather_pass, passes.forward_pass, passes.loss_pass, passes.backward_pass,
              optim.update_blocks, augment.augment_batch):
        assert f.targetoptions.get("parallel"), f.py_func.__name__


def test_fit_sets_numba_thread_count_for_the_call_only():
    seen = []

    class Spy(fm.Callback):   # records numba.get_num_threads() in the middle of a fit
        def on_train_begin(self, model):
            seen.append(numba.get_num_threads())

        def on_epoch_end(self, model, epoch, logs):
            seen.append(numba.get_num_threads())

    before = numba.get_num_threads()
    X, y = _data(32, 6)
    m = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(4), fm.Softmax()], seed=0)
    m.fit(X, y, epochs=1, batch_size=8, verbose=0, n_threads=1, callbacks=[Spy()])
    assert seen == [1, 1]
    assert numba.get_num_threads() == before


def test_set_num_threads_checks_its_argument():
    with pytest.raises(ValueError, match="n_threads"):
        fm.set_num_threads(0)
    with pytest.raises(ValueError, match="n_threads"):
        fm.set_num_threads(numba.config.NUMBA_NUM_THREADS + 1)
    with pytest.raises(TypeError, match="n_threads"):
        fm.set_num_threads(1.5)
    with pytest.raises(TypeError, match="n_threads"):
        fm.set_num_threads(True)


def test_set_num_threads_is_the_default_of_later_calls(monkeypatch):
    monkeypatch.setattr(_threads, "_default_threads", None)
    fm.set_num_threads(1)
    with _threads.compute_threads() as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert fm.get_num_threads() == 1


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_thread_count_trains_the_same_weights_every_time(n_threads):
    """A race (a chunk reading rows another has not written yet) shows up as run-to-run
    differences."""
    X, y = _data()
    first = _train(X, y, n_threads)
    for _ in range(2):
        assert _same(first, _train(X, y, n_threads))


def test_two_fits_from_two_python_threads_at_once():
    """Neither crashes nor deadlocks, and each trains what it trains alone."""
    X, y = _data()
    alone = _train(X, y, 2)
    results, errors = [None, None], []

    def work(i):
        try:
            results[i] = _train(X, y, 2)
        except BaseException as e:   # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "two concurrent fits deadlocked"
    assert not errors, errors
    assert _same(results[0], alone) and _same(results[1], alone)


def test_only_numbas_public_api():
    """No underscore names of numba/llvmlite, no calling-convention internals, no ctypes
    callbacks, no Numba-internal symbols, no threads of our own in the kernels."""
    banned = [r"\bnumba(\.\w+)*\._(?!_)\w", r"\bllvmlite(\.\w+)*\._(?!_)\w",
              r"from numba[\w.]* import _", r"from llvmlite[\w.]* import _", r"call_conv",
              r"numba_xxgemm", r"CFUNCTYPE", r"sched_yield", r"atomic_rmw", r"ThreadPoolExecutor"]
    for path in PACKAGE.rglob("*.py"):
        if path.name in ("sweep.py", "bench.py"):   # process pools for sweeps, timing
            continue
        text = path.read_text()
        for pattern in banned:
            assert not re.search(pattern, text), f"{path.name}: {pattern}"


def test_the_chunks_fix_the_bits_whatever_runs_them(monkeypatch):
    """A default fit may run its calls on fewer threads than it has chunks (a busy host,
    _threads.ThreadChooser): the weights are those of the same chunks on all threads."""
    X, y = _data()
    on_two = _train(X, y, 2)

    monkeypatch.setattr(_threads, "_default_threads", 2)
    monkeypatch.setattr(_threads.ThreadChooser, "plan", lambda self, n: (1, max(1, n // 3)))
    m = _rich_model()
    m.fit(X, y, epochs=2, batch_size=24, optimizer=fm.Adam(1e-2), verbose=0)   # default
    assert _same(on_two, m.get_weights() + [m.bn_run.copy()])


def _measured(chooser, threads, per_step, n_steps):
    chooser.record(threads, per_step * n_steps, n_steps)


def _warmed_up(chooser, *counts):
    """The first call of each count: a warm-up that takes long and is not counted."""
    for threads in counts:
        chooser.record(threads, 0.336, 1)


def test_thread_chooser_measures_both_then_runs_the_faster():
    c = _threads.ThreadChooser(2)
    assert c.plan(10) == (2, 1)          # all threads: a warm-up update ...
    _warmed_up(c, 2)
    assert c.plan(10) == (2, 1)          # ... then one measured
    _measured(c, 2, 1e-3, 1)
    assert c.plan(10) == (1, 1)          # the same on a single thread
    _warmed_up(c, 1)
    assert c.plan(10) == (1, 1)
    _measured(c, 1, 3e-3, 1)
    assert c.plan(10) == (2, 10)         # then the faster, whole calls
    # busy host: all threads become slow; the average follows and one thread wins
    for _ in range(3):
        _measured(c, 2, 50e-3, 10)
    assert c.best() == 1 and c.plan(10) == (1, 10)


def _calls_before_a_try(chooser, per_step, n_steps):
    """One-thread calls of n_steps updates at per_step s each that the chooser runs
    before it tries two threads again (its next plan, asserted by the caller)."""
    calls = 0
    while chooser.plan(n_steps) == (1, n_steps):
        _measured(chooser, 1, per_step, n_steps)
        calls += 1
    return calls


def test_thread_chooser_tries_the_slower_choice_within_its_budget():
    c = _threads.ThreadChooser(2)
    _warmed_up(c, 2, 1)
    _measured(c, 2, 60e-3, 1)            # a busy host: 100x slower on two threads
    _measured(c, 1, 0.6e-3, 1)
    calls = _calls_before_a_try(c, 0.6e-3, 10)
    # one try of two threads costs 60 ms: it waits for 50 x that of one-thread calls
    assert c.plan(10) == (2, 1)
    assert abs(calls - _threads.ThreadChooser.PROBE_BUDGET * 60e-3 / 6e-3) <= 1   # rounding


def test_thread_chooser_tries_again_within_the_longest_gap():
    """A try measured very slow (a stall) delays the next one by at most MAX_PROBE_GAP_S."""
    c = _threads.ThreadChooser(2)
    _warmed_up(c, 2, 1)
    _measured(c, 2, 1.0, 1)
    _measured(c, 1, 1e-3, 1)
    calls = _calls_before_a_try(c, 1e-3, 100)
    assert c.plan(100) == (2, 1)
    assert abs(calls - _threads.ThreadChooser.MAX_PROBE_GAP_S / 0.1) <= 1   # rounding


def test_thread_chooser_reports_the_speed_of_the_choice_in_use():
    for c in (_threads.ThreadChooser(2), _threads.ThreadChooser(2, adaptive=False)):
        _warmed_up(c, 2)
        assert c.seconds_per_step() is None
        _measured(c, 2, 4e-3, 5)
        assert c.seconds_per_step() == pytest.approx(4e-3)
    c = _threads.ThreadChooser(2)
    _warmed_up(c, 2, 1)
    _measured(c, 2, 4e-3, 5)
    _measured(c, 1, 1e-3, 1)
    assert c.seconds_per_step() == pytest.approx(1e-3)


@pytest.mark.parametrize("n_threads, verbose", [(None, 0), (1, 1), (2, 0)])
def test_short_calls_are_merged_up_to_the_minimum_call_time(monkeypatch, n_threads, verbose):
    """A fit runs ~20 calls per epoch (the thread choice, the progress bar and Ctrl-C
    act between them), each lasting at least MIN_CALL_S: with a huge minimum, the
    calls after the first measured ones (a warm-up and a measured update per thread
    count, see ThreadChooser) double in length up to the rest of the epoch; with
    none, ~20 an epoch."""
    from fastmlp import training
    X, y = _data(n=480)
    sizes = []
    original = training.EpochRunner.run_steps

    def spy(self, order, first_step, k):
        out = original(self, order, first_step, k)
        sizes.append(out[1])
        return out

    monkeypatch.setattr(_threads, "_default_threads", 2)
    monkeypatch.setattr(training.EpochRunner, "run_steps", spy)
    for min_call_s, most_calls in ((1e3, 20), (0.0, None)):
        monkeypatch.setattr(training, "MIN_CALL_S", min_call_s)
        sizes.clear()
        _rich_model().fit(X, y, epochs=2, batch_size=4, verbose=verbose, n_threads=n_threads)
        assert sum(sizes) == 2 * 120
        if most_calls is None:   # steps_per_epoch // 20 a call, the thread tries aside
            assert max(sizes) == 6 and len(sizes) >= 40
        else:
            assert len(sizes) <= most_calls and max(sizes) >= 48


def test_calls_grow_while_the_count_in_use_stays_the_faster(monkeypatch):
    """EpochRunner.call_steps: one chunk, then twice as many updates each call up to
    MIN_CALL_S's worth; back to one chunk when the other count becomes the faster."""
    from types import SimpleNamespace
    from fastmlp import training
    monkeypatch.setattr(training, "MIN_CALL_S", 0.05)
    c = _threads.ThreadChooser(2)
    runner = SimpleNamespace(threads=c, chunk=5, merged_for=None, merge=1, steps_per_epoch=1000)

    def lengths(n):
        return [training.EpochRunner.call_steps(runner) for _ in range(n)]

    assert lengths(2) == [5, 5]                  # nothing measured yet
    _warmed_up(c, 2, 1)
    _measured(c, 2, 1e-4, 1)                     # 500 updates in 0.05 s
    _measured(c, 1, 1e-3, 1)
    assert lengths(9) == [5, 10, 20, 40, 80, 160, 320, 500, 500]
    for _ in range(3):
        _measured(c, 2, 5e-3, 10)                # two threads became slow
    assert c.best() == 1 and lengths(4) == [5, 10, 20, 40]


def test_thread_chooser_is_off_for_one_thread_and_explicit_counts():
    assert _threads.ThreadChooser(1).plan(7) == (1, 7)
    assert _threads.ThreadChooser(2, adaptive=False).plan(7) == (2, 7)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_fork_after_openmp_threads_gets_a_clear_error():
    """GNU OpenMP is not fork-safe: Numba terminates a forked child at its first parallel
    loop. fastmlp says what to do instead, and the child lives on."""
    X, y = _data(32, 6, 2)
    m = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(2), fm.Softmax()], seed=0)
    m.fit(X, y, epochs=1, batch_size=8, verbose=0, n_threads=2)
    if _threads.threading_layer() != "omp":
        assert not _threads._forked_from_openmp
        return   # TBB and workqueue run in a forked child
    pid = os.fork()
    if pid == 0:   # the child: exit code 0 only for the clear error
        code = 3
        try:
            m.fit(X, y, epochs=1, batch_size=8, verbose=0, n_threads=2)
            code = 1
        except RuntimeError as e:
            code = 0 if "spawn" in str(e) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
