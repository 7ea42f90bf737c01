"""One thread pool at a time: Numba's threads do the work, BLAS runs single-threaded.

Each training step splits the batch rows into one chunk per Numba thread; every
chunk calls BLAS (SciPy's OpenBLAS, through np.dot inside njit) on its own rows.
BLAS is limited to 1 thread while fastmlp computes, so its pool never spins
against Numba's (measured: alternating both pools ran 5-30x slower).
"""
import contextlib

import numba

_default_threads = None
_controller = None


def _checked(n):
    """n as int; ValueError unless 1 <= n <= the threads Numba started with."""
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be in [1, {numba.config.NUMBA_NUM_THREADS}], got {n}")
    return n


def set_num_threads(n):
    """Use n threads (Numba and, through the row chunks, BLAS) in fastmlp computations."""
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
    """Context: Numba uses n_threads (default get_num_threads()), BLAS 1 thread. Yields n."""
    n = get_num_threads() if n_threads is None else _checked(n_threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _blas_controller().limit(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(previous)
