"""Property-based fuzzing of the public API with hypothesis.

Every generated call must end in a finite result or a ValueError / TypeError, never any
other exception, and must leave its input arrays unchanged. A fit may also end in
DivergenceError (checked by `_check_after_divergence`). The examples are derandomized
(a fixed seed) and bounded; fits use two fixed architectures with non-SGD optimizers,
so the whole file hits the same few compiled kernels.

FASTMLP_FUZZ_REPORT=<file> records every case's verdict in that file (one line each)
instead of failing at the first bad one, to count passes and failures.
"""
import json
import math
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastmlp as fm  # noqa: E402
from fastmlp.training import DivergenceError  # noqa: E402

REPORT = os.environ.get("FASTMLP_FUZZ_REPORT")
N_FEATURES, N_CLASSES = 6, 3


def fuzz(max_examples):
    return settings(max_examples=max_examples, derandomize=True, deadline=None,
                    database=None, print_blob=False,
                    suppress_health_check=list(HealthCheck))


# ------------------------------------------------------------------ verdicts
def _verdict(test, problem, outcome=""):
    """Fail with `problem` (None: the case passed), or record it under FASTMLP_FUZZ_REPORT
    with the call's outcome (ok, rejected, diverged, other)."""
    if REPORT:
        with open(REPORT, "a") as f:
            verdict = "ok" if problem is None else "FAIL " + problem[:300].replace("\n", " ")
            f.write(f"{test}\t{outcome}\t{verdict}\n")
    elif problem is not None:
        raise AssertionError(problem)


def _call(fn):
    """('ok', result), ('rejected', exc), ('diverged', exc) or ('other', exc)."""
    try:
        return "ok", fn()
    except (ValueError, TypeError) as exc:
        return "rejected", exc
    except DivergenceError as exc:
        return "diverged", exc
    except Exception as exc:   # noqa: BLE001 - the property under test
        return "other", exc


def _finite(value):
    """True when every number in value (array, list, dict, float) is finite."""
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.all(np.isfinite(value)))
    if isinstance(value, (float, np.floating)):
        return math.isfinite(value)
    return True


def _problem(kind, result, allow_divergence=False):
    if kind == "other":
        return f"{type(result).__name__}: {result}"
    if kind == "diverged" and not allow_divergence:
        return f"DivergenceError outside fit: {result}"
    if kind == "ok" and not _finite(result):
        return f"non-finite result {result!r}"[:300]
    return None


def _check_after_divergence(model):
    """What a DivergenceError must leave behind: a finite model (params, BN statistics,
    optimizer state) that still predicts finite outputs. None when it does."""
    problem = _finite_state(model)
    if problem is None:
        outputs = model.predict(np.zeros((2, model.n_features), np.float32))
        if not _finite(outputs):
            problem = "a diverged model predicts NaN or inf"
    return problem and f"after DivergenceError: {problem}"


def _copy(a):
    return (a.copy(), a.dtype, a.shape, a.flags.writeable) if isinstance(a, np.ndarray) else a


def _unchanged(before, after):
    if isinstance(after, np.ndarray):
        a, dtype, shape, writeable = before
        same = (after.dtype == dtype and after.shape == shape
                and after.flags.writeable == writeable
                and np.array_equal(a, after, equal_nan=a.dtype.kind in "fc"))
        return None if same else "an input array was changed"
    return None


def _model_state(model):
    keys = ("params", "bn_run", "opt_state", "opt_scalars")
    return [getattr(model, k).copy() for k in keys if getattr(model, k, None) is not None]


# ------------------------------------------------------------------ strategies
INF, NAN = float("inf"), float("nan")
hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 0.5, 1e-45, 1e38, 3.5e38, 1e300, 2 ** 63, 2 ** 64, -2 ** 63,
                     True, np.float32(0.1), np.int64(3), np.uint64(4)]),
    st.integers(-10, 10), st.none(), st.just("0.1"), st.just([1]))


def mostly(good, bad, one_in=8):
    """`good`, and `bad` about once in `one_in` draws (a middle value picks `bad`:
    hypothesis favours the ends of a range)."""
    return st.sampled_from(range(one_in)).flatmap(
        lambda i: bad if i == one_in // 2 else good)


counts = mostly(st.integers(1, 8), st.sampled_from([0, -1, 2.0, 2.5, INF, NAN, "3", None,
                                                    np.uint8(3), 2 ** 70]))
small_rates = mostly(st.floats(0, 0.99), hostile_numbers)
positive = mostly(st.floats(1e-6, 10.0), hostile_numbers)


def _dense(draw, units):
    init = draw(mostly(st.sampled_from(["he_normal", "glorot_uniform"]),
                       st.sampled_from(["normal", "uniform", "bad", None])))
    kwargs = {}
    for name, good in (("sigma", st.floats(1e-3, 1.0)), ("limit", st.floats(1e-3, 1.0))):
        if init in ("normal", "uniform") or draw(st.integers(0, 7)) == 0:
            kwargs[name] = draw(mostly(good, hostile_numbers))
    return fm.Dense(units, init=init,
                    activation=draw(mostly(st.sampled_from([None, "relu", "tanh"]),
                                           st.sampled_from(["swish", 3]))),
                    bias=draw(mostly(st.just(0.0), hostile_numbers)),
                    l2=draw(mostly(st.none(), hostile_numbers)), **kwargs)


def _layer(draw):
    return draw(st.sampled_from(["dense"] * 3 + ["bn", "relu", "sigmoid", "tanh", "linear",
                                                 "leaky", "dropout", "softmax"]).map(
        lambda kind: {
            "dense": lambda: _dense(draw, draw(counts)),
            "bn": lambda: fm.BatchNorm(momentum=draw(small_rates),
                                       eps=draw(mostly(st.just(1e-5), hostile_numbers))),
            "relu": fm.ReLU, "sigmoid": fm.Sigmoid, "tanh": fm.Tanh, "linear": fm.Linear,
            "leaky": lambda: fm.LeakyReLU(draw(mostly(st.just(0.01), hostile_numbers))),
            "dropout": lambda: fm.Dropout(draw(small_rates)), "softmax": fm.Softmax}[kind]))()


HEADS = {None: [fm.Dense(3), fm.Softmax()], "mse": [fm.Dense(2)],
         "hinge": [fm.Dense(1)], "svm": [fm.Dense(4)]}


@st.composite
def stacks(draw, loss):
    """Plausible hidden blocks (Dense, BN before or after the activation, dropout,
    residual blocks) with the head `loss` needs; sometimes a layer out of place."""
    layers = [] if draw(st.booleans()) else [fm.BatchNorm()]   # BN on the input
    for _ in range(draw(st.integers(0, 3))):
        block = [_dense(draw, draw(counts))]
        act = draw(st.sampled_from([fm.ReLU, fm.Tanh, fm.Sigmoid, fm.Linear, fm.LeakyReLU]))()
        block += [fm.BatchNorm(), act] if draw(st.booleans()) else [act]
        if draw(st.integers(0, 3)) == 1:
            block = block[::-1]
        if draw(st.integers(0, 3)) == 1:
            block.append(fm.Dropout(draw(small_rates)))
        if draw(st.integers(0, 4)) == 2:
            width = draw(st.integers(1, 6))
            block += [fm.Dense(width), fm.Residual([fm.Dense(width), fm.ReLU()])]
        layers += block
    layers += HEADS.get(loss, [fm.Dense(3), fm.Softmax()])
    if draw(st.integers(0, 5)) == 3:   # one layer moved somewhere else
        layer = layers.pop(draw(st.integers(0, len(layers) - 1)))
        layers.insert(draw(st.integers(0, len(layers))), layer)
    return layers


@st.composite
def layer_lists(draw):
    """Layer lists in any order, from constructors that may refuse."""
    layers = []
    for _ in range(draw(st.integers(0, 6))):
        kind, value = _call(lambda: _layer(draw))
        if kind == "other":
            raise AssertionError(f"layer constructor raised {type(value).__name__}: {value}")
        if kind == "ok":
            layers.append(value)
    if draw(st.booleans()):
        # a plausible stack: Dense/BN/ReLU blocks and a Softmax head, sometimes shuffled
        layers = [fm.Dense(draw(st.integers(1, 8))), fm.BatchNorm(), fm.ReLU(), fm.Dense(3),
                  fm.Softmax()] + layers[:1]
        if draw(st.integers(0, 3)) == 0:
            layers = draw(st.permutations(layers))
    if draw(st.integers(0, 3)) == 0:
        inner = [fm.Dense(draw(st.integers(1, 8))), fm.ReLU()]
        layers.insert(draw(st.integers(0, len(layers))), fm.Residual(inner))
    return layers


@st.composite
def feature_arrays(draw, n_features=N_FEATURES, max_rows=40):
    """X: right or wrong shapes, many dtypes, NaN/inf/huge entries, non-contiguous and
    read-only views."""
    n = draw(mostly(st.integers(1, max_rows), st.just(0)))
    d = draw(mostly(st.just(n_features), st.sampled_from([0, 1, n_features + 1])))
    dtype = draw(mostly(st.sampled_from(["float32", "float32", "float64", "int8", "uint8",
                                         "int64", "bool", "float16"]),
                        st.sampled_from(["complex64", "object", "U3"]), 6))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    X = rng.standard_normal((n, 2 * d)) * draw(st.sampled_from([1.0, 1.0, 1e-30, 1e3, 1e20]))
    if n and d and draw(st.integers(0, 3)) == 0:
        special = draw(st.sampled_from([NAN, INF, -INF, 3.4e38, 1e39, -1e300, 0.0]))
        X[draw(st.integers(0, n - 1)), draw(st.integers(0, 2 * d - 1))] = special
    layout = draw(st.sampled_from(["c", "c", "c", "strided", "fortran", "list", "3d"]))
    with np.errstate(all="ignore"):
        X = X.astype(dtype) if dtype not in ("U3", "object") else X.astype(dtype)
    if layout == "strided":
        X = X[:, ::2]
    else:
        X = X[:, :d]
        if layout == "fortran":
            X = np.asfortranarray(X)
        elif layout == "3d":
            X = X.reshape(n, d, 1)
        elif layout == "list":
            return X.tolist()
    if draw(st.booleans()):
        X.flags.writeable = False
    return X


@st.composite
def label_arrays(draw, n):
    """y for N_CLASSES classes: in or out of range, wrong lengths, floats, one-hot."""
    kind = draw(mostly(st.sampled_from(["good", "good", "float", "onehot"]),
                       st.sampled_from(["range", "nonint", "length", "badonehot", "2d", "str",
                                        "nan"]), 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    y = rng.integers(0, N_CLASSES, n)
    if kind == "range" and n:
        y[draw(st.integers(0, n - 1))] = draw(st.sampled_from([-1, N_CLASSES, 2 ** 40]))
    elif kind == "float":
        y = y.astype(np.float64)
    elif kind == "nonint" and n:
        y = y + 0.5
    elif kind == "length":
        y = y[: max(n - 1, 0)] if n and draw(st.booleans()) else np.append(y, 0)
    elif kind == "onehot":
        y = np.eye(N_CLASSES)[y]
    elif kind == "badonehot":
        y = np.eye(N_CLASSES)[y] * 2
    elif kind == "2d":
        y = y.reshape(-1, 1)
    elif kind == "str":
        y = y.astype(str)
    elif kind == "nan":
        y = np.full(n, NAN)
    if draw(st.booleans()) and isinstance(y, np.ndarray):
        y.flags.writeable = False
    return y


def _architecture(kind, seed):
    # two fixed architectures (BN + dropout, and a plain one): few compiled kernels
    if kind == "bn":
        layers = [fm.Dense(8), fm.BatchNorm(), fm.ReLU(), fm.Dropout(0.2), fm.Dense(N_CLASSES),
                  fm.Softmax()]
    else:
        layers = [fm.Dense(8, activation="tanh"), fm.Dense(N_CLASSES), fm.Softmax()]
    return fm.Sequential(layers, seed=seed)


# learning rates from tiny to absurd: large ones diverge (DivergenceError is allowed)
lrs = mostly(st.floats(1e-6, 1.0), st.one_of(hostile_numbers, st.sampled_from([1e3, 1e10,
                                                                               1e30])), 4)
optimizers = st.one_of(
    st.builds(fm.Adam, lr=lrs, b1=small_rates, b2=small_rates,
              eps=mostly(st.just(1e-8), hostile_numbers)),
    st.builds(fm.RMSprop, lr=lrs, rho=small_rates),
    st.builds(fm.Adagrad, lr=lrs),
    st.builds(fm.Nadam, lr=lrs, momentum_decay=mostly(st.just(0.004), hostile_numbers)),
    st.builds(fm.Lion, lr=lrs, b1=small_rates),
    st.builds(fm.Adam, lr=st.builds(fm.CyclicLR, eta_min=st.just(1e-4), eta_max=positive,
                                    step_size=counts)),
)
schedules = st.one_of(
    st.builds(fm.Constant, positive, warmup=mostly(st.integers(0, 5), counts),
              warmup_start=small_rates),
    st.builds(fm.CyclicLR, eta_min=positive, eta_max=positive, step_size=counts,
              cycles=mostly(st.none(), hostile_numbers)),
    st.builds(fm.StepDecay, positive, drop=positive, every=counts),
    st.builds(fm.ExponentialDecay, positive, rate=positive, decay_steps=positive),
    st.builds(fm.CosineAnnealing, positive, lr_min=mostly(st.just(0.0), positive),
              period=counts, restarts=st.booleans(), t_mult=mostly(st.floats(1, 3), positive)),
)


def _draw_or_reject(data, strategy, test):
    """Draw from a strategy whose constructors may refuse: None when they did
    (ValueError / TypeError), a recorded failure for any other exception."""
    kind, value = _call(lambda: data.draw(strategy))
    if kind == "other":
        _verdict(test, f"constructor raised {type(value).__name__}: {value}")
        return None
    return value if kind == "ok" else None


# ------------------------------------------------------------------ construction (no kernels)
@fuzz(400)
@given(st.data())
def test_sequential_construction_and_build(data):
    loss = data.draw(mostly(st.sampled_from([None, None, "mse", "hinge", "svm"]),
                            st.sampled_from(["nope", 3, b"mse"])))
    kind, layers = _call(lambda: data.draw(mostly(stacks(loss), layer_lists(), 3)))
    if kind != "ok":   # a layer constructor refused a value
        _verdict("construction", _problem(kind, layers), kind)
        return
    dtype = data.draw(mostly(st.sampled_from([np.float32, np.float64, "float32", None]),
                             st.sampled_from(["float16", int, "garbage"])))
    seed = data.draw(mostly(st.one_of(st.none(), st.integers(0, 2 ** 63 - 1)),
                            st.one_of(st.integers(-5, 2 ** 65), hostile_numbers)))
    n_features = data.draw(mostly(st.integers(1, 12), st.one_of(st.integers(-2, 0),
                                                                 hostile_numbers)))
    kind, model = _call(lambda: fm.Sequential(layers, dtype=dtype, seed=seed, loss=loss))
    problem = _problem(kind, None)
    if kind == "ok":
        kind, _ = _call(lambda: model.build(n_features))
        problem = _problem(kind, _)
        if kind == "ok":
            if not np.all(np.isfinite(model.params)) or not np.all(np.isfinite(model.bn_run)):
                problem = "build made non-finite weights"
            elif model.params.size != model.count_params():
                problem = "params size differs from count_params"
    _verdict("construction", problem, kind)


@fuzz(250)
@given(st.data())
def test_schedules_and_optimizers(data):
    sched = _draw_or_reject(data, schedules, "schedules")
    problem, kind = None, "rejected"
    if sched is not None:
        for step in (0, 1, 7, 1000):
            kind, lr = _call(lambda: sched(step))
            problem = problem or _problem(kind, None)
            # a growing schedule may overflow far out; it must never be NaN or negative
            if kind == "ok" and not (lr >= 0) and problem is None:
                problem = f"{sched!r} gives lr {lr} at step {step}"
        kind, _ = _call(lambda: fm.SGD(sched, momentum=data.draw(small_rates)))
        problem = problem or _problem(kind, None)
    opt = _draw_or_reject(data, optimizers, "schedules")
    if opt is not None:
        kind, cfg = _call(opt.config)
        problem = problem or _problem(kind, cfg)
    _verdict("schedules", problem, kind)


# ------------------------------------------------------------------ fit
def _fuzz_fit(data):
    """One generated fit on a fixed architecture: (outcome, model, history or exception,
    problem with exceptions or changed inputs, or None)."""
    model = _architecture(data.draw(st.sampled_from(["bn", "plain"])), 7)
    X = data.draw(feature_arrays(max_rows=30))
    n = len(X) if hasattr(X, "__len__") else 0
    y = data.draw(label_arrays(n))
    opt = _draw_or_reject(data, mostly(optimizers, st.one_of(    # sure to diverge
        st.builds(fm.Adam, st.sampled_from([1e25, 1e30])),
        st.builds(fm.RMSprop, st.sampled_from([1e25, 1e30]))), 5), "fit")
    if opt is None:
        opt = fm.Adam(1e-2)
    kwargs = dict(
        epochs=data.draw(mostly(st.integers(0, 2), st.sampled_from([-1, 1.5, None, INF]))),
        batch_size=data.draw(mostly(st.integers(1, 40), counts)),
        l2=data.draw(mostly(st.sampled_from([None, 0.0, 1e-3, 10.0]), hostile_numbers)),
        seed=data.draw(mostly(st.one_of(st.none(), st.integers(0, 2 ** 63 - 1)),
                              st.one_of(st.integers(2 ** 63, 2 ** 64), hostile_numbers))),
        shuffle=data.draw(mostly(st.booleans(), st.sampled_from([1, "no"]))),
        validation_split=data.draw(mostly(st.sampled_from([0.0, 0.0, 0.2, 0.5]),
                                          st.sampled_from([0.99, 1.0, -0.1, NAN]))),
    )
    X_before, y_before = _copy(X), _copy(y)
    kind, hist = _call(lambda: model.fit(X, y, optimizer=opt, verbose=0, **kwargs))
    problem = _problem(kind, None, allow_divergence=True)
    if kind == "diverged":
        problem = _check_after_divergence(model)
    problem = problem or _unchanged(X_before, X) or _unchanged(y_before, y)
    return kind, model, hist, problem


def _finite_state(model):
    """None when weights, BN statistics and optimizer state are all finite."""
    for name in ("params", "bn_run", "opt_state", "opt_scalars"):
        value = getattr(model, name, None)
        if value is not None and not _finite(value):
            return f"fit left a non-finite {name}"
    return None


@fuzz(200)
@given(st.data())
def test_fit(data):
    kind, model, hist, problem = _fuzz_fit(data)
    if kind == "ok" and problem is None and not _finite(hist.history.get("loss", [])):
        problem = "fit recorded a non-finite loss without an error"
    _verdict("fit", problem, kind)


# A fit that returns, or stops with DivergenceError, must leave a finite model (the step
# checks its loss, the BN statistics and what the update wrote)
@fuzz(60)
@given(st.data())
def test_fit_leaves_a_finite_model(data):
    model = _architecture(data.draw(st.sampled_from(["bn", "plain"])), 7)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    n = data.draw(st.integers(2, 30))
    X = (rng.standard_normal((n, N_FEATURES)) * data.draw(st.sampled_from([1.0, 1e10, 1e30])))
    y = rng.integers(0, N_CLASSES, n)
    lr = data.draw(st.sampled_from([1e-2, 1e3, 1e10, 1e20, 1e25, 1e30]))
    opt = data.draw(st.sampled_from([fm.Adam, fm.RMSprop, fm.Adagrad, fm.Lion]))(lr)
    kind, _ = _call(lambda: model.fit(X.astype(np.float32), y, optimizer=opt, verbose=0,
                                      epochs=data.draw(st.integers(1, 2)),
                                      batch_size=data.draw(st.integers(1, 30))))
    problem = _problem(kind, None, allow_divergence=True)
    if kind in ("ok", "diverged"):
        problem = problem or _finite_state(model)
    _verdict("fit-finite", problem, kind)


# ------------------------------------------------------------------ evaluate / predict
@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, N_FEATURES)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    model = _architecture("bn", 5)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=fm.Adam(1e-2), verbose=0)
    return model


@fuzz(250)
@given(st.data())
def test_evaluate_and_predict(trained, data):
    X = data.draw(feature_arrays())
    n = len(X) if hasattr(X, "__len__") else 0
    y = data.draw(label_arrays(n))
    batch_size = data.draw(mostly(st.integers(1, 50), counts))
    l2 = data.draw(mostly(st.sampled_from([None, 0.0, 0.01]), hostile_numbers))
    X_before, y_before = _copy(X), _copy(y)
    state = _model_state(trained)
    if data.draw(st.booleans()):
        kind, out = _call(lambda: trained.predict(X, batch_size=batch_size))
    else:
        kind, out = _call(lambda: trained.evaluate(X, y, batch_size=batch_size, l2=l2))
    problem = (_problem(kind, out) or _unchanged(X_before, X) or _unchanged(y_before, y))
    if not all(np.array_equal(a, b) for a, b in zip(state, _model_state(trained))):
        problem = problem or "predict/evaluate changed the model"
    _verdict("evaluate/predict", problem, kind)


# ------------------------------------------------------------------ set_weights
@fuzz(150)
@given(st.data())
def test_set_weights(trained, data):
    weights = trained.get_weights()
    new = []
    for w in weights:
        change = data.draw(mostly(st.just("same"), st.sampled_from(
            ["nan", "inf", "huge", "shape", "dtype", "scalar", "list"]), 10))
        w = w.astype(np.float64) * data.draw(st.sampled_from([1.0, -2.0, 1e-30]))
        if change == "nan" and w.size:
            w.flat[0] = NAN
        elif change == "inf" and w.size:
            w.flat[-1] = -INF
        elif change == "huge" and w.size:
            w.flat[0] = data.draw(st.sampled_from([1e39, 3.5e38, 1e300]))
        elif change == "shape":
            w = w.reshape(-1)[: max(w.size - 1, 0)]
        elif change == "dtype":
            w = w.astype(data.draw(st.sampled_from(["U4", "complex128", "object", "int8"])))
        elif change == "scalar":
            w = 1.0
        elif change == "list":
            w = w.tolist()
        new.append(w)
    if data.draw(st.integers(0, 7)) == 0:
        new = new[: data.draw(st.integers(0, len(new)))]
    before = [_copy(w) for w in new]
    old = trained.get_weights()
    kind, _ = _call(lambda: trained.set_weights(new))
    problem = _problem(kind, None)
    after = trained.get_weights()
    if kind == "ok":
        if not _finite(after):
            problem = "set_weights accepted values that became NaN or inf"
    elif not all(np.array_equal(a, b) for a, b in zip(old, after)):
        problem = "a failed set_weights changed the weights"
    for b, w in zip(before, new):
        problem = problem or _unchanged(b, w)
    trained.set_weights(old)
    _verdict("set_weights", problem, kind)


# ------------------------------------------------------------------ load
@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    trained.save(path)
    with np.load(path, allow_pickle=False) as f:
        return path.parent, {k: f[k] for k in f.files}


benign = {"seed": st.integers(0, 2 ** 63 - 1), "step": st.integers(0, 10 ** 6),
          "opt_step": st.integers(0, 10 ** 6), "epochs_done": st.integers(0, 100),
          "l2": st.floats(0, 1), "l1": st.floats(0, 1), "lr_scale": st.floats(0, 1)}
json_values = st.one_of(st.none(), st.booleans(), hostile_numbers.filter(
    lambda v: not isinstance(v, (np.generic, list))), st.text(max_size=3),
    st.lists(st.integers(-2, 3), max_size=3), st.just({"a": 1}))


@fuzz(200)
@given(st.data())
def test_load(saved, data):
    folder, arrays = saved
    arrays = dict(arrays)
    config = json.loads(str(arrays["config"][()]))
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(["benign", "benign", "benign", "config", "array",
                                            "layer", "optimizer"]))
        if target == "benign":
            key = data.draw(st.sampled_from(sorted(benign)))
            config[key] = data.draw(benign[key])
        elif target == "config":
            key = data.draw(st.sampled_from(sorted(config) + ["steps_into_epoch"]))
            if data.draw(st.booleans()) and key in config:
                del config[key]
            else:
                config[key] = data.draw(json_values)
        elif target == "layer":
            i = data.draw(st.integers(0, len(config["layers"]) - 1))
            cfg = config["layers"][i][1]
            cfg[data.draw(st.sampled_from(sorted(cfg) + ["units", "momentum"]))] = \
                data.draw(json_values)
        elif target == "optimizer" and config.get("optimizer"):
            opt_cfg = config["optimizer"]["config"]
            opt_cfg[data.draw(st.sampled_from(sorted(opt_cfg)))] = data.draw(json_values)
        else:
            name = data.draw(st.sampled_from(sorted(k for k in arrays if k != "config")))
            a = arrays[name]
            change = data.draw(st.sampled_from(["nan", "inf", "neg", "shape", "dtype", "drop"]))
            if change == "drop":
                del arrays[name]
                continue
            a = a.copy()
            if change in ("nan", "inf", "neg") and a.size and a.dtype.kind == "f":
                a.flat[data.draw(st.integers(0, a.size - 1))] = {"nan": NAN, "inf": INF,
                                                                 "neg": -5.0}[change]
            elif change == "shape":
                a = a.reshape(-1)[: max(a.size - 1, 0)]
            elif change == "dtype":
                a = a.astype(data.draw(st.sampled_from(["float64", "float32", "int64"])))
            arrays[name] = a
    arrays["config"] = np.array(json.dumps(config))
    path = folder / "tampered.npz"
    np.savez(path, **arrays)
    kind, model = _call(lambda: fm.load(path))
    problem = _problem(kind, None)
    if kind == "ok":
        for name in ("params", "bn_run", "opt_state", "opt_scalars"):
            if getattr(model, name, None) is not None and not _finite(getattr(model, name)):
                problem = f"load accepted a non-finite {name}"
        for name in ("step", "opt_step", "epochs_done"):
            value = getattr(model, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problem = f"load accepted {name}={value!r}"
        if not (isinstance(model.l2, float) and model.l2 >= 0 and math.isfinite(model.l2)):
            problem = f"load accepted l2={model.l2!r}"
        if not (math.isfinite(model.lr_scale) and model.lr_scale >= 0):
            problem = f"load accepted lr_scale={model.lr_scale!r}"
        if model.opt_scalars is not None and model.opt_scalars.shape != (4,):
            problem = f"load accepted opt_scalars of shape {model.opt_scalars.shape}"
    _verdict("load", problem, kind)
