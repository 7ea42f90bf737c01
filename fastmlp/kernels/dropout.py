"""Inverted dropout with counter-based masks (independent of threads and chunking)."""

from .._config import JIT, kernel
from .rng import stream_key, uniform_at


@kernel(**JIT)
def dropout_forward(X, A, M, rate, seed, stream, row0):
    """A = X * M with M[i, j] = 1 / (1 - rate) if u >= rate else 0, u uniform in (0, 1)
    from counters (seed, stream, (row0 + i) * d + j). X, A, M (rows, d); row0 is the
    chunk's first row in the batch, stream identifies (update, layer)."""
    t = X.dtype.type
    keep = t(1.0 / (1.0 - rate))
    zero = t(0)
    d = X.shape[1]
    key = stream_key(seed, stream)
    for i in range(X.shape[0]):
        base = (row0 + i) * d
        for j in range(d):
            m = keep if uniform_at(key, base + j) >= rate else zero
            M[i, j] = m
            A[i, j] = X[i, j] * m


@kernel(**JIT)
def dropout_backward(dA, M, dX):
    """dX = dA * M. All (rows, d)."""
    for i in range(dA.shape[0]):
        for j in range(dA.shape[1]):
            dX[i, j] = dA[i, j] * M[i, j]
