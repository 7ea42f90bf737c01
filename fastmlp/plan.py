"""Compile a layer list into a plan: the op table and the flat-buffer layouts.

Parameters of every layer live in one 1-D array in get_weights order (W, b of a
dense layer; gamma, beta of a batchnorm). The plan fuses an activation into the
dense or batchnorm op in front of it. Workspace buffers are numbered here
(buffer 0 is the input batch); `Plan.ops_for_batch` turns buffer numbers into
offsets for a given batch size.
"""
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from .kernels import activations as act
from .kernels import layout as L
from .kernels import optim as _optim
from .layers import (Activation, BatchNorm, Dense, Dropout, Layer, Residual, Sigmoid, Softmax,
                     activation_from_name)
from .losses import get_loss

BLOCK = 16384  # optimizer work unit (elements); a block stays in L1/L2 while updated
DW_TILING = "auto"  # "auto" | "always" | "never": how dense ops compute dW (see ops_for_batch)
COLUMN_SPLIT = "auto"  # "auto" | "always" | "never": tiled dense ops split forward/dX by columns
K_SPLIT = "auto"  # "auto" | "never": tiled narrow dense ops split the forward by inputs
COLUMN_SPLIT_MAX_ROWS = 32  # auto column split only up to this many batch rows per thread


class Switches(NamedTuple):
    """Compile-time switches of run_batches (see kernels/loop.py): True, or None where
    the feature is unused and its kernels need not be compiled. `augmented` says
    whether `aug` is an array (augmentation) or None."""
    augmented: bool = False
    adaptive: Optional[bool] = None
    extras: Optional[bool] = None
    dropout: Optional[bool] = None
    general_loss: Optional[bool] = None


@dataclass
class ParamEntry:
    """One trainable array: top-level layer index, name ("W", "b", "gamma", "beta"),
    flat offset, shape, and the layer object owning it (inside a Residual, the inner layer)."""
    layer: int
    name: str
    offset: int
    shape: tuple
    owner: object = None

    @property
    def size(self):
        return int(np.prod(self.shape))


@dataclass
class Plan:
    ops: np.ndarray            # (n_ops, N_FIELDS) int64; F_IN/F_OUT/F_AUX hold buffer ids
    opf: np.ndarray            # (n_ops, 3) float64
    widths: list               # width of each workspace buffer
    entries: list              # [ParamEntry] in get_weights order
    n_params: int
    n_bn_run: int              # running mean + var of every bn layer
    n_bn_stats: int            # mean, inv_std, dgamma, dbeta of every bn layer
    bn_layers: list = field(default_factory=list)   # [(layer index, run offset, width)]
    output_dims: list = field(default_factory=list)  # per layer
    op_layers: list = field(default_factory=list)    # per op: index of the last layer it covers
    loss: object = None                               # LossSpec of the head

    @property
    def n_outputs(self):
        return int(self.ops[-1, L.F_NIN])

    n_classes = n_outputs

    def ops_for_batch(self, batch_size, n_chunks=1):
        """Op table for `batch_size` rows split into n_chunks: buffer ids become workspace
        offsets, and each dense op picks how dW is computed (F_TILED).

        Tiled (row tiles of dW = X^T dZ, one per thread, by a strided GEMM on the input
        rows, straight into the gradient) whenever the rows are split into chunks:
        no per-chunk partials of W to write and fold, and the whole batch as the GEMM's
        inner dimension. Measured against per-chunk partials on the bench workloads
        (2 threads): equal on W1/W2, 2% faster on W3 at batch 256, 11% at batch 32.

        Wide tiled layers (>= 128 output columns per thread) at small batches (<=
        COLUMN_SPLIT_MAX_ROWS rows per thread) also split the forward GEMM and dX by
        columns (TILE_COLS): each thread then reads only its part of W instead of all
        of it, which pays while W is the bigger operand. Measured on W3 (512 wide,
        2 threads, ms/step, column split vs row split, adjacent runs in one process):
        batch 32: 3.89-4.05 vs 4.44-4.48; batch 64: 5.97-6.13 vs 6.31-6.37;
        batch 128: 10.41-10.73 vs 10.15-10.25; batch 256: 19.4-20.1 vs 18.0-18.8
        (33 pairs). At batch 256 the column split's strided half-width GEMMs ran at
        79 GFLOP/s per thread while both threads worked, against 89 alone. The 30-100
        wide layers of W1/W2 were 1-2% slower split by columns and keep the row split.

        Other tiled layers with n_in >= n_chunks * n_out split the forward GEMM along
        n_in (TILE_K): each thread multiplies all rows by its slice of the inputs and
        the partial sums are added in the epilogue. Measured (2 threads): W1 7.17 ->
        6.38 and W2 3.58 -> 3.16 us/sample (the first layers' GEMMs get the whole
        batch as M instead of half of it); W3 unchanged.
        """
        widths = self._padded_widths()
        bases = np.concatenate([[0], np.cumsum(widths)[:-1]]) * batch_size
        ops = self.ops.copy()
        for f in (L.F_IN, L.F_OUT, L.F_AUX):
            ops[:, f] = np.where(self.ops[:, f] >= 0, bases[np.maximum(self.ops[:, f], 0)], -1)
        dense = ops[:, L.F_KIND] == L.OP_DENSE
        tiled = dense & (n_chunks > 1)
        if DW_TILING != "auto":
            tiled = dense & (DW_TILING == "always")
        cols = (tiled & (ops[:, L.F_NOUT] >= 128 * n_chunks)
                & (batch_size <= COLUMN_SPLIT_MAX_ROWS * n_chunks))
        if COLUMN_SPLIT != "auto":
            cols = tiled & (COLUMN_SPLIT == "always")
        # the partials of a K split live in the input's gradient slot: n_in >= T * n_out
        ksplit = tiled & ~cols & (ops[:, L.F_NIN] >= n_chunks * ops[:, L.F_NOUT])
        if K_SPLIT == "never":
            ksplit[:] = False
        ops[:, L.F_TILED] = np.select([cols, ksplit, tiled], [L.TILE_COLS, L.TILE_K, L.TILE_DW],
                                      L.TILE_NONE)
        if ops[0, L.F_KIND] == L.OP_DENSE and ops[0, L.F_TILED] in (L.TILE_K, L.TILE_COLS):
            # the first op reads the batch only through GEMMs with a leading dimension:
            # give the batch buffer padded rows (see input_stride)
            ops[0, L.F_LD] = widths[0]
        return ops

    def _padded_widths(self):
        return [input_stride(self.widths[0])] + list(self.widths[1:])

    def workspace_size(self, batch_size):
        return int(sum(self._padded_widths())) * batch_size

    def blocks(self, ops=None):
        """(n_blocks, 4) int64 rows (start, stop, entry index, folded) covering the params
        in BLOCK pieces. folded = 1 for the W of the tiled dense ops of `ops` (an op
        table from ops_for_batch): its gradient is complete in grads[0]."""
        folded = set()
        if ops is not None:
            folded = {int(r[L.F_SEG]) for r in ops if r[L.F_KIND] == L.OP_DENSE and r[L.F_TILED]}
        return _blocks(self.entries, folded)

    def segments(self, l2=0.0, l1=0.0, weight_decay=0.0):
        """(n_entries, 3) float64 rows (l2, l1, decoupled weight decay) per trainable array.

        Penalties and decay apply to weight matrices only (b, gamma, beta get zeros);
        a Dense layer's own l2 / l1 override the given ones.
        """
        rows = [(*self.penalties(e, l2, l1), weight_decay) if e.name == "W" else (0.0, 0.0, 0.0)
                for e in self.entries]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)

    def switches(self, optimizer=None, seg=None, augmented=False):
        """The Switches of a fit with `optimizer`, penalty table `seg` (from segments)
        and augmentation or not; with no optimizer, those of evaluation only."""
        on = lambda used: True if used else None  # noqa: E731
        kinds = self.ops[:, L.F_KIND]
        extras = False
        if optimizer is not None:
            extras = optimizer.hyper().noise_eta > 0.0 or (seg is not None and bool(np.any(seg[:, 1:])))
        return Switches(augmented=bool(augmented),
                        adaptive=on(optimizer is not None and optimizer.kind != _optim.SGD),
                        extras=on(extras), dropout=on(np.any(kinds == L.OP_DROPOUT)),
                        general_loss=on(self.ops[-1, L.F_ACT] != L.LOSS_SOFTMAX_CE))

    @staticmethod
    def penalties(entry, l2, l1):
        """(l2, l1) that apply to a weight entry: the owning layer's, else the given ones."""
        own_l2, own_l1 = getattr(entry.owner, "l2", None), getattr(entry.owner, "l1", None)
        return (l2 if own_l2 is None else own_l2), (l1 if own_l1 is None else own_l1)


def _blocks(entries, folded=()):
    out = []
    for idx, e in enumerate(entries):
        for s in range(e.offset, e.offset + e.size, BLOCK):
            out.append((s, min(s + BLOCK, e.offset + e.size), idx, int(idx in folded)))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def _fused_activation(layers, i):
    """layers[i + 1] if it is an activation layer, else None."""
    if i + 1 < len(layers) and isinstance(layers[i + 1], Activation):
        return layers[i + 1]
    return None


def input_stride(n_features):
    """Row stride (elements) of the batch buffer: n_features rounded up to 16 mod 32.

    Rows a multiple of 4 KiB apart (3072 float32 features: 12 KiB) fall in the same
    L1 set, so a GEMM walking down a column of the batch (dW = X^T dZ) evicts its own
    lines. An odd multiple of 64 bytes (16 float32) spreads the rows over the sets.
    Measured on W1's first layer, 1 thread, when register tiles computed its dW: 65 ->
    92 GFLOP/s (rows 12 KiB apart vs 3088 floats). The tiles still read the batch
    unpacked for small batches (kernels/tile_gemm.py)."""
    return n_features + (16 - n_features % 32) % 32


class _Compiler:
    """Walks the layer list once, emitting op rows, buffers and parameter entries."""

    def __init__(self, n_features):
        self.ops, self.opf, self.widths, self.entries = [], [], [n_features], []
        self.bn_layers, self.op_layers = [], []
        self.n_params = self.n_run = self.n_stats = 0

    def buffer(self, width):
        self.widths.append(width)
        return len(self.widths) - 1

    def emit(self, kind, top, cur, d_in, d_out, out, act_code=act.LINEAR, alpha=0.0):
        row = np.full(L.N_FIELDS, -1, dtype=np.int64)
        row[L.F_KIND], row[L.F_NIN], row[L.F_NOUT], row[L.F_IN], row[L.F_OUT] = kind, d_in, d_out, cur, out
        row[L.F_ACT], row[L.F_NEED_DX], row[L.F_TILED] = act_code, int(cur != 0), 0
        row[L.F_LD] = d_in
        self.ops.append(row)
        self.opf.append(np.array([alpha, 0.0, 0.0]))
        self.op_layers.append(top)
        return row, self.opf[-1]

    def params(self, row, top, layer, d):
        row[L.F_SEG] = len(self.entries)
        offsets = []
        for name, shape in layer.param_shapes(d):
            self.entries.append(ParamEntry(top, name, self.n_params, tuple(shape), layer))
            offsets.append(self.n_params)
            self.n_params += int(np.prod(shape))
        row[L.F_P0], row[L.F_P1] = offsets

    def stack(self, layers, top_of, cur, d, dims):
        """Compile a list of hidden layers; returns (buffer, width) of its output."""
        i = 0
        while i < len(layers):
            layer, top = layers[i], top_of(i)
            fuse = None
            if isinstance(layer, (Dense, BatchNorm)):
                own = getattr(layer, "activation", None)
                chosen = activation_from_name(own) if own else _fused_activation(layers, i)
                fuse = None if own else chosen
                d_out = layer.output_dim(d)
                out = self.buffer(d_out)
                kind = L.OP_DENSE if isinstance(layer, Dense) else L.OP_BN
                row, frow = self.emit(kind, top if fuse is None else top_of(i + 1), cur, d, d_out,
                                      out, chosen.code if chosen else act.LINEAR,
                                      chosen.alpha if chosen else 0.0)
                self.params(row, top, layer, d)
                if kind != L.OP_DENSE:
                    row[L.F_AUX] = self.buffer(d)  # x_hat
                    row[L.F_STATE], row[L.F_STAT] = self.n_run, self.n_stats
                    self.bn_layers.append((top, self.n_run, d))
                    self.n_run += 2 * d
                    self.n_stats += 4 * d
                    frow[L.G_EPS], frow[L.G_MOMENTUM] = layer.eps, layer.momentum
                cur, d = out, d_out
            elif isinstance(layer, Activation):
                out = self.buffer(d)
                self.emit(L.OP_ACT, top, cur, d, d, out, layer.code, layer.alpha)
                cur = out
            elif isinstance(layer, Dropout):
                out = self.buffer(d)
                row, _ = self.emit(L.OP_DROPOUT, top, cur, d, d, out, alpha=layer.rate)
                row[L.F_AUX] = self.buffer(d)  # the mask
                cur = out
            elif isinstance(layer, Residual):
                skip, _ = self.emit(L.OP_SKIP, top, cur, d, d, cur)
                inner_out, inner_d = self.stack(layer.layers, lambda _: top, cur, d, [])
                if inner_d != d:
                    raise ValueError(f"Residual block (layer {top}) maps width {d} to {inner_d}; "
                                     f"its layers must keep the width to be added to the input")
                out = self.buffer(d)
                add, _ = self.emit(L.OP_ADD, top, inner_out, d, d, out)
                add[L.F_AUX] = cur
                skip[L.F_AUX] = out   # the skip path receives the sum's gradient
                cur = out
            else:
                raise ValueError(f"layer {layer!r} cannot be a hidden layer")
            dims.append(d)
            if fuse is not None:
                dims.append(d)
                i += 1
            i += 1
        return cur, d


def compile_layers(layers, n_features, loss=None):
    """Build the Plan of `layers` for inputs of width n_features, with the loss head.

    loss: a name for fastmlp.losses.get_loss, a LossSpec, or None for "cross_entropy"
    when the last layer is Softmax. Softmax (cross-entropy) and a final Sigmoid with
    binary cross-entropy are part of the head, computed from the logits.
    ValueError on a bad stack.
    """
    if not layers:
        raise ValueError("the model has no layers; add Dense(...) layers and an output")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"layer {i} is {layer!r}, not a fastmlp layer")
        if isinstance(layer, Softmax) and i != len(layers) - 1:
            raise ValueError(f"Softmax must be the last layer (found at position {i})")
    spec = _resolve_loss(layers, loss)
    hidden = layers[:-1] if spec.name in ("cross_entropy", "binary_cross_entropy") else layers
    c = _Compiler(n_features)
    dims = []
    cur, d = c.stack(hidden, lambda i: i, 0, n_features, dims)
    if len(hidden) < len(layers):
        dims.append(d)
    if spec.targets == "signs" and d != 1:
        raise ValueError(f"loss {spec.name!r} needs one output unit, the model has {d}")
    row, frow = c.emit(L.OP_LOSS, len(layers) - 1, cur, d, d, cur, spec.code, spec.margin)
    ops = np.array(c.ops)
    return Plan(ops, np.array(c.opf), c.widths, c.entries, c.n_params, c.n_run, c.n_stats,
                c.bn_layers, dims, c.op_layers, spec)


def _resolve_loss(layers, loss):
    last = layers[-1]
    if loss is None:
        if not isinstance(last, Softmax):
            raise ValueError(f"the last layer must be Softmax() for cross-entropy (got "
                             f"{type(last).__name__}), or give the model another loss: "
                             "Sequential(..., loss='mse' | 'binary_cross_entropy' | "
                             "'multiclass_hinge' | 'hinge' | 'perceptron')")
        loss = "cross_entropy"
    spec = loss if not isinstance(loss, str) else get_loss(loss)
    if spec.name == "cross_entropy" and not isinstance(last, Softmax):
        raise ValueError("cross_entropy needs Softmax() as the last layer")
    if spec.name == "binary_cross_entropy" and not isinstance(last, Sigmoid):
        raise ValueError("binary_cross_entropy needs Sigmoid() as the last layer")
    if spec.name != "cross_entropy" and isinstance(last, Softmax):
        raise ValueError(f"Softmax() output goes with cross_entropy, not {spec.name!r}")
    return spec
