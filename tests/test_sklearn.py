"""fastmlp.sklearn: scikit-learn's own estimator checks, and the same training as
MLPClassifier / MLPRegressor (the independent reference) where the arithmetic allows it."""
import pickle
import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from fastmlp.sklearn import FastMLPClassifier, FastMLPRegressor  # noqa: E402
from _helpers import record_calls  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# max_iter=100 as scikit-learn's own suite runs MLPClassifier / MLPRegressor
@parametrize_with_checks([FastMLPClassifier(max_iter=100), FastMLPRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _data(n=200, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 0.5)
    return X, y


TARGETS = {
    "multiclass": lambda X, y: y,
    "binary": lambda X, y: (y > 0).astype(int),
    "multilabel": lambda X, y: np.stack([y > 0, X[:, 3] > 0, X[:, 4] < 0.3], axis=1).astype(int),
    "regression": lambda X, y: X[:, :2] @ [1.0, -2.0] + 0.5,
    "multioutput": lambda X, y: X[:, :3] * [1.0, -1.0, 2.0],
}


def _pair(kind, **params):
    if kind in ("regression", "multioutput"):
        return FastMLPRegressor(**params), MLPRegressor(**params)
    return FastMLPClassifier(**params), MLPClassifier(**params)


def _close(ours, theirs, rtol, atol):
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# SGD (Nesterov momentum), alpha, no shuffling, batches that divide the rows: the same
# initial weights and updates as scikit-learn, up to float32 rounding. A wrong alpha -> l2
# or gradient-scale conversion moves the weights by far more than the tolerance.
@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_sgd_updates_match_scikit_learn(kind):
    X, y = _data()
    Y = TARGETS[kind](X, y)
    ours, theirs = _pair(kind, hidden_layer_sizes=(7,), solver="sgd", alpha=0.3, batch_size=20,
                         max_iter=3, shuffle=False, random_state=1, learning_rate_init=0.05)
    ours.fit(X, Y)
    theirs.fit(X, Y)
    _close(ours, theirs, 1e-4, 2e-6)
    # the penalty inside loss_curve_ is estimated from the epoch's first and last weights
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=0.03)
    assert ours.n_iter_ == theirs.n_iter_ == 3 and ours.t_ == theirs.t_ == 600
    np.testing.assert_allclose(ours.predict(X[:50]) if kind in ("regression", "multioutput")
                               else ours.predict_proba(X[:50]),
                               theirs.predict(X[:50]) if kind in ("regression", "multioutput")
                               else theirs.predict_proba(X[:50]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_learning_rate_schedules_match_scikit_learn(schedule):
    # without momentum the schedules give scikit-learn's steps exactly; 'adaptive' with
    # tol large enough that every epoch counts as no improvement: lr / 5 after 2 epochs
    X, y = _data()
    params = dict(hidden_layer_sizes=(5, 4), activation="tanh", solver="sgd", momentum=0.0,
                  learning_rate=schedule, batch_size=25, max_iter=6, shuffle=False,
                  random_state=3, learning_rate_init=0.2, alpha=0.01, tol=10.0,
                  n_iter_no_change=1)
    ours, theirs = FastMLPClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    _close(ours, theirs, 1e-4, 2e-6)
    assert ours.n_iter_ == theirs.n_iter_


def test_adam_matches_scikit_learn_closely():
    # Adam differs only in where epsilon enters (scikit-learn: before the bias correction)
    X, y = _data()
    params = dict(hidden_layer_sizes=(8,), solver="adam", batch_size=40, max_iter=4,
                  shuffle=False, random_state=2, learning_rate_init=0.01, alpha=0.01)
    ours, theirs = FastMLPClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    _close(ours, theirs, 1e-3, 1e-5)


def test_early_stopping_matches_scikit_learn():
    # the same split (scikit-learn's draws from random_state), validation scores (R^2) and
    # restored best weights; float64, so that scikit-learn's numbers are matched closely
    X, _ = _data(400)
    Y = np.sin(2 * X[:, 0]) * X[:, 1] + 0.5 * np.random.default_rng(1).standard_normal(400)
    params = dict(hidden_layer_sizes=(32,), solver="sgd", batch_size=40, max_iter=40,
                  shuffle=False, random_state=0, learning_rate_init=0.05, early_stopping=True,
                  validation_fraction=0.2, n_iter_no_change=2, tol=0.0)   # 320 rows: 8 batches
    ours = FastMLPRegressor(dtype="float64", **params).fit(X, Y)
    theirs = MLPRegressor(**params).fit(X, Y)
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, rel=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ < 40 and ours.best_loss_ is None
    _close(ours, theirs, 1e-9, 1e-12)
    assert int(np.argmax(ours.validation_scores_)) < ours.n_iter_ - 1   # earlier weights back


def test_partial_fit_and_warm_start_continue_training():
    X, y = _data()
    params = dict(hidden_layer_sizes=(6,), solver="sgd", batch_size=50, shuffle=False,
                  random_state=4, learning_rate_init=0.1, tol=0.0, n_iter_no_change=99)
    full = FastMLPClassifier(max_iter=4, **params).fit(X, y)
    part = FastMLPClassifier(**params)
    for _ in range(4):
        part.partial_fit(X, y, classes=[0, 1, 2])
    _close(part, full, 0, 0)                  # the same run, bit for bit
    assert part.loss_curve_ == full.loss_curve_ and part.t_ == 800 and part.n_iter_ == 1
    # warm_start without momentum: two fits of 2 epochs are one of 4 (as scikit-learn)
    plain = dict(params, momentum=0.0)
    warm = FastMLPClassifier(max_iter=2, warm_start=True, **plain).fit(X, y).fit(X, y)
    sk = MLPClassifier(max_iter=2, warm_start=True, **plain).fit(X, y).fit(X, y)
    _close(warm, FastMLPClassifier(max_iter=4, **plain).fit(X, y), 1e-6, 1e-7)
    _close(warm, sk, 1e-4, 2e-6)
    with pytest.raises(ValueError, match="classes"):
        FastMLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        part.partial_fit(X, y + 5)


def test_fit_and_partial_fit_evaluate_nothing_before_training(monkeypatch):
    """Like MLPClassifier, the estimators compute no loss before the first update
    (Sequential.fit's history.initial, a forward pass over all rows): partial_fit in
    a loop would otherwise pay a third of an epoch per call."""
    import fastmlp as fm
    X, y = _data()
    calls = record_calls(monkeypatch, fm.Sequential, "_metrics")
    est = FastMLPClassifier(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, y)
    est.partial_fit(X, y)
    FastMLPRegressor(hidden_layer_sizes=(6,), max_iter=2, random_state=0).fit(X, X[:, 0])
    assert calls == [] and est.model_.history.initial == {}


def test_string_labels_probabilities_and_pickle():
    X, y = _data()
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = FastMLPClassifier(hidden_layer_sizes=(16,), max_iter=30, batch_size=20,
                            learning_rate_init=0.01, random_state=0).fit(X, labels)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert np.allclose(clf.predict_log_proba(X), np.log(clf.predict_proba(X)))
    assert clf.score(X, labels) > 0.8
    assert len(clf.loss_curve_) == clf.n_iter_ and clf.best_loss_ == min(clf.loss_curve_)
    again = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(again.predict_proba(X), proba)
    # the unpickled estimator trains on exactly as the original does
    clf.partial_fit(X, labels)
    again.partial_fit(X, labels)
    _close(again, clf, 0, 0)


def test_multilabel_indicator_targets():
    X, y = _data()
    Y = TARGETS["multilabel"](X, y)
    clf = FastMLPClassifier(hidden_layer_sizes=(16,), max_iter=40, batch_size=20,
                            learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    pred, proba = clf.predict(X), clf.predict_proba(X)
    assert pred.shape == proba.shape == (200, 3)
    assert np.array_equal(pred, (proba > 0.5).astype(int))
    assert (pred == Y).mean() > 0.8


def test_fastmlp_extras_batch_norm_dropout_and_float64():
    X, y = _data(400)
    clf = FastMLPClassifier(hidden_layer_sizes=(32,), batch_norm=True, dropout=0.2,
                            max_iter=40, batch_size=20, learning_rate_init=0.01,
                            random_state=0, n_threads=1).fit(X, y)
    assert clf.score(X, y) > 0.8
    assert [type(layer).__name__ for layer in clf.model_.layers] == \
        ["Dense", "BatchNorm", "ReLU", "Dropout", "Dense", "Softmax"]
    reg = FastMLPRegressor(hidden_layer_sizes=(8,), solver="sgd", dtype="float64", max_iter=3,
                           shuffle=False, random_state=1, batch_size=20,
                           learning_rate_init=0.05).fit(X[:200], TARGETS["regression"](X, y)[:200])
    ref = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", max_iter=3, shuffle=False,
                       random_state=1, batch_size=20, learning_rate_init=0.05).fit(
        X[:200], TARGETS["regression"](X, y)[:200])
    assert reg.coefs_[0].dtype == np.float64
    _close(reg, ref, 1e-9, 1e-12)              # float64: scikit-learn's numbers


@pytest.mark.parametrize("name, value, error", [
    ("hidden_layer_sizes", (10, 0), ValueError), ("activation", "softplus", ValueError),
    ("solver", "lbfgs", ValueError), ("alpha", -1.0, ValueError),
    ("batch_size", 0, ValueError), ("learning_rate", "cyclic", ValueError),
    ("max_iter", 2.5, TypeError), ("momentum", 1.5, ValueError),
    ("validation_fraction", 1.0, ValueError), ("dropout", 1.0, ValueError),
    ("dtype", "float16", ValueError), ("n_threads", 0, ValueError),
    ("learning_rate_init", 0.0, ValueError), ("shuffle", "yes", TypeError)])
def test_bad_parameters_are_refused_before_anything_changes(name, value, error):
    X, y = _data()
    clf = FastMLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    old = clf.get_params()[name]
    clf.set_params(**{name: value})
    with pytest.raises(error, match=name):
        clf.fit(X, y)
    clf.set_params(**{name: old})
    assert np.array_equal(clf.predict_proba(X), before) and clf.n_iter_ == 2


def test_divergence_is_a_value_error():
    X, y = _data()
    with pytest.raises(ValueError, match="non-finite"):
        FastMLPRegressor(solver="sgd", learning_rate_init=1e6, momentum=0.0, max_iter=5,
                         random_state=0).fit(X * 100, TARGETS["regression"](X, y) * 1e6)


def test_feature_names_from_a_data_frame():
    pd = pytest.importorskip("pandas")
    X, y = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    clf = FastMLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(frame, y)
    assert list(clf.feature_names_in_) == list(frame.columns) and clf.n_features_in_ == 6


def test_memmap_input_is_not_copied(tmp_path):
    # 50,000 x 256 float32 (51 MB) on disk, read-only: the fit's peak of Python-side
    # allocations (numpy's are traced) stays far below one copy of X. What it holds:
    # label arrays (n entries) and fixed-size blocks of the input checks.
    n, d = 50_000, 256
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for i in range(0, n, 10_000):
        X[i: i + 10_000] = rng.standard_normal((10_000, d), dtype=np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    X.flush()
    del X
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    params = dict(hidden_layer_sizes=(16,), max_iter=1, batch_size=500, random_state=0,
                  n_threads=1)
    FastMLPClassifier(**params).fit(X[:1000], y[:1000])   # kernels loaded before tracing
    tracemalloc.start()
    try:
        clf = FastMLPClassifier(**params).fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * X.nbytes, f"peak {peak / 1e6:.1f} MB for a {X.nbytes / 1e6:.0f} MB X"
    in_memory = FastMLPClassifier(**params).fit(np.array(X), y)
    _close(clf, in_memory, 0, 0)


def test_import_fastmlp_imports_neither_sklearn_nor_dask():
    code = ("import sys, fastmlp, fastmlp.sweep; "
            "bad = [m for m in ('sklearn', 'dask', 'distributed') if m in sys.modules]; "
            "sys.exit(str(bad) if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_accuracy_on_mnist_matches_mlpclassifier():
    # bundled MNIST subset (8,000 / 2,000), Adam, 20 epochs, one hidden layer of 100,
    # batch 100, the same random_state (the same initial weights)
    from fastmlp.datasets import load_mnist
    (X, y), (Xt, yt) = load_mnist(flatten=True)
    X, Xt = (X / 255.0).astype(np.float32), (Xt / 255.0).astype(np.float32)
    params = dict(hidden_layer_sizes=(100,), solver="adam", batch_size=100, max_iter=20,
                  random_state=0)
    ours = FastMLPClassifier(**params).fit(X, y).score(Xt, yt)
    with threadpool_limits(1), warnings.catch_warnings():   # scikit-learn's BLAS on one thread
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = MLPClassifier(**params).fit(X, y).score(Xt, yt)
    assert theirs > 0.9
    assert abs(ours - theirs) <= 0.015, (ours, theirs)


def test_warm_start_may_switch_early_stopping_on():
    X, y = _data(400)
    clf = FastMLPClassifier(hidden_layer_sizes=(8,), max_iter=3, batch_size=40, random_state=0,
                            warm_start=True).fit(X, y)
    assert clf.validation_scores_ is None and np.isfinite(clf.best_loss_)
    clf.set_params(early_stopping=True, max_iter=2, n_iter_no_change=5)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == 2 and clf.best_loss_ is None
    assert len(clf.loss_curve_) == 5
    with pytest.raises(ValueError, match="validation set is too small"):
        FastMLPClassifier(early_stopping=True, validation_fraction=0.01).fit(X[:50], y[:50])
