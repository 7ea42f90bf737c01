"""The thread budget of fastmlp runs made as tasks of a Dask worker.

A Dask worker started with ``nthreads`` threads (``threads_per_worker``) runs up to that
many tasks at once. fastmlp's default thread count is every core of the machine
(`fastmlp.get_num_threads`), which inside a worker would put ``cores`` Numba threads
behind each task. So a run made in a worker task (a `fastmlp.sweep` run, an estimator's
fit or predict from `fastmlp.sklearn`) uses at most the worker's ``nthreads`` threads,
and the fastmlp runs of one worker take turns: the worker never runs more threads than
it was given, and each run gets all of them (one run per worker at a time, many runs
per cluster).

Outside a Dask worker nothing changes. `distributed` is never imported here: a process
that has not imported it is not a Dask worker.
"""
import contextlib
import sys
import threading

# fastmlp runs of one worker process take turns (re-entrant: a sweep's function may fit
# an estimator, which asks again from the same thread)
_turns = threading.RLock()


def worker_threads():
    """nthreads of the Dask worker running the calling task, or None outside a task."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:
        return None
    return int(worker.state.nthreads)


@contextlib.contextmanager
def thread_budget(n_threads=None):
    """Context for one fastmlp run; yields the thread count to run it with.

    Outside a Dask worker: n_threads as given (None: fastmlp's default). In a worker
    task: n_threads capped at the worker's nthreads (None: the worker's nthreads), and
    at Numba's ceiling; while the context is open, other fastmlp runs of that worker
    wait (when the worker has more than one thread), so the worker's threads are
    never exceeded.
    """
    budget = worker_threads()
    if budget is None:
        yield n_threads
        return
    import numba
    limit = max(1, min(budget, numba.config.NUMBA_NUM_THREADS))
    n = limit if n_threads is None else max(1, min(int(n_threads), limit))
    with (_turns if budget > 1 else contextlib.nullcontext()):
        yield n
