"""Input checks run before any work starts; each error names the problem. Inputs that
are valid but look unscaled get a warning (InputScaleWarning)."""
import math
import numbers

import numpy as np


class InputScaleWarning(UserWarning):
    """fit's inputs look unscaled (raw integer pixels, features with a large spread):
    such data often trains at chance or diverges. Standardise it first."""


# rows of X that the scale check looks at (evenly spaced): the check costs a few ms
# whatever the size of X
SCALE_SAMPLE_ROWS = 1000
# a feature whose standard deviation is above this looks unscaled
STD_LIMIT = 50.0
_HINT = ("standardise it first, e.g. X, X_test = fastmlp.preprocess.standardize(X, X_test) "
         "(training mean and std applied to both)")


def scale_warning(X, raw_dtype):
    """The text of a one-line warning when X looks unscaled, else None.

    X (n, n_features): the checked float array; raw_dtype: the dtype the caller
    passed (before conversion; None: X's). Warns for integer inputs (uint8 pixels, ...) spanning
    more than 1, and for any feature with a standard deviation above STD_LIMIT.
    Looks at most ~2 * SCALE_SAMPLE_ROWS evenly spaced rows, so big X costs little.
    """
    sample = X[::max(1, X.shape[0] // SCALE_SAMPLE_ROWS)]
    raw_dtype = np.dtype(X.dtype if raw_dtype is None else raw_dtype)
    if raw_dtype.kind in "iu":
        lo, hi = float(sample.min()), float(sample.max())
        if hi - lo > 1:
            return (f"X holds {raw_dtype} values from {lo:g} to {hi:g}: unscaled inputs (raw "
                    f"pixels) often train at chance; {_HINT}")
    std = sample.std(axis=0, dtype=np.float64)
    big = std > STD_LIMIT
    if big.any():
        j = int(np.argmax(std))
        return (f"{int(big.sum())} feature(s) of X have a standard deviation above {STD_LIMIT:g} "
                f"(feature {j}: {std[j]:.3g}): unscaled inputs often train badly or diverge; "
                f"{_HINT}")
    return None


def _count_nonfinite(X):
    """(number of NaN/inf entries of a 2-D float array, first row holding one or -1).
    Plain numpy over blocks of rows, so the temporary mask stays near 4 MB (and the
    first fit compiles one function less)."""
    step = max(1, (1 << 22) // max(X.shape[1], 1))
    count, first = 0, -1
    for i in range(0, X.shape[0], step):
        bad = ~np.isfinite(X[i: i + step])
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            if first < 0:
                first = i + int(np.argmax(bad.any(axis=1)))
            count += n_bad
    return count, first


def check_int(value, name, minimum):
    """value as int; ValueError unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


FLOAT32_MAX = float(np.finfo(np.float32).max)
SEED_LIMIT = 2 ** 63   # seeds travel to the kernels as int64
MAX_WIDTH = 2 ** 31 - 1  # layer widths and feature counts (the plan's int64 offsets)


def check_count(value, name, minimum):
    """value as int from an integer or an integral float (10.0), >= minimum; ValueError
    otherwise (also for inf and NaN, which int() would turn into OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        ok = value >= minimum
    else:
        ok = math.isfinite(value) and value == int(value) and value >= minimum
    if not ok:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(value, name, minimum=None, maximum=FLOAT32_MAX, above=False):
    """value as float: a real number, finite, >= minimum (> minimum when `above`) and
    <= maximum (by default the largest float32, so that it cannot overflow in the
    kernels); ValueError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:   # an int beyond float64
        value = math.inf
    low_ok = minimum is None or (value > minimum if above else value >= minimum)
    if not (np.isfinite(value) and low_ok and value <= maximum and value >= -FLOAT32_MAX):
        bound = "" if minimum is None else f" {'>' if above else '>='} {minimum}"
        raise ValueError(f"{name} must be a finite number{bound} and <= {maximum:.4g}, "
                         f"got {value!r}")
    return value


def check_seed(seed, name="seed"):
    """None or an integer in [0, 2**63); ValueError naming `name` otherwise."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not (
            0 <= seed < SEED_LIMIT):
        raise ValueError(f"{name} must be None or an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def check_flag(value, name):
    """value as bool from a bool or the integers 0 / 1; ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                               and value in (0, 1)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def check_array_values(w, name, dtype):
    """A numeric array whose values fit `dtype` (finite, and within float32's range when
    dtype is float32); ValueError naming `name` otherwise."""
    if w.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {w.dtype}")
    if w.dtype.kind == "f":
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name} has NaN or inf")
        limit = float(np.finfo(dtype).max)
        if w.size and float(np.max(np.abs(w))) > limit:
            raise ValueError(f"{name} has values beyond the range of {np.dtype(dtype).name} "
                             f"(|x| > {limit:.4g})")
    elif w.size and np.dtype(dtype) == np.float32 and float(np.max(np.abs(
            w.astype(np.float64)))) > FLOAT32_MAX:
        raise ValueError(f"{name} has values beyond the range of float32")


def check_features(X, dtype, n_features=None, name="X"):
    """X as a C-contiguous (n_samples, n_features) array of `dtype`, checked.

    Raises ValueError for a non-numeric X, a shape other than 2-D, a feature
    count different from the model's, NaN or inf entries (with how many and
    the first row), or no rows.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}; "
                         "flatten images first, e.g. X.reshape(len(X), -1)")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the model was built for {n_features}")
    X = np.ascontiguousarray(X, dtype=dtype)
    count, first = _count_nonfinite(X)
    if count:
        raise ValueError(f"{name} contains {count} NaN or inf value(s); the first is in row {first}")
    return X


def check_labels(y, n_samples, n_classes, name="y"):
    """Integer class labels (n_samples,) int64 from integer labels or one-hot rows.

    A (n_samples, 1) column is read as class ids (Keras's sparse labels as a column).
    Raises ValueError for a length different from X's, non-integer labels,
    labels outside [0, n_classes) (naming the first offending one), or
    one-hot rows that are not exactly one 1 and zeros.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]   # a column of class ids (for one class, the same as one-hot)
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ValueError(f"{name} has {0 if y.ndim == 0 else y.shape[0]} labels but X has "
                         f"{n_samples} rows")
    if y.ndim == 2:
        if y.shape[1] != n_classes:
            raise ValueError(f"one-hot {name} has {y.shape[1]} columns but the model outputs "
                             f"{n_classes} classes")
        ok = np.all((y == 0) | (y == 1), axis=1) & (y.sum(axis=1) == 1)
        if not ok.all():
            raise ValueError(f"{name} is 2-D but row {int(np.argmin(ok))} is not one-hot")
        return np.ascontiguousarray(y.argmax(axis=1), dtype=np.int64)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D integer labels or 2-D one-hot, got shape {y.shape}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class labels; found non-integer values")
    labels = y.astype(np.int64)
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} has labels outside [0, {n_classes}): {name}[{i}] = {labels[i]} "
                         f"({int(bad.sum())} such labels)")
    return np.ascontiguousarray(labels)


def check_values(y, n_samples, n_outputs, dtype, name="y"):
    """Float targets (n_samples, n_outputs) for regression / binary cross-entropy.
    A 1-D y is accepted for one output. ValueError on shape, NaN or inf."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {y.dtype}")
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape != (n_samples, n_outputs):
        raise ValueError(f"{name} must have shape ({n_samples}, {n_outputs}) for this model's "
                         f"{n_outputs} output(s), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(y, dtype=dtype)


def check_signs(y, n_samples, dtype, name="y"):
    """Labels in {-1, +1} (hinge / perceptron losses) as a (n_samples, 1) float array."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(f"{name} must be {n_samples} labels in {{-1, +1}}, got shape {y.shape}")
    bad = ~np.isin(y, (-1, 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"hinge/perceptron losses need labels in {{-1, +1}}: {name}[{i}] = {y[i]!r}")
    return np.ascontiguousarray(y.reshape(-1, 1), dtype=dtype)
