"""fit's warnings for silent failures: unscaled inputs (integer pixels, features with a
large spread) and a batch_size larger than the training rows."""
import time
import warnings

import numpy as np
import pytest

import fastmlp as fm
from fastmlp._validation import scale_warning

D, K = 6, 3


def model(seed=0):
    return fm.Sequential([fm.Dense(5), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=seed)


def labels(n):
    return np.arange(n) % K


FIT = dict(epochs=1, verbose=0, n_threads=1)


def fit_warnings(X, y, **kwargs):
    """The warnings one fit raises (all of them, each time)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model().fit(X, y, **{**FIT, **kwargs})
    return [w for w in caught if issubclass(w.category, UserWarning)]


def test_uint8_pixels_warn_once_with_the_fix():
    X = np.random.default_rng(0).integers(0, 256, (100, D)).astype(np.uint8)
    with pytest.warns(fm.InputScaleWarning) as record:
        model().fit(X, labels(100), batch_size=20, **FIT)
    assert len(record) == 1
    text = str(record[0].message)
    assert "\n" not in text and "uint8" in text and "0 to 255" in text
    assert "fastmlp.preprocess.standardize" in text
    assert record[0].filename == __file__       # points at the caller's fit line


def test_integer_inputs_within_0_and_1_do_not_warn():
    X = np.random.default_rng(0).integers(0, 2, (100, D))          # binary features
    assert fit_warnings(X, labels(100), batch_size=20) == []


def test_a_feature_with_a_large_spread_warns():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, D))
    X[:, 4] *= 80                                                   # std ~80 > 50
    caught = fit_warnings(X, labels(200), batch_size=20)
    assert len(caught) == 1 and caught[0].category is fm.InputScaleWarning
    assert "feature 4" in str(caught[0].message) and "standard deviation above 50" in str(
        caught[0].message)


def test_standardized_data_gives_no_warning():
    from fastmlp.datasets import load_mnist
    from fastmlp.preprocess import standardize
    (X, y), _ = load_mnist(flatten=True)
    X, y = X[:600], y[:600]
    Xs = standardize(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fm.Sequential([fm.Dense(8), fm.ReLU(), fm.Dense(10), fm.Softmax()], seed=0).fit(
            Xs, y, batch_size=100, **FIT)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == []
    assert scale_warning(Xs, Xs.dtype) is None
    assert scale_warning(X.astype(np.float32), np.uint8) is not None   # the raw pixels


def test_the_scale_check_reads_a_sample_of_big_inputs():
    """A 2-million-row X (a broadcast view: no memory) is checked in well under a second;
    reading all of it would take many seconds."""
    row = np.linspace(-1, 1, 784, dtype=np.float32)
    big = np.broadcast_to(row, (2_000_000, 784))
    t0 = time.perf_counter()
    assert scale_warning(big, big.dtype) is None
    assert time.perf_counter() - t0 < 1.0


def test_batch_larger_than_the_data_warns_and_records_the_size_used():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((50, D)), labels(50)
    big = model()
    with pytest.warns(UserWarning, match=r"batch_size=64 is larger than the 50 training rows"):
        hist = big.fit(X, y, batch_size=64, **FIT)
    assert hist.params["batch_size"] == 50
    exact = model()
    exact.fit(X, y, batch_size=50, **FIT)                  # the run it stands for
    assert all(np.array_equal(a, b) for a, b in zip(big.get_weights(), exact.get_weights()))
    # the rows left for training after validation_split are what counts
    with pytest.warns(UserWarning, match=r"batch_size=45 is larger than the 40 training rows"):
        hist = model().fit(X, y, batch_size=45, validation_split=0.2, **FIT)
    assert hist.params["batch_size"] == 40


def test_the_default_batch_size_on_small_data_is_silent():
    X = np.random.default_rng(3).standard_normal((20, D))
    assert fit_warnings(X, labels(20)) == []               # batch_size=None: 32, capped
    hist = model().fit(X, labels(20), **FIT)
    assert hist.params["batch_size"] == 20
