"""One thread pool at a time: fastmlp's team of threads does the work, BLAS runs
single-threaded inside it.

`run_team` calls a compiled kernel on n threads at once, each with its index
(kernels/sync.py); every step splits the batch rows into one chunk per thread,
and every chunk calls BLAS (SciPy's OpenBLAS) on its own rows. BLAS is limited to
1 thread while fastmlp computes, so its pool never spins against the team
(measured: alternating two spinning pools ran 5-30x slower), and Numba's own
thread pool is never started.
"""
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

_default_threads = None
_controller = None


def _checked(n):
    """n as int; ValueError unless 1 <= n <= NUMBA_NUM_THREADS (the cores, unless that
    environment variable says otherwise: the ceiling users already know from Numba)."""
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], got {n}")
    return n


def set_num_threads(n):
    """Use a team of n threads (each running BLAS single-threaded on its own rows) in
    fastmlp computations."""
    global _default_threads
    _default_threads = _checked(n)


def get_num_threads():
    """Threads fastmlp uses by default (all cores unless set_num_threads was called)."""
    return _default_threads or numba.config.NUMBA_NUM_THREADS


def _blas_controller():
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS Numba calls; load it first)
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def compute_threads(n_threads=None):
    """Context: BLAS runs 1 thread; yields n_threads (default get_num_threads()), the
    team size for run_team."""
    n = get_num_threads() if n_threads is None else _checked(n_threads)
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield n


_helpers = None
_helpers_lock = threading.Lock()


def _forget_pool_in_child():
    """After fork, the parent's pool threads do not exist in the child: start afresh."""
    global _helpers, _helpers_lock
    _helpers, _helpers_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _helper_pool():
    """Threads for team members 1.. (created on demand, reused; idle ones sleep). Sized
    so that a few teams running at once from different Python threads never queue a
    member behind another team's (a queued member would leave its team waiting)."""
    global _helpers
    with _helpers_lock:
        if _helpers is None:
            _helpers = ThreadPoolExecutor(max_workers=4 * numba.config.NUMBA_NUM_THREADS + 4,
                                          thread_name_prefix="fastmlp")
        return _helpers


def run_team(kernel, n_threads, *args):
    """kernel(team, *args) on n_threads threads at once, team = (thread index, n_threads,
    sync); returns thread 0's result. Thread 0 is the caller's; the kernel must release
    the GIL (nogil) and every thread must reach the same barriers."""
    sync = np.zeros(3, np.int64)   # barrier count, generation, abort (kernels/sync.py)
    if n_threads == 1:
        return kernel((0, 1, sync), *args)

    def member(t):
        try:
            return kernel((t, n_threads, sync), *args)
        except BaseException:
            # e.g. Ctrl-C before this thread entered the kernel: release the others'
            # barriers so that they finish instead of waiting for it forever
            sync[2] = 1
            raise

    pool = _helper_pool()
    members = [pool.submit(member, t) for t in range(1, n_threads)]
    try:
        return member(0)
    finally:
        for m in members:
            m.result()
