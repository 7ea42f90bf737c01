"""Helpers shared by several test modules."""
import re

import numpy as np

from fastmlp import reference as ref


def perturbed_problem(spec, n, d, k, seed=0):
    """Data (n, d), labels in [0, k) and reference weights for `spec`, with b, gamma and
    beta moved off their defaults so every gradient formula is exercised. Returns
    (X, y, weights, rng)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 2 + 0.5
    y = rng.integers(0, k, size=n)
    weights = ref.init_weights(spec, d, rng)
    for w in weights:
        if w.ndim == 1:
            w += 0.3 * rng.normal(size=w.shape)
    return X, y, weights, rng


def check_summary(model, text, trainable, non_trainable):
    """Assert summary() totals against hand counts; return {row name: parameter count}."""
    assert model.count_params() == trainable
    assert sum(w.size for w in model.get_weights()) == trainable
    assert f"Total params: {trainable + non_trainable:,}" in text
    assert f"Trainable params: {trainable:,}" in text
    assert f"Non-trainable params: {non_trainable:,}" in text
    return {line.split()[0]: line.split()[-1] for line in text.splitlines()
            if re.match(r"^\w+_\d+\s", line)}


def centred_differences(model, X, y, rng, h, max_entries, l2=0.0, l1=0.0, n_threads=None):
    """Per array of model.get_weights(): (analytic, numeric) gradient entries, where
    analytic comes from compute_gradients and numeric = (J(w + h) - J(w - h)) / 2h with
    J = compute_loss(training=True, n_threads=1), on up to max_entries entries drawn
    with rng. The weights are restored afterwards."""
    weights = model.get_weights()
    grads = model.compute_gradients(X, y, l2=l2, l1=l1, n_threads=n_threads)
    assert [g.shape for g in grads] == [w.shape for w in weights]
    pairs = []
    for w, g in zip(weights, grads):
        flat_w, flat_g = w.reshape(-1), g.reshape(-1)
        idx = np.arange(flat_w.size)
        if idx.size > max_entries:
            idx = rng.choice(idx, size=max_entries, replace=False)
        numeric = np.empty(idx.size)
        for t, i in enumerate(idx):
            old = flat_w[i]
            flat_w[i] = old + h
            model.set_weights(weights)
            plus = model.compute_loss(X, y, l2=l2, l1=l1, training=True, n_threads=1)
            flat_w[i] = old - h
            model.set_weights(weights)
            minus = model.compute_loss(X, y, l2=l2, l1=l1, training=True, n_threads=1)
            flat_w[i] = old
            numeric[t] = (plus - minus) / (2 * h)
        model.set_weights(weights)
        pairs.append((flat_g[idx], numeric))
    return pairs


def python_callable(kernel):
    """A twin of an internal kernel that Python can call: kernels are compiled without
    a CPython wrapper (fastmlp/_config.py), so the test compiles a small one."""
    import numba

    @numba.njit
    def call(*args):
        return kernel(*args)

    return call


def record_calls(monkeypatch, owner, name):
    """Wrap method `name` of class `owner` (for the test's duration, by monkeypatch) so
    that each call still runs and appends its positional arguments, self left out, to
    the list returned."""
    calls = []
    real = getattr(owner, name)

    def spy(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls
