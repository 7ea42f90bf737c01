"""Learning rate as a pure function of the update count, evaluated in the loop."""
from numba import njit

from .._config import JIT

CONSTANT = 0
CYCLIC = 1


@njit(**JIT)
def schedule_lr(kind, h, step):
    """Learning rate for 0-based update `step`.

    CONSTANT: h = (lr,).
    CYCLIC (triangular, Smith 2017; DD2424 form): h = (eta_min, eta_max, step_size);
    with t = step mod (2 n_s): lr = eta_min + t / n_s (eta_max - eta_min) for
    t <= n_s, else eta_max - (t - n_s) / n_s (eta_max - eta_min).
    """
    if kind == CYCLIC:
        eta_min, eta_max, n_s = h[0], h[1], h[2]
        t = step % (2.0 * n_s)
        if t <= n_s:
            return eta_min + t / n_s * (eta_max - eta_min)
        return eta_max - (t - n_s) / n_s * (eta_max - eta_min)
    return h[0]
