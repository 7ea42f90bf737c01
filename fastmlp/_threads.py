"""Threads: Numba's parallel loops do the work, BLAS runs single-threaded inside them.

Every pass of a step is a `prange` loop over row chunks (kernels/passes.py); Numba's
threading layer runs it on `n_threads` threads (``numba.set_num_threads``, set for
the calling Python thread only, for the length of one computation). Each chunk calls
BLAS (SciPy's OpenBLAS) on its own rows, so BLAS is limited to 1 thread while
fastmlp computes: two spinning pools alternating ran 5-30x slower (measured).

Threading layer: Numba's default choice (TBB when a compatible one is installed,
else OpenMP, else its own workqueue). OpenMP and TBB accept parallel loops started
from several Python threads at once; the workqueue layer does not, so while it is
the layer, computations from different Python threads take turns (a lock). GNU
OpenMP is not fork-safe: in a process forked after the parent ran its threads,
compute_threads raises a RuntimeError that says so (Numba would terminate it).
"""
import contextlib
import numbers
import os
import threading

import numba

_default_threads = None
_controller = None
_workqueue_lock = threading.RLock()
_forked_from_openmp = False   # this process is a fork of one that ran OpenMP threads


def _after_fork_in_child():
    """GNU OpenMP cannot run in the child of a fork once the parent ran its threads
    (Numba terminates the child at its first parallel loop): remember it, so that
    compute_threads can say so instead."""
    global _forked_from_openmp
    _forked_from_openmp = _forked_from_openmp or threading_layer() == "omp"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def check_thread_count(n):
    """n as int; ValueError unless 1 <= n <= NUMBA_NUM_THREADS (the cores, unless that
    environment variable says otherwise: Numba's own ceiling)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n_threads must be an integer, got {n!r}")
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], got {n}")
    return n


def set_num_threads(n):
    """Split fastmlp computations (fits, evaluation, prediction) into n row chunks, run on
    up to n of Numba's threads, by default; fit(n_threads=) and friends override it per
    call. A fit left at the default runs each call on n threads or on 1, whichever is
    faster at the time (ThreadChooser), with the same results."""
    global _default_threads
    _default_threads = check_thread_count(n)


def get_num_threads():
    """Threads fastmlp uses by default (all of Numba's unless set_num_threads was called)."""
    return _default_threads or numba.config.NUMBA_NUM_THREADS


def _blas_controller():
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the kernels call; load it first)
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


def threading_layer():
    """The threading layer Numba has loaded ("omp", "tbb", "workqueue"), or None before
    the first parallel loop ran."""
    try:
        return numba.threading_layer()
    except ValueError:
        return None


@contextlib.contextmanager
def compute_threads(n_threads=None):
    """Context for one computation: BLAS at 1 thread, Numba's parallel loops on
    n_threads threads (default get_num_threads()); yields that count, the number of
    row chunks a step is split into. Serialised across Python threads unless the
    threading layer accepts concurrent launches."""
    n = get_num_threads() if n_threads is None else check_thread_count(n_threads)
    if _forked_from_openmp:
        raise RuntimeError(
            "fastmlp cannot compute in a process forked from one that already ran Numba's "
            "OpenMP threads (GNU OpenMP is not fork-safe: the child would be terminated). "
            "Start worker processes with multiprocessing's 'spawn' or 'forkserver' start "
            "method (fastmlp.sweep does), or fork before the first fit.")
    layer = threading_layer()
    lock = _workqueue_lock if layer in (None, "workqueue") else contextlib.nullcontext()
    with lock, _blas_controller().limit(limits=1, user_api="blas"):
        previous = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(previous)


class ThreadChooser:
    """How many of Numba's threads run each compiled call of a fit whose thread count is
    the default: all of them, or one when one is faster (a busy host).

    A fit's arithmetic depends only on its number of row chunks (fixed for the fit:
    the thread count it was given), never on how many threads run them: with fewer
    threads than chunks, a thread runs several chunks one after the other, with the
    same bits. So the count can follow the host's load. On a quiet host all threads
    win. With another job on a core, the thread that shares it waits a time slice to
    be woken, and every parallel loop waits for it: measured on 2 cores with one
    busy, a W2 update took 60 ms on 2 threads against 0.6 ms on 1 with the spinning
    thread team fastmlp had before, and anywhere from 0.33 to 50 ms on 2 threads on
    OpenMP, from one call to the next.

    Seconds per update of each choice are measured (an average of the last calls):
    updates on all threads, then on a single thread, then calls on the faster. The
    first call of each choice is a warm-up and is not counted: it pays what happens
    once (loading the compiled kernels, starting threads; measured: the first W2
    update of a fresh process took 336 ms on 2 threads against 0.6 ms per update
    after, and that figure kept the fit on 1 thread). The slower choice is tried
    again for one update once the calls since the last try have taken PROBE_BUDGET
    times what that update cost, and at least every MAX_PROBE_GAP_S seconds, so tries
    cost at most about 1 / PROBE_BUDGET of the time (and a change of load is noticed
    later when it does).
    """

    PROBE_BUDGET = 50
    MAX_PROBE_GAP_S = 5.0

    def __init__(self, n_threads, adaptive=True):
        self.n_threads = n_threads
        self.adaptive = adaptive and n_threads > 1
        self.per_step = {}        # threads -> seconds per update
        self.warmed_up = set()    # thread counts whose first call ran (not counted)
        self.since_probe = 0.0    # seconds of calls since the slower choice was last tried

    def best(self):
        """The thread count with the lowest measured seconds per update."""
        return min(self.per_step, key=self.per_step.get)

    def plan(self, n_steps):
        """(threads, updates) for the next call of at most n_steps updates."""
        if not self.adaptive:
            return self.n_threads, n_steps
        for candidate in (self.n_threads, 1):
            if candidate not in self.per_step:
                return candidate, 1
        other = 1 if self.best() == self.n_threads else self.n_threads
        if self.since_probe >= min(self.PROBE_BUDGET * self.per_step[other],
                                   self.MAX_PROBE_GAP_S):
            return other, 1
        return self.best(), n_steps

    def record(self, threads, seconds, n_steps):
        """A call of n_steps updates on `threads` threads took `seconds` (kept also
        when the count is fixed: seconds_per_step sizes the calls); the first call
        of each count is a warm-up, not counted."""
        if n_steps <= 0:
            return
        if threads not in self.warmed_up:
            self.warmed_up.add(threads)
            return
        tried_slower = bool(self.per_step) and threads != self.best()
        t = seconds / n_steps
        old = self.per_step.get(threads)
        self.per_step[threads] = t if old is None else 0.5 * (old + t)
        self.since_probe = 0.0 if tried_slower else self.since_probe + seconds

    def seconds_per_step(self):
        """Measured seconds per update of the choice that calls run on (None before
        the first call)."""
        return self.per_step[self.best()] if self.per_step else None
