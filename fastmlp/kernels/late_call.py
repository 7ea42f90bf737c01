"""Calls from one kernel to another through a pointer filled on first use, instead of
Numba's static linking.

Numba links the code of every function a kernel calls into that kernel's own module,
then optimises and compiles it again there, and again in each kernel up the call
chain: run_batches re-optimised the whole training step that forward_pass,
backward_pass and the layer kernels had each optimised already. A function decorated
with `late_call` (above its `@njit`) is called through a slot instead, a pointer
global of the caller's module that is null when the module is loaded: the caller's
code holds no copy of the callee's. While the slot is null, the call first asks
Python (`_fill_slot`, a ctypes callback: it takes the GIL, which every kernel thread
has released) to compile the callee, or load it from Numba's cache, for the argument
types, which the caller's code names as a pickle, and to write its address into the
slot. So a cached caller needs nothing registered in advance, and a process compiles
or loads each callee only when something calls it.

Measured (the bench's first fit of a small BN net in a fresh process with an empty
cache): 15.6 s with every kernel linked statically, 14.3 s with run_batches' passes
called late, 13.4-13.6 s with the layer kernels too; W1, W2 and W3-b32 epochs the
same within noise (A/B, same hour).

For kernels called once per batch, layer or chunk of rows, where inlining across the
call gains nothing: each call costs a load and an indirect call. Not for small
helpers called inside loops.
"""
import ctypes
import importlib
import pickle
import threading

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_FILL_SYMBOL = "fastmlp_fill_call_slot"
_fill_lock = threading.Lock()
_I8P = ir.IntType(8).as_pointer()
_I64 = ir.IntType(64)


def _compiled(dispatcher, arg_types):
    """The CompileResult of `dispatcher` for the tuple `arg_types` (compiled, or loaded from
    the cache, if it is not yet)."""
    arg_types = tuple(arg_types)
    if arg_types not in dispatcher.overloads:
        dispatcher.compile(arg_types)
    return dispatcher.overloads[arg_types]


@ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
def _fill_slot(slot, key, key_len):
    """Write the address of the function named by the pickle at key into slot."""
    module, qualname, arg_types = pickle.loads(ctypes.string_at(key, key_len))
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    dispatcher = getattr(found, "dispatcher", found)   # the name may hold the late_call
    with _fill_lock:
        cres = _compiled(dispatcher, arg_types)
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        ctypes.c_void_p.from_address(slot).value = address


llvm.add_symbol(_FILL_SYMBOL, ctypes.cast(_fill_slot, ctypes.c_void_p).value)


def late_call(dispatcher):
    """Decorator for an njit `dispatcher`: an intrinsic taking its arguments that calls it
    through a slot filled on first use (see the module docstring) and returns its result.
    The dispatcher stays reachable as `.dispatcher`. For module-level functions only: the
    callback finds the callee again by module and name (in a process that loaded the
    caller from the cache, nothing else names it)."""
    py_func = dispatcher.py_func

    @intrinsic
    def call(typingctx, *args):
        cres = _compiled(dispatcher, args)
        sig = cres.signature   # of the callee; the intrinsic's own takes a star-args tuple
        key = pickle.dumps((py_func.__module__, py_func.__qualname__, tuple(args)))

        def codegen(context, builder, signature, star_args):
            llargs = cgutils.unpack_tuple(builder, star_args[0], len(args))
            call_conv = context.call_conv
            module = builder.module
            fnty = call_conv.get_function_type(sig.return_type, sig.args)
            slot = cgutils.add_global_variable(module, fnty.as_pointer(), "late_call_slot")
            slot.linkage = "internal"
            slot.initializer = ir.Constant(fnty.as_pointer(), None)
            key_const = context.insert_const_bytes(module, key)
            with builder.if_then(cgutils.is_null(builder, builder.load(slot)), likely=False):
                fill = cgutils.get_or_insert_function(
                    module, ir.FunctionType(ir.VoidType(), [_I8P, _I8P, _I64]), _FILL_SYMBOL)
                builder.call(fill, [builder.bitcast(slot, _I8P), key_const,
                                    ir.Constant(_I64, len(key))])
                with builder.if_then(cgutils.is_null(builder, builder.load(slot)), likely=False):
                    # the callback failed (it printed why): raise instead of calling null
                    call_conv.return_user_exc(builder, RuntimeError, (
                        f"fastmlp: could not compile {py_func.__qualname__} for a kernel",))
            # Numba's calling convention (callconv.CPUCallConv.call_function, which
            # needs a declared function): return value slot, exception info, packed args
            retty = call_conv.get_return_type(sig.return_type).pointee
            retval = cgutils.alloca_once(builder, retty)
            builder.store(cgutils.get_null_value(retty), retval)
            excinfo = cgutils.alloca_once(builder, fnty.args[1].pointee, name="excinfo")
            packed = list(call_conv._get_arg_packer(sig.args).as_arguments(builder, llargs))
            code = builder.call(builder.load(slot), [retval, excinfo] + packed)
            status = call_conv._get_return_status(builder, code, builder.load(excinfo))
            with cgutils.if_unlikely(builder, status.is_error):
                call_conv.return_status_propagate(builder, status)
            return context.get_returned_value(builder, sig.return_type, builder.load(retval))

        return sig.return_type(types.StarArgTuple(args)), codegen

    call.dispatcher = dispatcher
    call.__doc__ = py_func.__doc__
    return call
