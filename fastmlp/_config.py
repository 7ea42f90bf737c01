"""Compilation flags shared by every kernel (the one place they are set), and where
compiled kernels are cached.

`kernel(**JIT)` replaces ``numba.njit`` for every function in fastmlp/kernels;
`ENTRY` is for the few functions called from Python, `PARALLEL` for the passes that
run Numba's parallel loops (``prange``): threads come from Numba's threading layer.
fastmath is a *set* of LLVM flags that never includes ``nnan``/``ninf``: the
training loop must still see NaN and inf to stop a diverging run.

Environment variables read at import:
- ``FASTMLP_NO_CACHE=1`` disables the on-disk cache of compiled kernels.
- ``FASTMLP_CACHE_DIR``: the folder that holds the cache (else ``NUMBA_CACHE_DIR``,
  else ``$XDG_CACHE_HOME/fastmlp``, by default ``~/.cache/fastmlp``). Inside it each
  build of the kernels has a folder of its own, named by fastmlp's version, a hash
  of the kernel sources and of this file, Numba's version and the GEMM choice
  (`cache_folder`): kernels compiled from other sources are never loaded. Numba
  alone checks only the file that defines a function, so a kernel that had compiled
  in a callee from another file stayed stale after that file changed. Delete the
  folder to clear the cache (``python -m fastmlp cache --clear``).
- ``FASTMLP_GEMM=blas`` makes every GEMM call BLAS (no register tiles; see
  kernels/tile_gemm.py).
- ``FASTMLP_SPLIT_COMPILE=0``: a cold first fit compiles everything itself, without
  the helper process that compiles part of it meanwhile (kernels/split_compile.py).
"""
import hashlib
import os
from pathlib import Path

import numba

CACHE = os.environ.get("FASTMLP_NO_CACHE", "0") in ("", "0", "false", "False")

# "auto": register tiles where the host has AVX2 and FMA and the shape favours them;
# "blas": BLAS for every product (kernels/tile_gemm.py reads it)
GEMM_MODE = "blas" if os.environ.get("FASTMLP_GEMM", "auto").lower() == "blas" else "auto"

# reassoc/contract let LLVM vectorise reductions and fuse multiply-adds; arcp and
# nsz are harmless here. No nnan/ninf (divergence detection), no afn (float64
# gradient checks need accurate exp/log).
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# error_model="numpy": float division by zero gives inf/NaN (caught as divergence)
# instead of a Python ZeroDivisionError check per division, a branch that keeps LLVM
# from vectorising the loop (measured: a float32 Adam loop ran 7x faster in cache).
#
# Kernels called from other kernels only get no CPython or C-function wrapper: each
# wrapper is one more function for LLVM to compile and cache. ENTRY is for the few
# functions Python calls (run_batches and friends). An integer constant passed to a
# shared kernel is written np.int64(c): a bare literal makes Numba compile one more
# copy of the callee for that value (a Literal[int] signature).
JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH, error_model="numpy",
           no_cpython_wrapper=True, no_cfunc_wrapper=True)
ENTRY = dict(JIT, no_cpython_wrapper=False)
# The passes with prange loops (kernels/passes.py, optim.update_blocks, ...): Numba
# runs each prange loop on its thread pool (numba.set_num_threads sets how many).
PARALLEL = dict(JIT, parallel=True)
# For a dispatch function with a single caller (forward_chunk, update_block, ...): its
# code is typed as part of the caller's instead of compiled as a function of its own
# (measured: the cold first fit 7% faster). Not for small helpers called from many
# places (each call site would type the body again: slower).
INLINED = dict(JIT, inline="always")

# The GEMM's C entry points (kernels/tile_gemm.link_gemm): numba.cfunc options.
C_FUNCTION = dict(cache=CACHE, fastmath=FASTMATH, error_model="numpy")

# BatchNorm defaults (Keras-style momentum for the running averages).
BN_EPS = 1e-5
BN_MOMENTUM = 0.9

PACKAGE = Path(__file__).resolve().parent


def sources_hash():
    """sha256 (hex, 16 digits) of every kernel source and of this file: what compiled
    code depends on inside fastmlp."""
    h = hashlib.sha256()
    for path in sorted((PACKAGE / "kernels").glob("*.py")) + [PACKAGE / "_config.py"]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_root():
    """The folder that holds fastmlp's kernel caches (see the module docstring)."""
    base = os.environ.get("FASTMLP_CACHE_DIR") or os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "fastmlp")
    return Path(base)


def cache_folder():
    """This build's cache folder: cache_root() / <version>-<sources hash>-numba<ver>-<gemm>."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ours = version("fastmlp")
    except PackageNotFoundError:
        ours = "src"
    return cache_root() / f"fastmlp-{ours}-{sources_hash()}-numba{numba.__version__}-{GEMM_MODE}"


CACHE_FOLDER = str(cache_folder())


def _in_cache_folder(decorator):
    """decorator(fn), with Numba's cache folder set to CACHE_FOLDER while it runs: Numba
    picks a function's cache folder from ``numba.config.CACHE_DIR`` when its decorator
    runs; the user's setting is restored right after."""
    def decorate(fn):
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = CACHE_FOLDER
        try:
            return decorator(fn)
        finally:
            numba.config.CACHE_DIR = saved
    return decorate


def kernel(**flags):
    """``numba.njit(**flags)``, cached (when flags say cache=True) in CACHE_FOLDER."""
    return _in_cache_folder(numba.njit(**flags))


def compiled_c(signature, **flags):
    """``numba.cfunc(signature, **flags)``, cached in CACHE_FOLDER (it compiles, or loads
    from the cache, when applied)."""
    return _in_cache_folder(numba.cfunc(signature, **flags))
