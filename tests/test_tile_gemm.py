"""The register-tiled GEMM (kernels/tile_gemm.py) against numpy's float64 product,
on strided blocks of flat buffers, its two operand forms (A @ B, A @ B^T), the
shapes where its panels, row blocks, k passes and leftover columns meet, and the
dispatch between the tiles and BLAS (whose three operand forms `gemm` serves)."""
import numba
import numpy as np
import pytest

import fastmlp as fm
from _helpers import python_callable
from fastmlp.kernels import blas, tile_gemm as tg
from fastmlp.plan import input_stride

blas_gemm = python_callable(blas.gemm)
tiles_pay_off = python_callable(tg.tiles_pay_off)
tg.link_gemm(np.float32)   # the C entry that tg.gemm calls
tg.link_gemm(np.float64)


@numba.njit
def tile_gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """The tile path itself, without the choice between tiles and BLAS: dot tiles for
    A @ B^T, register tiles for A @ B (trans_a must be 0)."""
    if trans_b:
        tg.gemm_bt(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)
    else:
        tg.tile_gemm(m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)


@numba.njit
def gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    """tg.gemm (callable from compiled code only), through its C entry point."""
    tg.gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)

GUARD = 7.25  # every element of C's buffer outside the block must keep this value


def blocks(rng, dtype, trans_a, trans_b, m, n, k, pad=3):
    """Flat buffers holding op(A) (m, k), op(B) (k, n) and C (m, n) as blocks with row
    strides wider than the rows and nonzero offsets; returns the buffers, their
    (offset, stride) and the float64 reference product."""
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb, ldc = a_cols + pad, b_cols + pad + 1, n + pad + 2
    a_off, b_off, c_off = 5, 2, 4
    a = rng.normal(size=a_off + max(a_rows, 1) * lda).astype(dtype)
    b = rng.normal(size=b_off + max(b_rows, 1) * ldb).astype(dtype)
    c = np.full(c_off + m * ldc + 3, GUARD, dtype)
    A = a[a_off: a_off + a_rows * lda].reshape(a_rows, lda)[:, :a_cols].astype(np.float64)
    B = b[b_off: b_off + b_rows * ldb].reshape(b_rows, ldb)[:, :b_cols].astype(np.float64)
    expected = (A.T if trans_a else A) @ (B.T if trans_b else B)
    return (a, a_off, lda), (b, b_off, ldb), (c, c_off, ldc), expected


def c_block(c, c_off, ldc, m, n):
    return c[c_off: c_off + m * ldc].reshape(m, ldc)[:, :n]


def outside_block(c, c_off, ldc, m, n):
    mask = np.ones(c.shape, bool)
    for i in range(m):
        mask[c_off + i * ldc: c_off + i * ldc + n] = False
    return c[mask]


TOL = {np.float32: 2e-4, np.float64: 1e-12}


def assert_same_weights(model, other):
    """Two float64 models' weights agree to rounding (the GEMMs differ in summation order)."""
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1)])
@pytest.mark.parametrize("m,n,k", [
    (100, 50, 300),   # 2 panels + 2 leftover columns, 3 k passes
    (5, 24, 128),     # one panel, a partial row block, exactly one k pass
    (3, 48, 129),     # rows fewer than a tile, a 1-long last k pass
    (50, 52, 1),      # 4 leftover columns, k = 1
    (29, 60, 77),     # 4 leftover float32 columns
    (100, 64, 130),   # B's strips packed (rows 256 bytes apart), 2 k passes
    (150, 47, 2100),  # 7 leftover f32 columns (3 f64): 3 blocks of k for the leftover columns
    (97, 25, 40),     # 1 leftover column
    (60, 51, 300),    # 3 leftover columns
    (1, 64, 40),
    (4, 30, 0),       # k = 0: C = 0
    (32, 256, 130),   # 10 wide + 1 narrow float32 panels; A @ B^T: a k tail of 2 (f32)
    (33, 41, 600),    # A @ B^T: partial dot tiles in both directions
    (20, 64 + 16, 9), # 2 wide + 2 narrow float32 panels (the narrow rows: 6, 6, 6, 2)
])
def test_tile_gemm_matches_numpy(dtype, trans_a, trans_b, m, n, k):
    rng = np.random.default_rng(m * 1000 + n * 10 + k)
    (a, a_off, lda), (b, b_off, ldb), (c, c_off, ldc), expected = blocks(
        rng, dtype, trans_a, trans_b, m, n, k)
    tile_gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(c_block(c, c_off, ldc, m, n), expected, rtol=0,
                               atol=TOL[dtype] * scale * max(1, k) ** 0.5)
    assert (outside_block(c, c_off, ldc, m, n) == GUARD).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1)])
@pytest.mark.parametrize("n", [10, 50, 200])
@pytest.mark.parametrize("m,k", [(32, 90), (37, 200)])
def test_gemm_dispatch_matches_numpy(dtype, trans_a, trans_b, n, m, k):
    """`gemm` (tiles or BLAS, by shape) gives the same product whichever path it takes."""
    rng = np.random.default_rng(n + 7 * trans_a + 13 * trans_b + m)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    C = np.full((m, n), GUARD, dtype)
    gemm(trans_a, trans_b, m, n, k, A.ravel(), 0, A.shape[1], B.ravel(), 0, B.shape[1],
         C.ravel(), 0, n)
    A64, B64 = A.astype(np.float64), B.astype(np.float64)
    expected = (A64.T if trans_a else A64) @ (B64.T if trans_b else B64)
    np.testing.assert_allclose(C, expected, rtol=0, atol=TOL[dtype] * 10 * np.abs(expected).max())


@pytest.mark.parametrize("trans_a,trans_b,m,n,k", [
    (0, 0, 32, 256, 512),   # W3's forward at batch 32 (one thread's columns)
    (0, 0, 16, 512, 784),   # W3's first layer, one thread's 16 rows
    (0, 1, 32, 256, 512),   # W3's dX at batch 32
    (0, 0, 5, 130, 9),      # 2 leftover columns after the panels
])
def test_tile_gemm_is_what_dispatch_runs_for_skinny_products(trans_a, trans_b, m, n, k):
    """Guards the dispatch rule: these float32 products go to the tiles (where the host
    has AVX2 and FMA), and `gemm`, through its C entry point, gives the tiles' bits."""
    assert tiles_pay_off(trans_a, trans_b, m, n, k, 4)
    if not tg.TILES:   # a host without the tiles' features: every product is BLAS's
        assert not tg.host_has_tile_features() or tg.GEMM_MODE == "blas"
        return
    rng = np.random.default_rng(1)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(np.float32)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(np.float32)
    via_gemm = np.zeros((m, n), np.float32)
    via_tiles = np.zeros((m, n), np.float32)
    args = (A.ravel(), 0, A.shape[1], B.ravel(), 0, B.shape[1])
    gemm(trans_a, trans_b, m, n, k, *args, via_gemm.ravel(), 0, n)
    tile_gemm(trans_a, trans_b, m, n, k, *args, via_tiles.ravel(), 0, n)
    np.testing.assert_array_equal(via_gemm, via_tiles)


@pytest.mark.parametrize("trans_a,trans_b,m,n,k", [
    (0, 0, 256, 512, 512),   # W3's forward at batch 256: BLAS
    (0, 0, 33, 512, 512),    # one row more than the tiles take
    (1, 0, 512, 512, 256),   # W3's dW at batch 256
    (1, 0, 256, 512, 32),    # W3's dW at batch 32: dW is always BLAS's
    (0, 0, 100, 50, 1536),   # W1's forward (100 rows, 50 columns)
    (0, 0, 16, 100, 784),    # 100 columns: narrower than MIN_B_ROW_BYTES
    (0, 1, 128, 512, 512),   # W3's dX at batch 256 (128 rows per thread)
    (0, 1, 16, 512, 32),     # dX of rows shorter than DOT_MIN_K_BYTES
])
def test_blas_takes_the_large_and_the_narrow_products(trans_a, trans_b, m, n, k):
    assert not tiles_pay_off(trans_a, trans_b, m, n, k, 4)


@pytest.mark.parametrize("d,expected", [(3072, 3088), (784, 784), (3073, 3088), (10, 16),
                                        (48, 48)])
def test_input_stride_is_an_odd_multiple_of_16(d, expected):
    assert input_stride(d) == expected
    assert input_stride(d) >= d and input_stride(d) % 32 == 16


def test_two_thread_fit_through_tiles_and_padded_batch_matches_one_thread():
    """A float64 net whose first layer is split along its 160 inputs on 2 threads: the
    batch buffer gets padded rows (stride 176) and each thread's half of the first
    layer's forward (16 rows x 80 inputs x 66 columns) goes through the tiles (4 wide
    and 2 narrow panels, 2 columns left over). One thread runs the unsplit product;
    both must train the same weights."""
    import fastmlp.kernels.layout as L

    rng = np.random.default_rng(5)
    X = rng.normal(size=(90, 160))
    y = rng.integers(0, 3, size=90)
    assert tiles_pay_off(0, 0, 16, 66, 80, 8)

    def fit(n_threads):
        model = fm.Sequential([fm.Dense(66), fm.BatchNorm(), fm.ReLU(), fm.Dense(3),
                               fm.Softmax()], dtype=np.float64, seed=0)
        model.fit(X, y, epochs=2, batch_size=16, l2=0.01, verbose=0, n_threads=n_threads)
        return model

    two = fit(2)
    ops = two.plan.ops_for_batch(16, 2)
    assert ops[0, L.F_TILED] == L.TILE_K and ops[0, L.F_LD] == input_stride(160) == 176
    assert (ops[1:, L.F_LD] == ops[1:, L.F_NIN]).all()
    one = fit(1)
    assert_same_weights(two, one)


@pytest.mark.parametrize("batch_size, wide_split", [(32, "cols"), (64, "cols"), (65, "rows"),
                                                     (256, "rows")])
def test_auto_splits_wide_layers_by_columns_only_at_small_batches(batch_size, wide_split):
    """On 2 threads the 512-wide layers of a W3-like net are split by columns while a
    thread gets <= plan.COLUMN_SPLIT_MAX_ROWS rows, by rows above; the 10-wide head
    never by columns (too narrow) but along its 512 inputs, and one thread tiles nothing."""
    import fastmlp.kernels.layout as L

    model = fm.Sequential([fm.Dense(512), fm.BatchNorm(), fm.ReLU(), fm.Dense(512),
                           fm.ReLU(), fm.Dense(10), fm.Softmax()], seed=0)
    model.build(784)
    ops = model.plan.ops_for_batch(batch_size, 2)
    tiled = ops[ops[:, L.F_KIND] == L.OP_DENSE, L.F_TILED]
    wide = L.TILE_COLS if wide_split == "cols" else L.TILE_DW
    assert list(tiled) == [wide, wide, L.TILE_K]
    one = model.plan.ops_for_batch(batch_size, 1)
    assert (one[:, L.F_TILED] == L.TILE_NONE).all()


def test_two_thread_column_split_fit_through_tiles_matches_one_thread(monkeypatch):
    """A float64 net at batch 24 with its dense layers split by columns on 2 threads
    (as W3's 512-wide layers are): the forward (24 rows x 32 columns per thread), dW
    (k = 24) and dX (C = dZ @ W^T, 24 rows: as C^T = W @ dZ^T) all go through the
    tiles, and the ragged last batch (18 rows) leaves 2 rows to BLAS. One thread runs
    BLAS only; both must train the same weights."""
    import fastmlp.kernels.layout as L
    import fastmlp.plan

    monkeypatch.setattr(fastmlp.plan, "COLUMN_SPLIT", "always")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(90, 40))
    y = rng.integers(0, 3, size=90)

    def fit(n_threads):
        model = fm.Sequential([fm.Dense(64), fm.BatchNorm(), fm.ReLU(), fm.Dense(48),
                               fm.ReLU(), fm.Dense(3), fm.Softmax()], dtype=np.float64, seed=0)
        model.fit(X, y, epochs=2, batch_size=24, optimizer=fm.SGD(0.05, momentum=0.9),
                  verbose=0, n_threads=n_threads)
        return model

    two = fit(2)
    ops = two.plan.ops_for_batch(24, 2)
    dense = ops[:, L.F_KIND] == L.OP_DENSE
    assert (ops[dense, L.F_TILED] == L.TILE_COLS).all()
    one = fit(1)
    assert_same_weights(two, one)


@pytest.mark.parametrize("make_opt", [
    lambda: fm.Adam(1e-2, weight_decay=0.1, noise=fm.GradientNoise(0.01, 0.55, 3)),
    lambda: fm.SGD(0.05, momentum=0.9, nesterov=True),
])
def test_per_tile_update_with_penalties_matches_one_thread(make_opt, monkeypatch):
    """On 2 threads each tiled W is updated by the optimizer right after its dW tile
    (loop.dense_weight_tiles), the other parameters in the streaming pass; one thread
    updates everything in that pass. With L2 and L1 penalties, decoupled weight decay
    and gradient noise (drawn by parameter index), both must train the same weights."""
    import fastmlp.plan

    monkeypatch.setattr(fastmlp.plan, "COLUMN_SPLIT", "always")
    rng = np.random.default_rng(8)
    X = rng.normal(size=(100, 40))
    y = rng.integers(0, 3, size=100)

    def fit(n_threads):
        model = fm.Sequential([fm.Dense(32), fm.ReLU(), fm.Dense(32), fm.Tanh(), fm.Dense(3),
                               fm.Softmax()], dtype=np.float64, seed=0)
        model.fit(X, y, epochs=2, batch_size=20, optimizer=make_opt(), l2=0.01, l1=0.001,
                  verbose=0, n_threads=n_threads)
        return model

    two, one = fit(2), fit(1)
    assert_same_weights(two, one)
