"""Preprocessing helpers: standardization, scaling, one-hot labels, splits, flattening.

Outputs meant for training are ``float32`` and C-contiguous; statistics are accumulated
in ``float64``.  Arrays are only copied when a dtype or layout change requires it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["Standardizer", "standardize", "scale_to_unit", "one_hot", "train_val_split",
           "flatten_images"]

_CHUNK_ELEMENTS = 1 << 21  # rows are processed in chunks of about this many values


def _as_numeric(X, name="X", min_ndim=2):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim < min_ndim:
        raise ValueError(f"{name} must have shape (n_samples, n_features...) with at least "
                         f"{min_ndim} dimensions, got shape {X.shape}")
    return X


def _row_chunks(X):
    n = len(X)
    step = max(1, _CHUNK_ELEMENTS // max(1, X[0].size if n else 1))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _check_finite(X, name="X"):
    if X.dtype.kind != "f":
        return
    for a, b in _row_chunks(X):  # chunked: no full-size boolean temporary
        finite = np.isfinite(X[a:b])
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            bad[0] += a
            kind = "NaN" if np.isnan(X[tuple(bad)]) else "infinity"
            raise ValueError(f"{name} contains {kind} (first at index {tuple(int(i) for i in bad)})")


class Standardizer:
    """Per-feature standardization ``(X - mean) / std`` with statistics from training data.

    ``fit(X)`` takes ``X`` of shape ``(n, ...)`` (any numeric dtype, e.g. ``uint8`` images)
    and stores ``mean_``, ``std_`` (population std, ``ddof=0``) and ``scale_`` as
    ``float64`` arrays of shape ``X.shape[1:]``.  ``scale_`` equals ``std_`` except for
    (near-)constant features with ``std_ <= eps``, where it is 1, so they map to 0 instead
    of NaN.  ``transform`` returns ``dtype`` (default ``float32``) C-contiguous arrays.
    Follows the scikit-learn ``fit`` / ``transform`` / ``fit_transform`` convention.
    """

    def __init__(self, eps=1e-8, dtype=np.float32):
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.eps = float(eps)
        self.dtype = np.dtype(dtype)
        self.mean_ = self.std_ = self.scale_ = None

    def fit(self, X):
        """Compute ``mean_``, ``std_``, ``scale_`` from ``X`` of shape ``(n, ...)``, ``n >= 1``."""
        X = _as_numeric(X)
        if len(X) == 0:
            raise ValueError("X must contain at least one sample")
        _check_finite(X)
        total = np.zeros(X.shape[1:], dtype=np.float64)
        for a, b in _row_chunks(X):
            total += X[a:b].sum(axis=0, dtype=np.float64)
        mean = total / len(X)
        sq = np.zeros_like(mean)
        for a, b in _row_chunks(X):  # second pass: sum of squared deviations (stable)
            d = X[a:b] - mean
            sq += np.einsum("i...,i...->...", d, d)
        std = np.sqrt(sq / len(X))
        self.mean_, self.std_ = mean, std
        self.scale_ = np.where(std > self.eps, std, 1.0)
        return self

    def _check_fitted(self, X, name):
        if self.mean_ is None:
            raise ValueError("this Standardizer is not fitted yet: call fit(X_train) first")
        X = _as_numeric(X, name)
        if X.shape[1:] != self.mean_.shape:
            raise ValueError(f"{name} has feature shape {X.shape[1:]}, but the Standardizer "
                             f"was fitted on {self.mean_.shape}")
        _check_finite(X, name)
        return X

    def transform(self, X):
        """Return ``(X - mean_) / scale_`` as a C-contiguous ``dtype`` array of ``X.shape``."""
        X = self._check_fitted(X, "X")
        out = np.empty(X.shape, dtype=self.dtype)
        for a, b in _row_chunks(X):
            out[a:b] = (X[a:b] - self.mean_) / self.scale_
        return out

    def fit_transform(self, X):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z):
        """Map standardized data back: ``Z * scale_ + mean_`` (``float64``, shape of ``Z``)."""
        Z = self._check_fitted(Z, "Z")
        return Z * self.scale_ + self.mean_

    def __repr__(self):
        state = "unfitted" if self.mean_ is None else f"fitted on feature shape {self.mean_.shape}"
        return f"Standardizer(eps={self.eps}, dtype={self.dtype.name}) [{state}]"


def standardize(X_train, *others, eps=1e-8, return_scaler=False):
    """Standardize ``X_train`` and ``others`` with per-feature statistics of ``X_train`` only.

    Each array has shape ``(n_i, ...)`` with the same feature shape; the results are
    ``float32`` C-contiguous arrays of the same shapes.  Returns the single array when
    only ``X_train`` is given, else a tuple ``(X_train_std, *others_std)``.  With
    ``return_scaler=True`` the fitted :class:`Standardizer` (``mean_``, ``std_``,
    ``scale_``) is appended: ``Xtr, Xte, sc = standardize(Xtr, Xte, return_scaler=True)``.
    Constant features (std <= eps) are only centered, never divided by 0.
    """
    scaler = Standardizer(eps=eps)
    result = [scaler.fit_transform(X_train)] + [scaler.transform(X) for X in others]
    if return_scaler:
        return (*result, scaler)
    return result[0] if len(result) == 1 else tuple(result)


def scale_to_unit(X):
    """Map ``uint8`` values 0..255 to ``float32`` in [0, 1] (``X / 255``), same shape, C-contiguous."""
    X = np.asarray(X)
    if X.dtype != np.uint8:
        raise ValueError(f"scale_to_unit expects uint8 data (0..255), got dtype {X.dtype}")
    out = np.empty(X.shape, dtype=np.float32)
    np.divide(X, np.float32(255), out=out, dtype=np.float32)
    return out


def one_hot(y, n_classes=None, dtype=np.float32):
    """One-hot encode integer labels ``y`` of shape ``(n,)`` into ``(n, n_classes)``.

    ``n_classes`` defaults to ``y.max() + 1``.  Labels must be integers in
    ``0..n_classes-1``.  Returns a C-contiguous array of ``dtype`` (default ``float32``).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D of shape (n,), got shape {y.shape}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        elif y.size:
            raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
        else:
            y = y.astype(np.int64)
    if n_classes is None:
        if y.size == 0:
            raise ValueError("n_classes is required when y is empty")
        n_classes = int(y.max()) + 1
    n_classes = int(n_classes)
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, found {int(y.min())}..{int(y.max())}")
    out = np.zeros((len(y), n_classes), dtype=dtype)
    out[np.arange(len(y)), y] = 1
    return out


def _n_val(val_size, n):
    if isinstance(val_size, (bool, np.bool_)):
        raise ValueError(f"val_size must be a fraction in (0, 1) or a count, got {val_size!r}")
    if isinstance(val_size, (int, np.integer)):
        k = int(val_size)
    elif isinstance(val_size, (float, np.floating)) and 0.0 < val_size < 1.0:
        k = int(round(float(val_size) * n))
    else:
        raise ValueError(f"val_size must be a fraction in (0, 1) or a count, got {val_size!r}")
    if not 1 <= k <= n - 1:
        raise ValueError(f"val_size={val_size!r} gives {k} validation samples out of {n}; "
                         "need at least 1 and leave at least 1 for training")
    return k


def train_val_split(X, y, val_size=0.1, stratify=True, seed=0):
    """Split ``(X, y)`` into ``(X_tr, y_tr, X_val, y_val)``.

    ``X`` has shape ``(n, ...)`` and ``y`` shape ``(n,)`` (any dtypes, kept).  ``val_size``
    is a fraction in (0, 1) (rounded to a count) or an ``int`` count.  With
    ``stratify=True`` every class keeps its proportion in both parts (per-class counts
    allotted by largest remainder, so the total is exact).  ``seed`` (int or
    ``np.random.Generator``) makes the split reproducible.  Both parts keep the original
    order of the samples (shuffle for training as usual); the results are copies.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 1 or y.ndim != 1:
        raise ValueError(f"expected X of shape (n, ...) and y of shape (n,), got {X.shape} and {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    n = len(y)
    k = _n_val(val_size, n)
    rng = np.random.default_rng(seed)
    if not stratify:
        val_idx = rng.permutation(n)[:k]
    else:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        quota = counts * (k / n)
        take = np.floor(quota).astype(np.int64)
        short = k - int(take.sum())
        if short:  # largest remainders first; ties broken at random (seeded)
            order = np.lexsort((rng.random(len(classes)), -(quota - take)))
            take[order[:short]] += 1
        members = np.argsort(inverse, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        val_idx = np.concatenate([rng.permutation(members[s:s + c])[:t]
                                  for s, c, t in zip(starts, counts, take)])
    mask = np.zeros(n, dtype=bool)
    mask[val_idx] = True
    return X[~mask], y[~mask], X[mask], y[mask]


def flatten_images(X):
    """Reshape ``(n, ...)`` to ``(n, prod(...))`` (``(n,)`` gives ``(n, 1)``), same dtype.

    Returns a view (no copy) when ``X`` is C-contiguous, else a C-contiguous copy.
    """
    X = np.asarray(X)
    if X.ndim < 1:
        raise ValueError("X must have shape (n, ...), got a 0-d array")
    return np.ascontiguousarray(X.reshape(len(X), int(np.prod(X.shape[1:], dtype=np.int64))))
