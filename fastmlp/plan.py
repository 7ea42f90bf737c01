"""Compile a layer list into a plan: the op table and the flat-buffer layouts.

Parameters of every layer live in one 1-D array in get_weights order (W, b of a
dense layer; gamma, beta of a batchnorm). The plan fuses an activation into the
dense or batchnorm op in front of it. Workspace buffers are numbered here
(buffer 0 is the input batch); `Plan.ops_for_batch` turns buffer numbers into
offsets for a given batch size.
"""
from dataclasses import dataclass, field

import numpy as np

from .kernels import activations as act
from .kernels import loop as L
from .layers import Activation, BatchNorm, Dense, Layer, Softmax, activation_from_name

BLOCK = 16384  # optimizer work unit (elements); a block stays in L1/L2 while updated
DW_TILING = "auto"  # "auto" | "always" | "never": how dense ops compute dW (see ops_for_batch)


@dataclass
class ParamEntry:
    """One trainable array: layer index, name ("W", "b", "gamma", "beta"), flat offset, shape."""
    layer: int
    name: str
    offset: int
    shape: tuple

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

    @property
    def n_classes(self):
        return int(self.ops[-1, L.F_NIN])

    def ops_for_batch(self, batch_size, n_chunks=1):
        """Op table for `batch_size` rows split into n_chunks: buffer ids become workspace
        offsets, and each dense op picks how dW is computed (F_TILED).

        Tiled (row tiles of W from the transposed input, no per-chunk dW partials,
        W updated in cache) when the n_chunks - 1 extra partials of W (n_in * n_out
        each) outweigh transposing the input (batch_size * n_in); the factor 4 is
        measured on 784-512x6 nets (tiling wins at batch 32, not at batch 256).
        """
        bases = np.concatenate([[0], np.cumsum(self.widths)[:-1]]) * batch_size
        ops = self.ops.copy()
        for f in (L.F_IN, L.F_OUT, L.F_AUX):
            ops[:, f] = np.where(self.ops[:, f] >= 0, bases[np.maximum(self.ops[:, f], 0)], -1)
        dense = ops[:, L.F_KIND] == L.OP_DENSE
        tiled = dense & (n_chunks > 1) & (ops[:, L.F_NOUT] * (n_chunks - 1) >= 4 * batch_size)
        if DW_TILING != "auto":
            tiled = dense & (DW_TILING == "always")
        ops[:, L.F_TILED] = tiled.astype(np.int64)
        return ops

    def workspace_size(self, batch_size):
        return int(sum(self.widths)) * batch_size

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

        Penalties and decay apply to weight matrices only; b, gamma, beta get zeros.
        """
        rows = [(l2, l1, weight_decay) if e.name == "W" else (0.0, 0.0, 0.0) for e in self.entries]
        return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _blocks(entries, folded=()):
    out = []
    for idx, e in enumerate(entries):
        for s in range(e.offset, e.offset + e.size, BLOCK):
            out.append((s, min(s + BLOCK, e.offset + e.size), idx, int(idx in folded)))
    return np.array(out, dtype=np.int64).reshape(-1, 4)


def _fused_activation(layers, i):
    """Activation code/alpha of layers[i + 1] if it is an activation layer, else None."""
    if i + 1 < len(layers) and isinstance(layers[i + 1], Activation):
        return layers[i + 1]
    return None


def compile_layers(layers, n_features):
    """Build the Plan of `layers` for inputs of width n_features. ValueError on a bad stack."""
    if not layers:
        raise ValueError("the model has no layers; add Dense(...) layers and a Softmax() output")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise ValueError(f"layer {i} is {layer!r}, not a fastmlp layer")
    if not isinstance(layers[-1], Softmax):
        raise ValueError("the last layer must be Softmax() (cross-entropy output); "
                         f"got {type(layers[-1]).__name__}")
    ops, opf, widths, entries, bn_layers, dims, op_layers = [], [], [n_features], [], [], [], []
    n_params = n_run = n_stats = 0
    cur, d, i = 0, n_features, 0

    def new_buffer(width):
        widths.append(width)
        return len(widths) - 1

    while i < len(layers):
        layer = layers[i]
        row = np.full(L.N_FIELDS, -1, dtype=np.int64)
        row[L.F_NIN], row[L.F_IN], row[L.F_ACT] = d, cur, act.LINEAR
        frow = np.array([0.0, 0.0, 0.0])
        fuse = None
        if isinstance(layer, Softmax):
            if i != len(layers) - 1:
                raise ValueError(f"Softmax must be the last layer (found at position {i})")
            row[L.F_KIND], row[L.F_NOUT] = L.OP_SOFTMAX_XENT, d
        elif isinstance(layer, (Dense, BatchNorm)):
            fuse = _fused_activation(layers, i)
            own = activation_from_name(layer.activation) if getattr(layer, "activation", None) else None
            if own is not None:
                fuse = None
            chosen = own or fuse
            if chosen is not None:
                row[L.F_ACT], frow[L.G_ALPHA] = chosen.code, chosen.alpha
            shapes = layer.param_shapes(d)
            offs = []
            row[L.F_SEG] = len(entries)
            for name, shape in shapes:
                entries.append(ParamEntry(i, name, n_params, tuple(shape)))
                offs.append(n_params)
                n_params += int(np.prod(shape))
            row[L.F_P0], row[L.F_P1] = offs
            d_out = layer.output_dim(d)
            if isinstance(layer, Dense):
                row[L.F_KIND] = L.OP_DENSE
                row[L.F_AUX] = new_buffer(d)  # the transposed input (n_in, B) for tiled dW
            else:
                row[L.F_KIND] = L.OP_BN
                row[L.F_AUX] = new_buffer(d)
                row[L.F_STATE], row[L.F_STAT] = n_run, n_stats
                bn_layers.append((i, n_run, d))
                n_run += 2 * d
                n_stats += 4 * d
                frow[L.G_EPS], frow[L.G_MOMENTUM] = layer.eps, layer.momentum
            row[L.F_NOUT] = d_out
            row[L.F_OUT] = new_buffer(d_out)
        elif isinstance(layer, Activation):
            row[L.F_KIND], row[L.F_NOUT], row[L.F_ACT] = L.OP_ACT, d, layer.code
            frow[L.G_ALPHA] = layer.alpha
            row[L.F_OUT] = new_buffer(d)
        else:
            raise ValueError(f"layer {layer!r} is not supported by this version")
        row[L.F_NEED_DX] = 0 if row[L.F_IN] == 0 else 1
        ops.append(row)
        opf.append(frow)
        dims.append(int(row[L.F_NOUT]))
        if row[L.F_KIND] != L.OP_SOFTMAX_XENT:
            cur, d = int(row[L.F_OUT]), int(row[L.F_NOUT])
        if fuse is not None:
            dims.append(d)
            i += 1
        op_layers.append(i)
        i += 1
    return Plan(np.array(ops), np.array(opf), widths, entries, n_params, n_run, n_stats,
                bn_layers, dims, op_layers)
