"""Strided GEMM on sub-matrices of flat buffers, through SciPy's BLAS.

np.dot inside njit only takes contiguous operands (a strided one is copied, which
allocates), so a row tile of dW = X^T dZ would need a transposed copy of X. `gemm`
passes leading dimensions instead: any block of a row-major matrix is an operand.

It calls SciPy's ``scipy.linalg.cython_blas`` ``sgemm`` / ``dgemm`` (the BLAS that
Numba's own np.dot uses). Their addresses come from Numba's public
``numba.extending.get_cython_function_address`` and are registered with LLVM under
the names ``fastmlp_sgemm`` / ``fastmlp_dgemm`` (``llvmlite.binding.add_symbol``) at
import, so compiled code refers to them by name and can be cached: a cached kernel
loaded in a new process links to the address registered there.
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from .._config import JIT, kernel

_SYMBOLS = {types.float32: "fastmlp_sgemm", types.float64: "fastmlp_dgemm"}


def _register_blas():
    """Make SciPy's cython_blas sgemm/dgemm linkable under the names in _SYMBOLS."""
    for name, symbol in (("sgemm", _SYMBOLS[types.float32]), ("dgemm", _SYMBOLS[types.float64])):
        llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_blas", name))


_register_blas()

_CHAR = ir.IntType(8)
_INT = ir.IntType(32)   # cython_blas takes Fortran INTEGER: C int (LP64 BLAS)


@intrinsic
def fortran_gemm(typingctx, trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                 c, c_off, ldc):
    """Column-major BLAS ?gemm: C = alpha op(A) op(B) + beta C with A = a[a_off:], etc.
    trans_a/trans_b: 0 = 'n', 1 = 't'. a, b, c 1-D arrays of one float dtype; every
    argument goes to BLAS by pointer (Fortran's convention), from stack slots."""
    dtype = getattr(c, "dtype", None)
    if dtype not in _SYMBOLS or not all(isinstance(x, types.Array) and x.dtype == dtype
                                        for x in (a, b, c)):
        return None
    sig = types.void(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                     c, c_off, ldc)

    def codegen(context, builder, signature, args):
        arg_types = signature.args
        ll_dtype = context.get_value_type(dtype)
        ch, i, f = _CHAR.as_pointer(), _INT.as_pointer(), ll_dtype.as_pointer()
        # transa transb m n k alpha a lda b ldb beta c ldc
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [ch, ch, i, i, i, f, f, i, f, i, f, f, i]), _SYMBOLS[dtype])

        def slot(value):
            ptr = cgutils.alloca_once(builder, value.type)
            builder.store(value, ptr)
            return ptr

        def as_int(i):
            return builder.trunc(context.cast(builder, args[i], arg_types[i], types.int64), _INT)

        def as_float(i):
            return context.cast(builder, args[i], arg_types[i], dtype)

        def trans_char(i):
            is_t = builder.icmp_signed("!=", context.cast(builder, args[i], arg_types[i],
                                                          types.int64), ir.Constant(ir.IntType(64), 0))
            return builder.select(is_t, ir.Constant(_CHAR, ord("T")), ir.Constant(_CHAR, ord("N")))

        def data(i):
            arr = context.make_array(arg_types[i])(context, builder, args[i])
            return builder.gep(arr.data, [context.cast(builder, args[i + 1], arg_types[i + 1],
                                                       types.intp)])

        builder.call(fn, [slot(trans_char(0)), slot(trans_char(1)), slot(as_int(2)),
                          slot(as_int(3)), slot(as_int(4)), slot(as_float(5)), data(6),
                          slot(as_int(8)), data(9), slot(as_int(11)), slot(as_float(12)),
                          data(13), slot(as_int(15))])
        return context.get_dummy_value()

    return sig, codegen


@kernel(**JIT)
def gemm(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Row-major C = alpha op(A) op(B) + beta C on blocks of flat buffers.

    C is the (m, n) block starting at c[c_off] with row stride ldc; A is (m, k)
    (or (k, m) stored, when trans_a) at a[a_off] with row stride lda; B likewise
    (k, n) (or (n, k) when trans_b) at b[b_off], row stride ldb. A row-major
    product is the column-major product of the transposes, C^T = op(B)^T op(A)^T,
    so the operands are passed to the column-major BLAS swapped.
    """
    if m == 0 or n == 0:
        return
    fortran_gemm(trans_b, trans_a, n, m, k, alpha, b, b_off, ldb, a, a_off, lda, beta, c, c_off,
                 ldc)
