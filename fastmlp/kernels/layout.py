"""The op table: how a plan describes a model to the compiled loop.

A plan (fastmlp/plan.py) is an int64 table `ops` (n_ops, N_FIELDS) and a float64
table `opf` (n_ops, N_FLOAT_FIELDS), one row per op, built once in Python. The
compiled passes (kernels/passes.py) read them by the field names below. Activations
live in one flat workspace `ws`: the buffer of op k holds (B, width) rows starting
at ws[ops[k, F_OUT]] for the current batch size B; `gws` has the same layout and
holds the gradients. The batch rows are split into `n_chunks` contiguous chunks
(`chunk_rows`), one per thread of Numba's parallel loops.
"""

from .._config import JIT, kernel

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
N_FLOAT_FIELDS = 3

# what run_batches does (kernels/loop.py)
MODE_TRAIN = 0   # minibatch updates
MODE_EVAL = 1    # forward + loss over all rows in batches (optionally the outputs)
MODE_GRAD = 2    # one training-mode forward + backward over all rows, no update
# why run_batches stopped before its last step (its fifth result)
STOP_NONE = 0      # it ran every step (or the data ran out)
STOP_LOSS = 1      # a step's loss was NaN or inf
STOP_BN = 2        # a BN running mean or variance became NaN or inf
STOP_PARAMS = 3    # an update left a NaN or inf in the parameters or the optimizer state


@kernel(**JIT)
def chunk_rows(n_rows, n_chunks, c):
    """Bounds [r0, r1) of chunk c when n_rows are split into n_chunks near-equal parts."""
    return c * n_rows // n_chunks, (c + 1) * n_rows // n_chunks


@kernel(**JIT)
def rows(buf, base, width, r0, r1):
    """Rows r0:r1 of the (B, width) matrix stored at buf[base:], as a C-contiguous view."""
    return buf[base + r0 * width: base + r1 * width].reshape((r1 - r0, width))


@kernel(**JIT)
def mat(flat, offset, n_rows, n_cols):
    """(n_rows, n_cols) C-contiguous view of flat[offset:]."""
    return flat[offset: offset + n_rows * n_cols].reshape((n_rows, n_cols))
