"""A barrier for the training threads, from three atomic operations written in LLVM IR.

fastmlp runs its compiled loop on n Python threads at once (fastmlp/_pool.py), each
calling the same kernel with its own index in a `team` tuple (thread, n_threads,
sync). The threads split every pass by rows (or by blocks of parameters) and meet
at `barrier` wherever one reads what another wrote, as the threads of an OpenMP
parallel region do. One team replaces Numba's parallel=True: each prange loop
compiled into three more functions (a gufunc and two wrappers, each re-optimising
everything the loop body calls), which made most of the first fit's compile time.

Numba has no CPU atomics, so they are intrinsics here: a sequentially consistent
fetch-add and store, an acquire load, and a spin-wait hint. A waiting thread spins
a few microseconds, then yields its core to the OS on every check (a team larger
than the free cores still makes progress).
"""
import ctypes
import platform
import sys

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import JIT

SPINS_BEFORE_YIELD = 2000   # ~10-50 us of `pause` before the waiting thread yields its core
_YIELD_SYMBOL = "fastmlp_yield_thread"
# the CPU's spin-wait hint as an LLVM intrinsic: (name, arguments)
_SPIN_HINT = {"x86_64": ("llvm.x86.sse2.pause", ()), "amd64": ("llvm.x86.sse2.pause", ()),
              "aarch64": ("llvm.aarch64.hint", (1,)), "arm64": ("llvm.aarch64.hint", (1,))
              }.get(platform.machine().lower())


def _register_yield():
    """Make the OS's yield call (sched_yield, or SwitchToThread on Windows) linkable
    under _YIELD_SYMBOL; compiled and cached code refers to it by that name."""
    if sys.platform == "win32":
        fn = ctypes.windll.kernel32.SwitchToThread
    else:
        fn = ctypes.CDLL(None).sched_yield
    llvm.add_symbol(_YIELD_SYMBOL, ctypes.cast(fn, ctypes.c_void_p).value)


_register_yield()


def _int64_vector(arr):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


def _item_pointer(context, builder, sig, args):
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])


@intrinsic
def atomic_add(typingctx, arr, i, value):
    """arr[i] += value as one atomic step (int64 array); returns the value before."""
    if not _int64_vector(arr):
        return None
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _item_pointer(context, builder, sig, args), args[2],
                                  "seq_cst")
    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, i, value):
    """arr[i] = value, atomically and visible to every later atomic operation."""
    if not _int64_vector(arr):
        return None
    sig = types.void(arr, types.intp, types.int64)

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _item_pointer(context, builder, sig, args), "seq_cst", 8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, i):
    """arr[i] read atomically; later reads of any memory are not moved before it."""
    if not _int64_vector(arr):
        return None
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)
    return sig, codegen


@intrinsic
def spin_hint(typingctx):
    """The CPU's spin-wait hint (x86 `pause`, ARM `yield`; nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        if _SPIN_HINT is not None:
            name, hint_args = _SPIN_HINT
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i32] * len(hint_args)), name)
            builder.call(fn, [ir.Constant(i32, a) for a in hint_args])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def yield_thread(typingctx):
    """Give the core back to the OS scheduler (sched_yield)."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(ir.IntType(32), []), _YIELD_SYMBOL)
        builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@njit(**JIT)
def barrier(team):
    """Return once every thread of team = (thread, n_threads, sync) has called it.

    sync (int64, >= 3): sync[0] counts arrivals, sync[1] is the generation. The
    last thread to arrive resets the count and advances the generation; the others
    wait for the generation to change (a sense-reversing central barrier). Writes
    made before the barrier by any thread are visible after it to all of them.
    sync[2] != 0 (set when a thread of the team failed before reaching the kernel)
    releases every wait, so the others finish instead of waiting forever.
    """
    n_threads, sync = team[1], team[2]
    if n_threads == 1:
        return
    generation = atomic_load(sync, 1)   # read before arriving: the last arrival changes it
    if atomic_add(sync, 0, 1) == n_threads - 1:
        atomic_store(sync, 0, 0)
        atomic_add(sync, 1, 1)
        return
    spins = 0
    while atomic_load(sync, 1) == generation and atomic_load(sync, 2) == 0:
        if spins < SPINS_BEFORE_YIELD:
            spins += 1
            spin_hint()
        else:
            yield_thread()


@njit(**JIT)
def chunk_rows(n_rows, n_chunks, c):
    """Bounds [r0, r1) of chunk c when n_rows are split into n_chunks near-equal parts."""
    return c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks


@njit(**JIT)
def share(n, team):
    """This thread's contiguous part [lo, hi) of n items split evenly across the team."""
    return chunk_rows(n, team[1], team[0])
