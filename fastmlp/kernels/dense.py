"""Fully connected layer on a chunk of rows: GEMM + fused epilogue.

Operands are C-contiguous 2-D views; they reach `tile_gemm.gemm` (register tiles or
BLAS, by shape) as flat views. np.dot would always take BLAS, and its three operand
layouts cost three more compilations of its implementation on the first run.
"""
import numpy as np

from .._config import JIT, kernel
from .activations import act_backward, bias_act_forward
from .tile_gemm import gemm


@kernel(**JIT)
def matmul(A, B, C, trans_a, trans_b):
    """C = op(A) @ op(B) for C-contiguous 2-D arrays; op transposes when trans_* is 1.
    C (m, n) is overwritten (register tiles or BLAS, by shape: kernels/tile_gemm.py)."""
    m, n = C.shape
    k = A.shape[0] if trans_a else A.shape[1]
    gemm(trans_a, trans_b, m, n, k, A.reshape(-1), 0, A.shape[1], B.reshape(-1), 0, B.shape[1],
         C.reshape(-1), 0, n)


@kernel(**JIT)
def dense_forward(X, W, b, Z, act, alpha):
    """Z = act(X @ W + b).

    X (rows, n_in), W (n_in, n_out), b (n_out,); writes Z (rows, n_out).
    Bias and activation are applied in one pass over Z right after the GEMM,
    while Z is still in cache.
    """
    matmul(X, W, Z, np.int64(0), np.int64(0))
    bias_act_forward(Z, b, act, alpha)


@kernel(**JIT)
def column_sums(G, out):
    """out[j] = sum_i G[i, j]. G (rows, d), out (d,) overwritten."""
    out[:] = 0
    for i in range(G.shape[0]):
        row = G[i]
        for j in range(G.shape[1]):
            out[j] += row[j]


@kernel(**JIT)
def dense_backward(X, W, A, dA, dW, db, dX, act, alpha, need_dx):
    """Backward of Z = X @ W + b, A = act(Z), for one chunk of rows.

    Inputs X (rows, n_in), W (n_in, n_out), A (rows, n_out).
    Mutates dA (rows, n_out) in place into dZ = dA * act'(Z); writes the
    chunk's partial gradients dW = X^T dZ (n_in, n_out), db = sum_rows dZ
    (n_out,) and, when need_dx, dX = dZ W^T (rows, n_in).
    """
    act_backward(dA, A, act, alpha)
    matmul(X, dA, dW, np.int64(1), np.int64(0))
    column_sums(dA, db)
    if need_dx:
        matmul(dA, W, dX, np.int64(0), np.int64(1))


@kernel(**JIT)
def dense_backward_rows(W, A, dA, db, dX, act, alpha, need_dx):
    """Row-chunk part of the tiled dense backward (dW is computed later by row tiles).

    As dense_backward for one chunk of rows, without a dW partial.
    """
    act_backward(dA, A, act, alpha)
    column_sums(dA, db)
    if need_dx:
        matmul(dA, W, dX, np.int64(0), np.int64(1))
