"""The passes of a training step, each a function with Numba parallel loops.

Every pass walks the op table (kernels/layout.py) and runs each op as one or two
*phases*, each a `prange` loop over the batch's row chunks (or over column blocks or
weight tiles): chunk c takes rows chunk_rows(n_rows, n_chunks, c), and with n_chunks
= the thread count each of Numba's threads takes one chunk. Where one chunk needs
what every chunk wrote (the BatchNorm statistics, a K-split product's partial sums,
a loss total, the weight tiles of dW) one phase ends and serial code or the next
phase starts: the end of a prange loop is the barrier. Chunks write only their own
rows and their own partial sums, folded in chunk order, so a given thread count
gives the same bits every run.

Each pass has a single prange loop, over `forward_part(phase, ...)`,
`backward_part(phase, ...)` or `loss_part(c, ...)`, and these bodies (with the serial
BN steps between phases) are called through C entries (kernels/c_entry.py): Numba
compiles every prange loop into functions of its own that link, and optimise again,
all the code their body calls. Behind an entry a body is compiled once, not in each
of the loop's functions, the pass and run_batches (measured, the README's first fit
with an empty cache, fresh processes in turn: 33.7-36.4 s before, 21.7-22.5 s after).
Each body is inlined into its entry (`@kernel(**INLINED)`, one caller); the
compile-time switches are pruned where they are arguments, in small kernels of their
own (forward_dropout, backward_dropout, loss_chunk, optim.update_range).
"""
import numpy as np
from numba import prange, types

from .._config import INLINED, JIT, PARALLEL, kernel
from .activations import act_backward, act_forward, bias_act_forward
from .c_entry import caller, load_arguments
from .batchnorm import (bn_backward_dx, bn_backward_sums, bn_finalize_stats, bn_normalize,
                        bn_partial_stats, bn_running_stats)
from .dense import dense_backward, dense_backward_rows, dense_forward
from .dropout import dropout_backward, dropout_forward
from .layout import (F_ACT, F_AUX, F_IN, F_KIND, F_LD, F_NEED_DX, F_NIN, F_NOUT, F_OUT, F_P0,
                     F_P1, F_SEG, F_STAT, F_STATE, F_TILED, G_ALPHA, G_EPS, G_MOMENTUM,
                     LOSS_MARGIN, LOSS_MC_HINGE, LOSS_MSE, LOSS_SIGMOID_BCE, OP_ADD, OP_BN,
                     OP_DENSE, OP_DROPOUT, OP_SKIP, OP_ACT, TILE_COLS, TILE_K, TILE_NONE,
                     chunk_rows, mat, rows)
from .losses import margin_loss, mse, multiclass_hinge, sigmoid_bce, softmax_xent
from .optim import update_range
from .tile_gemm import gemm as gemm_by_shape


@kernel(**JIT)
def copy_into(src, dst):
    """dst[i] = src[i] for flat (1-D) arrays of equal length."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


@kernel(**JIT)
def add_into(src, dst):
    """dst[i] += src[i] for flat (1-D) arrays of equal length."""
    for i in range(src.shape[0]):
        dst[i] += src[i]


# ------------------------------------------------------------------ batch gather
@kernel(**JIT)
def gather_chunk(X, y, T, order, pos, r0, r1, ws, base, ld, yb, Tb):
    """Rows r0:r1 of the batch: X[order[pos + i]] into the buffer at ws[base:] (row
    stride ld), y[order[pos + i]] into yb (when y has entries) and T[...] into Tb
    (when T has columns)."""
    d = X.shape[1]
    for i in range(r0, r1):
        src = X[order[pos + i]]
        dst = ws[base + i * ld: base + i * ld + d]
        for j in range(d):
            dst[j] = src[j]
    if y.shape[0] > 0:
        for i in range(r0, r1):
            yb[i] = y[order[pos + i]]
    kt = T.shape[1]
    if kt > 0:
        for i in range(r0, r1):
            src = T[order[pos + i]]
            for j in range(kt):
                Tb[i, j] = src[j]


@kernel(**PARALLEL)
def gather_pass(X, y, T, order, pos, n_rows, n_chunks, ws, base, ld, yb, Tb):
    """Copy the batch's rows X[order[pos + i]] (i < n_rows) into the (n_rows, n_features)
    buffer at ws[base:] (row stride ld) and their targets into yb / Tb; one chunk of
    rows per parallel iteration."""
    for c in prange(n_chunks):
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        gather_chunk(X, y, T, order, pos, r0, r1, ws, base, ld, yb, Tb)


# ------------------------------------------------------------------ forward
@kernel(**JIT)
def forward_dropout(dropout, ops, k, ws, X, A, rate, r0, r1, training, seed, step):
    """Forward of dropout op k on rows r0:r1 (X its input rows, A its output rows): the
    masks of (seed, step) at this rate when training, else a copy. dropout: a
    compile-time switch (see loop.run_batches), pruned here, where it is an argument,
    when None."""
    if dropout is not None:
        n = ops[k, F_NIN]
        if training:
            dropout_forward(X, A, rows(ws, ops[k, F_AUX], n, r0, r1), rate,
                            seed, step * ops.shape[0] + k, r0)
        else:
            copy_into(ws[ops[k, F_IN] + r0 * n: ops[k, F_IN] + r1 * n],
                      ws[ops[k, F_OUT] + r0 * n: ops[k, F_OUT] + r1 * n])


@kernel(**INLINED)
def forward_chunk(ops, opf, k, params, bn_stats, ws, r0, r1, training, seed, step, dropout):
    """Forward of op k (dense, activation, dropout, residual sum, or the normalise pass
    of bn) on rows r0:r1. dropout: a compile-time switch (see loop.run_batches)."""
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
    elif kind == OP_DROPOUT:
        forward_dropout(dropout, ops, k, ws, X, A, alpha, r0, r1, training, seed, step)
    elif kind == OP_ADD:
        S = rows(ws, ops[k, F_AUX], n_in, r0, r1)
        for i in range(X.shape[0]):
            for j in range(n_in):
                A[i, j] = X[i, j] + S[i, j]


@kernel(**JIT)
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


@kernel(**JIT)
def dense_kpart_sum(ops, opf, k, params, ws, gws, n_rows, n_chunks, r0, r1):
    """Rows r0:r1 of dense op k after dense_forward_kpart: Z += the other partials (in
    chunk order), then the bias and activation epilogue."""
    n_out = ops[k, F_NOUT]
    z0, z1 = ops[k, F_OUT] + r0 * n_out, ops[k, F_OUT] + r1 * n_out
    for c in range(1, n_chunks):
        part = ops[k, F_IN] + (c - 1) * n_rows * n_out   # partial c's (n_rows, n_out) block
        add_into(gws[part + r0 * n_out: part + r1 * n_out], ws[z0: z1])
    p1 = ops[k, F_P1]
    bias_act_forward(rows(ws, ops[k, F_OUT], n_out, r0, r1), params[p1: p1 + n_out],
                     ops[k, F_ACT], opf[k, G_ALPHA])


@kernel(**JIT)
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


# forward phases (one prange loop each; an op's phases are consecutive numbers)
PH_ROWS = 0      # a run of ops on each chunk of rows (see forward_run_end) ...
PH_BN_SUMS = 1   # ... then, when a BN op ends it, that op's per-chunk sums
PH_COLS = 2      # a dense op by column blocks (TILE_COLS)
PH_KPART = 3     # a dense op's product split along its inputs (TILE_K) ...
PH_KSUM = 4      # ... then the parts summed and the epilogue, by row chunks


@kernel(**JIT)
def forward_run_end(ops, k, training):
    """The op that ends the run of row ops starting at op k: the first after k that
    needs every row of its input (a column- or K-split dense op, or a BN op when
    training, whose statistics are the batch's), else the head. A chunk's rows go
    through every op of the run with no barrier: each op reads only the rows of its
    chunk that the op before wrote. A BN op that ends a run takes its per-chunk sums
    in a phase of their own: they are shifted by the batch's first row, which the
    first chunk writes."""
    last = ops.shape[0] - 1
    for j in range(k + 1, last):
        kind = ops[j, F_KIND]
        split = ops[j, F_TILED] if kind == OP_DENSE else TILE_NONE
        if split == TILE_COLS or split == TILE_K or (kind == OP_BN and training):
            return j
    return last


@kernel(**INLINED)
def forward_part(phase, ops, opf, k, j, params, bn_stats, bn_parts, ws, gws, n_rows, n_chunks,
                 c, training, seed, step, dropout):
    """Part c (of n_chunks) of a forward phase: of op k (PH_COLS, PH_KPART, PH_KSUM), of
    the run of ops k..j-1 (PH_ROWS), or the sums of BN op j (PH_BN_SUMS). Called through
    its C entry (forward_entry; see kernels/c_entry.py)."""
    if phase == PH_COLS:
        c0, c1 = chunk_rows(ops[k, F_NOUT], n_chunks, c)
        dense_forward_cols(ops, opf, k, params, ws, n_rows, c0, c1)
    elif phase == PH_KPART:
        dense_forward_kpart(ops, k, params, ws, gws, n_rows, n_chunks, c)
    else:
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        if phase == PH_KSUM:
            dense_kpart_sum(ops, opf, k, params, ws, gws, n_rows, n_chunks, r0, r1)
        elif phase == PH_BN_SUMS:
            d, s, base = ops[j, F_NIN], ops[j, F_STAT], ops[j, F_IN]
            # shifted by the batch's first sample (see batchnorm.py)
            bn_partial_stats(rows(ws, base, d, r0, r1), ws[base: base + d],
                             bn_parts[c, s: s + d], bn_parts[c, s + d: s + 2 * d])
        else:
            for op in range(k, j):
                if ops[op, F_KIND] != OP_SKIP:
                    forward_chunk(ops, opf, op, params, bn_stats, ws, r0, r1, training, seed,
                                  step, dropout)


def forward_entry(args):
    """forward_part(*args) as a C function (kernels/c_entry.py)."""
    (phase, ops, opf, k, j, params, bn_stats, bn_parts, ws, gws, n_rows, n_chunks, c, training,
     seed, step, dropout) = load_arguments(args)
    forward_part(phase, ops, opf, k, j, params, bn_stats, bn_parts, ws, gws, n_rows, n_chunks, c,
                 training, seed, step, dropout)


call_forward_part = caller("forward_part", types.void)


@kernel(**INLINED)
def bn_statistics(ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows, n_chunks, training,
                  update_running):
    """Fill bn_stats (mean, inv_std) of bn op k: when training, the batch's (from the
    per-chunk float64 sums of its PH_BN_SUMS phase, combined in chunk order), else the
    running ones. update_running: fold the batch's into the running averages. Returns
    False when an updated running statistic is NaN or inf, else True."""
    d = ops[k, F_NIN]
    s, r = ops[k, F_STAT], ops[k, F_STATE]
    base = ops[k, F_IN]
    if training:
        # the sums are shifted by the batch's first sample (see batchnorm.py)
        return bn_finalize_stats(bn_parts[:, s: s + d], bn_parts[:, s + d: s + 2 * d],
                                 n_chunks, ws[base: base + d], n_rows, opf[k, G_EPS],
                                 opf[k, G_MOMENTUM], bn_stats[s: s + d],
                                 bn_stats[s + d: s + 2 * d], bn_run[r: r + d],
                                 bn_run[r + d: r + 2 * d], update_running)
    bn_running_stats(bn_run[r: r + d], bn_run[r + d: r + 2 * d], opf[k, G_EPS],
                     bn_stats[s: s + d], bn_stats[s + d: s + 2 * d])
    return True


def bn_statistics_entry(args):
    """bn_statistics(*args) as a C function (kernels/c_entry.py): 1 for True, else 0."""
    (ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows, n_chunks, training,
     update_running) = load_arguments(args)
    finite = bn_statistics(ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows, n_chunks,
                           training, update_running)
    return np.uint8(1 if finite else 0)


call_bn_statistics = caller("bn_statistics", types.uint8)


@kernel(**PARALLEL)
def forward_pass(ops, opf, params, bn_run, bn_stats, bn_parts, ws, gws, n_rows, n_chunks,
                 training, update_running, seed, step, dropout):
    """Run every op but the loss head on the n_rows rows already in the input buffer.
    seed and step (the update count) select the dropout masks. gws (the gradient
    workspace) is scratch here: a K-split dense op keeps its partial sums there.

    Phases in turn: runs of row ops (forward_run_end), each ending where a BN op's
    statistics (per-chunk sums, then combined serially), a column-split or a K-split
    dense op needs every row. Evaluation takes the running BN statistics, set up
    front. Returns the number of BN ops whose updated running statistics hold a NaN
    or inf (0 when all are finite, or when update_running is False)."""
    last = ops.shape[0] - 1
    n_bad = 0
    if not training:
        for k in range(last):
            if ops[k, F_KIND] == OP_BN:
                call_bn_statistics((ops, opf, k, ws, bn_run, bn_stats, bn_parts, n_rows,
                                    n_chunks, training, update_running))
    k = 0
    stats_ready = -1   # the BN op whose batch statistics are in bn_stats
    while k < last:
        split = ops[k, F_TILED] if ops[k, F_KIND] == OP_DENSE else TILE_NONE
        if training and ops[k, F_KIND] == OP_BN and stats_ready != k:
            # a BN op after a split dense op or first: its sums alone (k stays)
            first, n_phases, j = PH_BN_SUMS, 1, k
        elif split == TILE_COLS:
            first, n_phases, j = PH_COLS, 1, k + 1
        elif split == TILE_K:
            first, n_phases, j = PH_KPART, 2, k + 1
        else:
            j = forward_run_end(ops, k, training)
            bn_ends = training and j < last and ops[j, F_KIND] == OP_BN
            first, n_phases = PH_ROWS, 2 if bn_ends else 1
        for phase in range(first, first + n_phases):   # an op's phases: consecutive codes
            for c in prange(n_chunks):
                call_forward_part((phase, ops, opf, k, j, params, bn_stats, bn_parts, ws, gws,
                                   n_rows, n_chunks, c, training, seed, step, dropout))
            if phase == PH_BN_SUMS:
                finite = call_bn_statistics((ops, opf, j, ws, bn_run, bn_stats, bn_parts,
                                             n_rows, n_chunks, training, update_running))
                n_bad += 1 - finite
                stats_ready = j
        k = j
    return n_bad


# ------------------------------------------------------------------ loss
@kernel(**JIT)
def loss_chunk(code, margin, Z, y, T, dZ, n_rows, write_grad, general_loss):
    """The head's loss on one chunk: (loss sum, metric sum) (see kernels/losses.py).
    general_loss None (a compile-time switch, pruned here where it is an argument): the
    head is softmax cross-entropy."""
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


@kernel(**INLINED)
def loss_part(c, ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad,
              general_loss):
    """Chunk c of loss_pass: the head's (loss sum, metric sum) over its rows into
    loss_parts[c]. Called through its C entry (loss_entry)."""
    k = ops.shape[0] - 1
    base, width = ops[k, F_IN], ops[k, F_NIN]
    r0, r1 = chunk_rows(n_rows, n_chunks, c)
    loss, metric = loss_chunk(ops[k, F_ACT], opf[k, G_ALPHA], rows(ws, base, width, r0, r1),
                              yb[r0:r1], Tb[r0:r1, :Tb.shape[1]], rows(gws, base, width, r0, r1),
                              n_rows, write_grad, general_loss)
    loss_parts[c, 0] = loss
    loss_parts[c, 1] = metric


def loss_entry(args):
    """loss_part(*args) as a C function (kernels/c_entry.py)."""
    (c, ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad,
     general_loss) = load_arguments(args)
    loss_part(c, ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad,
              general_loss)


call_loss_part = caller("loss_part", types.void)


@kernel(**PARALLEL)
def loss_pass(ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad,
              general_loss):
    """Loss of the head over n_rows rows: (loss sum, metric sum), the metric being the
    correct predictions for classification losses, the squared error for MSE. Each
    chunk writes its sums to loss_parts[c], added in chunk order.

    write_grad: the loss gradient wrt the head's input into gws; else the outputs
    (probabilities for cross-entropy losses, the raw values otherwise).
    """
    for c in prange(n_chunks):
        call_loss_part((c, ops, opf, ws, gws, yb, Tb, n_rows, n_chunks, loss_parts, write_grad,
                        general_loss))
    total = 0.0
    metric_total = 0.0
    for c in range(n_chunks):
        total += loss_parts[c, 0]
        metric_total += loss_parts[c, 1]
    return total, metric_total


# ------------------------------------------------------------------ backward
@kernel(**JIT)
def backward_dropout(dropout, ops, k, ws, gws, dA, r0, r1):
    """Backward of dropout op k on rows r0:r1 (dA: its output's gradient rows). dropout:
    a compile-time switch, pruned here when None (see forward_dropout)."""
    if dropout is not None and ops[k, F_NEED_DX] != 0:
        n = ops[k, F_NIN]
        dropout_backward(dA, rows(ws, ops[k, F_AUX], n, r0, r1), rows(gws, ops[k, F_IN], n, r0, r1))


@kernel(**INLINED)
def backward_chunk(ops, opf, k, params, grads_c, ws, gws, n_rows, r0, r1, dropout):
    """Backward of op k on rows r0:r1; parameter gradients go to this chunk's grads_c."""
    kind = ops[k, F_KIND]
    n_in, n_out, act = ops[k, F_NIN], ops[k, F_NOUT], ops[k, F_ACT]
    alpha = opf[k, G_ALPHA]
    p0, p1 = ops[k, F_P0], ops[k, F_P1]
    A = rows(ws, ops[k, F_OUT], n_out, r0, r1)
    dA = rows(gws, ops[k, F_OUT], n_out, r0, r1)
    if kind == OP_DENSE and ops[k, F_TILED] != TILE_NONE:
        # TILE_COLS: dX by column blocks in dense_weight_tile
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
    elif kind == OP_DROPOUT:
        backward_dropout(dropout, ops, k, ws, gws, dA, r0, r1)
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


@kernel(**INLINED)
def bn_gradient_totals(ops, k, grads, bn_stats, n_chunks):
    """dgamma and dbeta of bn op k over the whole batch (the chunks' partials in grads,
    added in chunk order) into bn_stats, where bn_input_gradient reads them."""
    d = ops[k, F_NIN]
    p0, p1, s = ops[k, F_P0], ops[k, F_P1], ops[k, F_STAT]
    dgamma = bn_stats[s + 2 * d: s + 3 * d]
    dbeta = bn_stats[s + 3 * d: s + 4 * d]
    copy_into(grads[0, p0: p0 + d], dgamma)
    copy_into(grads[0, p1: p1 + d], dbeta)
    for c in range(1, n_chunks):
        add_into(grads[c, p0: p0 + d], dgamma)
        add_into(grads[c, p1: p1 + d], dbeta)


def bn_gradient_totals_entry(args):
    """bn_gradient_totals(*args) as a C function (kernels/c_entry.py)."""
    ops, k, grads, bn_stats, n_chunks = load_arguments(args)
    bn_gradient_totals(ops, k, grads, bn_stats, n_chunks)


call_bn_gradient_totals = caller("bn_gradient_totals", types.void)


@kernel(**JIT)
def bn_input_gradient(ops, k, params, bn_stats, ws, gws, n_rows, r0, r1):
    """dX of bn op k on rows r0:r1, once bn_gradient_totals has run."""
    d = ops[k, F_NIN]
    p0, s = ops[k, F_P0], ops[k, F_STAT]
    bn_backward_dx(rows(gws, ops[k, F_OUT], d, r0, r1), rows(ws, ops[k, F_AUX], d, r0, r1),
                   params[p0: p0 + d], bn_stats[s + d: s + 2 * d], bn_stats[s + 2 * d: s + 3 * d],
                   bn_stats[s + 3 * d: s + 4 * d], n_rows, rows(gws, ops[k, F_IN], d, r0, r1))


@kernel(**JIT)
def tile_rows(n_in, n_tiles):
    """Rows of W per dW tile: n_tiles tiles, one per thread. Smaller tiles would be
    more cache-local, but BLAS re-packs the whole dZ operand on every call (measured:
    16 tiles of 32 rows made a 512-wide layer's backward 50% slower at batch 256)."""
    return (n_in + n_tiles - 1) // n_tiles


@kernel(**JIT)
def dense_weight_tile(ops, k, params, grads, ws, gws, n_rows, tile, n_tiles, update, hyper,
                      adaptive, extras):
    """Tile `tile` of n_tiles of tiled dense op k's dW, by rows of W: dW[i0:i1] =
    X[:, i0:i1]^T @ dZ, straight into grads[0] (no chunk partials to fold later).
    X[:, i0:i1] is a strided block of the input rows. TILE_COLS: the same tile also
    computes dX[:, i0:i1] = dZ @ W[i0:i1]^T.

    When update[0] (training; update as in backward_pass), the tile's rows of W are then updated at once: no later
    op of this step reads them (every dX that uses W[i0:i1] is computed by now: by
    the row chunks of the loop before, or just above for TILE_COLS), and the gradient
    tile is still in cache. Measured on W3 at batch 32 (2 threads): a step 4.46 ->
    3.68 ms against one streaming update after the backward pass.

    Returns False when the tile's updated W rows or their optimizer state hold a NaN
    or inf (see optim.update_range), else True."""
    n_in, n_out = ops[k, F_NIN], ops[k, F_NOUT]
    pw = ops[k, F_P0]
    per = tile_rows(n_in, n_tiles)
    apply, kind, lr, step, state, seg, mu_t, mu_next, mu_prod = update
    i0 = tile * per
    i1 = min(i0 + per, n_in)
    if i0 >= i1:
        return True
    gemm_by_shape(1, 0, i1 - i0, n_out, n_rows, ws, ops[k, F_IN] + i0, ops[k, F_LD], gws,
                  ops[k, F_OUT], n_out, grads[0], pw + i0 * n_out, n_out)
    if ops[k, F_TILED] == TILE_COLS and ops[k, F_NEED_DX] != 0:
        gemm_by_shape(0, 1, n_rows, i1 - i0, n_out, gws, ops[k, F_OUT], n_out, params,
                      pw + i0 * n_out, n_out, gws, ops[k, F_IN] + i0, n_in)
    if apply:
        # n_parts as np.int64: a literal 1 would compile a second copy of update_range
        return update_range(kind, hyper, lr, step, params, grads, state, pw + i0 * n_out,
                            pw + i1 * n_out, seg[ops[k, F_SEG]], np.int64(1), mu_t, mu_next,
                            mu_prod, adaptive, extras)
    return True


# backward phases
PH_BACK_ROWS = 0   # a run of ops on each chunk of rows (see backward_run_end)
PH_TILES = 1       # a tiled dense op's dW (and for TILE_COLS dX) by tiles of W's rows


@kernel(**JIT)
def needs_all_rows(ops, k):
    """True when op k's backward goes on after its row chunks with work that needs every
    row: BN's input gradient (from dgamma and dbeta over the batch), a tiled dense op's
    dW tiles."""
    if ops[k, F_KIND] == OP_BN:
        return ops[k, F_NEED_DX] != 0
    return ops[k, F_KIND] == OP_DENSE and ops[k, F_TILED] != TILE_NONE


@kernel(**JIT)
def backward_run_end(ops, k):
    """The lowest op of the run of row ops going down from op k: the first (k itself
    included) whose backward needs every row after its row chunks (needs_all_rows),
    else op 0. Each op of a run reads only the gradient rows of its chunk that the op
    above wrote."""
    for j in range(k, 0, -1):
        if needs_all_rows(ops, j):
            return j
    return 0


@kernel(**INLINED)
def backward_part(phase, ops, opf, k, j, bn_above, params, grads, bn_stats, ws, gws, n_rows,
                  n_chunks, c, dropout, update, hyper, adaptive, extras):
    """Part c (of n_chunks) of a backward phase: the dW tiles of op k (PH_TILES), or the
    input gradient of BN op bn_above (when >= 0) and then ops k down to j on rows.
    Returns 1 when a dW tile's update left a NaN or inf (dense_weight_tile), else 0
    (a uint8, as backward_pass stores it)."""
    if phase == PH_TILES:
        finite = dense_weight_tile(ops, k, params, grads, ws, gws, n_rows, c, n_chunks, update,
                                   hyper, adaptive, extras)
        return np.uint8(0 if finite else 1)
    r0, r1 = chunk_rows(n_rows, n_chunks, c)
    if bn_above >= 0:
        bn_input_gradient(ops, bn_above, params, bn_stats, ws, gws, n_rows, r0, r1)
    for op in range(k, j - 1, -1):
        backward_chunk(ops, opf, op, params, grads[c], ws, gws, n_rows, r0, r1, dropout)
    return np.uint8(0)


def backward_entry(args):
    """backward_part(*args) as a C function (kernels/c_entry.py)."""
    (phase, ops, opf, k, j, bn_above, params, grads, bn_stats, ws, gws, n_rows, n_chunks, c,
     dropout, update, hyper, adaptive, extras) = load_arguments(args)
    return backward_part(phase, ops, opf, k, j, bn_above, params, grads, bn_stats, ws, gws,
                         n_rows, n_chunks, c, dropout, update, hyper, adaptive, extras)


call_backward_part = caller("backward_part", types.uint8)


@kernel(**PARALLEL)
def backward_pass(ops, opf, params, grads, bn_stats, ws, gws, flags, n_rows, n_chunks, dropout,
                  update, hyper, adaptive, extras):
    """Backpropagate from the head's gradient in gws. Parameter gradients: per-chunk
    partials in grads[c], except the W of tiled dense ops (complete in grads[0]).

    Phases in turn: runs of row ops (backward_run_end), each ending at an op that needs
    every row: a BN op's dgamma/dbeta totals are then added serially and its input
    gradient starts the next run; a tiled dense op's dW tiles (one per chunk) run
    as a phase of their own.

    update = (apply, kind, lr, step, state, seg, mu_t, mu_next, mu_prod) and hyper
    (optim.Hyper, apart: Numba's parallel loops take a tuple's fields as arguments, but
    not a tuple inside a tuple): when apply, each tile of a tiled dense W is updated by
    the optimizer as soon as its gradient (and dX) is computed (see dense_weight_tile);
    the other parameters are left to the streaming update (optim.update_blocks).
    Returns the number of tiles whose update left a NaN or inf (0 when all are finite);
    flags (>= n_chunks,) uint8 is its scratch, a slot per chunk (a prange reduction
    variable would allocate an array per loop)."""
    k = ops.shape[0] - 2
    bn_above = -1
    n_bad = 0
    while k >= 0 or bn_above >= 0:
        # after op 0, a pending BN input gradient runs alone (a run of no ops: j > k)
        j = backward_run_end(ops, k) if k >= 0 else k + 1
        tiles = k >= 0 and ops[j, F_KIND] == OP_DENSE and needs_all_rows(ops, j)
        for phase in range(PH_BACK_ROWS, PH_TILES + 1 if tiles else PH_TILES):
            for c in prange(n_chunks):
                flags[c] = call_backward_part((phase, ops, opf, k if phase == PH_BACK_ROWS else j,
                                               j, bn_above, params, grads, bn_stats, ws, gws,
                                               n_rows, n_chunks, c, dropout, update, hyper,
                                               adaptive, extras))
            for c in range(n_chunks):
                n_bad += flags[c]
        bn_above = -1
        if k >= 0 and ops[j, F_KIND] == OP_BN and needs_all_rows(ops, j):
            call_bn_gradient_totals((ops, j, grads, bn_stats, n_chunks))
            bn_above = j
        k = j - 1
    return n_bad
