"""The thread team (fastmlp/_threads.run_team) and its barrier (kernels/sync.py)."""
import threading

import numpy as np
import pytest
from numba import njit

import fastmlp as fm
from fastmlp._threads import run_team
from fastmlp.kernels.sync import barrier, share


@njit(nogil=True)
def _rounds(team, slots, n_rounds, mismatches):
    """Each round every thread writes the round number into its slot, meets the others,
    and counts the slots that do not hold it yet (a missed barrier or a stale read)."""
    t, n = team[0], team[1]
    for r in range(1, n_rounds + 1):
        slots[t] = r
        barrier(team)
        for u in range(n):
            if slots[u] != r:
                mismatches[t] += 1
        barrier(team)   # nobody writes round r + 1 before all have read round r
    return mismatches[t]


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_barrier_makes_every_write_visible_to_every_thread(n_threads):
    slots, mismatches = np.zeros(n_threads, np.int64), np.zeros(n_threads, np.int64)
    run_team(_rounds, n_threads, slots, 2000, mismatches)
    assert np.all(slots == 2000)
    assert mismatches.sum() == 0


@njit(nogil=True)
def _shares(team, n, owner):
    lo, hi = share(n, team)
    for i in range(lo, hi):
        owner[i] += team[0] + 1
    return hi - lo


def test_shares_cover_every_item_once():
    owner = np.zeros(10, np.int64)
    run_team(_shares, 3, 10, owner)
    assert set(owner.tolist()) == {1, 2, 3} and np.all(np.diff(owner) >= 0)


@njit(nogil=True)
def _wait(team):
    barrier(team)
    return 1


@pytest.mark.parametrize("failing", [0, 1])
def test_a_thread_failing_before_the_kernel_does_not_hang_the_others(failing):
    def kernel(team):
        if team[0] == failing:
            raise RuntimeError(f"thread {failing} failed")
        return _wait(team)

    outcome = []

    def call():
        try:
            run_team(kernel, 2)
        except RuntimeError as e:
            outcome.append(str(e))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(20)
    assert not caller.is_alive(), "run_team hung: a thread is stuck at a barrier"
    assert outcome == [f"thread {failing} failed"]


def test_two_threads_train_the_same_weights_every_time():
    """Races between the threads (a read of rows another thread has not written yet)
    show up as run-to-run differences; BN, dropout, a residual block and tiled layers
    exercise every barrier."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 300)).astype(np.float32)
    y = rng.integers(0, 4, 96)

    def train():
        m = fm.Sequential([fm.Dense(64), fm.BatchNorm(), fm.ReLU(), fm.Dropout(0.2),
                           fm.Residual([fm.Dense(64), fm.ReLU()]), fm.Dense(256), fm.ReLU(),
                           fm.Dense(4), fm.Softmax()], seed=5)
        m.fit(X, y, epochs=3, batch_size=24, optimizer=fm.Adam(1e-2), verbose=0, n_threads=2)
        return m.get_weights(), m.bn_run.copy()

    first = train()
    for _ in range(3):
        again = train()
        assert all(np.array_equal(a, b) for a, b in zip(first[0], again[0]))
        assert np.array_equal(first[1], again[1])


def _fit_two_threads(queue):
    X = np.random.default_rng(0).standard_normal((64, 12)).astype(np.float32)
    m = fm.Sequential([fm.Dense(8), fm.ReLU(), fm.Dense(2), fm.Softmax()], seed=0)
    m.fit(X, (X[:, 0] > 0).astype(int), epochs=2, batch_size=16, verbose=0, n_threads=2)
    queue.put(float(np.abs(m.get_weights()[0]).sum()))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_can_train_on_two_threads():
    """The child of a fork has none of the parent's pool threads; a pool that still
    counted them would queue the child's team members forever."""
    import multiprocessing as mp
    queue = mp.Queue()
    _fit_two_threads(queue)            # the parent's pool now has threads
    expected = queue.get(timeout=10)
    child = mp.get_context("fork").Process(target=_fit_two_threads, args=(queue,))
    child.start()
    child.join(120)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung in its two-thread fit"
    assert queue.get(timeout=10) == expected
