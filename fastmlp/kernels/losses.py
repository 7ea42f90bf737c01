"""Output losses fused with their gradient (one pass over the logits)."""
import numpy as np

from .._config import JIT, kernel


@kernel(**JIT)
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


@kernel(**JIT)
def mse(A, T, dA, scale, write_grad):
    """Squared error for one chunk: returns (sum of (A - T)^2 as float64, same sum).

    A (rows, k) outputs, T (rows, k) targets. When write_grad, dA = 2 (A - T) * scale
    with scale = 1 / (n k) (the loss is the mean over rows and outputs);
    otherwise dA = A (the predictions).
    """
    t = A.dtype.type
    two_scale = t(2.0 * scale)
    total = 0.0
    for i in range(A.shape[0]):
        a = A[i]
        tgt = T[i]
        out = dA[i]
        for j in range(A.shape[1]):
            e = a[j] - tgt[j]
            total += np.float64(e) * np.float64(e)
            out[j] = two_scale * e if write_grad else a[j]
    return total, total


@kernel(**JIT)
def sigmoid_bce(Z, T, dZ, scale, write_grad):
    """Binary cross-entropy of sigmoid(Z) against targets T in [0, 1], from the logits.

    Stable form per element: max(z, 0) - z t + log(1 + exp(-|z|)). Returns
    (loss sum as float64, number of elements with (sigmoid(z) > 0.5) == (t > 0.5)).
    When write_grad, dZ = (sigmoid(Z) - T) * scale (scale = 1 / (n k)); otherwise
    dZ = sigmoid(Z). Z, T, dZ (rows, k).
    """
    t = Z.dtype.type
    one, zero, sc = t(1), t(0), t(scale)
    total = 0.0
    correct = 0
    for i in range(Z.shape[0]):
        z = Z[i]
        tgt = T[i]
        out = dZ[i]
        for j in range(Z.shape[1]):
            v = np.float64(z[j])
            total += max(v, 0.0) - v * np.float64(tgt[j]) + np.log1p(np.exp(-abs(v)))
            if z[j] >= zero:
                p = one / (one + np.exp(-z[j]))
            else:
                e = np.exp(z[j])
                p = e / (one + e)
            if (z[j] > zero) == (tgt[j] > t(0.5)):
                correct += 1
            out[j] = (p - tgt[j]) * sc if write_grad else p
    return total, correct


@kernel(**JIT)
def multiclass_hinge(Z, y, dZ, inv_n, margin, write_grad):
    """Multiclass SVM loss (Weston & Watkins 1999; the CS231n / DD2424 form):
    sum over j != y of max(0, z_j - z_y + margin), averaged over rows.

    Z (rows, k) scores, y (rows,) labels. Returns (loss sum as float64, n correct by
    argmax). When write_grad, dZ is the subgradient times inv_n: +1 for each j
    with a positive term, minus their count at y; otherwise dZ = Z.
    """
    t = Z.dtype.type
    m, scale, zero = t(margin), t(inv_n), t(0)
    total = 0.0
    correct = 0
    k = Z.shape[1]
    for i in range(Z.shape[0]):
        z = Z[i]
        out = dZ[i]
        label = y[i]
        zy = z[label]
        best = 0
        count = 0
        for j in range(k):
            if z[j] > z[best]:
                best = j
            if write_grad:
                out[j] = zero
            else:
                out[j] = z[j]
            if j != label:
                term = z[j] - zy + m
                if term > zero:
                    total += np.float64(term)
                    count += 1
                    if write_grad:
                        out[j] = scale
        if write_grad:
            out[label] = -scale * t(count)
        if best == label:
            correct += 1
    return total, correct


@kernel(**JIT)
def margin_loss(Z, T, dZ, inv_n, margin, write_grad):
    """max(0, margin - t z) for one output and labels t in {-1, +1}, averaged over rows.

    margin 0 is the perceptron criterion, 1 the hinge loss (S3). Z, T, dZ (rows, 1).
    Returns (loss sum as float64, rows with sign(z) == t). When write_grad,
    dZ = -t * inv_n where the term is positive (subgradient 0 at the kink);
    otherwise dZ = Z.
    """
    t = Z.dtype.type
    m, scale, zero = t(margin), t(inv_n), t(0)
    total = 0.0
    correct = 0
    for i in range(Z.shape[0]):
        z = Z[i, 0]
        label = T[i, 0]
        term = m - label * z
        if term > zero:
            total += np.float64(term)
        if label * z > zero:
            correct += 1
        if write_grad:
            dZ[i, 0] = -label * scale if term > zero else zero
        else:
            dZ[i, 0] = z
    return total, correct
