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
