"""Optimizer updates over the flat parameter buffer, one parallel pass per step.

The backward pass leaves one partial gradient per row chunk in grads[c, :]
(c < n_parts). For each cache-sized block, `prepare_block` folds the partials
into grads[0] and adds the penalties and noise of the block's segment; then the
optimizer family's rule updates params and state (state slots share params'
layout). `blocks` (n_blocks, 4) int64 rows are (start, stop, segment, folded):
folded = 1 when grads[0] already holds the whole gradient of the block (the
tiled dense W), 0 when all n_parts partials must be summed; `seg`
(n_segments, 3) float64 rows are (l2, l1, decoupled weight decay).

`hyper` is a `Hyper` (a NamedTuple of floats, read by name: hyper.b1); each family
reads its own fields. Codes below. `scalars` (float64, 4) is per-optimizer scalar
state (Nadam's running product of momentum coefficients).
"""
from typing import NamedTuple

import numpy as np

from numba import prange, types

from .._config import ENTRY, INLINED, JIT, PARALLEL, kernel
from .c_entry import caller, link, load_arguments

from .rng import add_normal_noise, stream_key

SGD = 0
ADAM = 1
ADAGRAD = 2
ADADELTA = 3
RMSPROP = 4
LION = 5
# Adam family variants (Hyper.variant)
V_ADAM = 0
V_AMSGRAD = 1
V_ADAMAX = 2
V_NADAM = 3


class Hyper(NamedTuple):
    """Optimizer hyperparameters as the kernels read them. Gradient noise (every family):
    noise_eta, noise_gamma, noise_seed. A family reads only its own fields; the others
    keep their defaults. (Mixed field types on purpose: a tuple of one type reaches
    Numba's parallel loops as an array, which they refuse as an argument.)"""
    noise_eta: float = 0.0
    noise_gamma: float = 0.0
    noise_seed: float = 0.0
    momentum: float = 0.0        # SGD, RMSprop
    nesterov: bool = False       # SGD
    b1: float = 0.0              # Adam family, Lion
    b2: float = 0.0              # Adam family, Lion
    eps: float = 0.0             # Adam family, Adagrad, Adadelta, RMSprop
    variant: int = 0             # Adam family: V_* above
    momentum_decay: float = 0.0  # Nadam's psi
    rho: float = 0.0             # Adadelta, RMSprop
    centered: bool = False       # RMSprop


@kernel(**JIT)
def fold_partials(grads, c0, n_parts, start, stop):
    """grads[0, i] += grads[c, i] for c0 <= c < n_parts, i in [start, stop)."""
    g = grads[0, start:stop]
    for c in range(c0, n_parts):
        gc = grads[c, start:stop]
        for i in range(g.shape[0]):
            g[i] += gc[i]


@kernel(**JIT)
def block_source(gsrc, start, stop):
    """The gradient source gsrc = (g0, g1, w1, two_l2) restricted to [start, stop)."""
    g0, g1, w1, two_l2 = gsrc
    return g0[start:stop], g1[start:stop], w1, two_l2


@kernel(**JIT)
def grad_at(gb, p, i):
    """Gradient of element i of a block from its source gb = (g0, g1, w1, two_l2):
    g0[i] + w1 g1[i] + two_l2 p_i (two chunk partials and the L2 term, summed in the
    update loop itself so the block is read once; w1 = 0 when g0 is complete).

    Kernels index block-local views from 0 (`p = params[start:stop]`): with indices
    known to be non-negative Numba emits no wraparound code and LLVM vectorises.
    """
    g0, g1, w1, two_l2 = gb
    return g0[i] + w1 * g1[i] + two_l2 * p[i]


@kernel(**JIT)
def prepare_block(params, grads, n_parts, start, stop, l2, l1, hyper, step):
    """grads[0, i] = sum_c grads[c, i] + 2 l2 p_i + l1 sign(p_i) + noise, i in [start, stop).

    L2 follows DD2424 (cost + l2 ||W||^2); L1 adds its subgradient (sign(0) = 0).
    Gradient noise (Neelakantan et al. 2015): N(0, sigma_t^2) with
    sigma_t^2 = eta / (1 + t)^gamma, t the 1-based step, drawn from a
    counter-based generator of (seed, step, i).
    """
    fold_partials(grads, np.int64(1), n_parts, start, stop)
    g = grads[0, start:stop]
    p = params[start:stop]
    t = params.dtype.type
    if l2 != 0.0:
        two_l2 = t(2.0 * l2)
        for i in range(g.shape[0]):
            g[i] += two_l2 * p[i]
    if l1 != 0.0:
        l1_ = t(l1)
        for i in range(g.shape[0]):
            g[i] += l1_ if p[i] > 0 else (-l1_ if p[i] < 0 else t(0))
    eta = hyper.noise_eta
    if eta > 0.0:
        sigma = np.sqrt(eta / (1.0 + step) ** hyper.noise_gamma)
        add_normal_noise(g, start, sigma, stream_key(np.int64(hyper.noise_seed), step))


@kernel(**JIT)
def decay_block(params, start, stop, lr, wd):
    """Decoupled weight decay (Loshchilov & Hutter 2019): p *= 1 - lr * wd."""
    if wd != 0.0:
        f = params.dtype.type(1.0 - lr * wd)
        p = params[start:stop]
        for i in range(p.shape[0]):
            p[i] *= f


@kernel(**JIT)
def sgd_block(params, gsrc, state, start, stop, lr, momentum, nesterov):
    """SGD (PyTorch's form, Sutskever et al. 2013): v = mu v + g;
    p -= lr (g + mu v) if nesterov else lr v; plain p -= lr g when mu = 0. state[0] = v."""
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    lr_, mu = t(lr), t(momentum)
    if momentum == 0.0:
        for i in range(p.shape[0]):
            p[i] -= lr_ * grad_at(gb, p, i)
        return
    v = state[0, start:stop]
    for i in range(p.shape[0]):
        gi = grad_at(gb, p, i)
        vi = mu * v[i] + gi
        v[i] = vi
        p[i] -= lr_ * (gi + mu * vi) if nesterov else lr_ * vi


@kernel(**JIT)
def adagrad_block(params, gsrc, state, start, stop, lr, eps):
    """Adagrad (Duchi et al. 2011; PyTorch): s += g^2; p -= lr g / (sqrt(s) + eps). state[0] = s."""
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    lr_, eps_ = t(lr), t(eps)
    s = state[0, start:stop]
    for i in range(p.shape[0]):
        gi = grad_at(gb, p, i)
        si = s[i] + gi * gi
        s[i] = si
        p[i] -= lr_ * gi / (np.sqrt(si) + eps_)


@kernel(**JIT)
def adadelta_block(params, gsrc, state, start, stop, lr, rho, eps):
    """Adadelta (Zeiler 2012; PyTorch): v = rho v + (1-rho) g^2;
    d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1-rho) d^2; p -= lr d.
    state[0] = v (squared gradients), state[1] = u (squared updates)."""
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    lr_, rho_, c, eps_ = t(lr), t(rho), t(1.0 - rho), t(eps)
    v = state[0, start:stop]
    u = state[1, start:stop]
    for i in range(p.shape[0]):
        gi = grad_at(gb, p, i)
        vi = rho_ * v[i] + c * gi * gi
        d = np.sqrt(u[i] + eps_) / np.sqrt(vi + eps_) * gi
        v[i] = vi
        u[i] = rho_ * u[i] + c * d * d
        p[i] -= lr_ * d


@kernel(**JIT)
def rmsprop_block(params, gsrc, state, start, stop, lr, rho, eps, momentum, centered):
    """RMSprop (Tieleman & Hinton 2012; PyTorch): v = rho v + (1-rho) g^2;
    centered: a = rho a + (1-rho) g, den = sqrt(v - a^2) + eps, else den = sqrt(v) + eps;
    momentum mu > 0: b = mu b + g / den, p -= lr b; else p -= lr g / den.
    state[0] = v, state[1] = a (centered), state[2] = b (momentum)."""
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    lr_, rho_, c, eps_, mu = t(lr), t(rho), t(1.0 - rho), t(eps), t(momentum)
    v = state[0, start:stop]
    a = state[1, start:stop]
    b = state[2, start:stop]
    for i in range(p.shape[0]):
        gi = grad_at(gb, p, i)
        vi = rho_ * v[i] + c * gi * gi
        v[i] = vi
        if centered:
            ai = rho_ * a[i] + c * gi
            a[i] = ai
            den = np.sqrt(vi - ai * ai) + eps_
        else:
            den = np.sqrt(vi) + eps_
        if momentum != 0.0:
            bi = mu * b[i] + gi / den
            b[i] = bi
            p[i] -= lr_ * bi
        else:
            p[i] -= lr_ * gi / den


@kernel(**JIT)
def adam_moments(m, v, i, gi, b1, c1, b2, c2):
    """Store and return m_i = b1 m_i + c1 g_i and v_i = b2 v_i + c2 g_i^2 (c = 1 - b)."""
    mi = b1 * m[i] + c1 * gi
    vi = b2 * v[i] + c2 * gi * gi
    m[i] = mi
    v[i] = vi
    return mi, vi


@kernel(**JIT)
def adam_block(params, gsrc, state, start, stop, lr, b1, b2, eps, variant, step, mu_t, mu_next, mu_prod):
    """Adam family, PyTorch's documented forms; step t is 1-based.

    m = b1 m + (1-b1) g (all variants). Adam (Kingma & Ba 2015): v = b2 v + (1-b2) g^2,
    p -= lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps). AMSGrad (Reddi et al. 2018):
    v_max = max(v_max, v) replaces v in the denominator. AdaMax (Kingma & Ba 2015,
    sec. 7): u = max(b2 u, |g| + eps), p -= lr/(1-b1^t) m / u. Nadam (Dozat 2016):
    den = sqrt(v/(1-b2^t)) + eps, p -= lr (1-mu_t)/(1-prod_t) g/den
    + lr mu_{t+1}/(1-prod_t mu_{t+1}) m/den, mu_t = b1 (1 - 0.5 0.96^(t psi)).
    state[0] = m, state[1] = v (u for AdaMax), state[2] = v_max (AMSGrad).
    """
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    b1_, b2_, c1, c2, eps_ = t(b1), t(b2), t(1.0 - b1), t(1.0 - b2), t(eps)
    bc1 = 1.0 - b1 ** step
    bc2 = 1.0 - b2 ** step
    m = state[0, start:stop]
    v = state[1, start:stop]
    if variant == V_ADAMAX:
        step_size = t(lr / bc1)
        for i in range(p.shape[0]):
            gi = grad_at(gb, p, i)
            mi = b1_ * m[i] + c1 * gi
            ui = max(b2_ * v[i], abs(gi) + eps_)
            m[i] = mi
            v[i] = ui
            p[i] -= step_size * mi / ui
    elif variant == V_NADAM:
        inv_bc2 = t(1.0 / bc2)
        cg = t(lr * (1.0 - mu_t) / (1.0 - mu_prod))
        cm = t(lr * mu_next / (1.0 - mu_prod * mu_next))
        for i in range(p.shape[0]):
            gi = grad_at(gb, p, i)
            mi, vi = adam_moments(m, v, i, gi, b1_, c1, b2_, c2)
            den = np.sqrt(vi * inv_bc2) + eps_
            p[i] -= (cg * gi + cm * mi) / den
    elif variant == V_AMSGRAD:
        step_size = t(lr / bc1)
        inv_sqrt_bc2 = t(1.0 / np.sqrt(bc2))
        v_max = state[2, start:stop]
        for i in range(p.shape[0]):
            mi, vi = adam_moments(m, v, i, grad_at(gb, p, i), b1_, c1, b2_, c2)
            vm = max(v_max[i], vi)
            v_max[i] = vm
            p[i] -= step_size * mi / (np.sqrt(vm) * inv_sqrt_bc2 + eps_)
    else:
        step_size = t(lr / bc1)
        inv_sqrt_bc2 = t(1.0 / np.sqrt(bc2))
        for i in range(p.shape[0]):
            mi, vi = adam_moments(m, v, i, grad_at(gb, p, i), b1_, c1, b2_, c2)
            p[i] -= step_size * mi / (np.sqrt(vi) * inv_sqrt_bc2 + eps_)


@kernel(**JIT)
def lion_block(params, gsrc, state, start, stop, lr, b1, b2):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
    c = b1 m + (1-b1) g; p -= lr sign(c); m = b2 m + (1-b2) g. state[0] = m.
    (Its decoupled weight decay is the common decay_block.)"""
    t = params.dtype.type
    p, gb = params[start:stop], block_source(gsrc, start, stop)
    lr_, b1_, c1, b2_, c2 = t(lr), t(b1), t(1.0 - b1), t(b2), t(1.0 - b2)
    zero, one = t(0.0), t(1.0)
    m = state[0, start:stop]
    for i in range(p.shape[0]):
        gi = grad_at(gb, p, i)
        ci = b1_ * m[i] + c1 * gi
        p[i] -= lr_ * (one if ci > zero else (-one if ci < zero else zero))
        m[i] = b2_ * m[i] + c2 * gi


@kernel(**INLINED)
def update_block(kind, hyper, lr, step, params, g, state, start, stop, mu_t, mu_next, mu_prod,
                 adaptive):
    """Apply the family `kind` to params[start:stop] with the gradient source g
    (see grad_at). adaptive None (a compile-time switch, see loop.run_batches): the
    family is SGD, and the adaptive families' kernels are not compiled."""
    if adaptive is None or kind == SGD:
        sgd_block(params, g, state, start, stop, lr, hyper.momentum, hyper.nesterov)
    elif kind == ADAM:
        adam_block(params, g, state, start, stop, lr, hyper.b1, hyper.b2, hyper.eps,
                   hyper.variant, step, mu_t, mu_next, mu_prod)
    elif kind == ADAGRAD:
        adagrad_block(params, g, state, start, stop, lr, hyper.eps)
    elif kind == ADADELTA:
        adadelta_block(params, g, state, start, stop, lr, hyper.rho, hyper.eps)
    elif kind == RMSPROP:
        rmsprop_block(params, g, state, start, stop, lr, hyper.rho, hyper.eps, hyper.momentum,
                      hyper.centered)
    elif kind == LION:
        lion_block(params, g, state, start, stop, lr, hyper.b1, hyper.b2)


@kernel(**INLINED)
def gradient_source(params, grads, n_parts, start, stop, penalties, lr, hyper, step, extras):
    """The gradient source (see grad_at) of params[start:stop] before its update.

    Common case (no L1, no noise, no decoupled decay): partials beyond the second
    are folded into grads[0], and the update loop adds g0 + g1 + 2 l2 p itself
    (one pass over the block instead of three). Otherwise prepare_block builds the
    whole gradient in grads[0] (penalties taken at the weights before decay), then
    the decay is applied. extras None (a compile-time switch, see loop.run_batches):
    no L1, noise or decay anywhere, and that path is not compiled.
    """
    l2, l1, wd = penalties[0], penalties[1], penalties[2]
    g0 = grads[0]
    t = params.dtype.type
    if extras is not None and (l1 != 0.0 or wd != 0.0 or hyper.noise_eta > 0.0):
        prepare_block(params, grads, n_parts, start, stop, l2, l1, hyper, step)
        decay_block(params, start, stop, lr, wd)
        return g0, g0, t(0.0), t(0.0)
    fold_partials(grads, np.int64(2), n_parts, start, stop)
    if n_parts > 1:
        return g0, grads[1], t(1.0), t(2.0 * l2)
    return g0, g0, t(0.0), t(2.0 * l2)


@kernel(**ENTRY)
def reduce_gradients(params, grads, blocks, seg, n_parts, hyper, step):
    """Fold the chunk partials, penalties and noise into grads[0] without updating."""
    for kb in range(blocks.shape[0]):
        s = blocks[kb, 2]
        parts = 1 if blocks[kb, 3] != 0 else n_parts
        prepare_block(params, grads, parts, blocks[kb, 0], blocks[kb, 1], seg[s, 0], seg[s, 1],
                      hyper, step)


@kernel(**JIT)
def step_scalars(kind, hyper, step, scalars, adaptive):
    """Per-step scalars (mu_t, mu_next, mu_prod) of Nadam, mu_prod = scalars[0] * mu_t
    the running product of momentum coefficients after this step (the caller stores it
    in scalars[0] once every thread has read scalars). Zeros for the other optimizers."""
    if adaptive is not None and kind == ADAM and hyper.variant == V_NADAM:
        psi = hyper.momentum_decay
        b1 = hyper.b1
        mu_t = b1 * (1.0 - 0.5 * 0.96 ** (step * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * psi))
        return mu_t, mu_next, scalars[0] * mu_t
    return 0.0, 0.0, scalars[0]


@kernel(**JIT)
def all_finite(a, start, stop):
    """True when the 1-D a[start:stop] holds no NaN and no inf. |x| < inf is false for
    exactly those (an unordered compare with NaN is false; fastmath here has no
    nnan/ninf, so LLVM keeps the test). The loop ANDs every element of a view indexed
    from 0, with no early exit, so that it vectorises (measured: 0.035 ns per float32
    element in L2, against 0.47 indexing a[start + i], whose negative-index wraparound
    code kept LLVM from vectorising)."""
    b = a[start:stop]
    inf = a.dtype.type(np.inf)
    ok = True
    for i in range(b.shape[0]):
        ok &= np.abs(b[i]) < inf
    return ok


@kernel(**JIT)
def update_range(kind, hyper, lr, step, params, grads, state, start, stop, penalties, n_parts,
                 mu_t, mu_next, mu_prod, adaptive, extras):
    """Update params[start:stop] (one segment: `penalties` its (l2, l1, decay) row) from
    the sum of its n_parts gradient partials. A function of its own: update_blocks and
    the tiled dense backward (passes.dense_weight_tile) share one compiled copy.

    Returns True when the updated parameters and their optimizer state are all finite:
    the check re-reads the block while it is still in cache (divergence detection,
    loop.run_batches)."""
    update_block(kind, hyper, lr, step, params,
                 gradient_source(params, grads, n_parts, start, stop, penalties, lr, hyper, step,
                                 extras),
                 state, start, stop, mu_t, mu_next, mu_prod, adaptive)
    ok = all_finite(params, start, stop)
    for q in range(state.shape[0]):
        ok &= all_finite(state[q], start, stop)
    return ok


@kernel(**INLINED)
def update_block_at(kb, kind, hyper, lr, step, params, grads, state, blocks, seg, n_parts, mu_t,
                    mu_next, mu_prod, adaptive, extras):
    """Update block kb of `blocks` (update_range); 1 (uint8) when its new values hold a NaN
    or inf, else 0. Called through its C entry (update_entry)."""
    start, stop, s = blocks[kb, 0], blocks[kb, 1], blocks[kb, 2]
    parts = 1 if blocks[kb, 3] != 0 else n_parts
    finite = update_range(kind, hyper, lr, step, params, grads, state, start, stop, seg[s],
                          parts, mu_t, mu_next, mu_prod, adaptive, extras)
    return np.uint8(0 if finite else 1)


def update_entry(args):
    """update_block_at(*args) as a C function (kernels/c_entry.py)."""
    (kb, kind, hyper, lr, step, params, grads, state, blocks, seg, n_parts, mu_t, mu_next,
     mu_prod, adaptive, extras) = load_arguments(args)
    return update_block_at(kb, kind, hyper, lr, step, params, grads, state, blocks, seg, n_parts,
                           mu_t, mu_next, mu_prod, adaptive, extras)


call_update_block_at = caller("update_block_at", types.uint8)


def update_request(hyper, params, grads, state, blocks, seg, adaptive, extras):
    """update_block_at's C entry for the types of these update_blocks arguments:
    (name, entry, returns, sample), the arguments of c_entry.link."""
    i, x = 0, 0.0   # any integer, any float (c_entry.canonical)
    return ("update_block_at", update_entry, types.uint8,
            (i, i, hyper, x, i, params, grads, state, blocks, seg, i, x, x, x, adaptive, extras))


def link_update(hyper, params, grads, state, blocks, seg, adaptive, extras):
    """Register update_block_at's C entry for the types of these update_blocks arguments
    (before a kernel that calls update_blocks is compiled or loaded from the cache)."""
    link(*update_request(hyper, params, grads, state, blocks, seg, adaptive, extras))


@kernel(**PARALLEL)
def update_blocks(kind, hyper, lr, step, params, grads, state, blocks, seg, n_parts,
                  mu_t, mu_next, mu_prod, adaptive, extras, flags):
    """Update the parameters of every block, the blocks spread over Numba's threads
    (each block is cache-sized and independent of the others). adaptive, extras:
    compile-time switches (see loop.run_batches). Returns the number of blocks whose
    new parameters or optimizer state hold a NaN or inf (0 when all are finite);
    flags (>= n_blocks,) uint8 is its scratch, a slot per block (a prange reduction
    variable would allocate an array per call)."""
    for kb in prange(blocks.shape[0]):
        flags[kb] = call_update_block_at((kb, kind, hyper, lr, step, params, grads, state, blocks,
                                          seg, n_parts, mu_t, mu_next, mu_prod, adaptive, extras))
    n_bad = 0
    for kb in range(blocks.shape[0]):
        n_bad += flags[kb]
    return n_bad


@kernel(**ENTRY)
def optimizer_step(kind, hyper, lr, step, params, grads, state, scalars, blocks, seg, n_parts):
    """One update of every parameter (step is the 1-based update count of this optimizer)."""
    mu_t, mu_next, mu_prod = step_scalars(kind, hyper, step, scalars, True)
    update_blocks(kind, hyper, lr, step, params, grads, state, blocks, seg, n_parts, mu_t,
                  mu_next, mu_prod, True, True, np.zeros(blocks.shape[0], np.uint8))
    scalars[0] = mu_prod
