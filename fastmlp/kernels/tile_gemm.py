"""Register-tiled GEMM for skinny products (few output columns), C = op(A) @ B.

OpenBLAS runs the first layer of a wide-input, narrow-output net (W1: 100 x 3072 @
3072 x 50 forward, 3072 x 100 @ 100 x 50 for dW) at 65-70% of its own sgemm peak:
with only 50 columns its packing is a large share of the work. These products
need no packing: `fma_tile` keeps an R x (V vectors) block of C in vector registers
(the "micro-kernel" of Goto & van de Geijn, "Anatomy of high-performance matrix
multiplication", ACM TOMS 2008) while it streams a strip of A (one scalar per row,
broadcast) and of B (V vectors per row) through L1. Measured on the bench host
(AMD EPYC Zen 2, 1 thread, W1's shapes with K = 1536 per thread, A's rows not a
multiple of 4 KiB apart: see `plan.input_stride`): with 48 columns 95-97 GFLOP/s
against OpenBLAS's 69-72; with W1's 50 (2 left over) forward 76 vs 67 and dW 85 vs 65.

The tile is written as LLVM IR (`@intrinsic`): the accumulators are SSA values of
vector type, so they stay in registers, and each update is one `llvm.fma` on a
broadcast element of A. Vectors are 32 bytes (8 float32 or 4 float64 lanes: AVX2;
LLVM splits them on narrower targets). The same code serves float32 training and
float64 gradient checks.
"""
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE, FASTMATH, INLINED, JIT
from .blas import gemm as blas_gemm

ROWS = 4        # rows of C per full tile
VECTORS = 3     # vectors of C per tile row: 4 x 3 = 12 of the 16 AVX2 registers (12
                # independent FMA chains: 2 FMA units x 5-cycle latency need >= 10)
VECTOR_BYTES = 32
DEPTH = 128     # k per pass: a 128 x 50 float32 strip of B is 25 KiB, inside L1
# `gemm` takes the tiles for C with MIN_COLS float32 columns (1 panel; 12 float64) up
# to MAX_COLS; wider products are BLAS's (its packing pays for itself there)
MIN_COLS = 24
MAX_COLS = 64

_I64 = ir.IntType(64)
i64 = np.int64
_I32 = ir.IntType(32)


def lanes_of(dtype):
    """Lanes of a VECTOR_BYTES vector of `dtype` (a Numba float type)."""
    return VECTOR_BYTES * 8 // dtype.bitwidth


@intrinsic
def fma_tile(typingctx, rows, n_vec, scatter, a, a_off, a_rs, a_ks, n_rows, b, b_off,
             b_rs, c, c_off, c_rs, c_cs, depth, accumulate):
    """C[r, j] (+)= sum_{k < depth} A[r, k] B[k, j] for r < n_rows (<= rows) and the
    n_vec * lanes columns j.

    A[r, k] = a[a_off + r a_rs + k a_ks] (any strides: op(A) is A or A^T),
    B[k, j] = b[b_off + k b_rs + j] (rows contiguous), C[r, j] = c[c_off + r c_rs + j c_cs].
    rows, n_vec (literals): the tile's rows and vectors per row of C. scatter (literal
    bool): False stores whole vectors (c_cs must be 1), True stores lane by lane at
    stride c_cs (to write a tile of C^T into C). Rows past n_rows read row n_rows - 1
    and are not stored.
    accumulate != 0 adds to C instead of overwriting it.
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(n_vec, types.IntegerLiteral)
            and isinstance(scatter, types.BooleanLiteral)):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    n_r, n_v = rows.literal_value, n_vec.literal_value
    is_scatter = scatter.literal_value
    width = lanes_of(dtype)
    sig = types.void(rows, n_vec, scatter, a, a_off, a_rs, a_ks, n_rows, b, b_off, b_rs,
                     c, c_off, c_rs, c_cs, depth, accumulate)

    def codegen(context, builder, signature, args):
        S = signature.args
        vals = [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
                for v, t in zip(args, S)]
        (_, _, _, a_, a_off_, a_rs_, a_ks_, n_rows_, b_, b_off_, b_rs_, c_, c_off_, c_rs_,
         c_cs_, depth_, acc_) = vals
        fty = context.get_value_type(dtype)
        vty = ir.VectorType(fty, width)
        vptr = vty.as_pointer()
        suffix = f"v{width}{'f32' if dtype == types.float32 else 'f64'}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                             f"llvm.fma.{suffix}")
        A = context.make_array(S[3])(context, builder, a_).data
        B = context.make_array(S[8])(context, builder, b_).data
        C = context.make_array(S[11])(context, builder, c_).data
        zero = ir.Constant(vty, None)

        def vec_ptr(base, offset):
            return builder.bitcast(builder.gep(base, [offset]), vptr)

        def load_vec(base, offset):
            return builder.load(vec_ptr(base, offset), align=4)

        def store_vec(value, base, offset):
            builder.store(value, vec_ptr(base, offset), align=4)

        def store_lanes(total, c_row, v, adding):
            """C[r, v * width + l] (+)= lane l, one element at a time (stride c_cs)."""
            for lane in range(width):
                ptr = builder.gep(c_row, [builder.mul(ir.Constant(_I64, v * width + lane),
                                                      c_cs_)])
                value = builder.extract_element(total, ir.Constant(_I32, lane))
                builder.store(builder.select(adding, builder.fadd(builder.load(ptr), value),
                                             value), ptr)

        # row r of A; rows past n_rows re-read the last one (their results are dropped)
        last_row = builder.sub(n_rows_, ir.Constant(_I64, 1))
        a_rows = []
        for r in range(n_r):
            row = builder.select(builder.icmp_signed("<", ir.Constant(_I64, r), n_rows_),
                                 ir.Constant(_I64, r), last_row)
            a_rows.append(builder.gep(A, [builder.add(a_off_, builder.mul(row, a_rs_))]))
        b_base = builder.gep(B, [b_off_])

        entry = builder.basic_block
        header = builder.append_basic_block("tile.header")
        body = builder.append_basic_block("tile.body")
        done = builder.append_basic_block("tile.done")
        builder.branch(header)
        builder.position_at_end(header)
        k = builder.phi(_I64)
        k.add_incoming(ir.Constant(_I64, 0), entry)
        acc = []
        for _ in range(n_r * n_v):
            p = builder.phi(vty)
            p.add_incoming(zero, entry)
            acc.append(p)
        builder.cbranch(builder.icmp_signed("<", k, depth_), body, done)

        builder.position_at_end(body)
        b_row = builder.gep(b_base, [builder.mul(k, b_rs_)])
        b_vecs = [load_vec(b_row, ir.Constant(_I64, v * width)) for v in range(n_v)]
        a_step = builder.mul(k, a_ks_)
        updated = []
        for r in range(n_r):
            a_val = splat(builder, builder.load(builder.gep(a_rows[r], [a_step])), vty)
            for v in range(n_v):
                updated.append(builder.call(fma, [a_val, b_vecs[v], acc[r * n_v + v]]))
        k.add_incoming(builder.add(k, ir.Constant(_I64, 1)), body)
        for p, u in zip(acc, updated):
            p.add_incoming(u, body)
        builder.branch(header)

        builder.position_at_end(done)
        adding = builder.icmp_signed("!=", acc_, ir.Constant(_I64, 0))
        for r in range(n_r):
            with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, r), n_rows_)):
                c_row = builder.gep(C, [builder.add(c_off_, builder.mul(ir.Constant(_I64, r),
                                                                         c_rs_))])
                for v in range(n_v):
                    if is_scatter:
                        store_lanes(acc[r * n_v + v], c_row, v, adding)
                        continue
                    offset = ir.Constant(_I64, v * width)
                    total = acc[r * n_v + v]
                    store_vec(builder.select(adding, builder.fadd(load_vec(c_row, offset), total),
                                             total), c_row, offset)
        return context.get_dummy_value()

    return sig, codegen


def splat(builder, scalar, vector_type):
    """A vector with every lane equal to `scalar` (LLVM lowers it to one broadcast)."""
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar,
                                 ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vector_type.count), None))


@njit(**INLINED)
def gemm(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """Row-major C = alpha op(A) op(B) + beta C, with blas.gemm's arguments: by
    `tile_gemm` for skinny products (C = op(A) @ B with MIN_COLS <= n <= MAX_COLS),
    otherwise by BLAS. Inlined into its callers (which pass literal flags and offsets of
    several integer types), so that the GEMMs it calls see int64 arguments only."""
    if (trans_b == 0 and alpha == 1 and beta == 0 and MIN_COLS * 4 // c.itemsize <= n
            and n <= MAX_COLS):
        call_tile_gemm(i64(trans_a), i64(m), i64(n), i64(k), a, i64(a_off), i64(lda), b,
                       i64(b_off), i64(ldb), c, i64(c_off), i64(ldc))
    else:
        blas_gemm(i64(trans_a), i64(trans_b), i64(m), i64(n), i64(k), alpha, a, i64(a_off),
                  i64(lda), b, i64(b_off), i64(ldb), beta, c, i64(c_off), i64(ldc))


@njit(**JIT)
def tile_gemm(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """Row-major C = op(A) @ B on blocks of flat buffers (the layout of blas.gemm with
    alpha = 1, beta = 0, trans_b = 0): C (m, n) at c[c_off] with row stride ldc, A
    (m, k) at a[a_off] with row stride lda ((k, m) stored when trans_a), B (k, n) at
    b[b_off] with row stride ldb.

    Loops: DEPTH-long passes over k (the first overwrites C, the rest add), then
    ROWS-row blocks of C, then its column panels, so a block's strip of A is reused
    from L1 by every panel and the pass's strip of B by every block. Columns past
    the last full panel: when op(A) = A^T and there are at most ROWS of them, as
    rows of C^T = B^T A^T (op(A) then supplies the vectors and B the broadcasts);
    otherwise, and for the rows left over, by BLAS (a tile with partial vectors and
    more broadcasts per FMA measured slower than BLAS there).
    """
    if m == 0 or n == 0:
        return
    a_rs, a_ks = (1, lda) if trans_a else (lda, 1)
    lanes = VECTOR_BYTES // c.itemsize
    panel = VECTORS * lanes
    n_full = n - n % panel
    rest = n - n_full
    flip = trans_a and 0 < rest <= ROWS
    m_flip = m - m % panel if flip else 0
    for k0 in range(0, max(k, 1), DEPTH):
        depth = min(DEPTH, k - k0)
        adding = 1 if k0 > 0 else 0
        a0 = a_off + k0 * a_ks
        b0 = b_off + k0 * ldb
        for i0 in range(0, m, ROWS):
            for j0 in range(0, n_full, panel):
                fma_tile(ROWS, VECTORS, False, a, a0 + i0 * a_rs, a_rs, a_ks, min(ROWS, m - i0),
                         b, b0 + j0, ldb, c, c_off + i0 * ldc + j0, ldc, 1, depth, adding)
        for i0 in range(0, m_flip, panel):
            fma_tile(ROWS, VECTORS, True, b, b0 + n_full, 1, ldb, rest, a, a0 + i0, a_ks,
                     c, c_off + i0 * ldc + n_full, 1, ldc, depth, adding)
    if rest > 0 and m_flip < m:
        one, zero = c.dtype.type(1.0), c.dtype.type(0.0)
        blas_gemm(trans_a, 0, m - m_flip, rest, k, one, a, a_off + m_flip * a_rs, lda, b,
                  b_off + n_full, ldb, zero, c, c_off + m_flip * ldc + n_full, ldc)


# tile_gemm is called through a C entry point, by name, like BLAS: Numba links (and
# re-optimises) the code of every function a kernel calls into that kernel and into
# each kernel up the call chain, and tile_gemm linked into the dense kernels made the
# cold first fit 1.6 s slower (15.5 s against 13.9). Through the symbol it is
# compiled (and cached) once per dtype.
_SYMBOLS = {types.float32: "fastmlp_tile_gemm_f32", types.float64: "fastmlp_tile_gemm_f64"}


def _register_entry(dtype):
    """Compile tile_gemm's C entry point for `dtype` and make it linkable by name."""
    p, i = types.CPointer(dtype), types.int64

    @cfunc(types.void(i, i, i, i, p, i, i, i, p, i, i, i, p, i, i, i), cache=CACHE,
           error_model="numpy", fastmath=FASTMATH)
    def entry(trans_a, m, n, k, a, a_len, a_off, lda, b, b_len, b_off, ldb, c, c_len, c_off,
              ldc):
        tile_gemm(trans_a, m, n, k, carray(a, (a_len,)), a_off, lda, carray(b, (b_len,)), b_off,
                  ldb, carray(c, (c_len,)), c_off, ldc)

    llvm.add_symbol(_SYMBOLS[dtype], entry.address)
    return entry


_ENTRIES = [_register_entry(t) for t in _SYMBOLS]


@intrinsic
def call_tile_gemm(typingctx, trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """tile_gemm(...) through its C entry point (arguments as tile_gemm's, ints int64)."""
    dtype = c.dtype
    if dtype not in _SYMBOLS or a.dtype != dtype or b.dtype != dtype:
        return None
    sig = types.void(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)

    def codegen(context, builder, signature, args):
        S = signature.args
        ptr = context.get_value_type(dtype).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [_I64] * 4 + [ptr, _I64, _I64, _I64] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[dtype])

        def operand(position):  # data pointer, length, offset, row stride
            arr = context.make_array(S[position])(context, builder, args[position])
            return [arr.data, arr.nitems, args[position + 1], args[position + 2]]

        builder.call(fn, list(args[:4]) + operand(4) + operand(7) + operand(10))
        return context.get_dummy_value()

    return sig, codegen
