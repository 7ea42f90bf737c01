"""Output losses fused with their gradient (one pass over the logits)."""
import numpy as np
from numba import njit

from .._config import JIT


@njit(**JIT)
def softmax_xent(Z, y, dZ, inv_n, write_grad):
    """Softmax cross-entropy for one chunk of rows.

    Z (rows, k) logits, y (rows,) integer labels in [0, k). Returns
    (sum of -log softmax(Z)[i, y_i] over rows as float64, number of rows whose
    argmax equals y). When write_grad, writes dZ = (softmax(Z) - onehot(y)) * inv_n
    (rows, k); otherwise writes the probabilities softmax(Z) into dZ.
    Stable: subtracts the row max, log-sum-exp in float64 for the loss.
    """
    t = Z.dtype.type
    scale = t(inv_n)
    loss = 0.0
    n_correct = 0
    k = Z.shape[1]
    for i in range(Z.shape[0]):
        z = Z[i]
        out = dZ[i]
        best = 0
        zmax = z[0]
        for j in range(1, k):
            if z[j] > zmax:
                zmax = z[j]
                best = j
        s = 0.0
        for j in range(k):
            e = np.exp(z[j] - zmax)
            out[j] = e
            s += np.float64(e)
        label = y[i]
        loss += np.log(s) - (np.float64(z[label]) - np.float64(zmax))
        if best == label:
            n_correct += 1
        if write_grad:
            f = t(1.0 / s) * scale
            for j in range(k):
                out[j] = out[j] * f
            out[label] -= scale
        else:
            f = t(1.0 / s)
            for j in range(k):
                out[j] = out[j] * f
    return loss, n_correct
