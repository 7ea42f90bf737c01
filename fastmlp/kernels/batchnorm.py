"""Batch normalisation (Ioffe & Szegedy 2015) over features, chunked by rows.

Training forward runs in two passes so that rows can be split across threads:
(1) per-chunk partial sums of (z - shift) and (z - shift)^2 in float64,
(2) after the sums are combined, x_hat = (z - mean) * inv_std and
    A = act(gamma * x_hat + beta).
Shifting by one sample of the batch (the "shifted data" variance algorithm)
avoids the cancellation of E[z^2] - E[z]^2 when |mean| >> std.
"""
import numpy as np

from .._config import JIT, kernel
from .activations import act_backward, bias_act_forward


@kernel(**JIT)
def bn_partial_stats(Z, shift, s1, s2):
    """s1[j] = sum_i (Z[i,j] - shift[j]), s2[j] = sum_i (Z[i,j] - shift[j])^2.

    Z (rows, d) any float dtype; shift (d,); s1, s2 (d,) float64, overwritten.
    """
    s1[:] = 0.0
    s2[:] = 0.0
    for i in range(Z.shape[0]):
        row = Z[i]
        for j in range(Z.shape[1]):
            u = np.float64(row[j]) - np.float64(shift[j])
            s1[j] += u
            s2[j] += u * u


@kernel(**JIT)
def bn_finalize_stats(s1_parts, s2_parts, n_parts, shift, n_rows, eps, momentum,
                      mean, inv_std, run_mean, run_var, update_running):
    """Combine chunk sums into the batch mean and 1/sqrt(var + eps).

    s1_parts, s2_parts (>= n_parts, d) float64; shift (d,); writes mean and
    inv_std (d,) in the model dtype. var is the biased batch variance (divide by
    n_rows). When update_running: run = momentum * run + (1 - momentum) * batch.
    Returns False when an updated running mean or variance is NaN or inf (divergence
    detection, loop.run_batches), else True.
    """
    d = mean.shape[0]
    ok = True
    inv_n = 1.0 / n_rows
    for j in range(d):
        a = 0.0
        q = 0.0
        for c in range(n_parts):
            a += s1_parts[c, j]
            q += s2_parts[c, j]
        m_shifted = a * inv_n
        var = max(q * inv_n - m_shifted * m_shifted, 0.0)
        mu = np.float64(shift[j]) + m_shifted
        mean[j] = mu
        inv_std[j] = 1.0 / np.sqrt(var + eps)
        if update_running:
            run_mean[j] = momentum * run_mean[j] + (1.0 - momentum) * mu
            run_var[j] = momentum * run_var[j] + (1.0 - momentum) * var
            # |x| < inf is false for NaN and inf (no nnan/ninf in fastmath)
            ok &= np.abs(run_mean[j]) < np.inf and np.abs(run_var[j]) < np.inf
    return ok


@kernel(**JIT)
def bn_running_stats(run_mean, run_var, eps, mean, inv_std):
    """Evaluation mode: mean = running mean, inv_std = 1/sqrt(running var + eps)."""
    for j in range(mean.shape[0]):
        mean[j] = run_mean[j]
        inv_std[j] = 1.0 / np.sqrt(np.float64(run_var[j]) + eps)


@kernel(**JIT)
def bn_normalize(Z, mean, inv_std, gamma, beta, X_hat, A, act, alpha):
    """X_hat = (Z - mean) * inv_std; A = act(gamma * X_hat + beta).

    Z, X_hat, A (rows, d); mean, inv_std, gamma, beta (d,).
    """
    for i in range(Z.shape[0]):
        z = Z[i]
        xh = X_hat[i]
        a = A[i]
        for j in range(Z.shape[1]):
            v = (z[j] - mean[j]) * inv_std[j]
            xh[j] = v
            a[j] = gamma[j] * v
    bias_act_forward(A, beta, act, alpha)


@kernel(**JIT)
def bn_backward_sums(dA, A, X_hat, act, alpha, dgamma, dbeta):
    """First backward pass for one chunk.

    Turns dA (rows, d) in place into dY = dA * act'(.) (the gradient at
    gamma * x_hat + beta) and writes the chunk's partial sums
    dgamma = sum_i dY * x_hat, dbeta = sum_i dY (d,), in the model dtype.
    """
    act_backward(dA, A, act, alpha)
    dgamma[:] = 0
    dbeta[:] = 0
    for i in range(dA.shape[0]):
        g = dA[i]
        xh = X_hat[i]
        for j in range(dA.shape[1]):
            dgamma[j] += g[j] * xh[j]
            dbeta[j] += g[j]


@kernel(**JIT)
def bn_backward_dx(dY, X_hat, gamma, inv_std, dgamma, dbeta, n_rows, dX):
    """dX = gamma * inv_std / n * (n dY - dbeta - X_hat * dgamma).

    The standard batch-norm input gradient (Ioffe & Szegedy 2015, sec. 3) with
    dbeta = sum_i dY and dgamma = sum_i dY * x_hat taken over the whole batch
    of n_rows. dY, X_hat, dX (rows, d); gamma, inv_std, dgamma, dbeta (d,).
    """
    t = dY.dtype.type
    n = t(n_rows)
    inv_n = t(1.0 / n_rows)
    for i in range(dY.shape[0]):
        g = dY[i]
        xh = X_hat[i]
        out = dX[i]
        for j in range(dY.shape[1]):
            out[j] = gamma[j] * inv_std[j] * inv_n * (n * g[j] - dbeta[j] - xh[j] * dgamma[j])
