"""The compiled training step and evaluation pass over a plan (op table).

`run_batches` is the one entry point from Python: a serial loop over minibatch
steps that calls the parallel passes (kernels/passes.py) in turn: gather the batch,
forward, loss, backward (with the per-tile update of tiled dense W), and the
streaming optimizer update of the rest (optim.update_blocks). Its arguments come in
named groups, NamedTuples that Numba types field by field:

- `Tables`: the plan (kernels/layout.py) and the update's block and penalty tables;
- `Data`: the samples, their targets and the row order;
- `State`: what training changes and a checkpoint keeps;
- `Work`: the workspace of one batch size and chunk count (model._Workspace);
- `Run`: what this call does (mode, steps, batch size, optimizer and schedule);
- `Records`: per-step outputs;

then five compile-time switches (see run_batches). `link_entries`, called with the
same arguments first, registers the C functions the kernels call by name (the GEMM
and the passes' loop bodies: kernels/c_entry.py).
"""
import threading
from typing import NamedTuple

import numpy as np
from numba import types

from .._config import ENTRY, kernel
from . import passes
from .augment import augment_batch
from .c_entry import link
from .layout import (F_ACT, F_IN, F_LD, F_NIN, LOSS_MSE, LOSS_SIGMOID_BCE, MODE_EVAL, MODE_TRAIN,
                     STOP_BN, STOP_LOSS, STOP_NONE, STOP_PARAMS)
from . import split_compile
from .optim import step_scalars, update_blocks, update_request
from .passes import backward_pass, forward_pass, gather_pass, loss_pass
from .schedule import schedule_lr
from .tile_gemm import link_gemm


class Tables(NamedTuple):
    """ops (n_ops, N_FIELDS) int64 and opf (n_ops, 3) float64: the plan; blocks (n, 4)
    int64 and seg (n_segments, 3) float64: the streaming update's blocks and penalty
    rows (kernels/optim.py)."""
    ops: np.ndarray
    opf: np.ndarray
    blocks: np.ndarray
    seg: np.ndarray


class Data(NamedTuple):
    """X (n, n_features); y (n,) int64 labels, or (0,) when the loss takes float targets
    T (n, k) (else (n, 0)); order (n,) int64: the rows in the order batches take them."""
    X: np.ndarray
    y: np.ndarray
    T: np.ndarray
    order: np.ndarray


class State(NamedTuple):
    """params (n_params,); grads (n_chunks, n_params) per-chunk gradient partials;
    opt_state (n_slots, n_params); opt_scalars (4,) float64; bn_run: BN running
    mean and variance."""
    params: np.ndarray
    grads: np.ndarray
    opt_state: np.ndarray
    opt_scalars: np.ndarray
    bn_run: np.ndarray


class Work(NamedTuple):
    """Workspace for one batch size: bn_stats (model dtype), bn_parts (n_chunks, .) and
    loss_parts (n_chunks, 2) float64 per-chunk sums, ws / gws the activation and
    gradient buffers, yb / Tb the batch's targets; flags (>= max(n_chunks, n_blocks),)
    uint8: a slot per iteration of a parallel loop for its finiteness check."""
    bn_stats: np.ndarray
    bn_parts: np.ndarray
    ws: np.ndarray
    gws: np.ndarray
    yb: np.ndarray
    Tb: np.ndarray
    loss_parts: np.ndarray
    flags: np.ndarray


class Run(NamedTuple):
    """What one call does: `mode` (layout.MODE_*), n_steps batches of batch_size from
    row `first` of the order, split into n_chunks row chunks; step0 the optimizer's
    update count before the first step, rng_step0 the model's (dropout masks and
    augmentation draw from (seed, rng_step0 + s)); training: batch statistics and
    dropout in MODE_EVAL; the optimizer (opt_kind, opt_hyper: optim.Hyper) and the
    schedule (sched_kind, sched_hyper) times lr_scale (reduce-on-plateau's factor)."""
    mode: int
    first: int
    n_steps: int
    batch_size: int
    n_chunks: int
    step0: int
    rng_step0: int
    seed: int
    training: bool
    opt_kind: int
    opt_hyper: tuple
    sched_kind: int
    sched_hyper: np.ndarray
    lr_scale: float


class Records(NamedTuple):
    """step_loss, step_metric, step_lr (n_steps,) float64: written for each step run in
    MODE_TRAIN; outputs (n, n_outputs): the model's outputs in MODE_EVAL when it has
    rows."""
    step_loss: np.ndarray
    step_metric: np.ndarray
    step_lr: np.ndarray
    outputs: np.ndarray


@kernel(**ENTRY)
def run_batches(tables, data, state, work, run, records, aug, adaptive, extras, dropout,
                general_loss):
    """Run minibatch steps; returns (steps completed, loss sum, metric sum, chunks used,
    stop reason: a layout.STOP_* code).

    MODE_TRAIN: run.n_steps minibatch updates over the rows data.order[run.first:].
    Mutates state and work; writes records.step_loss / step_metric (accuracy, or mean
    squared error for MSE) / step_lr[s] for each step s run. The learning rate is
    lr_scale * schedule(step). `aug` (kernels/augment.py; None or empty for none).
    Stops at the first step s whose loss, BN running statistics, updated parameters
    or optimizer state hold a NaN or inf, and returns s (the steps before it were all
    finite) with the reason. That step may have changed the state already (the
    running statistics in its forward pass, the parameters in its update): the caller
    restores a copy and replays the s finite steps (training.EpochRunner). The checks
    ride along passes that read the values anyway (BN statistics, the update's
    blocks while in cache). The W of tiled dense ops are updated tile
    by tile in the backward pass; tables.blocks lists the rest, updated in one
    streaming pass after it.
    MODE_EVAL: forward and loss over all rows in order, batches of batch_size;
    run.training selects batch statistics (BN) and the dropout masks of (seed,
    rng_step0), else running statistics and no dropout; when records.outputs has
    rows, it receives the model's outputs (probabilities for cross-entropy).
    MODE_GRAD: all rows as one training-mode batch, forward and backward with the
    masks of (seed, rng_step0), no update: per-chunk partial gradients in grads[c].

    Compile-time switches: aug, adaptive (the optimizer is not SGD), extras (L1,
    gradient noise or decoupled weight decay somewhere), dropout (the plan has a
    dropout op) and general_loss (the head is not softmax cross-entropy) are None or
    True. None prunes the branch that would use the feature before Numba types it
    (Numba's dead-branch pruning of `arg is None`), so a model that does not use a
    feature never compiles its kernels. Each combination is one more compiled (and
    cached) signature.
    """
    ops = tables.ops
    X, order = data.X, data.order
    params, grads = state.params, state.grads
    ws, gws = work.ws, work.gws
    mode = run.mode
    n = order.shape[0]
    in_base, in_ld = ops[0, F_IN], ops[0, F_LD]
    d_in = X.shape[1]
    k_head = ops.shape[0] - 1
    per_output = ops[k_head, F_ACT] in (LOSS_MSE, LOSS_SIGMOID_BCE)
    is_train = mode == MODE_TRAIN
    needs_grad = mode != MODE_EVAL
    bn_training = run.training or needs_grad
    total = 0.0
    metric_total = 0.0
    nc = 1
    for s in range(run.n_steps):
        pos = run.first + s * run.batch_size
        B = min(run.batch_size, n - pos)
        if B <= 0:
            return s, total, metric_total, nc, STOP_NONE
        nc = min(run.n_chunks, B)
        t = run.step0 + s + 1
        r = run.rng_step0 + s  # the model's update count: compute_loss at model.step draws the same
        gather_pass(X, data.y, data.T, order, pos, B, nc, ws, in_base, in_ld, work.yb, work.Tb)
        if aug is not None and is_train and aug.shape[0] > 0:
            # the input's gradient slot is never written (nothing backpropagates into X)
            augment_batch(ws, in_base, B, d_in, in_ld, gws[in_base: in_base + B * in_ld], nc, aug,
                          run.seed, r)
        n_bad_stats = forward_pass(ops, tables.opf, params, state.bn_run, work.bn_stats,
                                   work.bn_parts, ws, gws, B, nc, bn_training, is_train,
                                   run.seed, r, dropout)
        loss, metric = loss_pass(ops, tables.opf, ws, gws, work.yb, work.Tb, B, nc,
                                 work.loss_parts, needs_grad, general_loss)
        total += loss
        metric_total += metric
        if mode == MODE_EVAL:
            if records.outputs.shape[0] > 0:
                base, width = ops[k_head, F_IN], ops[k_head, F_NIN]
                out = records.outputs.ravel()
                for i in range(B * width):
                    out[pos * width + i] = gws[base + i]
            continue
        if is_train and not np.isfinite(loss):
            return s, total, metric_total, nc, STOP_LOSS
        if is_train and n_bad_stats > 0:
            return s, total, metric_total, nc, STOP_BN
        lr, mu_t, mu_next, mu_prod = 0.0, 0.0, 0.0, 0.0
        if is_train:
            lr = run.lr_scale * schedule_lr(run.sched_kind, run.sched_hyper,
                                            np.float64(run.step0 + s))
            mu_t, mu_next, mu_prod = step_scalars(run.opt_kind, run.opt_hyper, t,
                                                  state.opt_scalars, adaptive)
        update = (is_train, run.opt_kind, lr, t, state.opt_state, tables.seg, mu_t, mu_next,
                  mu_prod)
        n_bad = backward_pass(ops, tables.opf, params, grads, work.bn_stats, ws, gws, work.flags,
                              B, nc, dropout, update, run.opt_hyper, adaptive, extras)
        if not is_train:
            continue
        n_terms = B * work.Tb.shape[1] if per_output else B
        records.step_loss[s] = loss / n_terms
        records.step_metric[s] = metric / n_terms
        # the rest of the parameters in one streaming pass (the tiled dense W were
        # updated by backward_pass, tile by tile)
        n_bad += update_blocks(run.opt_kind, run.opt_hyper, lr, t, params, grads,
                               state.opt_state, tables.blocks, tables.seg, nc, mu_t, mu_next,
                               mu_prod, adaptive, extras, work.flags)
        records.step_lr[s] = lr
        if n_bad > 0:
            return s, total, metric_total, nc, STOP_PARAMS
        state.opt_scalars[0] = mu_prod
    return run.n_steps, total, metric_total, nc, STOP_NONE


_LINKED_FOR = set()
_LINKING = threading.Lock()   # one thread links (and may start a helper) at a time


def entry_requests(tables, data, state, work, run, records, aug, adaptive, extras, dropout,
                   general_loss):
    """The C entries that run_batches' kernels call (the bodies of the passes' parallel
    loops: kernels/c_entry.py), for the types of these arguments, run_batches' own: a
    list of (name, entry, returns, sample), the arguments of c_entry.link. Each sample
    has the types of the tuple its pass passes (a mismatch fails to compile, naming
    both)."""
    i, x, ws = 0, 0.0, work.ws   # any integer, any float (c_entry.canonical)
    ops, opf, params = tables.ops, tables.opf, state.params
    update = (True, i, x, i, state.opt_state, tables.seg, x, x, x)
    return [
        ("forward_part", passes.forward_entry, types.void,
         (i, ops, opf, i, i, params, work.bn_stats, work.bn_parts, ws, work.gws, i, i, i, True,
          i, i, dropout)),
        ("bn_statistics", passes.bn_statistics_entry, types.uint8,
         (ops, opf, i, ws, state.bn_run, work.bn_stats, work.bn_parts, i, i, True, True)),
        ("bn_gradient_totals", passes.bn_gradient_totals_entry, types.void,
         (ops, i, state.grads, work.bn_stats, i)),
        ("loss_part", passes.loss_entry, types.void,
         (i, ops, opf, ws, work.gws, work.yb, work.Tb, i, i, work.loss_parts, True,
          general_loss)),
        ("backward_part", passes.backward_entry, types.uint8,
         (i, ops, opf, i, i, i, params, state.grads, work.bn_stats, ws, work.gws, i, i, i,
          dropout, update, run.opt_hyper, adaptive, extras)),
        update_request(run.opt_hyper, params, state.grads, state.opt_state, tables.blocks,
                       tables.seg, adaptive, extras),
    ]


def link_entries(*args):
    """Register the C functions that run_batches' kernels call (the GEMM and
    entry_requests) for the types of `args`, run_batches' arguments. Call it before
    run_batches: a kernel compiled or loaded from the cache refers to them by name.

    Done once per dtype and switches: the arrays in the samples are the model's own
    (C-contiguous, writable), so their types follow from the dtype, and the
    optimizer's Hyper has fixed field types. On a cold cache a helper process compiles
    some entries and run_batches meanwhile (kernels/split_compile.py)."""
    tables, data, state, work, run, records, aug, adaptive, extras, dropout, general_loss = args
    key = (state.params.dtype, adaptive, extras, dropout, general_loss)
    if key in _LINKED_FOR:
        return
    with _LINKING:
        if key in _LINKED_FOR:   # another thread linked them meanwhile
            return
        requests = entry_requests(*args)
        with split_compile.compiling(args, requests) as helper_takes:
            link_gemm(state.params.dtype)
            for request in requests:
                if request[0] not in helper_takes:
                    link(*request)
        for request in requests:   # the helper's: loaded from the cache it filled
            link(*request)
        _LINKED_FOR.add(key)
