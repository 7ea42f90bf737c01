"""Per-batch input augmentation inside the training loop, randomness from counters.

aug (float64): [0] Gaussian noise std, [1] salt-and-pepper rate, [2] pepper value,
[3] salt value, [4] max shift (pixels), [5] max rotation (degrees), [6] flip (0/1),
[7..9] image shape (channels, height, width; channel-major rows as CIFAR's).
A row's draws depend on (seed, update, row position in the batch), never on threads.
"""
import numpy as np
from numba import prange

from .._config import JIT, PARALLEL, kernel
from .rng import normal_at, stream_key, uniform, uniform_at
from .layout import chunk_rows

N_AUG = 10


@kernel(**JIT)
def _geometry(row, scratch, aug, seed, stream, r):
    """Shift / rotate (about the centre) / flip one image row in place, nearest-neighbour
    sampling with edge replication (standardised backgrounds stay background)."""
    C, H, W = int(aug[7]), int(aug[8]), int(aug[9])
    max_shift, max_rot, flip = aug[4], aug[5], aug[6] != 0.0
    base = 8 * r  # 8 counters per row
    dy = np.floor(uniform(seed, stream, base) * (2 * max_shift + 1)) - max_shift
    dx = np.floor(uniform(seed, stream, base + 1) * (2 * max_shift + 1)) - max_shift
    theta = (2.0 * uniform(seed, stream, base + 2) - 1.0) * max_rot * np.pi / 180.0
    mirror = flip and uniform(seed, stream, base + 3) < 0.5
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    for k in range(row.shape[0]):
        scratch[k] = row[k]
    for i in range(H):
        for j in range(W):
            # output (i, j) samples the input at the inverse transform of (i, j)
            y0, x0 = i - dy - cy, j - dx - cx
            sy = cos_t * y0 + sin_t * x0 + cy
            sx = -sin_t * y0 + cos_t * x0 + cx
            if mirror:
                sx = W - 1 - sx
            si = min(max(int(np.floor(sy + 0.5)), 0), H - 1)
            sj = min(max(int(np.floor(sx + 0.5)), 0), W - 1)
            for c in range(C):
                row[c * H * W + i * W + j] = scratch[c * H * W + si * W + sj]


@kernel(**JIT)
def augment_rows(Xb, scratch, aug, seed, step, r0):
    """Augment rows of the gathered batch Xb (rows, d) in place; r0 = first row's position."""
    t = Xb.dtype.type
    stream = step
    geometric = aug[4] > 0.0 or aug[5] > 0.0 or aug[6] != 0.0
    noise_std, sp = aug[0], aug[1]
    d = Xb.shape[1]
    noise_key = stream_key(seed, stream + (1 << 40))
    sp_key = stream_key(seed, stream + (2 << 40))
    for i in range(Xb.shape[0]):
        r = r0 + i
        row = Xb[i]
        if geometric:
            _geometry(row, scratch, aug, seed, stream, r)
        if noise_std > 0.0:
            for j in range(d):
                row[j] += t(noise_std * normal_at(noise_key, r * d + j))
        if sp > 0.0:
            for j in range(d):
                u = uniform_at(sp_key, r * d + j)
                if u < sp:
                    row[j] = t(aug[2]) if u < 0.5 * sp else t(aug[3])


@kernel(**PARALLEL)
def augment_batch(ws, base, n_rows, d, ld, scratch, n_chunks, aug, seed, step):
    """Augment the (n_rows, d) batch at ws[base:] (row stride ld >= d), one chunk of rows
    per parallel iteration; scratch (>= n_chunks * d)."""
    for c in prange(n_chunks):
        r0, r1 = chunk_rows(n_rows, n_chunks, c)
        Xb = ws[base + r0 * ld: base + r1 * ld].reshape((r1 - r0, ld))[:, :d]
        augment_rows(Xb, scratch[c * d: (c + 1) * d], aug, seed, step, r0)
