"""Gradient checking: analytic gradients vs centred finite differences, in float64."""
from dataclasses import dataclass

import numpy as np


@dataclass
class GradCheckRow:
    layer: int          # index in model.layers
    param: str          # "W", "b", "gamma" or "beta"
    shape: tuple
    n_checked: int      # entries compared
    max_rel_error: float
    mean_rel_error: float
    max_abs_error: float


class GradCheckTable(list):
    """List of GradCheckRow; prints as a markdown table."""

    @property
    def max_rel_error(self):
        return max((r.max_rel_error for r in self), default=0.0)

    def __str__(self):
        lines = ["| layer | param | shape | entries | max rel. error | mean rel. error | max abs. error |",
                 "|---|---|---|---|---|---|---|"]
        for r in self:
            lines.append(f"| {r.layer} | {r.param} | {'x'.join(map(str, r.shape))} | {r.n_checked} "
                         f"| {r.max_rel_error:.2e} | {r.mean_rel_error:.2e} | {r.max_abs_error:.2e} |")
        return "\n".join(lines)

    _repr_markdown_ = __str__


def relative_error(analytic, numeric, floor=1e-8):
    """|a - n| / max(|a| + |n|, floor), element-wise.

    The floor keeps entries whose true gradient is (near) zero, such as a dense
    bias feeding a BatchNorm (exactly 0: BN removes the mean), from turning
    rounding noise of ~1e-11 into a "relative error" of 1.
    """
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def check_gradients(model, X, y, l2=0.0, h=1e-5, max_entries=None, seed=0, floor=1e-8, l1=0.0):
    """Compare the model's analytic gradients with centred finite differences.

    The check runs on a float64 copy of `model` (same layers and weights) with
    X (n, n_features), y (n,) targets as one batch in training mode (batch
    statistics for BN; dropout with the fixed masks of the model's seed and step). For each trainable array, `max_entries` entries (all
    when None) are perturbed by +-h: numeric = (J(w + h) - J(w - h)) / (2h), J
    the cost (mean loss + l2 * sum ||W||^2 + l1 * sum |W|). Errors are
    |a - n| / max(|a| + |n|, floor) (see relative_error).
    h trades rounding noise (~1e-16 * J / h, visible on near-zero gradients)
    against ReLU kinks crossed by the perturbation (an input within h * |x| of
    0 makes the numeric slope a mix of both sides); 1e-5 balances the two.
    Returns a GradCheckTable with one row per array (printable as markdown).
    """
    from .model import Sequential
    model._require_built()
    probe = Sequential(model.layers, dtype=np.float64, seed=model.seed, loss=model.plan.loss)
    probe.build(model.n_features)
    probe.step = model.step  # the same dropout masks as the model's next update
    weights = [w.astype(np.float64) for w in model.get_weights()]
    probe.set_weights(weights)
    X = np.asarray(X, dtype=np.float64)
    analytic = probe.compute_gradients(X, y, l2=l2, l1=l1)
    rng = np.random.default_rng(seed)
    table = GradCheckTable()
    for k, (entry, w, g) in enumerate(zip(probe.plan.entries, weights, analytic)):
        flat_idx = np.arange(w.size)
        if max_entries is not None and w.size > max_entries:
            flat_idx = rng.choice(w.size, size=max_entries, replace=False)
        numeric = np.empty(len(flat_idx))
        for t, i in enumerate(flat_idx):
            numeric[t] = _centred_difference(probe, weights, k, i, X, y, l2, l1, h)
        a = g.ravel()[flat_idx]
        rel = relative_error(a, numeric, floor)
        table.append(GradCheckRow(entry.layer, entry.name, entry.shape, len(flat_idx),
                                  float(rel.max()), float(rel.mean()),
                                  float(np.abs(a - numeric).max())))
    return table


def _centred_difference(probe, weights, k, i, X, y, l2, l1, h):
    w = weights[k].ravel()
    original = w[i]
    w[i] = original + h
    probe.set_weights(weights)
    plus = probe.compute_loss(X, y, l2=l2, l1=l1)
    w[i] = original - h
    probe.set_weights(weights)
    minus = probe.compute_loss(X, y, l2=l2, l1=l1)
    w[i] = original
    probe.set_weights(weights)
    return (plus - minus) / (2 * h)
