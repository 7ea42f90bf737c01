"""Augmentation kernels: statistics, geometry, reproducibility, and fit(augment=...)."""
import numpy as np
import pytest
from _helpers import python_callable

import fastmlp as fm
from fastmlp.kernels import augment as _k

augment_batch, augment_rows = python_callable(_k.augment_batch), python_callable(_k.augment_rows)


def _run(X, aug, seed=0, step=1):
    out = np.ascontiguousarray(X, dtype=np.float64).copy()
    augment_rows(out, np.zeros(X.shape[1]), aug.hyper(X), seed, step, 0)
    return out


def test_gaussian_noise_statistics():
    X = np.zeros((200, 500))
    noise = _run(X, fm.Augment(noise_std=0.3)) - X
    assert abs(noise.mean()) < 0.005
    assert noise.std() == pytest.approx(0.3, rel=0.01)


def test_salt_and_pepper_rate_and_values():
    X = np.full((100, 1000), 0.5)
    X[0, 0], X[0, 1] = -2.0, 3.0  # data range: pepper -2, salt 3
    out = _run(X, fm.Augment(salt_pepper=0.1))
    changed = out != X
    assert changed.mean() == pytest.approx(0.1, abs=0.005)
    assert set(np.unique(out[changed])) <= {-2.0, 3.0}
    assert (out[changed] == -2.0).mean() == pytest.approx(0.5, abs=0.03)


def _shifted(img, dy, dx):
    """Plain numpy: output[i, j] = img[clip(i - dy), clip(j - dx)] (edge replication)."""
    H, W = img.shape
    i = np.clip(np.arange(H) - dy, 0, H - 1)
    j = np.clip(np.arange(W) - dx, 0, W - 1)
    return img[np.ix_(i, j)]


def test_shift_is_an_integer_translation_within_range():
    rng = np.random.default_rng(0)
    X = rng.random((30, 8 * 9))
    out = _run(X, fm.Augment(shift=2, image_shape=(8, 9)))
    seen = set()
    for x, o in zip(X, out):
        img = x.reshape(8, 9)
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(_shifted(img, dy, dx), o.reshape(8, 9))]
        assert matches, "not a translation of at most 2 pixels"
        seen.add(matches[0])
    assert len(seen) > 5  # the shifts vary between rows


def test_flip_mirrors_half_the_rows_per_channel():
    rng = np.random.default_rng(1)
    X = rng.random((200, 3 * 4 * 5))
    out = _run(X, fm.Augment(flip=True, image_shape=(3, 4, 5)))
    imgs, outs = X.reshape(-1, 3, 4, 5), out.reshape(-1, 3, 4, 5)
    same = np.all(imgs == outs, axis=(1, 2, 3))
    mirrored = np.all(imgs[..., ::-1] == outs, axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert mirrored.mean() == pytest.approx(0.5, abs=0.1)


def test_rotation_keeps_the_centre_and_range():
    rng = np.random.default_rng(2)
    X = rng.random((50, 11 * 11))
    out = _run(X, fm.Augment(rotate=20, image_shape=(11, 11)))
    assert np.array_equal(X.reshape(-1, 11, 11)[:, 5, 5], out.reshape(-1, 11, 11)[:, 5, 5])
    assert out.min() >= X.min() and out.max() <= X.max()  # nearest-neighbour resampling
    assert not np.array_equal(X, out)


def test_draws_depend_on_seed_and_step_not_on_chunking():
    rng = np.random.default_rng(3)
    X = rng.random((12, 64)).astype(np.float32)
    aug = fm.Augment(noise_std=0.1, salt_pepper=0.05, shift=1, rotate=10, flip=True, image_shape=(8, 8))
    h = aug.hyper(X)
    results = []
    for n_chunks, ld in ((1, 64), (2, 64), (3, 64), (2, 80)):
        # ld = 80: the batch buffer's rows padded (plan.input_stride); the pad is untouched
        ws = np.full((12, ld), -3.0, np.float32)
        ws[:, :64] = X
        augment_batch(ws.ravel(), 0, 12, 64, ld, np.zeros(12 * ld, np.float32), n_chunks, h, 7, 4)
        assert (ws[:, 64:] == -3.0).all()
        results.append(ws[:, :64])
    assert all(np.array_equal(results[0], r) for r in results[1:])
    assert np.array_equal(_run(X, aug, 7, 4), _run(X, aug, 7, 4))
    assert not np.array_equal(_run(X, aug, 7, 4), _run(X, aug, 7, 5))
    assert not np.array_equal(_run(X, aug, 7, 4), _run(X, aug, 8, 4))


def test_fit_with_augment_is_reproducible_and_changes_training():
    rng = np.random.default_rng(4)
    X = rng.random((64, 36)).astype(np.float32)
    y = rng.integers(0, 3, 64)

    def train(augment):
        m = fm.Sequential([fm.Dense(8), fm.ReLU(), fm.Dense(3), fm.Softmax()], seed=0)
        m.fit(X, y, epochs=2, batch_size=16, verbose=0, augment=augment, seed=1)
        return m.get_weights()

    aug = fm.Augment(noise_std=0.05, shift=1, image_shape=(6, 6))
    a, b, plain = train(aug), train(aug), train(None)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, plain))


def test_bad_augment_configurations():
    with pytest.raises(ValueError, match="need image_shape"):
        fm.Augment(shift=2)
    with pytest.raises(ValueError, match="salt_pepper must be in"):
        fm.Augment(salt_pepper=1.5)
    with pytest.raises(ValueError, match="noise_std"):
        fm.Augment(noise_std=-1)
    with pytest.raises(ValueError, match="has 784 values but X rows have 10"):
        fm.Augment(rotate=5, image_shape=(28, 28)).hyper(np.zeros((2, 10)))
    m = fm.Sequential([fm.Dense(2), fm.Softmax()])
    with pytest.raises(ValueError, match="augment must be a fastmlp.Augment"):
        m.fit(np.zeros((4, 3)), [0, 1, 0, 1], augment={"noise_std": 0.1}, verbose=0)
