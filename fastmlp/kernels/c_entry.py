"""Kernels compiled once as C functions and called by name: the bodies of the passes'
parallel loops.

Why: Numba links a callee's code into every caller and optimises it again there.
A `prange` loop adds callers of its own: the loop body becomes a function, wrapped
twice (a gufunc wrapper and the scheduling wrapper), then the pass, then run_batches.
A pass's body was so optimised and compiled five times on a cold start (measured,
Numba 0.68: the linking callers took 11.4 s of the 17 s that LLVM spent on a first
fit). Compiled once as a `numba.cfunc`, registered under a name with
`llvmlite.binding.add_symbol` and called through that name (as the GEMM is:
kernels/tile_gemm.link_gemm), a body is compiled once and its callers hold one call.

How an entry works:
- the body is an ordinary kernel, `body(a, b, c, ...)`;
- its entry is a module-level function `def entry(args): return body(*load_arguments(args))`,
  compiled by `link` as a cfunc of C signature `returns(CPointer(T))`, T the Numba
  type of the argument tuple (after `canonical`: integers as int64);
- a kernel calls it as `caller(name, returns)((a, b, c, ...))`: the tuple goes to the
  caller's stack and its address to the entry (Numba's data layout on both sides),
  its arrays borrowed: the caller holds them for the call (`without_owners`).

Entry symbols carry a digest of T. `link(name, entry, returns, sample)` compiles (or
loads from the cache) the cfunc for the type of `sample` and registers it. A call
site whose tuple type was not linked fails to compile with a TypingError that names
both types: never at run time. Link before a kernel that calls the entry is compiled
or loaded from the cache: its code refers to the symbol by name.
"""
import hashlib
import threading

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from .._config import C_FUNCTION, compiled_c

_LINKED = {}            # symbol -> the numba CFunc (kept alive: its address is in use)
_SYMBOL_OF_SAMPLE = {}  # (name, sample_key) -> symbol
_LOCK = threading.Lock()


def canonical(arg_type):
    """The argument tuple type an entry is compiled for: every integer as int64 (a prange
    index is uint64, a literal is Literal[int]), boolean literals as boolean, plain tuples
    element by element; arrays, floats, NamedTuples and None unchanged."""
    if isinstance(arg_type, types.BooleanLiteral):
        return types.boolean
    if isinstance(arg_type, types.Integer):
        return types.int64
    if isinstance(arg_type, types.BaseTuple) and not isinstance(arg_type, types.BaseNamedTuple):
        return types.Tuple([canonical(t) for t in arg_type])
    return arg_type


def symbol_of(name, arg_type):
    """The C symbol of entry `name` for the (canonical) argument tuple type."""
    digest = hashlib.sha256(str(arg_type).encode()).hexdigest()[:16]
    return f"fastmlp_{name}_{digest}"


def sample_key(value):
    """What numba.typeof(value) depends on, for the values a sample holds (arrays, tuples
    and NamedTuples of them, scalars, None), at a tenth of its cost: an array's dtype,
    ndim, layout, writeability and alignment; a tuple's class and members; else the
    value's class."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        return (value.dtype.str, value.ndim, flags.c_contiguous, flags.f_contiguous,
                flags.writeable, flags.aligned)
    if isinstance(value, tuple):
        return (type(value),) + tuple(sample_key(member) for member in value)
    return type(value)


def link(name, entry, returns, sample):
    """Compile (or load from the cache) `entry` as a C function for the argument tuple
    type of `sample` (a tuple of values of the types the call site passes) and register
    its symbol. Returns the symbol. Thread-safe; each symbol is compiled once a process,
    and a sample seen before costs only its sample_key (Optimizer.step links every call:
    numba.typeof of its sample took 111 us of a 129 us step)."""
    key = (name, sample_key(sample))
    symbol = _SYMBOL_OF_SAMPLE.get(key)
    if symbol is not None:
        return symbol
    symbol = link_type(name, entry, returns, canonical(numba.typeof(sample)))
    _SYMBOL_OF_SAMPLE[key] = symbol
    return symbol


def link_type(name, entry, returns, arg_type):
    """As link, for the canonical argument tuple type itself (kernels/split_compile.py
    sends types, not samples, to its helper process). Returns the symbol."""
    symbol = symbol_of(name, arg_type)
    with _LOCK:
        if _LINKED.get(symbol) is None:
            compiled = compiled_c(returns(types.CPointer(arg_type)), **C_FUNCTION)(entry)
            llvm.add_symbol(symbol, compiled.address)
            _LINKED[symbol] = compiled
    return symbol


def stand_in(name, arg_type, address):
    """Register entry `name` for arg_type at `address` without compiling it, so that
    kernels calling it compile: only for a process that compiles kernels into the
    cache and never runs them (kernels/split_compile.py). Their cached code names the
    symbol, and a process that loads it links the real entry first."""
    symbol = symbol_of(name, arg_type)
    with _LOCK:
        if symbol not in _LINKED:
            llvm.add_symbol(symbol, address)
            _LINKED[symbol] = None
    return symbol


def without_owners(context, builder, value_type, value):
    """`value` (of Numba type value_type) with the owner (meminfo) and Python parent of
    every array in it set to null. The caller keeps its arrays alive through the call;
    an array without an owner makes Numba's reference counting in the entry a no-op,
    instead of atomic operations on a counter that every thread's call touches
    (measured on W3 at batch 256, 2 threads: the backward pass 11.9 -> 16-17 ms with them)."""
    if isinstance(value_type, types.Array):
        model = context.data_model_manager[value_type]
        for field in ("meminfo", "parent"):
            position = model.get_field_position(field)
            null = ir.Constant(value.type.elements[position], None)
            value = builder.insert_value(value, null, position)
    elif isinstance(value_type, types.BaseTuple):
        for i, member_type in enumerate(value_type):
            member = without_owners(context, builder, member_type, builder.extract_value(value, i))
            value = builder.insert_value(value, member, i)
    return value


def _return_ir(context, returns):
    return ir.VoidType() if returns == types.void else context.get_value_type(returns)


def caller(name, returns):
    """An intrinsic `call(args)` that calls entry `name` (see link) with the tuple args;
    returns what the entry returns (`returns`: void, or an integer or float type)."""
    @intrinsic
    def call_entry(typingctx, args):
        if not isinstance(args, types.BaseTuple):
            return None
        arg_type = canonical(args)
        symbol = symbol_of(name, arg_type)
        if symbol not in _LINKED:
            raise TypingError(f"the C entry {name!r} is not linked for the arguments {arg_type}"
                              f" (c_entry.link must run first, with a sample of these types)")

        def codegen(context, builder, signature, llargs):
            value = context.cast(builder, llargs[0], signature.args[0], arg_type)
            value = without_owners(context, builder, arg_type, value)
            slot = cgutils.alloca_once(builder, context.get_data_type(arg_type))
            context.pack_value(builder, arg_type, value, slot)
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(_return_ir(context, returns), [slot.type]), symbol)
            result = builder.call(function, [slot])
            return context.get_dummy_value() if returns == types.void else result

        return returns(args), codegen

    return call_entry


@intrinsic
def load_arguments(typingctx, pointer):
    """The argument tuple an entry receives, read from the caller's stack (see caller)."""
    if not isinstance(pointer, types.CPointer):
        return None
    arg_type = pointer.dtype

    def codegen(context, builder, signature, llargs):
        # its arrays have no owner (without_owners): nothing to count references of
        return context.unpack_value(builder, arg_type, llargs[0])

    return arg_type(pointer), codegen
