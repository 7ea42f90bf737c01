"""Strided GEMM on sub-matrices of flat buffers, through the BLAS that Numba's np.dot uses.

np.dot inside njit only takes contiguous operands (a strided one is copied, which
allocates), so a row tile of dW = X^T dZ needed a transposed copy of X. `gemm`
passes leading dimensions instead: any block of a row-major matrix is an operand.
It calls `numba_xxgemm`, the wrapper in Numba's helper library over SciPy's
cython BLAS (the same symbol np.dot calls), resolved by name when the module is
linked, so functions using it can be cached.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import JIT

_CHAR = ir.IntType(8)
_VOIDP = ir.IntType(8).as_pointer()


@intrinsic
def _xxgemm(typingctx, transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
            c, c_off, ldc):
    """Column-major BLAS ?gemm: C = alpha op(A) op(B) + beta C with A = a[a_off:], etc.
    transa/transb: 0 = 'n', 1 = 't'. a, b, c 1-D arrays of one float dtype."""
    dtype = c.dtype
    if not (isinstance(a, types.Array) and isinstance(b, types.Array) and
            isinstance(c, types.Array) and a.dtype == dtype and b.dtype == dtype and
            dtype in (types.float32, types.float64)):
        return None
    sig = types.void(transa, transb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta,
                     c, c_off, ldc)

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, alpha_, a_, a_off_, lda_, b_, b_off_, ldb_, beta_, c_, c_off_,
         ldc_) = args
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, intp, intp, intp,
                                                _VOIDP, _VOIDP, intp, _VOIDP, intp, _VOIDP,
                                                _VOIDP, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        ll_dtype = context.get_value_type(dtype)

        def scalar_slot(value, ty):
            slot = cgutils.alloca_once(builder, ll_dtype)
            builder.store(context.cast(builder, value, ty, dtype), slot)
            return builder.bitcast(slot, _VOIDP)

        def data_ptr(arr_val, arr_ty, off, off_ty):
            arr = context.make_array(arr_ty)(context, builder, arr_val)
            ptr = builder.gep(arr.data, [context.cast(builder, off, off_ty, types.intp)])
            return builder.bitcast(ptr, _VOIDP)

        def trans_char(flag, ty):
            is_t = builder.icmp_signed("!=", context.cast(builder, flag, ty, types.intp),
                                       ir.Constant(intp, 0))
            return builder.select(is_t, ir.Constant(_CHAR, ord("t")), ir.Constant(_CHAR, ord("n")))

        def as_intp(v, ty):
            return context.cast(builder, v, ty, types.intp)

        kind = ir.Constant(_CHAR, ord("s" if dtype == types.float32 else "d"))
        A = signature.args
        res = builder.call(fn, (
            kind, trans_char(ta, A[0]), trans_char(tb, A[1]),
            as_intp(m_, A[2]), as_intp(n_, A[3]), as_intp(k_, A[4]),
            scalar_slot(alpha_, A[5]), data_ptr(a_, A[6], a_off_, A[7]), as_intp(lda_, A[8]),
            data_ptr(b_, A[9], b_off_, A[10]), as_intp(ldb_, A[11]),
            scalar_slot(beta_, A[12]), data_ptr(c_, A[13], c_off_, A[14]),
            as_intp(ldc_, A[15])))
        with builder.if_then(cgutils.is_not_null(builder, res), likely=False):
            pyapi = context.get_python_api(builder)
            pyapi.gil_ensure()
            pyapi.fatal_error("BLAS wrapper returned with an error")
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT)
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
    _xxgemm(trans_b, trans_a, n, m, k, alpha, b, b_off, ldb, a, a_off, lda, beta, c, c_off, ldc)


def _ensure_blas():
    """Load SciPy's BLAS for Numba (np.dot in a compiled function does this at typing)."""
    from numba.np.linalg import ensure_blas
    ensure_blas()


_ensure_blas()
