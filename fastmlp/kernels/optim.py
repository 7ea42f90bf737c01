"""Optimizer updates over the flat parameter buffer, one parallel pass per step.

The backward pass leaves one partial gradient per row chunk in
grads[c, :] (c < n_parts). Each update first folds the partials into grads[0]
(block by block, while the block is in cache), adds the L2 term 2 * l2 * p of
the block's segment (DD2424 convention: cost = loss + l2 * ||W||^2), then
applies the rule. `blocks` (n_blocks, 3) int64 rows are (start, stop, segment);
`seg_l2` (n_segments,) float64 holds each segment's l2 coefficient.
Optimizer state `state` (n_slots, n_params) has the same layout as params.
Kernel codes: SGD = 0 (with momentum / Nesterov), ADAM = 1.
"""
import numpy as np
from numba import njit, prange

from .._config import JIT, JIT_PARALLEL

SGD = 0
ADAM = 1


@njit(**JIT)
def reduce_block(params, grads, n_parts, start, stop, l2):
    """grads[0, start:stop] = sum_c grads[c, start:stop] + 2 * l2 * params[start:stop]."""
    g = grads[0]
    for c in range(1, n_parts):
        gc = grads[c]
        for i in range(start, stop):
            g[i] += gc[i]
    if l2 != 0.0:
        two_l2 = params.dtype.type(2.0 * l2)
        for i in range(start, stop):
            g[i] += two_l2 * params[i]


@njit(**JIT_PARALLEL)
def reduce_gradients(params, grads, blocks, seg_l2, n_parts):
    """Fold the chunk partials (and L2 term) into grads[0] without updating."""
    for kb in prange(blocks.shape[0]):
        reduce_block(params, grads, n_parts, blocks[kb, 0], blocks[kb, 1], seg_l2[blocks[kb, 2]])


@njit(**JIT_PARALLEL)
def sgd_step(params, grads, state, blocks, seg_l2, n_parts, lr, momentum, nesterov):
    """SGD with optional (Nesterov) momentum, PyTorch's form (Sutskever et al. 2013).

    g = grad + 2 l2 p;  without momentum: p -= lr g.
    With momentum mu: v = mu v + g; p -= lr (g + mu v) if nesterov else lr v.
    state[0] holds v.
    """
    t = params.dtype.type
    lr_, mu = t(lr), t(momentum)
    for kb in prange(blocks.shape[0]):
        start, stop = blocks[kb, 0], blocks[kb, 1]
        reduce_block(params, grads, n_parts, start, stop, seg_l2[blocks[kb, 2]])
        g = grads[0]
        if momentum == 0.0:
            for i in range(start, stop):
                params[i] -= lr_ * g[i]
        else:
            v = state[0]
            if nesterov:
                for i in range(start, stop):
                    vi = mu * v[i] + g[i]
                    v[i] = vi
                    params[i] -= lr_ * (g[i] + mu * vi)
            else:
                for i in range(start, stop):
                    vi = mu * v[i] + g[i]
                    v[i] = vi
                    params[i] -= lr_ * vi


@njit(**JIT_PARALLEL)
def adam_step(params, grads, state, blocks, seg_l2, n_parts, lr, b1, b2, eps, step):
    """Adam (Kingma & Ba 2015), PyTorch's documented form; step is 1-based.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    state[0] = m, state[1] = v.
    """
    t = params.dtype.type
    step_size = t(lr / (1.0 - b1 ** step))
    inv_sqrt_bc2 = t(1.0 / np.sqrt(1.0 - b2 ** step))
    b1_, b2_ = t(b1), t(b2)
    c1, c2 = t(1.0 - b1), t(1.0 - b2)
    eps_ = t(eps)
    for kb in prange(blocks.shape[0]):
        start, stop = blocks[kb, 0], blocks[kb, 1]
        reduce_block(params, grads, n_parts, start, stop, seg_l2[blocks[kb, 2]])
        g = grads[0]
        m = state[0]
        v = state[1]
        for i in range(start, stop):
            gi = g[i]
            mi = b1_ * m[i] + c1 * gi
            vi = b2_ * v[i] + c2 * gi * gi
            m[i] = mi
            v[i] = vi
            params[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps_)


@njit(**JIT)
def optimizer_step(kind, hyper, lr, step, params, grads, state, blocks, seg_l2, n_parts):
    """Dispatch one update. hyper (float64): SGD (momentum, nesterov); ADAM (b1, b2, eps)."""
    if kind == SGD:
        sgd_step(params, grads, state, blocks, seg_l2, n_parts, lr, hyper[0], hyper[1] != 0.0)
    elif kind == ADAM:
        adam_step(params, grads, state, blocks, seg_l2, n_parts, lr, hyper[0], hyper[1], hyper[2], step)
