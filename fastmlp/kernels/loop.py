"""The compiled training step and evaluation pass over a plan (op table).

A plan is an int64 table `ops` (n_ops, N_FIELDS) plus a float64 table `opf`
(n_ops, 3) built once in Python (see fastmlp/plan.py). Activations live in one
flat workspace `ws`; buffer k of width d starts at ops[..][F_IN/F_OUT] and holds
(B, d) rows for the current batch size B. `gws` has the same layout and holds
gradients. Rows are split into `n_chunks` contiguous chunks, one per thread of
the team (kernels/sync.py; thread t takes chunk t): every op runs chunk-parallel,
single-threaded BLAS inside each chunk, and the threads meet at a barrier only
where one reads what another wrote: the BatchNorm statistics, the tiled dense
ops, the loss sum and the optimizer update (which folds the per-chunk partial
gradients grads[c]). The passes take `team` = (thread, n_threads, sync).
"""
import numpy as np
from numba import njit

from .._config import ENTRY, INLINED, JIT
from .augment import augment_batch
from .tile_gemm import gemm as gemm_by_shape
from .batchnorm import (bn_backward_dx, bn_backward_sums, bn_finalize_stats,
                        bn_normalize, bn_partial_stats, bn_running_stats)
from .dense import dense_backward, dense_backward_rows, dense_forward
from .activations import act_backward, act_forward, bias_act_forward
from .dropout import dropout_backward, dropout_forward
from .late_call import late_call
from .losses import margin_loss, mse, multiclass_hinge, sigmoid_bce, softmax_xent
from .optim import step_scalars, update_blocks, update_range
from .schedule import schedule_lr
from .sync import barrier, chunk_rows

# op kinds
OP_DENSE = 1
OP_BN = 2
OP_ACT = 3
OP_LOSS = 4      # the output head: loss code in F_ACT, margin in G_ALPHA
OP_DROPOUT = 5   # rate in G_ALPHA, mask in F_AUX
OP_ADD = 6       # residual sum: out = in + ws[F_AUX] (the block's input)
OP_SKIP = 7      # marks a residual block's input F_IN; backward adds gws[F_AUX] (the sum's gradient)
# loss codes (F_ACT of the head)
LOSS_SOFTMAX_CE = 0
LOSS_MSE = 1
LOSS_SIGMOID_BCE = 2
LOSS_MC_HINGE = 3
LOSS_MARGIN = 4

# int fields of an op row
F_KIND = 0
F_NIN = 1      # input width
F_NOUT = 2     # output width
F_ACT = 3      # fused activation code
F_IN = 4       # workspace base of the input buffer
F_OUT = 5      # workspace base of the output buffer
F_P0 = 6       # param offset: W (dense) / gamma (bn)
F_P1 = 7       # param offset: b (dense) / beta (bn)
F_AUX = 8      # workspace base of x_hat (bn)
F_STATE = 9    # bn: offset of running mean in bn_run (running var follows)
F_STAT = 10    # bn: offset of batch mean in bn_stats (inv_std follows); of sums in bn_parts
F_NEED_DX = 11 # 1 if the gradient wrt the input is needed
F_SEG = 12     # dense: segment index of W (its row in the penalty table)
F_TILED = 13   # dense: how the work splits across threads (TILE_* below)
F_LD = 14      # row stride of the input buffer (n_in, or more for a padded batch buffer)
N_FIELDS = 15
# F_TILED values: dW as per-chunk partials / by row tiles of W (dense_weight_tiles) /
# row tiles, and the forward and dX by column blocks too (every thread reads only its
# part of W: for small batches W is most of the traffic)
TILE_NONE = 0
TILE_DW = 1
TILE_COLS = 2
TILE_K = 3   # row tiles for dW; the forward GEMM split along n_in (partial sums, then added)
# float fields
G_ALPHA = 0
G_EPS = 1
G_MOMENTUM = 2


@njit(**JIT)
def copy_into(src, dst):
    """dst[i] = src[i] for flat (1-D) arrays of equal length."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit(**JIT)
def add_into(src, dst):
    """dst[i] += src[i] for flat (1-D) arrays of equal length."""
    for i in range(src.shape[0]):
        dst[i] += src[i]


@njit(**JIT)
def rows(buf, base, width, r0, r1):
    """Rows r0:r1 of the (B, width) matrix stored at buf[base:], as a C-contiguous view."""
    return buf[base + r0 * width: base + r1 * width].reshape((r1 - r0, width))


@njit(**JIT)
def mat(flat, offset, n_rows, n_cols):
    """(n_rows, n_cols) C-contiguous view of flat[offset:]."""
    return flat[offset: offset + n_rows * n_cols].reshape((n_rows, n_cols))


@njit(**JIT)
def gather_batch(X, y, T, order, pos, n_rows, n_chunks, ws, base, ld, yb, Tb, team):
    """Copy the batch's rows X[order[pos + i]] (i < n_rows) into the (n_rows, n_features)
    buffer at ws[base:] with row stride ld, and their targets into yb / Tb
    (gather_labels); each thread copies its own chunks' rows."""
    d = X.shape[1]
    for c in range(team[0], n_chunks, team[1]):
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        for i in range(r0, r1):
            src = X[order[pos + i]]
            dst = ws[base + i * ld: base + i * ld + d]
            for j in range(d):
                dst[j] = src[j]
        gather_labels(y, T, order, pos, r0, r1, yb, Tb)


@njit(**INLINED)
def forward_chunk(ops, opf, k, params, bn_stats, ws, r0, r1, training, seed, step, dropout):
    """Forward of op k (dense, activation, dropout, residual sum, or the normalise pass
    of bn) on rows r0:r1. dropout: a compile-time switch (see run_batches)."""
    kind = ops[k, F_KIND]
    n_in, n_out, act = ops[k, F_NIN], ops[k, F_NOUT], ops[k, F_ACT]
    alpha = opf[k, G_ALPHA]
    X = rows(ws, ops[k, F_IN], n_in, r0, r1)
    A = rows(ws, ops[k, F_OUT], n_out, r0, r1)
    p0, p1 = ops[k, F_P0], ops[k, F_P1]
    if kind == OP_DENSE:
        dense_forward(X, mat(params, p0, n_in, n_out), params[p1: p1 + n_out], A, act, alpha)
    elif kind == OP_BN:
        s = ops[k, F_STAT]
        bn_normalize(X, bn_stats[s: s + n_out], bn_stats[s + n_out: s + 2 * n_out],
                     params[p0: p0 + n_out], params[p1: p1 + n_out],
                     rows(ws, ops[k, F_AUX], n_out, r0, r1), A, act, alpha)
    elif kind == OP_ACT:
        act_forward(X, A, act, alpha)
    elif kind == OP_DROPOUT and dropout is not None:
        if training:
            dropout_forward(X, A, rows(ws, ops[k, F_AUX], n_in, r0, r1), alpha, seed,
                            step * ops.shape[0] + k, r0)
        else:
            copy_into(ws[ops[k, F_IN] + r0 * n_in: ops[k, F_IN] + r1 * n_in],
                      ws[ops[k, F_OUT] + r0 * n_out: ops[k, F_OUT] + r1 * n_out])
    elif kind == OP_ADD:
        S = rows(ws, ops[k, F_AUX], n_in, r0, r1)
        for i in range(X.shape[0]):
            for j in range(n_in):
                A[i, j] = X[i, j] + S[i, j]


@njit(**INLINED)
def bn_batch_stats(ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows, n_chunks, training,
                   update_running, team):
    """Fill bn_stats (mean, inv_std) of bn op k: batch statistics when training, else
    running ones. Thread 0 writes them; every thread returns after they are written."""
    d = ops[k, F_NIN]
    s, r = ops[k, F_STAT], ops[k, F_STATE]
    mean = bn_stats[s: s + d]
    inv_std = bn_stats[s + d: s + 2 * d]
    eps = opf[k, G_EPS]
    base = ops[k, F_IN]
    shift = ws[base: base + d]  # the first sample of the batch (thread 0's rows)
    if training:
        barrier(team)  # the shift row is written
        for c in range(team[0], n_chunks, team[1]):
            r0, r1 = chunk_rows(n_rows, n_chunks, c)
            bn_partial_stats(rows(ws, base, d, r0, r1), shift,
                             bn_parts[c, s: s + d], bn_parts[c, s + d: s + 2 * d])
        barrier(team)
    if team[0] == 0:
        if training:
            bn_finalize_stats(bn_parts[:, s: s + d], bn_parts[:, s + d: s + 2 * d], n_chunks,
                              shift, n_rows, eps, opf[k, G_MOMENTUM], mean, inv_std,
                              bn_run[r: r + d], bn_run[r + d: r + 2 * d], update_running)
        else:
            bn_running_stats(bn_run[r: r + d], bn_run[r + d: r + 2 * d], eps, mean, inv_std)
    barrier(team)


@late_call
@njit(**JIT)
def forward_pass(ops, opf, params, bn_run, bn_stats, bn_parts, ws, gws, n_rows, n_chunks,
                 training, update_running, seed, step, dropout, team):
    """Run every op but the loss head on the n_rows rows already in the input buffer.
    seed and step (the update count) select the dropout masks. gws (the gradient
    workspace) is scratch here: a K-split dense op keeps its partial sums there.

    Row-chunked ops need no barrier between them: a thread reads only the rows it
    wrote. A column-split or K-split op reads every row of its input (barrier
    before); a column split writes a block of every row (barrier after), a K split
    sums the partials of every thread (barrier between)."""
    t, n_threads = team[0], team[1]
    for k in range(ops.shape[0] - 1):
        if ops[k, F_KIND] == OP_BN:
            bn_batch_stats(ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows, n_chunks,
                           training, update_running, team)
        if ops[k, F_KIND] == OP_SKIP:
            continue
        split = ops[k, F_TILED] if ops[k, F_KIND] == OP_DENSE else TILE_NONE
        if split == TILE_COLS or split == TILE_K:
            barrier(team)
        for c in range(t, n_chunks, n_threads):
            if split == TILE_COLS:
                c0, c1 = chunk_rows(ops[k, F_NOUT], n_chunks, c)
                dense_forward_cols(ops, opf, k, params, ws, n_rows, c0, c1)
            elif split == TILE_K:
                dense_forward_kpart(ops, k, params, ws, gws, n_rows, n_chunks, c)
            else:
                r0, r1 = chunk_rows(n_rows, n_chunks, c)
                forward_chunk(ops, opf, k, params, bn_stats, ws, r0, r1, training, seed, step,
                              dropout)
        if split == TILE_COLS or split == TILE_K:
            barrier(team)
        if split == TILE_K:
            for c in range(t, n_chunks, n_threads):
                r0, r1 = chunk_rows(n_rows, n_chunks, c)
                dense_kpart_sum(ops, opf, k, params, ws, gws, n_rows, n_chunks, r0, r1)


@late_call
@njit(**JIT)
def dense_forward_kpart(ops, k, params, ws, gws, n_rows, n_chunks, c):
    """Part c of dense op k's GEMM split along its inputs: X[:, k0:k1] @ W[k0:k1] into Z
    (c = 0) or into the gradient slot of its input, free during the forward pass (plan
    guarantees n_in >= n_chunks * n_out, so the n_chunks - 1 partials fit)."""
    n_in, n_out = ops[k, F_NIN], ops[k, F_NOUT]
    k0, k1 = chunk_rows(n_in, n_chunks, c)
    dst = ws if c == 0 else gws
    off = ops[k, F_OUT] if c == 0 else ops[k, F_IN] + (c - 1) * n_rows * n_out
    gemm_by_shape(0, 0, n_rows, n_out, k1 - k0, ws, ops[k, F_IN] + k0, ops[k, F_LD], params,
                  ops[k, F_P0] + k0 * n_out, n_out, dst, off, n_out)


@late_call
@njit(**JIT)
def dense_kpart_sum(ops, opf, k, params, ws, gws, n_rows, n_chunks, r0, r1):
    """Rows r0:r1 of dense op k after dense_forward_kpart: Z += the other partials, then
    the bias and activation epilogue."""
    n_out = ops[k, F_NOUT]
    z0, z1 = ops[k, F_OUT] + r0 * n_out, ops[k, F_OUT] + r1 * n_out
    for c in range(1, n_chunks):
        part = ops[k, F_IN] + (c - 1) * n_rows * n_out   # partial c's (n_rows, n_out) block
        add_into(gws[part + r0 * n_out: part + r1 * n_out], ws[z0: z1])
    p1 = ops[k, F_P1]
    bias_act_forward(rows(ws, ops[k, F_OUT], n_out, r0, r1), params[p1: p1 + n_out],
                     ops[k, F_ACT], opf[k, G_ALPHA])


@late_call
@njit(**JIT)
def dense_forward_cols(ops, opf, k, params, ws, n_rows, c0, c1):
    """Columns c0:c1 of dense op k on all n_rows rows: Z[:, c0:c1] = act(X @ W[:, c0:c1]
    + b[c0:c1]) by a strided GEMM (tiles or BLAS, by shape), then the epilogue row by
    row."""
    n_in, n_out = ops[k, F_NIN], ops[k, F_NOUT]
    p0, p1, out = ops[k, F_P0], ops[k, F_P1], ops[k, F_OUT]
    gemm_by_shape(0, 0, n_rows, c1 - c0, n_in, ws, ops[k, F_IN], ops[k, F_LD], params, p0 + c0,
                  n_out, ws, out + c0, n_out)
    for i in range(n_rows):
        o = out + i * n_out
        bias_act_forward(ws[o + c0: o + c1].reshape((1, c1 - c0)), params[p1 + c0: p1 + c1],
                         ops[k, F_ACT], opf[k, G_ALPHA])


@njit(**INLINED)
def loss_chunk(code, margin, Z, y, T, dZ, n_rows, write_grad, general_loss):
    """The head's loss on one chunk: (loss sum, metric sum) (see kernels/losses.py).
    general_loss None (a compile-time switch): the head is softmax cross-entropy."""
    inv_n = 1.0 / n_rows
    if general_loss is None:
        return softmax_xent(Z, y, dZ, inv_n, write_grad)
    if code == LOSS_MSE:
        return mse(Z, T, dZ, inv_n / Z.shape[1], write_grad)
    if code == LOSS_SIGMOID_BCE:
        return sigmoid_bce(Z, T, dZ, inv_n / Z.shape[1], write_grad)
    if code == LOSS_MC_HINGE:
        return multiclass_hinge(Z, y, dZ, inv_n, margin, write_grad)
    if code == LOSS_MARGIN:
        return margin_loss(Z, T, dZ, inv_n, margin, write_grad)
    return softmax_xent(Z, y, dZ, inv_n, write_grad)


@late_call
@njit(**JIT)
def loss_pass(ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad, general_loss,
              team):
    """Loss of the head over n_rows rows; returns (loss sum, metric sum) to every thread:
    correct predictions for classification losses, squared error for MSE.

    write_grad: the loss gradient wrt the head's input into gws; else the outputs
    (probabilities for cross-entropy losses, the raw values otherwise).
    """
    k = ops.shape[0] - 1
    base, width = ops[k, F_IN], ops[k, F_NIN]
    code, margin = ops[k, F_ACT], opf[k, G_ALPHA]
    kt = Tb.shape[1]
    for c in range(team[0], n_chunks, team[1]):
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        loss, metric = loss_chunk(code, margin, rows(ws, base, width, r0, r1), yb[r0:r1],
                                  Tb[r0:r1, :kt], rows(gws, base, width, r0, r1), n_rows,
                                  write_grad, general_loss)
        loss_parts[c, 0] = loss
        loss_parts[c, 1] = metric
    barrier(team)
    total = 0.0
    metric = 0.0
    for c in range(n_chunks):
        total += loss_parts[c, 0]
        metric += loss_parts[c, 1]
    return total, metric


@njit(**INLINED)
def backward_chunk(ops, opf, k, params, grads_c, ws, gws, n_rows, r0, r1, dropout):
    """Backward of op k on rows r0:r1; parameter gradients go to this chunk's grads_c."""
    kind = ops[k, F_KIND]
    n_in, n_out, act = ops[k, F_NIN], ops[k, F_NOUT], ops[k, F_ACT]
    alpha = opf[k, G_ALPHA]
    p0, p1 = ops[k, F_P0], ops[k, F_P1]
    A = rows(ws, ops[k, F_OUT], n_out, r0, r1)
    dA = rows(gws, ops[k, F_OUT], n_out, r0, r1)
    if kind == OP_DENSE and ops[k, F_TILED] != TILE_NONE:
        # TILE_COLS: dX by column blocks in dense_weight_tiles
        dense_backward_rows(mat(params, p0, n_in, n_out), A, dA, grads_c[p1: p1 + n_out],
                            rows(gws, ops[k, F_IN], n_in, r0, r1), act, alpha,
                            ops[k, F_NEED_DX] != 0 and ops[k, F_TILED] != TILE_COLS)
    elif kind == OP_DENSE:
        dense_backward(rows(ws, ops[k, F_IN], n_in, r0, r1), mat(params, p0, n_in, n_out), A, dA,
                       mat(grads_c, p0, n_in, n_out), grads_c[p1: p1 + n_out],
                       rows(gws, ops[k, F_IN], n_in, r0, r1), act, alpha, ops[k, F_NEED_DX] != 0)
    elif kind == OP_BN:
        bn_backward_sums(dA, A, rows(ws, ops[k, F_AUX], n_out, r0, r1), act, alpha,
                         grads_c[p0: p0 + n_out], grads_c[p1: p1 + n_out])
    elif kind == OP_DROPOUT and dropout is not None:
        if ops[k, F_NEED_DX] != 0:
            dropout_backward(dA, rows(ws, ops[k, F_AUX], n_in, r0, r1),
                             rows(gws, ops[k, F_IN], n_in, r0, r1))
    elif kind == OP_ADD:
        copy_into(gws[ops[k, F_OUT] + r0 * n_out: ops[k, F_OUT] + r1 * n_out],
                  gws[ops[k, F_IN] + r0 * n_in: ops[k, F_IN] + r1 * n_in])
    elif kind == OP_SKIP:
        if ops[k, F_NEED_DX] != 0:
            add_into(gws[ops[k, F_AUX] + r0 * n_in: ops[k, F_AUX] + r1 * n_in],
                     gws[ops[k, F_IN] + r0 * n_in: ops[k, F_IN] + r1 * n_in])
    elif kind == OP_ACT:
        act_backward(dA, A, act, alpha)
        if ops[k, F_NEED_DX] != 0:
            copy_into(gws[ops[k, F_OUT] + r0 * n_out: ops[k, F_OUT] + r1 * n_out],
                      gws[ops[k, F_IN] + r0 * n_in: ops[k, F_IN] + r1 * n_in])


@njit(**INLINED)
def bn_input_gradient(ops, k, params, grads, bn_stats, ws, gws, n_rows, n_chunks, team):
    """Second bn backward pass, after every chunk's dgamma/dbeta partials: their totals
    (thread 0), then dX per chunk."""
    d = ops[k, F_NIN]
    p0, p1, s = ops[k, F_P0], ops[k, F_P1], ops[k, F_STAT]
    dgamma = bn_stats[s + 2 * d: s + 3 * d]
    dbeta = bn_stats[s + 3 * d: s + 4 * d]
    if team[0] == 0:
        copy_into(grads[0, p0: p0 + d], dgamma)
        copy_into(grads[0, p1: p1 + d], dbeta)
        for c in range(1, n_chunks):
            add_into(grads[c, p0: p0 + d], dgamma)
            add_into(grads[c, p1: p1 + d], dbeta)
    barrier(team)
    inv_std = bn_stats[s + d: s + 2 * d]
    gamma = params[p0: p0 + d]
    for c in range(team[0], n_chunks, team[1]):
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        bn_backward_dx(rows(gws, ops[k, F_OUT], d, r0, r1), rows(ws, ops[k, F_AUX], d, r0, r1),
                       gamma, inv_std, dgamma, dbeta, n_rows, rows(gws, ops[k, F_IN], d, r0, r1))


@late_call
@njit(**JIT)
def backward_pass(ops, opf, params, grads, bn_stats, ws, gws, n_rows, n_chunks, dropout, team,
                  update, adaptive, extras):
    """Backpropagate from the head's gradient in gws. Parameter gradients: per-chunk
    partials in grads[c], except the W of tiled dense ops (complete in grads[0]).
    Barriers as in forward_pass: around the BN totals and the tiled dW (and dX).

    update = (apply, kind, hyper, lr, step, state, seg, mu_t, mu_next, mu_prod): when
    apply, each tile of a tiled dense W is updated by the optimizer as soon as its
    gradient (and dX) is computed (see dense_weight_tiles); the other parameters are
    left to the streaming update (loop.run_batches)."""
    for k in range(ops.shape[0] - 2, -1, -1):
        for c in range(team[0], n_chunks, team[1]):
            r0, r1 = chunk_rows(n_rows, n_chunks, c)
            backward_chunk(ops, opf, k, params, grads[c], ws, gws, n_rows, r0, r1, dropout)
        if ops[k, F_KIND] == OP_BN and ops[k, F_NEED_DX] != 0:
            barrier(team)
            bn_input_gradient(ops, k, params, grads, bn_stats, ws, gws, n_rows, n_chunks, team)
        if ops[k, F_KIND] == OP_DENSE and ops[k, F_TILED] != 0:
            barrier(team)
            dense_weight_tiles(ops, k, params, grads, ws, gws, n_rows, team, update, adaptive,
                               extras)
            barrier(team)


@njit(**JIT)
def tile_rows(n_in, n_tiles):
    """Rows of W per dW tile: n_tiles tiles, one per thread. Smaller tiles would be
    more cache-local, but BLAS re-packs the whole dZ operand on every call (measured:
    16 tiles of 32 rows made a 512-wide layer's backward 50% slower at batch 256)."""
    return (n_in + n_tiles - 1) // n_tiles


@late_call
@njit(**JIT)
def dense_weight_tiles(ops, k, params, grads, ws, gws, n_rows, team, update, adaptive, extras):
    """dW of tiled dense op k by row tiles, one per thread of the team, dW[i0:i1] =
    X[:, i0:i1]^T @ dZ, straight into grads[0] (no chunk partials, so nothing to write
    twice and fold later). X[:, i0:i1] is a strided block of the input rows.
    TILE_COLS: the same thread also computes dX[:, i0:i1] = dZ @ W[i0:i1]^T.

    When update[0] (training), the tile's rows of W are then updated at once: no later
    op of this step reads them (every dX that uses W[i0:i1] is computed by now: by
    the chunks before the barrier that precedes this call, or just above for
    TILE_COLS), and the gradient tile is still in cache. Measured on W3 at batch 32
    (2 threads): a step 4.46 -> 3.68 ms against one streaming update after the
    backward pass, which reads every gradient back from memory."""
    n_in, n_out = ops[k, F_NIN], ops[k, F_NOUT]
    pw = ops[k, F_P0]
    per = tile_rows(n_in, team[1])
    apply, kind, hyper, lr, step, state, seg, mu_t, mu_next, mu_prod = update
    i0 = team[0] * per
    i1 = min(i0 + per, n_in)
    if i0 >= i1:
        return
    gemm_by_shape(1, 0, i1 - i0, n_out, n_rows, ws, ops[k, F_IN] + i0, ops[k, F_LD], gws,
                  ops[k, F_OUT], n_out, grads[0], pw + i0 * n_out, n_out)
    if ops[k, F_TILED] == TILE_COLS and ops[k, F_NEED_DX] != 0:
        gemm_by_shape(0, 1, n_rows, i1 - i0, n_out, gws, ops[k, F_OUT], n_out, params,
                      pw + i0 * n_out, n_out, gws, ops[k, F_IN] + i0, n_in)
    if apply:
        # n_parts as np.int64: a literal 1 would compile a second copy of update_range
        update_range(kind, hyper, lr, step, params, grads, state, pw + i0 * n_out,
                     pw + i1 * n_out, seg[ops[k, F_SEG]], np.int64(1), mu_t, mu_next, mu_prod,
                     adaptive, extras)


@njit(**JIT)
def gather_labels(y, T, order, pos, r0, r1, yb, Tb):
    """yb[i] = y[order[pos + i]] and Tb[i] = T[order[pos + i]] for r0 <= i < r1.
    y (n,) int labels or (0,) when the loss takes float targets T (n, k) (else (n, 0))."""
    if y.shape[0] > 0:
        for i in range(r0, r1):
            yb[i] = y[order[pos + i]]
    kt = T.shape[1]
    if kt > 0:
        for i in range(r0, r1):
            src = T[order[pos + i]]
            for j in range(kt):
                Tb[i, j] = src[j]


MODE_TRAIN = 0   # minibatch updates
MODE_EVAL = 1    # forward + loss over all rows in batches (optionally the outputs)
MODE_GRAD = 2    # one training-mode forward + backward over all rows, no update


@njit(**ENTRY)
def run_batches(team, mode, ops, opf, X, y, T, order, first, n_steps, batch_size, step0, rng_step0,
                seed, params, grads, opt_state, opt_scalars, bn_run, bn_stats, bn_parts, ws, gws,
                yb, Tb, loss_parts, blocks, seg, opt_kind, opt_hyper, sched_kind, sched_hyper,
                lr_scale, aug, max_chunks, step_loss, step_metric, step_lr, outputs, training,
                adaptive, extras, dropout, general_loss):
    """The one compiled entry point (one compilation serves training, evaluation and
    gradient checks). Returns (steps completed, loss sum, metric sum, chunks used).
    Run by every thread of the team at once (fastmlp._threads.run_team), max_chunks
    threads; each returns the same values. Thread 0 writes the step records.

    MODE_TRAIN: n_steps minibatch updates over the rows order[first:] in batches of
    batch_size. X (n, n_features); targets y (n,) int labels or T (n, k) floats (see
    gather_labels); order (n,) a permutation. Mutates params, opt_state, bn_run and the
    workspaces; writes step_loss / step_metric (accuracy, or mean squared error for
    MSE) / step_lr[s] for each step s run. step0 is the optimizer's update count
    before the first step (schedules and bias corrections use it), rng_step0 the
    model's (dropout masks and augmentation draw from (seed, rng_step0 + s)); the
    learning rate is lr_scale * schedule(step) (lr_scale: reduce-on-plateau's factor);
    `aug` (kernels/augment.py; None or empty for none). Stops early when a loss is NaN or inf
    (that step's update is not applied, so params keep their last finite values).
    The W of tiled dense ops are updated tile by tile in the backward pass; `blocks`
    (optim.py) lists the rest, updated in one streaming pass after it.
    MODE_EVAL: forward and loss over all rows in order, batches of batch_size;
    training selects batch statistics (BN) and the dropout masks of (seed,
    rng_step0), else running statistics and no dropout; when outputs has rows, it
    receives the model's outputs (probabilities for cross-entropy).
    MODE_GRAD: all rows as one training-mode batch, forward and backward with the
    masks of (seed, rng_step0), no update: per-chunk partial gradients in grads[c].

    Compile-time switches: aug, adaptive (the optimizer is not SGD), extras (L1,
    gradient noise or decoupled weight decay somewhere), dropout (the plan has a
    dropout op) and general_loss (the head is not softmax cross-entropy) are None or
    True. None prunes the branch that would use the feature before Numba types it
    (Numba's dead-branch pruning of `arg is None`), so a model that does not use a
    feature never compiles its kernels: the first fit compiles about half the code.
    Each combination is one more compiled (and cached) signature.
    """
    n = order.shape[0]
    in_base, in_ld = ops[0, F_IN], ops[0, F_LD]
    d_in = X.shape[1]
    k_head = ops.shape[0] - 1
    per_output = ops[k_head, F_ACT] in (LOSS_MSE, LOSS_SIGMOID_BCE)
    is_train = mode == MODE_TRAIN
    needs_grad = mode != MODE_EVAL
    bn_training = training or needs_grad
    total = 0.0
    metric_total = 0.0
    nc = 1
    for s in range(n_steps):
        pos = first + s * batch_size
        B = min(batch_size, n - pos)
        if B <= 0:
            return s, total, metric_total, nc
        nc = min(max_chunks, B)
        t = step0 + s + 1
        r = rng_step0 + s  # the model's update count: compute_loss at model.step draws the same
        gather_batch(X, y, T, order, pos, B, nc, ws, in_base, in_ld, yb, Tb, team)
        if aug is not None and is_train and aug.shape[0] > 0:
            # the input's gradient slot is never written (nothing backpropagates into X)
            augment_batch(ws, in_base, B, d_in, in_ld, gws[in_base: in_base + B * in_ld], nc, aug,
                          seed, r, team)
        forward_pass(ops, opf, params, bn_run, bn_stats, bn_parts, ws, gws, B, nc, bn_training,
                     is_train, seed, r, dropout, team)
        loss, metric = loss_pass(ops, opf, ws, gws, yb, Tb, B, nc, loss_parts, needs_grad,
                                 general_loss, team)
        total += loss
        metric_total += metric
        if mode == MODE_EVAL:
            if outputs.shape[0] > 0:
                base, width = ops[k_head, F_IN], ops[k_head, F_NIN]
                for c in range(team[0], nc, team[1]):
                    r0, r1 = chunk_rows(B, nc, c)
                    copy_into(gws[base + r0 * width: base + r1 * width],
                              outputs.ravel()[(pos + r0) * width: (pos + r1) * width])
            barrier(team)  # before the next batch's loss overwrites loss_parts
            continue
        if not np.isfinite(loss) and is_train:
            return s, total, metric_total, nc
        lr, mu_t, mu_next, mu_prod = 0.0, 0.0, 0.0, 0.0
        if is_train:
            lr = lr_scale * schedule_lr(sched_kind, sched_hyper, np.float64(step0 + s))
            mu_t, mu_next, mu_prod = step_scalars(opt_kind, opt_hyper, t, opt_scalars, adaptive)
        update = (is_train, opt_kind, opt_hyper, lr, t, opt_state, seg, mu_t, mu_next, mu_prod)
        backward_pass(ops, opf, params, grads, bn_stats, ws, gws, B, nc, dropout, team, update,
                      adaptive, extras)
        if not is_train:
            continue
        if team[0] == 0:
            n_terms = B * Tb.shape[1] if per_output else B
            step_loss[s] = loss / n_terms
            step_metric[s] = metric / n_terms
        barrier(team)  # every chunk's partial gradients are written
        # the rest of the parameters in one streaming pass (the tiled dense W were
        # updated by backward_pass, tile by tile)
        update_blocks(opt_kind, opt_hyper, lr, t, params, grads, opt_state, blocks, seg, nc,
                      mu_t, mu_next, mu_prod, adaptive, extras, team)
        barrier(team)  # every parameter is updated before the next forward reads it
        if team[0] == 0:
            step_lr[s] = lr
            opt_scalars[0] = mu_prod
    return n_steps, total, metric_total, nc
