"""fastmlp/_worker.py: the thread budget of runs made in Dask worker tasks, with a stand-in
for distributed's get_worker (the real cluster is in test_dask.py)."""
import sys
import threading
import time
import types

import numba
import pytest

from fastmlp._worker import thread_budget, worker_threads


def _fake_distributed(nthreads):
    """A module with distributed's get_worker: a worker of nthreads in threads marked as
    tasks, ValueError elsewhere (as distributed does outside a task)."""
    tasks = threading.local()

    def get_worker():
        if not getattr(tasks, "inside", False):
            raise ValueError("No worker found")
        return types.SimpleNamespace(state=types.SimpleNamespace(nthreads=nthreads))
    return types.SimpleNamespace(get_worker=get_worker), tasks


def test_outside_a_worker_nothing_changes(monkeypatch):
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    assert worker_threads() is None
    for n in (None, 1, 3):
        with thread_budget(n) as got:
            assert got == n
    fake, _ = _fake_distributed(2)
    monkeypatch.setitem(sys.modules, "distributed", fake)
    with thread_budget(5) as got:            # distributed loaded, but not in a task
        assert got == 5


def test_in_a_task_runs_get_the_worker_threads_and_take_turns(monkeypatch):
    fake, tasks = _fake_distributed(2)
    monkeypatch.setitem(sys.modules, "distributed", fake)
    limit = min(2, numba.config.NUMBA_NUM_THREADS)
    events = []

    def task(name, n_threads, hold):
        tasks.inside = True
        with thread_budget(n_threads) as got:
            events.append((name, "start", got))
            time.sleep(hold)
            events.append((name, "end", got))

    first = threading.Thread(target=task, args=("a", None, 0.3))
    second = threading.Thread(target=task, args=("b", 8, 0.0))
    first.start()
    time.sleep(0.1)                          # "a" holds the worker's turn
    second.start()
    first.join()
    second.join()
    assert events == [("a", "start", limit), ("a", "end", limit),
                      ("b", "start", limit), ("b", "end", limit)]
    assert worker_threads() is None          # this thread is no task


def test_a_single_thread_worker_runs_one_thread():
    fake, tasks = _fake_distributed(1)
    saved = sys.modules.get("distributed")
    sys.modules["distributed"] = fake
    try:
        tasks.inside = True
        with thread_budget(None) as got, thread_budget(4) as nested:
            assert got == nested == 1
    finally:
        tasks.inside = False
        if saved is None:
            del sys.modules["distributed"]
        else:
            sys.modules["distributed"] = saved
    with pytest.raises(ValueError):
        fake.get_worker()
