"""Optimizers (fastmlp/optimizers.py, kernels/optim.py) through `Optimizer.step`.

1. Every update rule against an independent float64 numpy transcription of its
   published form (the update formulas documented for torch.optim), written
   here from those documents: 10 steps on random gradients of varying scale,
   non-default hyperparameters, the first step (bias corrections) and a step
   with an all-zero gradient included; decoupled weight decay (p *= 1 - lr wd
   before the update, AdamW-style) for SGD and Adam; a schedule as lr.
2. The same rules against torch.optim itself in float64 over 20 steps, when torch
   is importable (skipped cleanly otherwise; part 1 needs numpy only).
3. A convergence matrix, optimizer x problem (in the spirit of optax's alias
   tests): every optimizer reaches the minimum of a convex quadratic and of the
   2-D Rosenbrock function and stays there.
4. Annealed gradient noise: its mean, variance eta / (1 + t)^gamma, seeding.
5. Bad hyperparameters raise ValueError naming the argument.
"""
import numpy as np
import pytest

import fastmlp as fm

N = 13          # parameters (odd: no SIMD-width coincidences)
STEPS = 10
ZERO_STEP = 5   # 1-based update whose gradient is the zero vector


def _gradients(steps, n, seed, zero_step=ZERO_STEP):
    """Random gradients whose scale changes from step to step (so that AMSGrad's and
    AdaMax's maxima and the decaying averages all matter); one all-zero gradient."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(steps, n)) * rng.uniform(0.05, 3.0, size=(steps, 1))
    g[zero_step - 1] = 0.0
    return g


def _p0(n=N, seed=100):
    return np.random.default_rng(seed).normal(size=n)


# ---------------------------------------------------------------- numpy transcriptions
# Each takes the initial parameters, the gradient sequence and the learning rate of
# every update (lrs[t-1] for update t) and returns the parameters after every update.
# They follow the pseudo-code of the torch.optim documentation (maximize=False,
# L2 weight_decay=0, dampening=0, lr_decay=0, initial_accumulator_value=0); the
# decoupled weight decay `wd` is AdamW's first line, theta *= 1 - lr * wd.

def ref_sgd(p, grads, lrs, momentum=0.0, nesterov=False, wd=0.0):
    p, b, out = p.copy(), None, []
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        p = p * (1 - lr * wd)
        if momentum != 0:
            b = g.copy() if t == 1 else momentum * b + g      # b_1 = g_1
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def ref_adagrad(p, grads, lrs, eps):
    p, s, out = p.copy(), np.zeros_like(p), []
    for g, lr in zip(grads, lrs):
        s = s + g * g
        p = p - lr * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def ref_adadelta(p, grads, lrs, rho, eps):
    p, v, u, out = p.copy(), np.zeros_like(p), np.zeros_like(p), []
    for g, lr in zip(grads, lrs):
        v = rho * v + (1 - rho) * g * g
        dx = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * dx * dx
        p = p - lr * dx
        out.append(p)
    return out


def ref_rmsprop(p, grads, lrs, alpha, eps, momentum=0.0, centered=False):
    p, out = p.copy(), []
    v, g_ave, b = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g, lr in zip(grads, lrs):
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            g_ave = alpha * g_ave + (1 - alpha) * g
            v_tilde = v - g_ave * g_ave
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(v_tilde) + eps)
        out.append(p)
    return out


def ref_adam(p, grads, lrs, b1, b2, eps, amsgrad=False, wd=0.0):
    p, out = p.copy(), []
    m, v, v_max = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        p = p * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def ref_adamax(p, grads, lrs, b1, b2, eps):
    p, m, u, out = p.copy(), np.zeros_like(p), np.zeros_like(p), []
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr * m / ((1 - b1 ** t) * u)
        out.append(p)
    return out


def ref_nadam(p, grads, lrs, b1, b2, eps, psi):
    p, m, v, out = p.copy(), np.zeros_like(p), np.zeros_like(p), []
    mu_product = 1.0
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = mu_product * mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = v / (1 - b2 ** t)
        p = p - (lr * (1 - mu) / (1 - mu_product)) * g / (np.sqrt(v_hat) + eps) \
              - (lr * mu_next / (1 - mu_product * mu_next)) * m / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def ref_lion(p, grads, lrs, b1, b2, wd=0.0):
    """Lion, Algorithm 2 of Chen et al. 2023 (decoupled decay applied before the step)."""
    p, m, out = p.copy(), np.zeros_like(p), []
    for g, lr in zip(grads, lrs):
        p = p * (1 - lr * wd)
        c = b1 * m + (1 - b1) * g
        p = p - lr * np.sign(c)
        m = b2 * m + (1 - b2) * g
        out.append(p)
    return out


# name: (fastmlp optimizer factory, numpy reference, its keyword arguments, lr)
CASES = {
    "sgd": (lambda: fm.SGD(lr=0.07), ref_sgd, {}, 0.07),
    "sgd-momentum": (lambda: fm.SGD(lr=0.05, momentum=0.8), ref_sgd, {"momentum": 0.8}, 0.05),
    "sgd-nesterov": (lambda: fm.SGD(lr=0.04, momentum=0.7, nesterov=True), ref_sgd,
                     {"momentum": 0.7, "nesterov": True}, 0.04),
    "sgd-wd": (lambda: fm.SGD(lr=0.03, weight_decay=0.5), ref_sgd, {"wd": 0.5}, 0.03),
    "sgd-momentum-wd": (lambda: fm.SGD(lr=0.05, momentum=0.6, weight_decay=0.7), ref_sgd,
                        {"momentum": 0.6, "wd": 0.7}, 0.05),
    "adagrad": (lambda: fm.Adagrad(lr=0.3, eps=1e-3), ref_adagrad, {"eps": 1e-3}, 0.3),
    "adadelta": (lambda: fm.Adadelta(lr=0.7, rho=0.8, eps=1e-3), ref_adadelta,
                 {"rho": 0.8, "eps": 1e-3}, 0.7),
    "rmsprop": (lambda: fm.RMSprop(lr=0.02, rho=0.8, eps=1e-3), ref_rmsprop,
                {"alpha": 0.8, "eps": 1e-3}, 0.02),
    "rmsprop-centered": (lambda: fm.RMSprop(lr=0.02, rho=0.85, eps=1e-2, centered=True),
                         ref_rmsprop, {"alpha": 0.85, "eps": 1e-2, "centered": True}, 0.02),
    "rmsprop-momentum": (lambda: fm.RMSprop(lr=0.01, rho=0.7, eps=1e-4, momentum=0.6),
                         ref_rmsprop, {"alpha": 0.7, "eps": 1e-4, "momentum": 0.6}, 0.01),
    "rmsprop-centered-momentum": (
        lambda: fm.RMSprop(lr=0.01, rho=0.9, eps=1e-2, momentum=0.5, centered=True),
        ref_rmsprop, {"alpha": 0.9, "eps": 1e-2, "momentum": 0.5, "centered": True}, 0.01),
    "adam": (lambda: fm.Adam(lr=0.03, b1=0.8, b2=0.95, eps=1e-4), ref_adam,
             {"b1": 0.8, "b2": 0.95, "eps": 1e-4}, 0.03),
    "adam-wd": (lambda: fm.Adam(lr=0.03, b1=0.7, b2=0.9, eps=1e-3, weight_decay=0.4), ref_adam,
                {"b1": 0.7, "b2": 0.9, "eps": 1e-3, "wd": 0.4}, 0.03),
    "amsgrad": (lambda: fm.Adam(lr=0.02, b1=0.85, b2=0.9, eps=1e-4, amsgrad=True), ref_adam,
                {"b1": 0.85, "b2": 0.9, "eps": 1e-4, "amsgrad": True}, 0.02),
    "amsgrad-wd": (lambda: fm.Adam(lr=0.02, b1=0.85, b2=0.9, eps=1e-4, amsgrad=True,
                                   weight_decay=0.3), ref_adam,
                   {"b1": 0.85, "b2": 0.9, "eps": 1e-4, "amsgrad": True, "wd": 0.3}, 0.02),
    "adamax": (lambda: fm.Adamax(lr=0.05, b1=0.85, b2=0.9, eps=1e-3), ref_adamax,
               {"b1": 0.85, "b2": 0.9, "eps": 1e-3}, 0.05),
    "nadam": (lambda: fm.Nadam(lr=0.04, b1=0.85, b2=0.95, eps=1e-4), ref_nadam,
              {"b1": 0.85, "b2": 0.95, "eps": 1e-4, "psi": 0.004}, 0.04),
    "nadam-psi": (lambda: fm.Nadam(lr=0.04, b1=0.8, b2=0.9, eps=1e-3, momentum_decay=0.3),
                  ref_nadam, {"b1": 0.8, "b2": 0.9, "eps": 1e-3, "psi": 0.3}, 0.04),
    "lion": (lambda: fm.Lion(lr=0.01, b1=0.8, b2=0.95), ref_lion, {"b1": 0.8, "b2": 0.95}, 0.01),
    "lion-wd": (lambda: fm.Lion(lr=0.01, b1=0.9, b2=0.99, weight_decay=0.5), ref_lion,
                {"b1": 0.9, "b2": 0.99, "wd": 0.5}, 0.01),
}


def _run_fastmlp(opt, p0, grads):
    """Parameters after every update, and the lr each update reported."""
    p = p0.copy()
    state, scalars = opt.init_state(p.size, np.float64)
    assert state.dtype == np.float64 and not state.any()
    out, lrs = [], []
    for t, g in enumerate(grads, 1):
        lrs.append(opt.step(p, g, state, scalars, t))
        out.append(p.copy())
    return out, lrs


def _assert_trajectory(got, want, p0, rtol, label):
    for t, (a, b) in enumerate(zip(got, want), 1):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=f"{label}: update {t}")
        # the displacement too, so that a wrong tiny update cannot hide behind p0
        np.testing.assert_allclose(a - p0, b - p0, rtol=1e3 * rtol, atol=1e-14,
                                   err_msg=f"{label}: displacement after update {t}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_published_update(name):
    make, ref, kwargs, lr = CASES[name]
    grads, p0 = _gradients(STEPS, N, seed=1), _p0()
    got, lrs = _run_fastmlp(make(), p0, grads)
    want = ref(p0, grads, [lr] * STEPS, **kwargs)
    assert lrs == [lr] * STEPS
    _assert_trajectory(got, want, p0, 1e-10, name)
    # a zero gradient leaves the parameters alone unless momentum (or decay) moves them
    moved = [not np.array_equal(a, b) for a, b in zip([p0] + got[:-1], got)]
    still = name in ("sgd", "adagrad", "adadelta", "rmsprop", "rmsprop-centered")
    assert moved == [not (still and t == ZERO_STEP) for t in range(1, STEPS + 1)]


def test_first_update_is_bias_corrected():
    """At t = 1 the bias-corrected moments are g and g^2 (AdaMax: m / (1 - b1) = g and
    u = |g| + eps), so the first move is lr g / (|g| + eps) ~ lr sign(g) whatever the
    gradient's scale."""
    g = np.array([1e-3, -2.0, 50.0, -0.1])
    for opt in (fm.Adam(lr=0.01, b1=0.8, b2=0.95, eps=1e-12),
                fm.Adam(lr=0.01, b1=0.8, b2=0.95, eps=1e-12, amsgrad=True),
                fm.Adamax(lr=0.01, b1=0.8, b2=0.95, eps=1e-12)):
        p = np.zeros(4)
        state, scalars = opt.init_state(4, np.float64)
        opt.step(p, g, state, scalars, 1)
        np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-8)


def test_schedule_as_lr():
    """With a schedule as lr, update t uses schedule(t - 1) and step() returns it."""
    sched = fm.ExponentialDecay(0.05, rate=0.5, decay_steps=3)
    lrs_want = [0.05 * 0.5 ** (k / 3) for k in range(STEPS)]
    grads, p0 = _gradients(STEPS, N, seed=2), _p0()
    got, lrs = _run_fastmlp(fm.Adam(lr=sched, b1=0.8, b2=0.9, eps=1e-4, weight_decay=0.2),
                            p0, grads)
    np.testing.assert_allclose(lrs, lrs_want, rtol=1e-13)
    want = ref_adam(p0, grads, lrs_want, b1=0.8, b2=0.9, eps=1e-4, wd=0.2)
    _assert_trajectory(got, want, p0, 1e-10, "adam with ExponentialDecay")
    got, lrs = _run_fastmlp(fm.SGD(lr=fm.StepDecay(0.1, drop=0.3, every=4), momentum=0.5),
                            p0, grads)
    lrs_want = [0.1 * 0.3 ** (k // 4) for k in range(STEPS)]
    np.testing.assert_allclose(lrs, lrs_want, rtol=1e-13)
    _assert_trajectory(got, ref_sgd(p0, grads, lrs_want, momentum=0.5), p0, 1e-10, "sgd step")


def test_float32_step_follows_float64():
    """The same rule in float32 stays within float32 rounding of the float64 run."""
    grads, p0 = _gradients(STEPS, N, seed=3), _p0()
    for name in ("adam", "rmsprop-centered-momentum", "nadam", "adadelta"):
        make, ref, kwargs, lr = CASES[name]
        opt = make()
        p = p0.astype(np.float32)
        state, scalars = opt.init_state(N, np.float32)
        assert state.dtype == np.float32
        for t, g in enumerate(grads, 1):
            opt.step(p, g.astype(np.float32), state, scalars, t)
        want = ref(p0, grads, [lr] * STEPS, **kwargs)[-1]
        np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-5, err_msg=name)


# ---------------------------------------------------------------- against torch.optim
TORCH_STEPS = 20


def _torch_cases(torch):
    o = torch.optim
    return {
        "sgd": (lambda: fm.SGD(lr=0.07), lambda ps: o.SGD(ps, lr=0.07)),
        "sgd-momentum": (lambda: fm.SGD(lr=0.05, momentum=0.8),
                         lambda ps: o.SGD(ps, lr=0.05, momentum=0.8)),
        "sgd-nesterov": (lambda: fm.SGD(lr=0.04, momentum=0.7, nesterov=True),
                         lambda ps: o.SGD(ps, lr=0.04, momentum=0.7, nesterov=True)),
        "adagrad": (lambda: fm.Adagrad(lr=0.3, eps=1e-3),
                    lambda ps: o.Adagrad(ps, lr=0.3, eps=1e-3)),
        "adadelta": (lambda: fm.Adadelta(lr=0.7, rho=0.8, eps=1e-3),
                     lambda ps: o.Adadelta(ps, lr=0.7, rho=0.8, eps=1e-3)),
        "rmsprop": (lambda: fm.RMSprop(lr=0.02, rho=0.8, eps=1e-3),
                    lambda ps: o.RMSprop(ps, lr=0.02, alpha=0.8, eps=1e-3)),
        "rmsprop-centered": (lambda: fm.RMSprop(lr=0.02, rho=0.85, eps=1e-2, centered=True),
                             lambda ps: o.RMSprop(ps, lr=0.02, alpha=0.85, eps=1e-2,
                                                  centered=True)),
        "rmsprop-momentum": (lambda: fm.RMSprop(lr=0.01, rho=0.7, eps=1e-4, momentum=0.6),
                             lambda ps: o.RMSprop(ps, lr=0.01, alpha=0.7, eps=1e-4,
                                                  momentum=0.6)),
        "rmsprop-centered-momentum": (
            lambda: fm.RMSprop(lr=0.01, rho=0.9, eps=1e-2, momentum=0.5, centered=True),
            lambda ps: o.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-2, momentum=0.5,
                                 centered=True)),
        "adam": (lambda: fm.Adam(lr=0.03, b1=0.8, b2=0.95, eps=1e-4),
                 lambda ps: o.Adam(ps, lr=0.03, betas=(0.8, 0.95), eps=1e-4)),
        "amsgrad": (lambda: fm.Adam(lr=0.02, b1=0.85, b2=0.9, eps=1e-4, amsgrad=True),
                    lambda ps: o.Adam(ps, lr=0.02, betas=(0.85, 0.9), eps=1e-4, amsgrad=True)),
        "adamw": (lambda: fm.Adam(lr=0.03, b1=0.7, b2=0.9, eps=1e-3, weight_decay=0.4),
                  lambda ps: o.AdamW(ps, lr=0.03, betas=(0.7, 0.9), eps=1e-3, weight_decay=0.4)),
        "adamw-amsgrad": (
            lambda: fm.Adam(lr=0.02, b1=0.85, b2=0.9, eps=1e-4, amsgrad=True, weight_decay=0.3),
            lambda ps: o.AdamW(ps, lr=0.02, betas=(0.85, 0.9), eps=1e-4, amsgrad=True,
                               weight_decay=0.3)),
        "adamax": (lambda: fm.Adamax(lr=0.05, b1=0.85, b2=0.9, eps=1e-3),
                   lambda ps: o.Adamax(ps, lr=0.05, betas=(0.85, 0.9), eps=1e-3)),
        "nadam": (lambda: fm.Nadam(lr=0.04, b1=0.85, b2=0.95, eps=1e-4),
                  lambda ps: o.NAdam(ps, lr=0.04, betas=(0.85, 0.95), eps=1e-4)),
        "nadam-psi": (lambda: fm.Nadam(lr=0.04, b1=0.8, b2=0.9, eps=1e-3, momentum_decay=0.3),
                      lambda ps: o.NAdam(ps, lr=0.04, betas=(0.8, 0.9), eps=1e-3,
                                         momentum_decay=0.3)),
    }


TORCH_NAMES = ["sgd", "sgd-momentum", "sgd-nesterov", "adagrad", "adadelta", "rmsprop",
               "rmsprop-centered", "rmsprop-momentum", "rmsprop-centered-momentum", "adam",
               "amsgrad", "adamw", "adamw-amsgrad", "adamax", "nadam", "nadam-psi"]


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_matches_torch_optim(name):
    torch = pytest.importorskip("torch")
    make, make_torch = _torch_cases(torch)[name]
    grads, p0 = _gradients(TORCH_STEPS, N, seed=5, zero_step=7), _p0(seed=6)
    got, _ = _run_fastmlp(make(), p0, grads)
    # torch keeps scalar state (the step count, NAdam's mu_product) in the default
    # dtype: float64 for the duration, else mu_product is rounded to float32
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        w = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        opt = make_torch([w])
        want = []
        for g in grads:
            w.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
            want.append(w.detach().numpy().copy())
    finally:
        torch.set_default_dtype(default)
    _assert_trajectory(got, want, p0, 1e-9, f"{name} vs torch")


# ---------------------------------------------------------------- convergence matrix
def _quadratic(n, seed):
    """0.5 x^T A x - b^T x with A SPD (eigenvalues 1..10): gradient A x - b, x* = A^-1 b."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = q @ np.diag(np.linspace(1.0, 10.0, n)) @ q.T
    b = rng.normal(size=n)
    return (lambda x: A @ x - b), np.zeros(n), np.linalg.solve(A, b)


def _rosenbrock():
    """(1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2); minimum at (1, 1)."""
    def grad(p):
        x, y = float(p[0]), float(p[1])
        return np.array([-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])
    return grad, np.array([-1.5, 2.0]), np.ones(2)


PROBLEMS = {"quadratic-2": lambda: _quadratic(2, 0), "quadratic-5": lambda: _quadratic(5, 1),
            "rosenbrock": _rosenbrock}

# Sensible settings per optimizer. Rosenbrock's narrow curved valley (curvature ~1000
# across, ~0.4 along it at the minimum) needs small steps for SGD; plain Adadelta with
# a constant lr keeps oscillating (its step, sqrt(u + eps) / sqrt(v + eps) g, grows with
# the accumulated updates u; torch.optim.Adadelta does the same, even on the quadratics)
# and converges with a decaying lr; the other adaptive methods reach the minimum with a
# constant lr or with a decay where the constant-lr oscillation is wider than the tolerance.
CONVERGENCE = {
    "sgd": (lambda: fm.SGD(lr=0.05), lambda: fm.SGD(lr=1.5e-3)),
    "sgd-momentum": (lambda: fm.SGD(lr=0.02, momentum=0.9),
                     lambda: fm.SGD(lr=5e-4, momentum=0.9)),
    "sgd-nesterov": (lambda: fm.SGD(lr=0.02, momentum=0.9, nesterov=True),
                     lambda: fm.SGD(lr=5e-4, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: fm.Adagrad(lr=0.5), lambda: fm.Adagrad(lr=0.5)),
    "adadelta": (lambda: fm.Adadelta(lr=fm.ExponentialDecay(1.0, rate=0.01, decay_steps=10000),
                                     rho=0.9, eps=1e-6),
                 lambda: fm.Adadelta(lr=fm.ExponentialDecay(1.0, rate=0.01, decay_steps=10000),
                                     rho=0.9, eps=1e-6)),
    "rmsprop": (lambda: fm.RMSprop(lr=fm.ExponentialDecay(0.01, 0.01, 2000)),
                lambda: fm.RMSprop(lr=fm.ExponentialDecay(0.01, 0.1, 5000))),
    "rmsprop-centered-momentum": (
        lambda: fm.RMSprop(lr=fm.ExponentialDecay(0.01, 0.01, 2000), momentum=0.5,
                           centered=True),
        lambda: fm.RMSprop(lr=1e-3, momentum=0.5, centered=True)),
    "adam": (lambda: fm.Adam(lr=fm.ExponentialDecay(0.05, 0.01, 2000)),
             lambda: fm.Adam(lr=1e-2)),
    "amsgrad": (lambda: fm.Adam(lr=fm.ExponentialDecay(0.05, 0.01, 2000), amsgrad=True),
                lambda: fm.Adam(lr=2e-2, amsgrad=True)),
    "adamax": (lambda: fm.Adamax(lr=fm.ExponentialDecay(0.05, 0.01, 2000)),
               lambda: fm.Adamax(lr=2e-2)),
    "nadam": (lambda: fm.Nadam(lr=fm.ExponentialDecay(0.05, 0.01, 2000)),
              lambda: fm.Nadam(lr=fm.ExponentialDecay(2e-2, 0.1, 5000))),
    # sign updates move every entry by lr: the lr must decay for a tight minimum
    "lion": (lambda: fm.Lion(lr=fm.ExponentialDecay(0.01, 0.001, 5000)),
             lambda: fm.Lion(lr=fm.ExponentialDecay(3e-3, 0.001, 15000))),
}
TOL = {"quadratic-2": 1e-4, "quadratic-5": 1e-4, "rosenbrock": 1e-2}
MAX_STEPS = {"quadratic-2": 10000, "quadratic-5": 10000, "rosenbrock": 20000}
HOLD = 500   # consecutive updates within the tolerance before stopping early


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_converges(name, problem):
    grad, x0, x_star = PROBLEMS[problem]()
    opt = CONVERGENCE[name][problem == "rosenbrock"]()
    tol, p = TOL[problem], x0.copy()
    state, scalars = opt.init_state(p.size, np.float64)
    inside = 0
    for t in range(1, MAX_STEPS[problem] + 1):
        opt.step(p, grad(p), state, scalars, t)
        inside = inside + 1 if np.linalg.norm(p - x_star) < tol else 0
        if inside == HOLD:
            break
    dist = np.linalg.norm(p - x_star)
    assert dist < tol, f"{opt!r} on {problem}: |x - x*| = {dist:.3g} after {t} updates"
    assert np.all(np.isfinite(state))


# ---------------------------------------------------------------- gradient noise
def _noise(eta, gamma, seed, t, n=40000):
    """What SGD(lr=1) with a zero gradient moves the parameters by at update t: -noise."""
    opt = fm.SGD(lr=1.0, noise=fm.GradientNoise(eta, gamma, seed))
    p = np.zeros(n)
    state, scalars = opt.init_state(n, np.float64)
    opt.step(p, np.zeros(n), state, scalars, t)
    return -p


@pytest.mark.parametrize("t", [1, 100])
def test_gradient_noise_statistics(t):
    eta, gamma, n = 0.3, 0.55, 40000
    z = _noise(eta, gamma, seed=11, t=t, n=n)
    var = eta / (1.0 + t) ** gamma
    # mean within 5 standard errors; variance within 5 standard errors (2 var^2 / n)
    assert abs(z.mean()) < 5 * np.sqrt(var / n)
    assert abs(z.var() / var - 1) < 5 * np.sqrt(2.0 / n)
    # Gaussian: about 68.27% within one sigma, 95.45% within two
    assert abs(np.mean(np.abs(z) < np.sqrt(var)) - 0.6827) < 0.012
    assert abs(np.mean(np.abs(z) < 2 * np.sqrt(var)) - 0.9545) < 0.006
    # no correlation between neighbouring entries
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(n)


def test_gradient_noise_seeding():
    a, b = _noise(0.1, 0.55, seed=3, t=4, n=1000), _noise(0.1, 0.55, seed=3, t=4, n=1000)
    assert np.array_equal(a, b)
    c = _noise(0.1, 0.55, seed=4, t=4, n=1000)
    assert not np.allclose(a, c) and abs(np.corrcoef(a, c)[0, 1]) < 0.15
    d = _noise(0.1, 0.55, seed=3, t=5, n=1000)   # a new draw at every update
    assert abs(np.corrcoef(a, d)[0, 1]) < 0.15
    # gamma = 0: constant variance eta; the noise adds to a real gradient
    e = _noise(0.1, 0.0, seed=3, t=4, n=1000)
    f = _noise(0.1, 0.55, seed=3, t=4, n=1000)
    np.testing.assert_allclose(f, e * np.sqrt(1 / 5 ** 0.55), rtol=1e-12)
    opt = fm.SGD(lr=0.5, noise=fm.GradientNoise(0.1, 0.0, 3))
    p, g = np.zeros(1000), np.linspace(-1, 1, 1000)
    opt.step(p, g, *opt.init_state(1000, np.float64), 4)
    np.testing.assert_allclose(p, -0.5 * (g + e), rtol=1e-12, atol=1e-15)


def test_gradient_noise_ignores_block_boundaries():
    """The same noise whether the update runs as one block or as odd-sized blocks
    (entries start at odd offsets; threads take blocks in any order)."""
    from fastmlp.kernels import optim as _k
    opt = fm.SGD(lr=1.0, noise=fm.GradientNoise(0.2, 0.55, 9))
    out = []
    for blocks in ([[0, 1000, 0, 1]], [[0, 333, 0, 1], [333, 334, 0, 1], [334, 1000, 0, 1]]):
        p = np.zeros(1000)
        state, scalars = opt.init_state(1000, np.float64)
        _k.optimizer_step(opt.kind, opt.hyper(), 1.0, 3, p, np.zeros((1, 1000)), state,
                          scalars, np.array(blocks, dtype=np.int64), np.zeros((1, 3)), 1)
        out.append(p)
    assert np.array_equal(out[0], out[1]) and np.all(out[0] != 0)


# ---------------------------------------------------------------- bad hyperparameters
BAD = [
    (lambda: fm.SGD(lr=0), "lr"),
    (lambda: fm.SGD(lr=-0.1), "lr"),
    (lambda: fm.Adam(lr=float("nan")), "lr"),
    (lambda: fm.Adam(lr=float("inf")), "lr"),
    (lambda: fm.RMSprop(lr="fast"), "lr"),
    (lambda: fm.Adam(b1=1.0), "b1"),
    (lambda: fm.Adam(b1=-0.1), "b1"),
    (lambda: fm.Adam(b2=1.0), "b2"),
    (lambda: fm.Adam(b2=1.5), "b2"),
    (lambda: fm.Adamax(b2=-0.5), "b2"),
    (lambda: fm.Nadam(b1=float("nan")), "b1"),
    (lambda: fm.Adam(eps=0), "eps"),
    (lambda: fm.Adagrad(eps=-1e-8), "eps"),
    (lambda: fm.Adadelta(eps=0.0), "eps"),
    (lambda: fm.RMSprop(eps=float("nan")), "eps"),
    (lambda: fm.SGD(momentum=1.0), "momentum"),
    (lambda: fm.SGD(momentum=-0.1), "momentum"),
    (lambda: fm.RMSprop(momentum=1.2), "momentum"),
    (lambda: fm.SGD(lr=0.1, nesterov=True), "nesterov"),
    (lambda: fm.Adadelta(rho=1.0), "rho"),
    (lambda: fm.RMSprop(rho=-0.1), "rho"),
    (lambda: fm.Nadam(momentum_decay=0), "momentum_decay"),
    (lambda: fm.Adam(weight_decay=-1), "weight_decay"),
    (lambda: fm.SGD(weight_decay=float("nan")), "weight_decay"),
    (lambda: fm.GradientNoise(eta=0), "eta"),
    (lambda: fm.GradientNoise(gamma=-1), "gamma"),
]


@pytest.mark.parametrize("make, word", BAD, ids=[f"{w}-{i}" for i, (_, w) in enumerate(BAD)])
def test_bad_hyperparameters_raise(make, word):
    with pytest.raises(ValueError, match=word):
        make()
