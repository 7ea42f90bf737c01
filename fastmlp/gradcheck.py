"""Gradient checking: analytic gradients vs centred finite differences, in float64,
with a verdict.

An entry passes when its relative error |a - n| / max(|a| + |n|, floor) is below
RTOL = 1e-6 (the course convention for float64 checks). An entry over it is set
apart, listed and explained, and not counted as a failure when

- its gradient is near zero: |a - n| is within the finite difference's noise floor
  atol = NOISE_FACTOR * eps * max(|J|, 1) / h (eps = 2.2e-16, J the cost; about
  1e-9 for a cross-entropy near 2.3 and h = 1e-5; the errors measured on the CLI's
  nets were at most 3e-10). The gradient is then too small for its relative error
  to mean anything: the usual case is a dense bias feeding BatchNorm, whose true
  gradient is exactly 0 (BN subtracts the batch mean);
- or the +-h step crosses a ReLU kink: some ReLU (or leaky ReLU) input changes sign
  between w - h and w + h, so the difference quotient mixes the slopes of both sides
  while the analytic gradient is one side's.

Every other entry over RTOL is a failure.
"""
from dataclasses import dataclass, field

import numpy as np

from .kernels import activations as _act
from .kernels import layout as L

RTOL = 1e-6
NOISE_FACTOR = 20.0
EPS64 = float(np.finfo(np.float64).eps)

NEAR_ZERO_WHY = ("the gradient is so small that the finite difference's rounding noise is more "
                 "than 1e-6 of it, so its relative error means nothing; the usual case is a dense "
                 "bias feeding BatchNorm, whose true gradient is 0 (BN subtracts the batch mean, "
                 "so shifting its input changes nothing)")
KINK_WHY = ("the +-h step moves a ReLU input across 0, so the finite difference averages the "
            "slopes on both sides of the kink while the analytic gradient takes one side's")


@dataclass
class GradCheckRow:
    layer: int          # index in model.layers
    param: str          # "W", "b", "gamma" or "beta"
    shape: tuple
    n_checked: int      # entries compared
    max_rel_error: float    # over all entries checked
    mean_rel_error: float
    max_abs_error: float
    n_failed: int = 0       # counted entries with relative error >= rtol
    n_near_zero: int = 0    # set apart: |a - n| within the noise floor atol
    n_kink: int = 0         # set apart: the step crossed a ReLU kink
    counted_max_rel_error: float = 0.0   # over the entries not set apart


@dataclass
class Entry:
    """One checked entry set apart or failing: array row, flat index, index in the
    array's shape, analytic and numeric values, relative error, reason
    ("near zero", "ReLU kink" or "failed")."""
    row: GradCheckRow
    flat: int
    index: tuple
    analytic: float
    numeric: float
    rel_error: float
    reason: str

    def where(self):
        return f"layer {self.row.layer} {self.row.param}[{', '.join(map(str, self.index))}]"


class GradCheckTable(list):
    """List of GradCheckRow; prints as a markdown table. `passed`, `verdict()` and
    `explain()` judge it against `rtol`; `apart` and `failures` list the entries."""

    def __init__(self, rows=(), rtol=RTOL, atol=0.0):
        super().__init__(rows)
        self.rtol, self.atol = rtol, atol   # atol: the noise floor of |a - n|
        self.apart = []      # Entry: near zero or ReLU kink (not counted)
        self.failures = []   # Entry: counted, relative error >= rtol

    @property
    def max_rel_error(self):
        """Largest relative error of all entries checked (set-apart ones included)."""
        return max((r.max_rel_error for r in self), default=0.0)

    @property
    def n_checked(self):
        return sum(r.n_checked for r in self)

    @property
    def counted_max_rel_error(self):
        """Largest relative error over the counted entries (what the verdict judges)."""
        return max((r.counted_max_rel_error for r in self), default=0.0)

    @property
    def passed(self):
        return not self.failures

    def verdict(self):
        """One line: PASS or FAIL against rtol, with the worst counted error."""
        n = self.n_checked - len(self.apart)
        if self.passed:
            return (f"PASS: max relative error {self.counted_max_rel_error:.2e} < {self.rtol:g} "
                    f"over {n:,} entries ({len(self.apart)} set apart, below)")
        worst = max(self.failures, key=lambda e: e.rel_error)
        return (f"FAIL: {len(self.failures)} of {n:,} entries have a relative error >= "
                f"{self.rtol:g} (worst {worst.where()}: {worst.rel_error:.2e}, analytic "
                f"{worst.analytic:.6g} vs numeric {worst.numeric:.6g})")

    def explain(self, max_listed=5):
        """Lines listing the set-apart entries by reason, each with why it is not counted."""
        lines = []
        for reason, why in (("near zero", NEAR_ZERO_WHY), ("ReLU kink", KINK_WHY)):
            group = [e for e in self.apart if e.reason == reason]
            if not group:
                continue
            label = (f"near-zero gradient (|analytic - numeric| <= noise floor {self.atol:.1e})"
                     if reason == "near zero" else "crossed a ReLU kink")
            by_array = {}
            for e in group:
                by_array.setdefault((e.row.layer, e.row.param), []).append(e)
            parts = []
            for (layer, param), es in by_array.items():
                worst = max(abs(e.analytic - e.numeric) for e in es)
                parts.append(f"layer {layer} {param}: {len(es)} (max abs. error {worst:.1e})")
            lines.append(f"set apart, {label}: {len(group)} entries; " + ", ".join(parts))
            shown = sorted(group, key=lambda e: -e.rel_error)[:max_listed]
            lines.append("  e.g. " + "; ".join(
                f"{e.where()} analytic {e.analytic:.3g} numeric {e.numeric:.3g}" for e in shown))
            lines.append(f"  why not counted: {why}")
        return "\n".join(lines)

    def __str__(self):
        lines = ["| layer | param | shape | entries | max rel. error | mean rel. error "
                 "| max abs. error | failed | set apart |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self:
            apart = r.n_near_zero + r.n_kink
            lines.append(f"| {r.layer} | {r.param} | {'x'.join(map(str, r.shape))} "
                         f"| {r.n_checked} | {r.max_rel_error:.2e} | {r.mean_rel_error:.2e} "
                         f"| {r.max_abs_error:.2e} | {r.n_failed} | {apart} |")
        return "\n".join(lines)

    _repr_markdown_ = __str__


def relative_error(analytic, numeric, floor=1e-8):
    """|a - n| / max(|a| + |n|, floor), element-wise.

    The floor keeps entries whose true gradient is (near) zero, such as a dense
    bias feeding a BatchNorm (exactly 0: BN removes the mean), from turning
    rounding noise of ~1e-11 into a "relative error" of 1.
    """
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def check_gradients(model, X, y, l2=0.0, h=1e-5, max_entries=None, seed=0, floor=1e-8, l1=0.0,
                    rtol=RTOL, atol=None, progress=False):
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
    An entry fails when its relative error is >= rtol, unless it is set apart:
    near zero (|a - n| <= atol, by default the noise floor NOISE_FACTOR * eps *
    max(|J|, 1) / h) or across a ReLU kink (see the module docstring).
    progress: a tqdm bar over the entries on stderr.
    Returns a GradCheckTable with one row per array (printable as markdown;
    .passed, .verdict(), .explain()).
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
    if atol is None:
        cost = probe.compute_loss(X, y, l2=l2, l1=l1)
        atol = NOISE_FACTOR * EPS64 * max(abs(cost), 1.0) / h
    rng = np.random.default_rng(seed)
    picks = []
    for w in weights:
        flat_idx = np.arange(w.size)
        if max_entries is not None and w.size > max_entries:
            flat_idx = rng.choice(w.size, size=max_entries, replace=False)
        picks.append(flat_idx)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(len(p) for p in picks), unit="entry", desc="gradient check",
                   leave=False, dynamic_ncols=True)
    table = GradCheckTable(rtol=rtol, atol=atol)
    try:
        for k, (entry, w, g, flat_idx) in enumerate(zip(probe.plan.entries, weights, analytic,
                                                        picks)):
            numeric = np.empty(len(flat_idx))
            for t, i in enumerate(flat_idx):
                numeric[t] = _centred_difference(probe, weights, k, i, X, y, l2, l1, h)
                if bar is not None:
                    bar.update(1)
            a = g.ravel()[flat_idx]
            rel = relative_error(a, numeric, floor)
            row = GradCheckRow(entry.layer, entry.name, entry.shape, len(flat_idx),
                               float(rel.max()), float(rel.mean()),
                               float(np.abs(a - numeric).max()))
            _judge(table, row, probe, weights, k, flat_idx, a, numeric, rel, X, y, h)
            table.append(row)
    finally:
        if bar is not None:
            bar.close()
    return table


def _judge(table, row, probe, weights, k, flat_idx, a, numeric, rel, X, y, h):
    """Sort the entries of one array: passed (relative error < rtol), else near zero
    (|a - n| <= atol), else ReLU kink, else failed; fill row's counts and the table's
    lists."""
    shape = weights[k].shape
    counted = []
    for t, i in enumerate(flat_idx):
        if rel[t] < table.rtol:
            counted.append(rel[t])
            continue
        if abs(a[t] - numeric[t]) <= table.atol:
            reason = "near zero"
        elif _crosses_kink(probe, weights, k, i, X, y, h):
            reason = "ReLU kink"
        else:
            reason = "failed"
            counted.append(rel[t])
        e = Entry(row, int(i), tuple(int(v) for v in np.unravel_index(i, shape)),
                  float(a[t]), float(numeric[t]), float(rel[t]), reason)
        (table.failures if reason == "failed" else table.apart).append(e)
    row.n_failed = sum(1 for e in table.failures if e.row is row)
    row.n_near_zero = sum(1 for e in table.apart if e.row is row and e.reason == "near zero")
    row.n_kink = sum(1 for e in table.apart if e.row is row and e.reason == "ReLU kink")
    row.counted_max_rel_error = float(max(counted, default=0.0))


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


def _crosses_kink(probe, weights, k, i, X, y, h):
    """Whether moving entry i of array k from w - h to w + h changes which ReLU /
    leaky ReLU units of the batch are active (a kink lies between)."""
    w = weights[k].ravel()
    original = w[i]
    patterns = []
    for value in (original + h, original - h):
        w[i] = value
        probe.set_weights(weights)
        patterns.append(_active_units(probe, X, y))
    w[i] = original
    probe.set_weights(weights)
    return not np.array_equal(patterns[0], patterns[1])


def _active_units(probe, X, y):
    """Boolean pattern (concatenated) of the positive outputs of every op with a ReLU or
    leaky ReLU activation, for X as one training-mode batch on one chunk."""
    from ._threads import compute_threads
    Xc, yc, Tc = probe._prepare(X, y)
    n = Xc.shape[0]
    with compute_threads(1):
        probe._run_eval(Xc, yc, Tc, n, 1, False, training=True)
    ws = probe._workspace("train-batch", n, 1)
    parts = []
    for op in ws.ops:
        if op[L.F_KIND] in (L.OP_DENSE, L.OP_BN, L.OP_ACT) and \
                op[L.F_ACT] in (_act.RELU, _act.LEAKY_RELU):
            base, width = op[L.F_OUT], op[L.F_NOUT]
            parts.append(ws.ws[base: base + n * width] > 0)
    return np.concatenate(parts) if parts else np.zeros(0, bool)
