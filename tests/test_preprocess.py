"""Tests for fastmlp.preprocess."""
import numpy as np
import pytest

from fastmlp import preprocess as pp


def _data(seed=0, n=500, d=6):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=np.arange(d) * 10.0, scale=np.arange(1, d + 1), size=(n, d))


def test_standardize_uses_train_statistics():
    Xtr, Xte = _data(0), _data(1, n=200) + 3.0
    Ztr, Zte, sc = pp.standardize(Xtr, Xte, return_scaler=True)
    np.testing.assert_allclose(Ztr.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Ztr.std(axis=0), 1, atol=1e-5)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    np.testing.assert_allclose(Zte, (Xte - mu) / sd, rtol=1e-5, atol=1e-5)
    assert np.all(Zte.mean(axis=0) > 0.2)  # test data is not re-centred on its own mean
    np.testing.assert_allclose(sc.mean_, mu)
    np.testing.assert_allclose(sc.std_, sd)
    assert sc.mean_.dtype == np.float64
    for Z in (Ztr, Zte):
        assert Z.dtype == np.float32 and Z.flags.c_contiguous


def test_standardize_single_array_and_images():
    X = np.random.default_rng(2).integers(0, 256, size=(50, 4, 4), dtype=np.uint8)
    Z = pp.standardize(X)
    assert isinstance(Z, np.ndarray) and Z.shape == (50, 4, 4) and Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    Z1, sc = pp.standardize(X, return_scaler=True)
    np.testing.assert_array_equal(Z, Z1)
    assert sc.mean_.shape == (4, 4)
    np.testing.assert_allclose(sc.inverse_transform(Z), X, atol=1e-4)


def test_constant_feature_no_nan():
    Xtr = _data(0)
    Xtr[:, 2] = 7.0
    Xte = _data(1, n=10)
    Xte[:, 2] = 9.0
    Ztr, Zte = pp.standardize(Xtr, Xte)
    assert np.isfinite(Ztr).all() and np.isfinite(Zte).all()
    np.testing.assert_array_equal(Ztr[:, 2], 0)
    np.testing.assert_allclose(Zte[:, 2], 2.0)  # centred, divided by 1


def test_standardizer_layouts_chunks_and_precision(monkeypatch):
    X = _data(3, n=301, d=5)
    ref = pp.Standardizer().fit_transform(X)
    np.testing.assert_allclose(pp.Standardizer().fit_transform(np.asfortranarray(X)), ref)
    np.testing.assert_allclose(pp.Standardizer().fit(X[::2]).transform(X[1::2]).shape, (150, 5))
    monkeypatch.setattr(pp, "_CHUNK_ELEMENTS", 7)  # many small chunks: same result
    np.testing.assert_allclose(pp.Standardizer().fit_transform(X), ref, rtol=1e-6, atol=1e-6)
    big = 1e8 + np.random.default_rng(4).normal(size=(1000, 3)) * 1e-2
    sc = pp.Standardizer().fit(big.astype(np.float64))
    np.testing.assert_allclose(sc.std_, big.std(axis=0), rtol=1e-6)


def test_standardizer_errors():
    X = _data(0)
    with pytest.raises(ValueError, match="not fitted"):
        pp.Standardizer().transform(X)
    sc = pp.Standardizer().fit(X)
    with pytest.raises(ValueError, match="feature shape"):
        sc.transform(X[:, :3])
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN \(first at index \(4, 1\)\)"):
        pp.standardize(bad)
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        sc.transform(bad)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        pp.standardize(np.arange(5.0))
    with pytest.raises(ValueError, match="at least one sample"):
        pp.standardize(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="numeric"):
        pp.standardize(np.array([["a", "b"]]))


def test_scale_to_unit():
    X = np.array([[0, 51, 255], [1, 2, 3]], dtype=np.uint8)
    Z = pp.scale_to_unit(X)
    assert Z.dtype == np.float32 and Z.flags.c_contiguous and Z.shape == X.shape
    assert Z[0, 0] == 0 and Z[0, 2] == 1 and Z[0, 1] == np.float32(0.2)
    np.testing.assert_array_equal(Z, (X / 255.0).astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        pp.scale_to_unit(X.astype(np.float32))


def test_one_hot():
    y = np.array([2, 0, 1, 2])
    Y = pp.one_hot(y)
    assert Y.shape == (4, 3) and Y.dtype == np.float32 and Y.flags.c_contiguous
    np.testing.assert_array_equal(Y.argmax(axis=1), y)
    np.testing.assert_array_equal(Y.sum(axis=1), 1)
    assert pp.one_hot(y, n_classes=10, dtype=np.float64).shape == (4, 10)
    assert pp.one_hot([1.0, 0.0]).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"0\.\.1, found 0\.\.2"):
        pp.one_hot(y, n_classes=2)
    with pytest.raises(ValueError, match="integer"):
        pp.one_hot([0.5, 1.0])
    with pytest.raises(ValueError, match="1-D"):
        pp.one_hot(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="0..9"):
        pp.one_hot([-1, 3], n_classes=10)


def test_train_val_split_stratified_and_seeded():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    X = np.arange(1000 * 2).reshape(1000, 2)
    Xtr, ytr, Xva, yva = pp.train_val_split(X, y, val_size=0.1, seed=0)
    assert np.bincount(yva).tolist() == [50, 30, 20]
    assert np.bincount(ytr).tolist() == [450, 270, 180]
    ids = np.concatenate([Xtr[:, 0], Xva[:, 0]]) // 2
    assert sorted(ids.tolist()) == list(range(1000))  # disjoint, covers everything
    np.testing.assert_array_equal(y[Xva[:, 0] // 2], yva)  # rows stay aligned with labels
    again = pp.train_val_split(X, y, val_size=0.1, seed=0)
    np.testing.assert_array_equal(again[2], Xva)
    other = pp.train_val_split(X, y, val_size=0.1, seed=1)
    assert not np.array_equal(other[2], Xva)
    gen = pp.train_val_split(X, y, val_size=0.1, seed=np.random.default_rng(0))
    np.testing.assert_array_equal(gen[2], Xva)


def test_train_val_split_counts_and_errors():
    y = np.repeat(["a", "b", "c"], [7, 7, 7])
    X = np.zeros((21, 3, 3), np.uint8)
    Xtr, ytr, Xva, yva = pp.train_val_split(X, y, val_size=4)
    assert len(yva) == 4 and len(ytr) == 17 and Xva.shape == (4, 3, 3)
    assert max(np.unique(yva, return_counts=True)[1]) == 2
    _, _, _, yva = pp.train_val_split(X, y, val_size=0.5, stratify=False, seed=3)
    assert len(yva) == 10
    for bad in (0, 21, 0.0, 1.0, -0.2, True, "0.1"):
        with pytest.raises(ValueError, match="val_size"):
            pp.train_val_split(X, y, val_size=bad)
    with pytest.raises(ValueError, match="21 samples but y has 20"):
        pp.train_val_split(X, y[:-1])


def test_flatten_images():
    X = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    F = pp.flatten_images(X)
    assert F.shape == (2, 12) and np.shares_memory(F, X)
    T = X.transpose(0, 2, 1)
    G = pp.flatten_images(T)
    assert G.flags.c_contiguous and not np.shares_memory(G, X)
    np.testing.assert_array_equal(G, T.reshape(2, 12))
    assert pp.flatten_images(np.zeros((0, 28, 28))).shape == (0, 784)
    assert pp.flatten_images(np.arange(3)).shape == (3, 1)
    with pytest.raises(ValueError):
        pp.flatten_images(np.float32(1.0))
