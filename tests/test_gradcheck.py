"""fm.check_gradients: the public finite-difference checker."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp.gradcheck import relative_error


def _data(n=20, d=10, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, k, n)


@pytest.mark.parametrize("bn", [False, True])
def test_table_covers_every_array_and_is_small(bn):
    X, y = _data()
    layers = [fm.Dense(12)] + ([fm.BatchNorm()] if bn else []) + [fm.Tanh(), fm.Dense(4), fm.Softmax()]
    model = fm.Sequential(layers, seed=3)  # float32 model: the check runs on a float64 copy
    model.build(10)
    table = fm.check_gradients(model, X, y, l2=0.01)
    expected = ["W", "b"] + (["gamma", "beta"] if bn else []) + ["W", "b"]
    assert [r.param for r in table] == expected
    assert all(r.n_checked == int(np.prod(r.shape)) for r in table)
    # tanh is smooth (no kinks), so every entry agrees tightly; the bias feeding BN has
    # an exactly-zero true gradient, so only its absolute (rounding) error is meaningful
    for r in table:
        if bn and r.layer == 0 and r.param == "b":
            assert r.max_abs_error < 1e-9
        else:
            assert r.max_rel_error < 1e-6, r
    text = str(table)
    assert text.startswith("| layer | param |") and text.count("\n") == len(table) + 1


def test_detects_a_wrong_gradient(monkeypatch):
    X, y = _data()
    model = fm.Sequential([fm.Dense(6), fm.Sigmoid(), fm.Dense(4), fm.Softmax()], dtype=np.float64, seed=0)
    model.build(10)
    original = fm.Sequential.compute_gradients

    def broken(self, *args, **kwargs):
        grads = original(self, *args, **kwargs)
        grads[2] = grads[2] * 1.01  # 1% error in the second W
        return grads

    monkeypatch.setattr(fm.Sequential, "compute_gradients", broken)
    table = fm.check_gradients(model, X, y, max_entries=5)
    assert table[2].max_rel_error > 1e-3
    assert table[0].max_rel_error < 1e-6


def test_relative_error_floor():
    assert relative_error(np.array([1e-12]), np.array([-1e-12]))[0] < 1e-3
    assert relative_error(np.array([1.0]), np.array([1.1]))[0] == pytest.approx(0.1 / 2.1)


def test_verdict_sets_the_bias_before_bn_apart():
    X, y = _data(seed=1)
    model = fm.Sequential([fm.Dense(7), fm.BatchNorm(), fm.ReLU(), fm.Dense(4), fm.Softmax()],
                          seed=0)
    model.build(10)
    table = fm.check_gradients(model, X, y)
    assert table.passed and table.verdict().startswith("PASS: max relative error ")
    bias = [e for e in table.apart if e.row.layer == 0 and e.row.param == "b"]
    assert bias and all(e.reason == "near zero" for e in bias)
    # their true gradient is 0: BN removes any shift of its input
    assert all(abs(e.analytic) < 1e-12 and abs(e.numeric) <= table.atol for e in bias)
    assert table.counted_max_rel_error < 1e-6 <= table.max_rel_error
    n_counted = table.n_checked - len(table.apart)
    assert f"over {n_counted:,} entries ({len(table.apart)} set apart" in table.verdict()
    text = table.explain()
    assert "near-zero gradient" in text and "layer 0 b" in text and "BatchNorm" in text


def test_an_entry_whose_step_crosses_a_relu_kink_is_set_apart():
    X, y = _data(seed=2)
    model = fm.Sequential([fm.Dense(3), fm.ReLU(), fm.Dense(4), fm.Softmax()],
                          dtype=np.float64, seed=0)
    model.build(10)
    W, b, W2, b2 = model.get_weights()
    # unit 0's input for sample 0 sits 1e-7 above the kink: b[0] +- h puts it on both sides
    b[0] = 1e-7 - X[0] @ W[:, 0]
    model.set_weights([W, b, W2, b2])
    z = X[0] @ W[:, 0] + b[0]
    assert (z + 1e-5 > 0) != (z - 1e-5 > 0)
    table = fm.check_gradients(model, X, y, h=1e-5)
    kinks = {(e.row.layer, e.row.param, e.index): e for e in table.apart if e.reason == "ReLU kink"}
    e = kinks[(0, "b", (0,))]
    assert e.rel_error >= 1e-6 and abs(e.analytic - e.numeric) > table.atol  # a real mismatch
    assert table.passed, table.verdict()
    assert "crossed a ReLU kink" in table.explain() and "layer 0 b: 1 " in table.explain()
    # moved away from the kink, the same entry agrees
    b[0] += 0.5
    model.set_weights([W, b, W2, b2])
    again = fm.check_gradients(model, X, y, h=1e-5)
    assert not any(a.reason == "ReLU kink" for a in again.apart)
    assert again.passed


def test_verdict_fails_a_wrong_gradient(monkeypatch):
    X, y = _data()
    model = fm.Sequential([fm.Dense(6), fm.ReLU(), fm.Dense(4), fm.Softmax()], dtype=np.float64,
                          seed=0)
    model.build(10)
    original = fm.Sequential.compute_gradients

    def broken(self, *args, **kwargs):
        grads = original(self, *args, **kwargs)
        grads[3] = grads[3] * 1.0001   # 0.01% error in the last b
        return grads

    monkeypatch.setattr(fm.Sequential, "compute_gradients", broken)
    table = fm.check_gradients(model, X, y)
    assert not table.passed
    assert {(e.row.layer, e.row.param) for e in table.failures} == {(2, "b")}
    assert table[3].n_failed == 4 and table.verdict().startswith("FAIL: 4 of ")
