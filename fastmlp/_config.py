"""Compilation flags shared by every kernel (the one place they are set).

`JIT` is passed to every ``numba.njit``; `ENTRY` to those called from Python.
Nothing is compiled with parallel=True: threads come from fastmlp/_threads.py.
fastmath is a *set* of LLVM flags that never includes ``nnan``/``ninf``: the
training loop must still see NaN and inf to stop a diverging run.

Environment variables read at import:
- ``FASTMLP_NO_CACHE=1`` disables Numba's on-disk cache (``cache=True`` otherwise).
  The cache lives where ``NUMBA_CACHE_DIR`` points, else in ``__pycache__``
  beside the package sources (or Numba's user-wide fallback when that is not
  writable). Delete that folder to clear it.
"""
import os

CACHE = os.environ.get("FASTMLP_NO_CACHE", "0") in ("", "0", "false", "False")

# reassoc/contract let LLVM vectorise reductions and fuse multiply-adds; arcp and
# nsz are harmless here. No nnan/ninf (divergence detection), no afn (float64
# gradient checks need accurate exp/log).
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# error_model="numpy": float division by zero gives inf/NaN (caught as divergence)
# instead of a Python ZeroDivisionError check per division, a branch that keeps LLVM
# from vectorising the loop (measured: a float32 Adam loop ran 7x faster in cache).
#
# Kernels are called from other kernels only, so they get no CPython or C-function
# wrapper: each wrapper is one more function for LLVM to compile and cache, and the
# first fit compiles about 45 kernels (measured: the cold first fit 24% faster).
# ENTRY is for the few functions Python calls (run_batches and friends). Kernels
# called once per batch, layer or chunk are also `late_call`ed (kernels/late_call.py):
# linked by pointer, not compiled again into each caller. An integer constant passed
# to a shared kernel is written np.int64(c): a bare literal makes Numba compile one
# more copy of the callee for that value (a Literal[int] signature).
JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH, error_model="numpy",
           no_cpython_wrapper=True, no_cfunc_wrapper=True)
ENTRY = dict(JIT, no_cpython_wrapper=False)
# For a dispatch function with a single caller (forward_chunk, update_block, ...): its
# code is typed as part of the caller's instead of compiled as a function of its own,
# which every caller up the chain would link and re-optimise (measured: the cold first
# fit 7% faster). Not for small helpers called from many places (each call site
# would type the body again: slower).
INLINED = dict(JIT, inline="always")

# BatchNorm defaults (Keras-style momentum for the running averages).
BN_EPS = 1e-5
BN_MOMENTUM = 0.9
