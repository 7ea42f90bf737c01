"""Learning rate as a pure function of the update count, evaluated in the loop.

h (float64): [0] warm-up updates w (0 = none), [1] warm-up start factor f,
then the schedule's own values from h[2]. During warm-up (step < w) the rate is
multiplied by f + (1 - f) * step / w (linear warm-up, Goyal et al. 2017).
"""
import numpy as np

from .._config import ENTRY, JIT, kernel

CONSTANT = 0
CYCLIC = 1
STEP = 2
EXPONENTIAL = 3
COSINE = 4
P0 = 2  # first schedule-specific index


@kernel(**JIT)
def base_lr(kind, h, step):
    """The schedule without warm-up at 0-based update `step` (float)."""
    p = P0
    if kind == CYCLIC:
        # triangular (Smith 2017; DD2424): t = step mod 2 n_s; rise over n_s, fall over n_s
        eta_min, eta_max, n_s = h[p], h[p + 1], h[p + 2]
        t = step % (2.0 * n_s)
        if t <= n_s:
            return eta_min + t / n_s * (eta_max - eta_min)
        return eta_max - (t - n_s) / n_s * (eta_max - eta_min)
    if kind == STEP:
        # lr * drop ^ floor(step / every)
        return h[p] * h[p + 1] ** np.floor(step / h[p + 2])
    if kind == EXPONENTIAL:
        # lr * rate ^ (step / decay_steps)
        return h[p] * h[p + 1] ** (step / h[p + 2])
    if kind == COSINE:
        # SGDR (Loshchilov & Hutter 2017): period T_0 growing by t_mult after each restart
        lr_max, lr_min, period, t_mult = h[p], h[p + 1], h[p + 2], h[p + 3]
        t = step
        while t >= period and t_mult > 0.0:
            t -= period
            period *= t_mult
        if t >= period:  # no restarts: stay at the minimum
            return lr_min
        return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + np.cos(np.pi * t / period))
    return h[p]


@kernel(**ENTRY)
def schedule_lr(kind, h, step):
    """Learning rate at 0-based update `step`, warm-up included."""
    lr = base_lr(kind, h, step)
    warmup = h[0]
    if step < warmup:
        f = h[1]
        lr *= f + (1.0 - f) * step / warmup
    return lr
