"""Threads: Numba's parallel loops do the work, BLAS runs single-threaded inside them.

Every pass of a step is a `prange` loop over row chunks (kernels/passes.py); Numba's
threading layer runs it on `n_threads` threads (``numba.set_num_threads``, set for
the calling Python thread only, for the length of one computation). Each chunk calls
BLAS (SciPy's OpenBLAS) on its own rows, so BLAS is limited to 1 thread while
fastmlp computes: two spinning pools alternating ran 5-30x slower (measured).

Threading layer: Numba's default choice (TBB when a compatible one is installed,
else OpenMP, else its own workqueue). OpenMP and TBB accept parallel loops started
from several Python threads at once; the workqueue layer does not, so while it is
the layer, computations from different Python threads take turns (a lock).
"""
import contextlib
import numbers
import threading

import numba

_default_threads = None
_controller = None
_workqueue_lock = threading.RLock()


def _checked(n):
    """n as int; ValueError unless 1 <= n <= NUMBA_NUM_THREADS (the cores, unless that
    environment variable says otherwise: Numba's own ceiling)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n_threads must be an integer, got {n!r}")
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], got {n}")
    return n


def set_num_threads(n):
    """Use n of Numba's threads in fastmlp computations (fits, evaluation, prediction)
    by default; fit(n_threads=) and friends override it per call."""
    global _default_threads
    _default_threads = _checked(n)


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
    n = get_num_threads() if n_threads is None else _checked(n_threads)
    layer = threading_layer()
    lock = _workqueue_lock if layer in (None, "workqueue") else contextlib.nullcontext()
    with lock, _blas_controller().limit(limits=1, user_api="blas"):
        previous = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield n
        finally:
            numba.set_num_threads(previous)
