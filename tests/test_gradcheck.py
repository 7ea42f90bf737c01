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
