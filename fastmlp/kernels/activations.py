"""Element-wise activations, applied in place; derivatives from the *output*.

Each supported activation's derivative can be written in terms of its output A,
so the forward pass keeps only A (no separate pre-activation buffer):
ReLU: A > 0; LeakyReLU(alpha): 1 if A > 0 else alpha; sigmoid: A (1 - A);
tanh: 1 - A^2; linear: 1.
"""
import numpy as np

from .._config import JIT, kernel

LINEAR = 0
RELU = 1
SIGMOID = 2
TANH = 3
LEAKY_RELU = 4


@kernel(**JIT)
def act_row(row, act, alpha):
    """row[j] = act(row[j]) in place for a 1-D row."""
    t = row.dtype.type
    zero, one, a = t(0), t(1), t(alpha)
    d = row.shape[0]
    if act == RELU:
        for j in range(d):
            v = row[j]
            row[j] = v if v > zero else zero
    elif act == LEAKY_RELU:
        for j in range(d):
            v = row[j]
            row[j] = v if v > zero else a * v
    elif act == SIGMOID:
        for j in range(d):
            v = row[j]
            # exp of a non-positive number only: stable in both tails
            if v >= zero:
                row[j] = one / (one + np.exp(-v))
            else:
                e = np.exp(v)
                row[j] = e / (one + e)
    elif act == TANH:
        for j in range(d):
            row[j] = np.tanh(row[j])


@kernel(**JIT)
def bias_act_forward(Z, b, act, alpha):
    """Z[i, j] = act(Z[i, j] + b[j]) in place. Z (rows, d), b (d,); alpha for LeakyReLU.

    ReLU and linear (the hot cases) are fused into the bias loop; the others
    add the bias and then transform the row while it is in L1.
    """
    zero = Z.dtype.type(0)
    for i in range(Z.shape[0]):
        row = Z[i]
        if act == RELU:
            for j in range(row.shape[0]):
                v = row[j] + b[j]
                row[j] = v if v > zero else zero
        else:
            for j in range(row.shape[0]):
                row[j] += b[j]
            if act != LINEAR:
                act_row(row, act, alpha)


@kernel(**JIT)
def act_forward(X, A, act, alpha):
    """A = act(X) for a standalone activation layer. X, A (rows, d)."""
    for i in range(X.shape[0]):
        x = X[i]
        a = A[i]
        for j in range(x.shape[0]):
            a[j] = x[j]
        act_row(a, act, alpha)


@kernel(**JIT)
def act_backward(dA, A, act, alpha):
    """dA[i, j] *= act'(.) in place, using the stored output A. Shapes (rows, d)."""
    t = dA.dtype.type
    zero, one, a = t(0), t(1), t(alpha)
    if act == LINEAR:
        return
    for i in range(dA.shape[0]):
        g = dA[i]
        y = A[i]
        if act == RELU:
            for j in range(g.shape[0]):
                g[j] = g[j] if y[j] > zero else zero
        elif act == LEAKY_RELU:
            for j in range(g.shape[0]):
                g[j] = g[j] if y[j] > zero else a * g[j]
        elif act == SIGMOID:
            for j in range(g.shape[0]):
                g[j] = g[j] * y[j] * (one - y[j])
        elif act == TANH:
            for j in range(g.shape[0]):
                g[j] = g[j] * (one - y[j] * y[j])
