"""Register-tiled GEMMs for the products where OpenBLAS loses to its own packing:
a small batch (at most 32 rows per call) against a wide weight matrix, as in W3's
512-wide layers at batch 32.

- `fma_tile` serves C = A @ B (the forward, X @ W): it keeps an R x (V vectors)
  block of C in vector registers (the "micro-kernel" of Goto & van de Geijn,
  "Anatomy of high-performance matrix multiplication", ACM TOMS 2008) while it
  streams a strip of A (one scalar per row, broadcast) and of B (V vectors per row)
  through L1. B's strip is copied to contiguous rows only when its rows are a
  multiple of 128 bytes apart (they would share a few L1 sets); A is never packed.
  The n % lanes columns past the last whole vector get dot tiles of their own
  (`rest_columns`).
- `dot_tile` serves C = A @ B^T (dX = dZ @ W^T): R x Q vector accumulators run along
  the contiguous k of both operands, then each is summed across its lanes.

`tiles_pay_off` picks the tiles only where they measured faster. On the bench host
(2-core AMD EPYC with AVX-512, OpenBLAS 0.3.30 SkylakeX kernels, 2026-12-02), tiles
and BLAS alternated in one process, GFLOP/s best / median of 9, 1 thread:

| product | tiles | BLAS |
|---|---|---|
| W3 b32 forward, 32 x 512 @ 512 x 256 | 82 / 56 | 69 / 60 |
| W3 b32 dX, 32 x 512 @ (256 x 512)^T | 87 / 64 | 59 / 52 |
| W3 b32 dW, (32 x 256)^T @ 32 x 512 | 67 / 52 | 77 / 72 |
| W3 b256 dX, 128 x 512 @ (512 x 512)^T | 79 / 61 | 88 / 83 |
| W2 forward, 50 x 784 @ 784 x 100 | 60 / 58 | 68 / 67 |
| W2 dW, (100 x 392)^T @ 100 x 100 | 61 / 58 | 76 / 74 |
| W2 second layer, 50 x 100 @ 100 x 30 | 39 / 39 | 67 / 66 |
| W1 forward, 100 x 1536 @ 1536 x 50 | 90 / 77 | 81 / 75 |
| W1 dW, (100 x 1536)^T @ 100 x 50 | 64 / 55 | 66 / 63 |

On 2 threads the same ordering held, with wider gaps (W3 b256 dX: 126 / 122 tiles
against 167 / 163 BLAS). Whole epochs, tiles by the earlier, wider rule against this
one (2 threads, s/epoch, best of 3, interleaved processes): W3-b32 2.00 -> 1.33
(1 thread: 3.03 -> 2.32), W1 0.207 -> 0.137; W2 and W3-b256 within the host's noise.
Earlier measurements (2026-11) had the tiles ahead on W1's and W2's narrow layers
and on dW; they no longer are, so the A^T @ B tiles were removed.

Tiles are written as LLVM IR (`@intrinsic`): the accumulators are SSA values of
vector type, so they stay in registers, and each update is one `llvm.fma`. Vectors
are 32 bytes (8 float32 or 4 float64 lanes: AVX2; LLVM splits them on narrower
targets). The same code serves float32 training and float64 gradient checks.
"""
import numpy as np
import llvmlite.binding as llvm
from llvmlite import ir
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import C_FUNCTION, GEMM_MODE, INLINED, JIT, compiled_c, kernel
from .blas import gemm as blas_gemm

ROWS = 4        # rows of C per full tile
VECTORS = 3     # vectors of C per tile row: 4 x 3 = 12 of the 16 AVX2 registers (12
                # independent FMA chains: 2 FMA units x 5-cycle latency need >= 10)
NARROW_ROWS = 6     # the 6 x 2 tile covers the whole vectors of n that 3-vector panels
NARROW_VECTORS = 2  # leave (n = 256 float32: 10 panels of 24 + 1 of 16)
VECTOR_BYTES = 32
DEPTH = 128     # k per pass: a 128 x 50 float32 strip of B is 25 KiB, inside L1
STRIP_LEN = DEPTH * VECTORS * VECTOR_BYTES // 4   # a packed DEPTH x panel strip of B
DOT_A = 4       # dot tiles: 4 rows of A x 3 rows of B, 12 accumulators (3 x 4 spilled one)
DOT_B = 3
# The n % lanes columns of C = A @ B past the last whole vector: C[:, n_full:] =
# A @ (B[:, n_full:]^T)^T, by 6 x 2 dot tiles over a strip of those columns of B
# copied to contiguous rows (REST_DEPTH of k at a time).
REST_A = 6
REST_B = 2
REST_DEPTH = 1024
REST_STRIP = REST_B * REST_DEPTH
# Where `tiles_pay_off` takes the tiles (measured, see the module docstring): a batch
# side of at most MAX_ROWS rows (the forward's X and dX's dZ), and rows of B (A @ B)
# of at least MIN_B_ROW_BYTES or rows of both operands (A @ B^T) of at least
# DOT_MIN_K_BYTES. BLAS for everything else, A^T @ B (dW) included.
MAX_ROWS = 32
MIN_B_ROW_BYTES = 512   # 128 float32 columns: narrower layers ran faster on BLAS
DOT_MIN_K_BYTES = 256   # k >= 64 float32: for shorter rows the lane sums dominate


def host_has_tile_features():
    """True when the host CPU has what the tiles assume: 32-byte vectors (AVX2) and fused
    multiply-add (FMA). Elsewhere llvm.fma on vectors would be split or become calls."""
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:   # LLVM cannot tell on this platform
        return False
    return bool(features.get("avx2", False) and features.get("fma", False))


# The tiles run only where the host has their features and FASTMLP_GEMM is not "blas";
# BLAS takes every product otherwise. A constant of the compiled code: the cache folder
# is keyed by GEMM_MODE (_config.cache_folder), and Numba's cache by the host CPU.
TILES = GEMM_MODE == "auto" and host_has_tile_features()

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def lanes_of(dtype):
    """Lanes of a VECTOR_BYTES vector of `dtype` (a Numba float type)."""
    return VECTOR_BYTES * 8 // dtype.bitwidth


def int64_args(context, builder, args, arg_types):
    """The intrinsic's arguments with every integer cast to int64 (others as they are)."""
    return [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, arg_types)]


def internal_function(module, name, arg_types):
    """(function, True) for a new noinline void function `name` of `module` with no body
    yet, or (the existing one, False): one copy of each tile variant per module."""
    if name in module.globals:
        return module.globals[name], False
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), arg_types), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    return fn, True


def llvm_fma(module, value_type):
    """The llvm.fma intrinsic for a float or a float vector type."""
    scalar = value_type.element if isinstance(value_type, ir.VectorType) else value_type
    name = "f32" if isinstance(scalar, ir.FloatType) else "f64"
    if isinstance(value_type, ir.VectorType):
        name = f"v{value_type.count}{name}"
    return cgutils.get_or_insert_function(module, ir.FunctionType(value_type, [value_type] * 3),
                                          f"llvm.fma.{name}")


def row_starts(builder, base, offset, stride, n_valid, count):
    """Pointers to rows 0..count-1 of a block (base[offset + r stride]); rows past
    n_valid point at row n_valid - 1 (their results are dropped, not stored)."""
    last = builder.sub(n_valid, ir.Constant(_I64, 1))
    starts = []
    for r in range(count):
        row = builder.select(builder.icmp_signed("<", ir.Constant(_I64, r), n_valid),
                             ir.Constant(_I64, r), last)
        starts.append(builder.gep(base, [builder.add(offset, builder.mul(row, stride))]))
    return starts


def counted_loop(builder, label, start, stop, step, init, step_body):
    """A loop l = start, start + step, ... < stop carrying the SSA values `init` (phis,
    so vector accumulators stay in registers); step_body(l, values) returns their next
    values. Leaves the builder after the loop and returns the final values."""
    before = builder.basic_block
    header = builder.append_basic_block(label + ".header")
    body = builder.append_basic_block(label + ".body")
    done = builder.append_basic_block(label + ".done")
    builder.branch(header)
    builder.position_at_end(header)
    index = builder.phi(_I64)
    index.add_incoming(start, before)
    phis = []
    for v in init:
        p = builder.phi(v.type)
        p.add_incoming(v, before)
        phis.append(p)
    builder.cbranch(builder.icmp_signed("<", index, stop), body, done)
    builder.position_at_end(body)
    following = step_body(index, phis)
    index.add_incoming(builder.add(index, ir.Constant(_I64, step)), builder.basic_block)
    for p, v in zip(phis, following):
        p.add_incoming(v, builder.basic_block)
    builder.branch(header)
    builder.position_at_end(done)
    return phis


@intrinsic
def fma_tile(typingctx, rows, n_vec, a, a_off, a_rs, n_rows, b, b_off, b_rs, c, c_off, c_rs,
             depth, accumulate):
    """C[r, j] (+)= sum_{k < depth} A[r, k] B[k, j] for r < n_rows (<= rows) and the
    n_vec * lanes columns j.

    A[r, k] = a[a_off + r a_rs + k], B[k, j] = b[b_off + k b_rs + j],
    C[r, j] = c[c_off + r c_rs + j] (every row contiguous). rows, n_vec (literals): the
    tile's rows and vectors per row of C. Rows past n_rows read row n_rows - 1 and are
    not stored. accumulate != 0 adds to C instead of overwriting it.

    Each (dtype, rows, n_vec) is one LLVM function per module, called from
    every call site: inlining the body at each site cost compile time (the cold first
    fit) and gained nothing measurable (a call per tile of >= 100s of FMAs).
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(n_vec, types.IntegerLiteral)):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    shape = (rows.literal_value, n_vec.literal_value)
    sig = types.void(rows, n_vec, a, a_off, a_rs, n_rows, b, b_off, b_rs, c, c_off, c_rs, depth,
                     accumulate)

    def codegen(context, builder, signature, args):
        S = signature.args
        vals = int64_args(context, builder, args, S)
        ptrs = [context.make_array(S[i])(context, builder, vals[i]).data for i in (2, 6, 9)]
        ints = [vals[i] for i in (3, 4, 5, 7, 8, 10, 11, 12, 13)]
        fn = tile_function(context, builder.module, dtype, *shape)
        builder.call(fn, ptrs + ints)
        return context.get_dummy_value()

    return sig, codegen


def tile_function(context, module, dtype, n_r, n_v):
    """The LLVM function of one fma_tile variant in `module` (defined on first use):
    void (A*, B*, C*, a_off, a_rs, n_rows, b_off, b_rs, c_off, c_rs, depth, accumulate),
    all integers i64."""
    width = lanes_of(dtype)
    fty = context.get_value_type(dtype)
    name = f"fastmlp.fma_tile.{fty}.{n_r}x{n_v}"
    fn, new = internal_function(module, name, [fty.as_pointer()] * 3 + [_I64] * 9)
    if not new:
        return fn
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    (A, B, C, a_off_, a_rs_, n_rows_, b_off_, b_rs_, c_off_, c_rs_, depth_, acc_) = fn.args
    vty = ir.VectorType(fty, width)
    vptr = vty.as_pointer()
    fma = llvm_fma(module, vty)

    def vec_ptr(base, offset):
        return builder.bitcast(builder.gep(base, [offset]), vptr)

    def load_vec(base, offset):
        return builder.load(vec_ptr(base, offset), align=4)

    def store_vec(value, base, offset):
        builder.store(value, vec_ptr(base, offset), align=4)

    a_rows = row_starts(builder, A, a_off_, a_rs_, n_rows_, n_r)
    b_base = builder.gep(B, [b_off_])

    def k_step(k, acc):
        b_row = builder.gep(b_base, [builder.mul(k, b_rs_)])
        b_vecs = [load_vec(b_row, ir.Constant(_I64, v * width)) for v in range(n_v)]
        updated = []
        for r in range(n_r):
            a_val = splat(builder, builder.load(builder.gep(a_rows[r], [k])), vty)
            for v in range(n_v):
                updated.append(builder.call(fma, [a_val, b_vecs[v], acc[r * n_v + v]]))
        return updated

    acc = counted_loop(builder, "tile", ir.Constant(_I64, 0), depth_, 1,
                       [ir.Constant(vty, None)] * (n_r * n_v), k_step)
    adding = builder.icmp_signed("!=", acc_, ir.Constant(_I64, 0))
    for r in range(n_r):
        with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, r), n_rows_)):
            c_row = builder.gep(C, [builder.add(c_off_, builder.mul(ir.Constant(_I64, r),
                                                                     c_rs_))])
            for v in range(n_v):
                offset = ir.Constant(_I64, v * width)
                total = acc[r * n_v + v]
                store_vec(builder.select(adding, builder.fadd(load_vec(c_row, offset), total),
                                         total), c_row, offset)
    builder.ret_void()
    return fn


@intrinsic
def dot_tile(typingctx, rows_a, rows_b, a, a_off, lda, n_a, b, b_off, ldb, n_b, c, c_off, ldc,
             k, accumulate):
    """C[i, j] (+)= sum_{l < k} A[i, l] B[j, l] for i < n_a (<= rows_a), j < n_b (<= rows_b):
    a block of C = A @ B^T with both operands' rows contiguous along k (A[i, l] =
    a[a_off + i lda + l], B[j, l] = b[b_off + j ldb + l], C[i, j] = c[c_off + i ldc + j]).
    accumulate != 0 adds to C instead of overwriting it.

    Dot-product form: rows_a x rows_b vector accumulators run along k (one FMA per
    pair of rows per vector of k), then each is summed across its lanes; the k % lanes
    left over are added by scalar FMAs. rows_a, rows_b: literals. Rows past n_a / n_b
    re-read the last one and are not stored. One LLVM function per variant and module.
    """
    if not (isinstance(rows_a, types.IntegerLiteral) and isinstance(rows_b, types.IntegerLiteral)):
        return None
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    shape = (rows_a.literal_value, rows_b.literal_value)
    sig = types.void(rows_a, rows_b, a, a_off, lda, n_a, b, b_off, ldb, n_b, c, c_off, ldc, k,
                     accumulate)

    def codegen(context, builder, signature, args):
        S = signature.args
        vals = int64_args(context, builder, args, S)
        ptrs = [context.make_array(S[i])(context, builder, vals[i]).data for i in (2, 6, 10)]
        ints = [vals[i] for i in (3, 4, 5, 7, 8, 9, 11, 12, 13, 14)]
        builder.call(dot_function(context, builder.module, dtype, *shape), ptrs + ints)
        return context.get_dummy_value()

    return sig, codegen


def dot_function(context, module, dtype, n_r, n_q):
    """The LLVM function of one dot_tile variant in `module` (defined on first use):
    void (A*, B*, C*, a_off, lda, n_a, b_off, ldb, n_b, c_off, ldc, k, accumulate),
    integers i64."""
    width = lanes_of(dtype)
    fty = context.get_value_type(dtype)
    name = f"fastmlp.dot_tile.{fty}.{n_r}x{n_q}"
    fn, new = internal_function(module, name, [fty.as_pointer()] * 3 + [_I64] * 10)
    if not new:
        return fn
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    A, B, C, a_off_, lda_, n_a_, b_off_, ldb_, n_b_, c_off_, ldc_, k_, acc_ = fn.args
    vty = ir.VectorType(fty, width)
    vptr = vty.as_pointer()
    fma, sfma = llvm_fma(module, vty), llvm_fma(module, fty)
    a_rows = row_starts(builder, A, a_off_, lda_, n_a_, n_r)
    b_rows = row_starts(builder, B, b_off_, ldb_, n_b_, n_q)
    k_vec = builder.sub(k_, builder.srem(k_, ir.Constant(_I64, width)))

    def vector_step(l, acc):
        a_v = [builder.load(builder.bitcast(builder.gep(r, [l]), vptr), align=4) for r in a_rows]
        b_v = [builder.load(builder.bitcast(builder.gep(q, [l]), vptr), align=4) for q in b_rows]
        return [builder.call(fma, [a_v[i // n_q], b_v[i % n_q], acc[i]])
                for i in range(n_r * n_q)]

    acc = counted_loop(builder, "dot.vec", ir.Constant(_I64, 0), k_vec, width,
                       [ir.Constant(vty, None)] * (n_r * n_q), vector_step)
    sums = [horizontal_sum(builder, v) for v in acc]

    def scalar_step(l, part):
        a_s = [builder.load(builder.gep(r, [l])) for r in a_rows]
        b_s = [builder.load(builder.gep(q, [l])) for q in b_rows]
        return [builder.call(sfma, [a_s[i // n_q], b_s[i % n_q], part[i]])
                for i in range(n_r * n_q)]

    sums = counted_loop(builder, "dot.tail", k_vec, k_, 1, sums, scalar_step)
    adding = builder.icmp_signed("!=", acc_, ir.Constant(_I64, 0))
    for i in range(n_r):
        with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, i), n_a_)):
            c_row = builder.gep(C, [builder.add(c_off_, builder.mul(ir.Constant(_I64, i), ldc_))])
            for j in range(n_q):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(_I64, j), n_b_)):
                    ptr = builder.gep(c_row, [ir.Constant(_I64, j)])
                    total = sums[i * n_q + j]
                    builder.store(builder.select(adding, builder.fadd(builder.load(ptr), total),
                                                 total), ptr)
    builder.ret_void()
    return fn


def horizontal_sum(builder, vector):
    """The sum of a vector's lanes: halves added pairwise (log2(lanes) shuffles)."""
    lanes = vector.type.count
    while lanes > 1:
        half = lanes // 2
        lo = builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(_I32, half),
                                                                list(range(half))))
        hi = builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(_I32, half),
                                                                list(range(half, lanes))))
        vector = builder.fadd(lo, hi)
        lanes = half
    return builder.extract_element(vector, ir.Constant(_I32, 0))


@intrinsic
def pack_strip(typingctx, n_vec, dst, src, s_off, s_rs, depth):
    """dst[k * n_vec * lanes + j] = src[s_off + k s_rs + j] for k < depth and the
    n_vec (a literal) * lanes columns j: a strip of B copied to contiguous rows, by
    whole vectors."""
    if not isinstance(n_vec, types.IntegerLiteral):
        return None
    dtype = dst.dtype
    if dtype not in (types.float32, types.float64) or src.dtype != dtype:
        return None
    n_v = n_vec.literal_value
    width = lanes_of(dtype)
    sig = types.void(n_vec, dst, src, s_off, s_rs, depth)

    def codegen(context, builder, signature, args):
        S = signature.args
        s_off_, s_rs_, depth_ = int64_args(context, builder, args[3:], S[3:])
        vptr = ir.VectorType(context.get_value_type(dtype), width).as_pointer()
        D = context.make_array(S[1])(context, builder, args[1]).data
        src_base = builder.gep(context.make_array(S[2])(context, builder, args[2]).data,
                               [s_off_])
        with cgutils.for_range(builder, depth_) as loop:
            src_row = builder.gep(src_base, [builder.mul(loop.index, s_rs_)])
            dst_row = builder.gep(D, [builder.mul(loop.index, ir.Constant(_I64, n_v * width))])
            for v in range(n_v):
                offset = [ir.Constant(_I64, v * width)]
                value = builder.load(builder.bitcast(builder.gep(src_row, offset), vptr), align=4)
                builder.store(value, builder.bitcast(builder.gep(dst_row, offset), vptr),
                              align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def stack_buffer(typingctx, like, size):
    """A 1-d C-contiguous array of `size` (a literal int) elements of like's dtype, on
    the stack of the calling function (allocated once, in its entry block): scratch
    that costs no heap allocation inside a training step."""
    if not isinstance(size, types.IntegerLiteral):
        return None
    n = size.literal_value
    result = types.Array(like.dtype, 1, "C")
    sig = result(like, size)

    def codegen(context, builder, signature, args):
        fty = context.get_value_type(like.dtype)
        data = cgutils.alloca_once(builder, fty, size=n)
        itemsize = context.get_abi_sizeof(fty)
        array = context.make_array(result)(context, builder)
        context.populate_array(array, data=data, shape=[ir.Constant(_I64, n)],
                               strides=[ir.Constant(_I64, itemsize)],
                               itemsize=ir.Constant(_I64, itemsize), meminfo=None)
        return array._getvalue()

    return sig, codegen


def splat(builder, scalar, vector_type):
    """A vector with every lane equal to `scalar` (LLVM lowers it to one broadcast)."""
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar,
                                 ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vector_type.count), None))


@kernel(**JIT)
def panels(n, lanes):
    """Columns (n_wide, n_full): [0, n_wide) in VECTORS-wide panels, [n_wide, n_full)
    in NARROW_VECTORS-wide ones (at most 2, so that n_full covers every whole vector
    of n: 32 vectors = 10 x 3 + 1 x 2), the n - n_full left over are not tiled."""
    n_vec = n // lanes
    n_narrow = (-n_vec) % VECTORS
    if n_narrow * NARROW_VECTORS > n_vec:
        n_narrow = 0
    n_wide = (n_vec - n_narrow * NARROW_VECTORS) // VECTORS * VECTORS * lanes
    return n_wide, n_wide + n_narrow * NARROW_VECTORS * lanes


@kernel(**INLINED)
def gemm_bt(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """Row-major C (m, n) = A (m, k) @ B^T, B stored (n, k) (dX = dZ @ W^T of a dense
    layer) by dot tiles: both operands are read along their contiguous rows, so
    nothing is packed or transposed. Loops: DOT_B rows of B (in L1) against every
    DOT_A rows of A."""
    for j0 in range(0, n, DOT_B):
        for i0 in range(0, m, DOT_A):
            dot_tile(DOT_A, DOT_B, a, a_off + i0 * lda, lda, min(DOT_A, m - i0), b,
                     b_off + j0 * ldb, ldb, min(DOT_B, n - j0), c, c_off + i0 * ldc + j0, ldc, k,
                     0)


@kernel(**INLINED)
def rest_columns(m, rest, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """C (m, rest) = A (m, k) @ B (k, rest) for the few (< lanes) columns left of a
    tiled C = A @ B: each REST_B of B's columns is copied, REST_DEPTH of k at a time,
    to contiguous rows of a stack strip, and REST_A x REST_B dot tiles run along the
    rows of A and of the strip (W1's 100 x 1536 @ 1536 x 2: 12 us alone, against 43 by
    BLAS)."""
    strip = stack_buffer(c, REST_STRIP)
    for j0 in range(0, rest, REST_B):
        n_b = min(REST_B, rest - j0)
        for k0 in range(0, max(k, 1), REST_DEPTH):
            depth = min(REST_DEPTH, k - k0)
            for l in range(depth):  # row by row of B: each of its lines is read once
                for j in range(n_b):
                    strip[j * depth + l] = b[b_off + (k0 + l) * ldb + j0 + j]
            for i0 in range(0, m, REST_A):
                dot_tile(REST_A, REST_B, a, a_off + i0 * lda + k0, lda, min(REST_A, m - i0),
                         strip, 0, depth, n_b, c, c_off + i0 * ldc + j0, ldc, depth,
                         1 if k0 > 0 else 0)


@kernel(**INLINED)
def tile_gemm(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """Row-major C = A @ B on blocks of flat buffers (the layout of blas.gemm with
    alpha = 1, beta = 0 and no transposes): C (m, n) at c[c_off] with row stride ldc,
    A (m, k) at a[a_off] with row stride lda, B (k, n) at b[b_off] with row stride ldb.

    Loops: DEPTH-long passes over k (the first overwrites C, the rest add), then
    ROWS-row blocks of C, then its column panels, so a block's strip of A is reused
    from L1 by every panel and the pass's strip of B by every block (with a packed
    strip: panels outside, each packed once per pass). Columns: 3-vector panels,
    then up to two 2-vector ones (`panels`); the columns past the last whole vector
    by `rest_columns`.
    """
    if m == 0 or n == 0:
        return
    lanes = VECTOR_BYTES // c.itemsize
    panel = VECTORS * lanes
    narrow = NARROW_VECTORS * lanes
    n_wide, n_full = panels(n, lanes)
    rest = n - n_full
    strip = stack_buffer(c, STRIP_LEN)
    # B's rows a multiple of 128 bytes apart share few L1 sets (64 sets of 64-byte
    # lines): a strip of them evicts itself, so copy it to contiguous rows first
    packed = ldb * c.itemsize % 128 == 0
    for k0 in range(0, max(k, 1), DEPTH):
        depth = min(DEPTH, k - k0)
        adding = 1 if k0 > 0 else 0
        a0 = a_off + k0
        b0 = b_off + k0 * ldb
        if packed:
            for j0 in range(0, n_wide, panel):
                pack_strip(VECTORS, strip, b, b0 + j0, ldb, depth)
                for i0 in range(0, m, ROWS):
                    fma_tile(ROWS, VECTORS, a, a0 + i0 * lda, lda, min(ROWS, m - i0), strip, 0,
                             panel, c, c_off + i0 * ldc + j0, ldc, depth, adding)
        else:
            for i0 in range(0, m, ROWS):
                for j0 in range(0, n_wide, panel):
                    fma_tile(ROWS, VECTORS, a, a0 + i0 * lda, lda, min(ROWS, m - i0), b,
                             b0 + j0, ldb, c, c_off + i0 * ldc + j0, ldc, depth, adding)
        for i0 in range(0, m, NARROW_ROWS):
            for j0 in range(n_wide, n_full, narrow):
                fma_tile(NARROW_ROWS, NARROW_VECTORS, a, a0 + i0 * lda, lda,
                         min(NARROW_ROWS, m - i0), b, b0 + j0, ldb, c, c_off + i0 * ldc + j0,
                         ldc, depth, adding)
    if rest > 0:
        rest_columns(m, rest, k, a, a_off, lda, b, b_off + n_full, ldb, c, c_off + n_full, ldc)


# gemm_bt, tile_gemm and the leftover column functions (one caller each) are inlined
# into gemm_entry, and gemm_entry into the C entry's body, not compiled on their own and
# then linked in again (the cold first fit 0.3 s faster for the first).
@kernel(**JIT)
def tiles_pay_off(trans_a, trans_b, m, n, k, itemsize):
    """True for the products where the tiles measured faster than BLAS (see MAX_ROWS ...
    DOT_MIN_K_BYTES): a small batch (m <= MAX_ROWS) times a wide W (C = A @ B) or
    times W^T with long rows (C = A @ B^T). Never for C = A^T @ B."""
    if trans_a or m > MAX_ROWS:
        return False
    if trans_b:
        return k * itemsize >= DOT_MIN_K_BYTES
    return n * itemsize >= MIN_B_ROW_BYTES


@kernel(**INLINED)
def gemm_entry(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """`gemm` with int64 integers: by the tiles where the host has them (TILES) and they
    pay off (tiles_pay_off), by BLAS otherwise."""
    if not (TILES and tiles_pay_off(trans_a, trans_b, m, n, k, c.itemsize)):
        one, zero = c.dtype.type(1.0), c.dtype.type(0.0)
        blas_gemm(trans_a, trans_b, m, n, k, one, a, a_off, lda, b, b_off, ldb, zero, c, c_off,
                  ldc)
    elif trans_b:
        gemm_bt(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)
    else:
        tile_gemm(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)


# The GEMM is compiled once per dtype as a C function (numba.cfunc) and linked by name
# (llvmlite.binding.add_symbol), not as a Numba function: Numba links a callee's code
# into every caller and optimises it again there, and again in each caller up the
# chain (each prange loop is one more level). The tiles are most of the code: with
# them linked statically a first fit compiled in 41-46 s, with BLAS alone in 23 s.
_C_NAMES = {types.float32: "fastmlp_gemm_f32", types.float64: "fastmlp_gemm_f64"}
_C_ENTRIES = {}


@kernel(**JIT)
def stored_extent(rows, cols, ld):
    """Elements spanned by a (rows, cols) block with row stride ld (0 when empty)."""
    return (rows - 1) * ld + cols if rows > 0 and cols > 0 else 0


def _entry_body(trans_a, trans_b, m, n, k, a_ptr, lda, b_ptr, ldb, c_ptr, ldc):
    """gemm_entry on blocks given by their first element's address (the C entry)."""
    a = carray(a_ptr, (stored_extent(k if trans_a else m, m if trans_a else k, lda),))
    b = carray(b_ptr, (stored_extent(n if trans_b else k, k if trans_b else n, ldb),))
    c = carray(c_ptr, (stored_extent(m, n, ldc),))
    zero = np.int64(0)
    gemm_entry(trans_a, trans_b, m, n, k, a, zero, lda, b, zero, ldb, c, zero, ldc)


def _c_signature(dtype):
    ptr, i64 = types.CPointer(dtype), types.int64
    return types.void(i64, i64, i64, i64, i64, ptr, i64, ptr, i64, ptr, i64)


def entry_type(dtype):
    """The Numba float type whose C entry serves numpy dtype `dtype` (float32, else
    float64)."""
    return types.float32 if np.dtype(dtype) == np.float32 else types.float64


def link_gemm(dtype):
    """Compile (or load from the cache) the C entry for `dtype` (np.float32 / np.float64)
    and register its address under its name. Must run before any kernel that calls
    `gemm` is first called in a process (model.py and training.py call it)."""
    ty = entry_type(dtype)
    if ty not in _C_ENTRIES:
        entry = compiled_c(_c_signature(ty), **C_FUNCTION)(_entry_body)
        llvm.add_symbol(_C_NAMES[ty], entry.address)
        _C_ENTRIES[ty] = entry
    return _C_ENTRIES[ty]


def stand_in_gemm(dtype, address):
    """Register the C entry's name for `dtype` at `address` without compiling it: only
    for a process that compiles kernels into the cache and never runs them
    (kernels/split_compile.py; c_entry.stand_in)."""
    ty = entry_type(dtype)
    if ty not in _C_ENTRIES:
        llvm.add_symbol(_C_NAMES[ty], address)


@intrinsic
def call_c_gemm(typingctx, trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """Call the C entry of c's dtype (fastmlp_gemm_f32 / _f64, see link_gemm) with
    pointers to a[a_off], b[b_off], c[c_off]; integers as int64."""
    dtype = getattr(c, "dtype", None)
    if dtype not in _C_NAMES or not all(isinstance(x, types.Array) and x.dtype == dtype
                                        for x in (a, b, c)):
        return None
    sig = types.void(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)

    def codegen(context, builder, signature, args):
        ints = int64_args(context, builder, args, signature.args)
        ptr = context.get_value_type(dtype).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [_I64] * 5 + [ptr, _I64] * 3), _C_NAMES[dtype])

        def element(i):   # pointer to array argument i at the offset that follows it
            arr = context.make_array(signature.args[i])(context, builder, args[i])
            return builder.gep(arr.data, [ints[i + 1]])

        builder.call(fn, ints[:5] + [element(5), ints[7], element(8), ints[10], element(11),
                                     ints[13]])
        return context.get_dummy_value()

    return sig, codegen


@kernel(**JIT)
def gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """Row-major C = op(A) @ op(B) on blocks of flat buffers (blas.gemm's arguments
    without alpha and beta: C is overwritten), by tiles or BLAS (`gemm_entry`, through
    its C entry: see link_gemm). Integer arguments of any type."""
    if m > 0 and n > 0:
        call_c_gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)
