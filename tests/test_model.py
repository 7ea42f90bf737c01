"""The compiled library (fastmlp.Sequential and its Numba kernels) against the
independent plain-numpy reference (fastmlp/reference.py) and against centred
finite differences; training, reproducibility, history, input validation,
divergence handling and summary().

Most tests run the float64 model with n_threads=1 (fast on a busy machine);
the chunk-parallel path (n_threads=2) is compared with the reference and with
the serial path explicitly.
"""
import re

import numba
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref
from _helpers import centred_differences, check_summary, perturbed_problem, record_calls

N, D, K = 20, 10, 4

# Reference specs; _layers() maps them to fastmlp layers. They cover dense
# layers with a fused ReLU, BN with a fused ReLU, BN as the first layer, BN after
# ReLU, BN after BN, dense after dense, and standalone (unfused) ReLUs: on the
# input, and after an already fused ReLU.
NETS = {
    "mlp-bn": [("dense", 8), ("bn",), ("relu",), ("dense", 6), ("relu",), ("dense", K),
               ("softmax",)],
    "mlp": [("dense", 8), ("relu",), ("dense", 6), ("relu",), ("dense", K), ("softmax",)],
    "bn-first": [("bn",), ("dense", 8), ("relu",), ("dense", K), ("softmax",)],
    "bn-after-relu": [("dense", 8), ("relu",), ("bn",), ("dense", K), ("softmax",)],
    "bn-bn": [("dense", 8), ("bn",), ("bn",), ("relu",), ("dense", K), ("softmax",)],
    "dense-dense": [("dense", 8), ("dense", 6), ("relu",), ("dense", K), ("softmax",)],
    "relu-unfused": [("relu",), ("dense", 8), ("relu",), ("relu",), ("dense", K),
                     ("softmax",)],
    "bn-last": [("dense", 8), ("relu",), ("dense", K), ("bn",), ("softmax",)],
    "linear": [("dense", K), ("softmax",)],
    # n_in >= 2 n_out in the first two dense layers: the forward's K split on 2 threads
    "narrowing": [("dense", 5), ("bn",), ("relu",), ("dense", 2), ("relu",), ("dense", K),
                  ("softmax",)],
}

PARALLEL = numba.config.NUMBA_NUM_THREADS >= 2
THREADS = [1, 2] if PARALLEL else [1]


# ------------------------------------------------------------------ helpers
def _layers(spec):
    make = {"dense": lambda l: fm.Dense(l[1]), "bn": lambda l: fm.BatchNorm(),
            "relu": lambda l: fm.ReLU(), "softmax": lambda l: fm.Softmax()}
    return [make[l[0]](l) for l in spec]


def _problem(spec, seed=0, n=N):
    """Data (n, D) and reference weights with b, gamma, beta moved off their defaults."""
    X, y, weights, _ = perturbed_problem(spec, n, D, K, seed)
    return X, y, weights


def _model(spec, weights, dtype=np.float64):
    model = fm.Sequential(_layers(spec), dtype=dtype, seed=0)
    model.build(D)
    model.set_weights(weights)
    return model


def _bn_state(model):
    """The model's running statistics as the reference's [(mean, var), ...]."""
    r = model.bn_run
    return [(r[o: o + w].copy(), r[o + w: o + 2 * w].copy()) for _, o, w in model.plan.bn_layers]


def _assert_close(actual, expected, rtol, what=""):
    """|actual - expected| <= rtol * (|expected| + max|expected|) elementwise: relative,
    with entries far below the array's scale compared at the scale's precision."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def _assert_all_close(actual, expected, rtol, what=""):
    """_assert_close per array; an array that is zero up to round-off (the gradient of a
    dense bias feeding BN, which BN's shift invariance makes exactly zero) is compared
    on the scale of all the arrays instead."""
    assert len(actual) == len(expected)
    overall = max(float(np.abs(e).max()) for e in expected if np.size(e))
    for k, (a, e) in enumerate(zip(actual, expected)):
        if float(np.abs(e).max()) <= 1e-12 * overall:
            assert float(np.abs(np.asarray(a) - e).max()) <= rtol * overall, f"{what} array {k}"
        else:
            _assert_close(a, e, rtol, f"{what} array {k}")


def _assert_weights_close(model, actual, expected, rtol, what="weights"):
    """Trained weights: _assert_all_close, except for a dense bias feeding BN. Its exact
    gradient is zero (BN is shift invariant), so it moves only by round-off (Adam turns
    gradients of ~1e-15 into steps of ~lr * 1e-15 / eps ~ 1e-9 at lr 1e-2, so the two
    runs drift apart by round-off only: 1e-6 apart at most. A real gradient would move
    it by ~lr per step, four orders of magnitude more."""
    fed = {k for k, e in enumerate(model.plan.entries)
           if e.name == "b" and isinstance(model.layers[e.layer + 1], fm.BatchNorm)}
    for k in fed:
        assert np.abs(actual[k] - expected[k]).max() <= 1e-6, f"{what} array {k}"
    keep = [k for k in range(len(actual)) if k not in fed]
    _assert_all_close([actual[k] for k in keep], [expected[k] for k in keep], rtol, what)


# ------------------------------------------------------------------ 1. kernels vs reference
@pytest.mark.parametrize("name", sorted(NETS))
def test_loss_gradients_predict_match_reference(name):
    spec = NETS[name]
    X, y, weights = _problem(spec)
    model = _model(spec, weights)
    for w, r in zip(model.get_weights(), weights):
        assert w.dtype == np.float64 and np.array_equal(w, r)
    for l2 in (0.0, 0.05):
        _, cache = ref.forward(spec, weights, X, training=True)
        expected = ref.backward(spec, weights, cache, y, l2=l2)
        expected_cost = ref.cost(spec, weights, X, y, l2=l2, training=True)
        for n_threads in THREADS:
            loss = model.compute_loss(X, y, l2=l2, training=True, n_threads=n_threads)
            assert loss == pytest.approx(expected_cost, rel=1e-10, abs=0)
            grads = model.compute_gradients(X, y, l2=l2, n_threads=n_threads)
            assert [g.shape for g in grads] == [w.shape for w in weights]
            _assert_all_close(grads, expected, 1e-10, f"{name} l2={l2} threads={n_threads}")
    # evaluation mode of a fresh model: running mean 0, var 1
    bn_state = ref.init_bn_state(spec, D)
    for m, v in _bn_state(model):
        assert np.all(m == 0) and np.all(v == 1)
    probs_ref, cache = ref.forward(spec, weights, X, training=False, bn_state=bn_state)
    loss_ref = ref.cross_entropy_from_logits(cache[-1][1], y)
    for n_threads in THREADS:
        probs = model.predict(X, n_threads=n_threads)
        assert probs.dtype == np.float64 and probs.shape == (N, K)
        _assert_close(probs, probs_ref, 1e-10, "predict")
        # small evaluation batches: several passes over the rows, last one ragged
        _assert_close(model.predict(X, batch_size=7, n_threads=n_threads), probs_ref, 1e-10)
        assert model.compute_loss(X, y, training=False, n_threads=n_threads) == pytest.approx(
            ref.cost(spec, weights, X, y, training=False, bn_state=bn_state), rel=1e-10, abs=0)
        ev = model.evaluate(X, y, batch_size=7, l2=0.0, n_threads=n_threads)
        assert ev["loss"] == pytest.approx(loss_ref, rel=1e-10, abs=0)
        assert ev["accuracy"] == np.mean(probs_ref.argmax(1) == y)
    assert np.array_equal(model.predict_classes(X, n_threads=1), probs_ref.argmax(1))
    # compute_loss / compute_gradients / predict never touch the running statistics
    for m, v in _bn_state(model):
        assert np.all(m == 0) and np.all(v == 1)


def test_evaluation_mode_uses_running_statistics():
    """predict with non-trivial running statistics (set by hand) matches the reference."""
    spec = NETS["bn-bn"]
    X, y, weights = _problem(spec, seed=5)
    model = _model(spec, weights)
    rng = np.random.default_rng(1)
    for _, o, w in model.plan.bn_layers:
        model.bn_run[o: o + w] = rng.normal(size=w)
        model.bn_run[o + w: o + 2 * w] = rng.uniform(0.2, 3.0, size=w)
    probs_ref, _ = ref.forward(spec, weights, X, training=False, bn_state=_bn_state(model))
    for n_threads in THREADS:
        _assert_close(model.predict(X, n_threads=n_threads), probs_ref, 1e-10)


# ------------------------------------------------------------------ 2. float32 vs float64
@pytest.mark.parametrize("name", ["mlp-bn", "bn-first", "bn-after-relu", "relu-unfused"])
def test_float32_matches_float64(name):
    spec = NETS[name]
    X, y, weights = _problem(spec, seed=1)
    m64 = _model(spec, weights, np.float64)
    m32 = _model(spec, [w.astype(np.float32) for w in weights], np.float32)
    assert all(w.dtype == np.float32 for w in m32.get_weights())
    l2 = 0.02
    l64 = m64.compute_loss(X, y, l2=l2, n_threads=1)
    l32 = m32.compute_loss(X, y, l2=l2, n_threads=1)
    assert abs(l32 - l64) <= 1e-4 * abs(l64)
    g64 = m64.compute_gradients(X, y, l2=l2, n_threads=1)
    g32 = m32.compute_gradients(X, y, l2=l2, n_threads=1)
    overall = max(float(np.abs(g).max()) for g in g64)
    for k, (a, b) in enumerate(zip(g32, g64)):
        assert a.dtype == np.float32
        # a dense bias feeding BN has an exactly zero gradient: compare it on the net's scale
        scale = float(np.abs(b).max())
        if scale <= 1e-12 * overall:
            scale = overall
        assert float(np.abs(a.astype(np.float64) - b).max()) <= 1e-4 * scale, f"array {k}"
    p64, p32 = m64.predict(X, n_threads=1), m32.predict(X, n_threads=1)
    assert p32.dtype == np.float32
    assert float(np.abs(p32 - p64).max()) <= 1e-4


# ------------------------------------------------------------------ 3. training vs reference
OPTIMIZERS = {
    "sgd": (lambda: fm.SGD(lr=0.1), {}),
    "momentum": (lambda: fm.SGD(lr=0.1, momentum=0.8), {"momentum": 0.8}),
    "nesterov": (lambda: fm.SGD(lr=0.1, momentum=0.7, nesterov=True),
                 {"momentum": 0.7, "nesterov": True}),
    "adam": (lambda: fm.Adam(lr=0.01, b1=0.8, b2=0.99, eps=1e-7),
             {"b1": 0.8, "b2": 0.99, "eps": 1e-7}),
    "adam-default": (lambda: fm.Adam(lr=0.01), {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
}
LR = {"sgd": 0.1, "momentum": 0.1, "nesterov": 0.1, "adam": 0.01, "adam-default": 0.01}


def _ref_epochs(spec, weights, X, y, kind, hyper, lr, l2, batch_size, epochs, state):
    """Reference training in place over X in row order; returns the per-step losses.

    state = {"bn": bn_state, "opt": opt_state, "step": updates so far} carries over.
    SGD and momentum use ref.train_epoch; Adam with its own hyperparameters runs the
    same loop as train_epoch (which only knows Adam's defaults) with ref.adam_update.
    """
    losses = []
    n = X.shape[0]
    for _ in range(epochs):
        if kind.startswith("adam") and hyper != {"b1": 0.9, "b2": 0.999, "eps": 1e-8}:
            opt = state["opt"]
            if "m" not in opt:
                opt["m"] = [np.zeros_like(w) for w in weights]
                opt["v"] = [np.zeros_like(w) for w in weights]
            for start in range(0, n, batch_size):
                Xb, yb = X[start: start + batch_size], y[start: start + batch_size]
                _, cache = ref.forward(spec, weights, Xb, training=True, bn_state=state["bn"],
                                       update_bn_state=True)
                losses.append(ref.cross_entropy_from_logits(cache[-1][1], yb))
                grads = ref.backward(spec, weights, cache, yb, l2=l2)
                state["step"] += 1
                ref.adam_update(weights, grads, opt["m"], opt["v"], state["step"], lr, **hyper)
        else:
            ref_kind = {"sgd": "sgd", "momentum": "momentum", "nesterov": "momentum",
                        "adam-default": "adam"}[kind]
            out, state["step"] = ref.train_epoch(
                spec, weights, X, y, batch_size, lr, l2=l2, optimizer=ref_kind,
                opt_state=state["opt"], order=np.arange(n), bn_state=state["bn"],
                momentum=hyper.get("momentum", 0.9), nesterov=hyper.get("nesterov", False),
                step=state["step"])
            losses += out
    return losses


def _train_problem(spec, seed=2):
    X, y, weights = _problem(spec, seed=seed, n=30)   # batch 7 on 30 rows: last batch of 2
    return X, y, weights


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("name", ["mlp-bn", "bn-first", "relu-unfused"])
def test_one_epoch_matches_reference(name, opt_name):
    spec = NETS[name]
    X, y, weights = _train_problem(spec)
    make_opt, hyper = OPTIMIZERS[opt_name]
    lr, l2, bs = LR[opt_name], 0.01, 7
    model = _model(spec, weights)
    hist = model.fit(X, y, epochs=1, batch_size=bs, optimizer=make_opt(), l2=l2, shuffle=False,
                     verbose=0, n_threads=1)
    w_ref = [w.copy() for w in weights]
    state = {"bn": ref.init_bn_state(spec, D), "opt": {}, "step": 0}
    losses = _ref_epochs(spec, w_ref, X, y, opt_name, hyper, lr, l2, bs, 1, state)
    assert len(losses) == 5 and model.step == 5
    np.testing.assert_allclose(hist.steps["loss"], losses, rtol=1e-9, atol=0)
    assert hist.steps["lr"] == [lr] * 5
    _assert_weights_close(model, model.get_weights(), w_ref, 1e-9)
    for (m, v), (rm, rv) in zip(_bn_state(model), state["bn"]):
        _assert_close(m, rm, 1e-9, "running mean")
        _assert_close(v, rv, 1e-9, "running var")
    probs_ref, _ = ref.forward(spec, w_ref, X, training=False, bn_state=state["bn"])
    _assert_close(model.predict(X, n_threads=1), probs_ref, 1e-9, "predict after fit")


@pytest.mark.skipif(not PARALLEL, reason="needs 2 Numba threads")
@pytest.mark.parametrize("tiling,columns,k_split", [
    ("always", "never", "never"), ("always", "always", "never"), ("always", "never", "auto"),
    ("never", "never", "never")])
@pytest.mark.parametrize("opt_name", ["nesterov", "adam"])
def test_one_epoch_parallel_matches_reference(opt_name, tiling, columns, k_split, monkeypatch):
    """The chunk-parallel path (2 chunks; the ragged batch of 2 rows as 2 chunks of 1),
    with every dense dW computed by row tiles (strided BLAS on the input rows; also
    the forward and dX by column blocks, or the forward split along the inputs where
    n_in >= 2 n_out) or by per-chunk partials."""
    import fastmlp.plan
    monkeypatch.setattr(fastmlp.plan, "DW_TILING", tiling)
    monkeypatch.setattr(fastmlp.plan, "COLUMN_SPLIT", columns)
    monkeypatch.setattr(fastmlp.plan, "K_SPLIT", k_split)
    spec = NETS["narrowing"]
    ops = _model(spec, _train_problem(spec)[2]).plan.ops_for_batch(7, 2)
    n_k = (ops[:, fastmlp.kernels.layout.F_TILED] == fastmlp.kernels.layout.TILE_K).sum()
    assert n_k == (2 if k_split == "auto" else 0)
    X, y, weights = _train_problem(spec, seed=3)
    make_opt, hyper = OPTIMIZERS[opt_name]
    model = _model(spec, weights)
    hist = model.fit(X, y, epochs=1, batch_size=7, optimizer=make_opt(), l2=0.01,
                     shuffle=False, verbose=0, n_threads=2)
    state = {"bn": ref.init_bn_state(spec, D), "opt": {}, "step": 0}
    losses = _ref_epochs(spec, weights, X, y, opt_name, hyper, LR[opt_name], 0.01, 7, 1, state)
    np.testing.assert_allclose(hist.steps["loss"], losses, rtol=1e-9, atol=0)
    _assert_weights_close(model, model.get_weights(), weights, 1e-9)
    _assert_all_close([a for s in _bn_state(model) for a in s],
                      [a for s in state["bn"] for a in s], 1e-9, "bn running stats")


@pytest.mark.parametrize("opt_name", ["nesterov", "momentum", "adam"])
def test_two_fits_continue_like_two_reference_epochs(opt_name):
    """A second fit continues weights, optimizer state (velocity, Adam moments and step)
    and BN running statistics."""
    spec = NETS["mlp-bn"]
    X, y, weights = _train_problem(spec, seed=4)
    make_opt, hyper = OPTIMIZERS[opt_name]
    lr = LR[opt_name]
    model = _model(spec, weights)
    opt = make_opt()
    h1 = model.fit(X, y, epochs=1, batch_size=7, optimizer=opt, l2=0.01, shuffle=False,
                   verbose=0, n_threads=1)
    h2 = model.fit(X, y, epochs=1, batch_size=7, optimizer=opt, shuffle=False, verbose=0,
                   n_threads=1)   # l2=None keeps 0.01
    state = {"bn": ref.init_bn_state(spec, D), "opt": {}, "step": 0}
    losses = _ref_epochs(spec, weights, X, y, opt_name, hyper, lr, 0.01, 7, 2, state)
    np.testing.assert_allclose(h1.steps["loss"] + h2.steps["loss"], losses, rtol=1e-9, atol=0)
    assert model.step == 10 and model.epochs_done == 2 and h2.epoch == [1]
    _assert_weights_close(model, model.get_weights(), weights, 1e-9)
    _assert_all_close([a for s in _bn_state(model) for a in s],
                      [a for s in state["bn"] for a in s], 1e-9, "bn running stats")


# ------------------------------------------------------------------ 4. finite differences
def _fd_net(hidden, bn):
    layers = []
    for h in hidden:
        layers += [fm.Dense(h), fm.BatchNorm(), fm.ReLU()] if bn else [fm.Dense(h), fm.ReLU()]
    return layers + [fm.Dense(K), fm.Softmax()]


FD_NETS = {"2-layer": [50], "3-layer": [50, 50], "4-layer": [50, 30, 20],
           "9-layer": [50, 30, 20, 20, 10, 10, 10, 10]}


def _fd_worst(model, rng, l2=0.01, h=1e-5, max_entries=20):
    """Worst relative error, per parameter group, of compute_gradients against centred
    differences of compute_loss(training=True), on N x D data, after moving b, gamma
    and beta off their initial values."""
    X = rng.normal(size=(N, D)) * 2 + 0.5
    y = rng.integers(0, K, size=N)
    weights = model.get_weights()
    for w in weights:
        if w.ndim == 1:      # b, gamma, beta away from 0 / 1
            w += 0.3 * rng.normal(size=w.shape)
    model.set_weights(weights)
    names = [e.name for e in model.plan.entries]
    # Round-off in the difference quotient: ~eps * cost / h (about 3e-11 here). Entries
    # with |a| + |n| below noise / 1e-6 (~1e-4) are held to that absolute accuracy
    # instead of to 1e-6 relative, which there would be below what any float64 cost
    # (the reference's included) can resolve.
    noise = 4 * np.finfo(np.float64).eps * model.compute_loss(X, y, l2=l2, n_threads=1) / h
    worst = {}
    pairs = centred_differences(model, X, y, rng, h, max_entries, l2=l2)
    for k, (analytic, numeric) in enumerate(pairs):
        for a, num in zip(analytic, numeric):
            # a dense bias feeding BN has an exactly zero gradient: both sides round-off
            if abs(a) < 1e-9 and abs(num) < 1e-9:
                continue
            err = abs(a - num) / max(abs(a) + abs(num), noise / 1e-6)
            worst[names[k]] = max(worst.get(names[k], 0.0), err)
    return worst


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("net", sorted(FD_NETS))
def test_gradients_match_finite_differences(net, bn):
    model = fm.Sequential(_fd_net(FD_NETS[net], bn), dtype=np.float64, seed=3).build(D)
    worst = _fd_worst(model, np.random.default_rng(7))
    # every parameter group was actually checked
    assert set(worst) == ({"W", "b", "gamma", "beta"} if bn else {"W", "b"})
    assert max(worst.values()) <= 1e-6, worst


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "leaky_relu", "linear"])
def test_other_activations_match_finite_differences(act):
    """Activations the reference lacks: fused into Dense and BN, by name and as layers."""
    layer = {"tanh": fm.Tanh, "sigmoid": fm.Sigmoid, "leaky_relu": lambda: fm.LeakyReLU(0.1),
             "linear": fm.Linear}[act]
    layers = [fm.Dense(20, activation=act), fm.Dense(15), fm.BatchNorm(), layer(),
              fm.Dense(12), layer(), layer(), fm.Dense(K), fm.Softmax()]
    model = fm.Sequential(layers, dtype=np.float64, seed=4).build(D)
    # (data seed 8 put a first-layer pre-activation within 1e-5 of LeakyReLU's kink:
    # differences across the kink, not a gradient error; h = 1e-6 agreed to 1e-8)
    worst = _fd_worst(model, np.random.default_rng(9))
    assert set(worst) == {"W", "b", "gamma", "beta"}
    assert max(worst.values()) <= 1e-6, worst


def test_fused_activation_argument_equals_activation_layer():
    X, y, _ = _problem(NETS["mlp"], seed=6)
    a = fm.Sequential([fm.Dense(8, activation="relu"), fm.Dense(6), fm.ReLU(), fm.Dense(K),
                       fm.Softmax()], dtype=np.float64, seed=1).build(D)
    b = fm.Sequential(_layers(NETS["mlp"]), dtype=np.float64, seed=1).build(D)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    assert a.compute_loss(X, y, n_threads=1) == b.compute_loss(X, y, n_threads=1)
    assert all(np.array_equal(u, v) for u, v in zip(a.compute_gradients(X, y, n_threads=1),
                                                   b.compute_gradients(X, y, n_threads=1)))
    assert np.array_equal(a.predict(X, n_threads=1), b.predict(X, n_threads=1))


# ------------------------------------------------------------------ 5. reproducibility
def _fit_data(n=60, seed=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)) * 2 + 0.5, rng.integers(0, K, size=n)


def _small_net():
    return [fm.Dense(12), fm.BatchNorm(), fm.ReLU(), fm.Dense(K), fm.Softmax()]


def test_same_seed_gives_bitwise_identical_training():
    X, y = _fit_data()
    runs = []
    for _ in range(3):
        model = fm.Sequential(_small_net(), seed=123)        # float32
        hist = model.fit(X, y, epochs=2, batch_size=7, optimizer=fm.SGD(0.05, momentum=0.9),
                         l2=0.001, shuffle=True, seed=99, verbose=0)
        assert model.get_weights()[0].dtype == np.float32
        runs.append((model.get_weights(), model.bn_run.copy(), hist.steps["loss"]))
    (w0, r0, l0), (w1, r1, l1), (w2, r2, l2_) = runs
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    assert np.array_equal(r0, r1) and l0 == l1
    # same initial weights, different shuffling seed -> different training
    model = fm.Sequential(_small_net(), seed=123)
    model.fit(X, y, epochs=2, batch_size=7, optimizer=fm.SGD(0.05, momentum=0.9), l2=0.001,
              shuffle=True, seed=100, verbose=0)
    assert not np.array_equal(model.get_weights()[0], w0[0])
    # the model seed also seeds the weights: different model seeds, different weights
    a = fm.Sequential(_small_net(), seed=1).build(D).get_weights()
    b = fm.Sequential(_small_net(), seed=1).build(D).get_weights()
    c = fm.Sequential(_small_net(), seed=2).build(D).get_weights()
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])


@pytest.mark.skipif(not PARALLEL, reason="needs 2 Numba threads")
def test_serial_and_parallel_training_agree():
    X, y = _fit_data(n=50)
    results = []
    for n_threads in (1, 2):
        model = fm.Sequential(_small_net(), dtype=np.float64, seed=5)
        hist = model.fit(X, y, epochs=2, batch_size=16, optimizer=fm.Adam(0.01), l2=0.001,
                         shuffle=True, seed=6, verbose=0, n_threads=n_threads)
        results.append((model.get_weights(), _bn_state(model), hist))
    (w1, s1, h1), (w2, s2, h2) = results
    _assert_weights_close(model, w2, w1, 1e-10)
    _assert_all_close([a for s in s2 for a in s], [a for s in s1 for a in s], 1e-10, "bn")
    np.testing.assert_allclose(h2.steps["loss"], h1.steps["loss"], rtol=1e-10)
    np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-10)


def test_one_hot_labels_equal_integer_labels():
    from fastmlp.preprocess import one_hot
    X, y = _fit_data(n=40)
    Y = one_hot(y, K)
    out = []
    for labels in (y, Y, Y.astype(np.float64), y.astype(np.float32)):
        model = fm.Sequential(_small_net(), dtype=np.float64, seed=5)
        hist = model.fit(X, labels, epochs=1, batch_size=8, optimizer=fm.SGD(0.1), verbose=0,
                         n_threads=1)
        out.append((model.get_weights(), hist.steps["loss"],
                    model.evaluate(X, labels, n_threads=1)))
    for w, losses, ev in out[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(w, out[0][0]))
        assert losses == out[0][1] and ev == out[0][2]


# ------------------------------------------------------------------ 6. learning smoke test
def test_learns_bundled_mnist():
    from fastmlp.datasets import load_mnist
    from fastmlp.preprocess import scale_to_unit, standardize
    (Xtr, ytr), (Xte, yte) = load_mnist(flatten=True)
    assert Xtr.shape == (8000, 784) and Xte.shape == (2000, 784)
    Xtr, Xte = standardize(scale_to_unit(Xtr), scale_to_unit(Xte))
    model = fm.Sequential([fm.Dense(100), fm.BatchNorm(), fm.ReLU(), fm.Dense(10), fm.Softmax()],
                          seed=0)
    hist = model.fit(Xtr, ytr, epochs=3, batch_size=100, optimizer=fm.SGD(0.05, momentum=0.9),
                     l2=1e-4, verbose=0, seed=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0] < hist.initial["loss"]
    test = model.evaluate(Xte, yte)
    assert test["accuracy"] >= 0.90, test
    assert model.predict(Xte[:5]).shape == (5, 10)


# ------------------------------------------------------------------ 7. history
def test_history_contents():
    X, y = _fit_data(n=30)
    l2 = 0.01
    model = fm.Sequential(_small_net(), dtype=np.float64, seed=5).build(D)
    before = fm.Sequential(_small_net(), dtype=np.float64, seed=5).build(D)
    hist = model.fit(X, y, epochs=3, batch_size=7, optimizer=fm.SGD(0.1), l2=l2,
                     validation_split=0.2, shuffle=True, seed=1, verbose=0, n_threads=1)
    assert hist is model.history
    keys = {"loss", "accuracy", "cost", "lr", "time", "val_loss", "val_accuracy", "val_cost"}
    assert set(hist.history) == keys
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    assert hist.params["n_samples"] == 24           # 6 of 30 rows held out
    n_updates = 3 * 4                               # ceil(24 / 7) per epoch
    assert model.step == n_updates
    assert all(len(v) == n_updates for v in hist.steps.values())
    assert hist.history["lr"] == [0.1] * 3 and hist.steps["lr"] == [0.1] * n_updates
    assert all(t >= 0 for t in hist.history["time"])
    assert all(0 <= a <= 1 for a in hist.history["accuracy"] + hist.history["val_accuracy"])
    # epoch loss = mean over samples of the minibatch losses (batches 7, 7, 7, 3)
    sizes = np.array([7, 7, 7, 3])
    for e in range(3):
        steps = np.array(hist.steps["loss"][4 * e: 4 * e + 4])
        assert hist.history["loss"][e] == pytest.approx(steps @ sizes / 24, rel=1e-12)
    # cost = loss + l2 * sum ||W||^2 with the epoch-end weights
    sq = sum(float(np.sum(w ** 2)) for w, e in zip(model.get_weights(), model.plan.entries)
             if e.name == "W")
    assert hist.history["cost"][-1] == pytest.approx(hist.history["loss"][-1] + l2 * sq,
                                                     rel=1e-12)
    # validation: the last 6 rows, in evaluation mode with the epoch-end model
    val = model.evaluate(X[-6:], y[-6:], n_threads=1)
    assert hist.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-12)
    assert hist.history["val_accuracy"][-1] == val["accuracy"]
    assert hist.history["val_cost"][-1] == pytest.approx(val["loss"] + l2 * sq, rel=1e-12)
    # initial: the metrics of the untrained model (evaluation mode)
    init_tr = before.evaluate(X[:24], y[:24], l2=l2, n_threads=1)
    init_va = before.evaluate(X[24:], y[24:], l2=l2, n_threads=1)
    assert set(hist.initial) == {"loss", "cost", "accuracy", "val_loss", "val_cost",
                                 "val_accuracy"}
    for k in ("loss", "cost", "accuracy"):
        assert hist.initial[k] == pytest.approx(init_tr[k], rel=1e-12)
        assert hist.initial["val_" + k] == pytest.approx(init_va[k], rel=1e-12)
    # the held-out rows never take part in training: same as fitting on the first 24
    other = fm.Sequential(_small_net(), dtype=np.float64, seed=5).build(D)
    h2 = other.fit(X[:24], y[:24], epochs=3, batch_size=7, optimizer=fm.SGD(0.1), l2=l2,
                   shuffle=True, seed=1, verbose=0, n_threads=1)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), model.get_weights()))
    assert set(h2.history) == keys - {"val_loss", "val_accuracy", "val_cost"}
    assert set(h2.initial) == {"loss", "cost", "accuracy"}


def test_initial_metrics_false_skips_the_pass_before_training(monkeypatch):
    """initial_metrics=False: no evaluation before the first update (the pass is not
    run), history.initial stays empty, and training gives the same bits."""
    X, y = _fit_data(n=30)
    Xv, yv = _fit_data(n=11, seed=9)
    calls = record_calls(monkeypatch, fm.Sequential, "_metrics")
    runs = {}
    for flag in (True, False):
        model = fm.Sequential(_small_net(), dtype=np.float64, seed=5)
        before = len(calls)
        hist = model.fit(X, y, epochs=2, batch_size=10, optimizer=fm.Adam(0.01),
                         validation_data=(Xv, yv), verbose=0, n_threads=1,
                         initial_metrics=flag)
        runs[flag] = (model.get_weights(), hist, len(calls) - before)
    assert runs[True][2] == 1 and "val_loss" in runs[True][1].initial
    assert runs[False][2] == 0 and runs[False][1].initial == {}
    assert runs[False][1].history == {k: v for k, v in runs[True][1].history.items()
                                      if k != "time"} | {"time": runs[False][1].history["time"]}
    assert all(np.array_equal(a, b) for a, b in zip(runs[True][0], runs[False][0]))


def test_history_validation_data():
    X, y = _fit_data(n=30)
    Xv, yv = _fit_data(n=11, seed=9)
    model = fm.Sequential(_small_net(), dtype=np.float64, seed=5)
    hist = model.fit(X, y, epochs=2, batch_size=10, optimizer=fm.Adam(0.01),
                     validation_data=(Xv, yv), verbose=0, n_threads=1)
    val = model.evaluate(Xv, yv, n_threads=1)
    assert hist.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-12)
    assert hist.history["val_accuracy"][-1] == val["accuracy"]
    assert len(hist.steps["loss"]) == 6 and model.step == 6
    # epochs=0 is allowed: no update, only the initial metrics
    w = model.get_weights()
    h0 = model.fit(X, y, epochs=0, verbose=0, n_threads=1)
    assert h0.steps["loss"] == [] and h0.epoch == [] and "loss" in h0.initial
    assert all(np.array_equal(a, b) for a, b in zip(w, model.get_weights()))


# ------------------------------------------------------------------ 8. bad input
def _built():
    X, y = _fit_data(n=30)
    model = fm.Sequential(_small_net(), dtype=np.float64, seed=0).build(D)
    return model, X, y


def test_bad_X_raises():
    model, X, y = _built()
    fresh = lambda: fm.Sequential(_small_net(), seed=0)  # noqa: E731
    with pytest.raises(ValueError, match="2-D"):
        fresh().fit(X[0], y[:1], verbose=0)
    with pytest.raises(ValueError, match="2-D"):
        model.fit(X.reshape(30, 2, 5), y, verbose=0)
    with pytest.raises(ValueError, match="2-D"):
        model.predict(X[0])
    with pytest.raises(ValueError, match="numeric"):
        fresh().fit(np.full((30, D), "a"), y, verbose=0)
    with pytest.raises(ValueError, match="numeric"):
        model.predict(X.astype(str))
    with pytest.raises(ValueError, match="has 9 features but the model was built for 10"):
        model.predict(X[:, :9])
    with pytest.raises(ValueError, match="has 9 features but the model was built for 10"):
        model.fit(X[:, :9], y, verbose=0)
    with pytest.raises(ValueError, match="has 11 features but the model was built for 10"):
        model.evaluate(np.hstack([X, X[:, :1]]), y)
    bad = X.copy()
    bad[3, 2] = np.nan
    bad[7, 1] = np.inf
    bad[9, 0] = -np.inf
    for call in (lambda: model.fit(bad, y, verbose=0), lambda: model.predict(bad),
                 lambda: model.evaluate(bad, y), lambda: fresh().fit(bad, y, verbose=0),
                 lambda: model.compute_gradients(bad, y)):
        with pytest.raises(ValueError, match=r"3 NaN or inf value\(s\); the first is in row 3"):
            call()


def test_bad_labels_raise():
    model, X, y = _built()
    w = model.get_weights()
    with pytest.raises(ValueError, match="29 labels but X has 30 rows"):
        model.fit(X, y[:-1], verbose=0)
    for value in (K, -1):
        yb = y.copy()
        yb[5] = value
        with pytest.raises(ValueError, match=re.escape(f"labels outside [0, {K})") + ".*y\\[5\\]"):
            model.fit(X, yb, verbose=0)
    with pytest.raises(ValueError, match="non-integer"):
        model.fit(X, y + 0.5, verbose=0)
    yf = y.astype(np.float64)
    yf[2] = np.nan
    with pytest.raises(ValueError, match="non-integer"):
        model.evaluate(X, yf)
    with pytest.raises(ValueError, match="one-hot y has 3 columns but the model outputs 4"):
        model.fit(X, np.eye(3)[y % 3], verbose=0)
    Y = np.eye(K)[y]
    Y[4] = 0.5
    with pytest.raises(ValueError, match="row 4 is not one-hot"):
        model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="labels outside"):
        fm.Sequential(_small_net(), seed=0).fit(X, y + K, verbose=0)
    # nothing was trained by the failed calls
    assert model.step == 0
    assert all(np.array_equal(a, b) for a, b in zip(w, model.get_weights()))


def test_bad_fit_arguments_raise():
    model, X, y = _built()
    for bs in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            model.fit(X, y, batch_size=bs, verbose=0)
    with pytest.raises(ValueError, match="epochs must be an integer >= 0"):
        model.fit(X, y, epochs=-1, verbose=0)
    with pytest.raises(ValueError, match="l2 must be"):
        model.fit(X, y, l2=-0.1, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="optimizer must be .* or one of the names"):
        model.fit(X, y, optimizer="sgdd", verbose=0)
    with pytest.raises(ValueError, match="verbose must be 0"):
        model.fit(X, y, verbose=3)
    assert model.step == 0


def test_bad_set_weights_and_layers_raise():
    model, X, y = _built()
    w = model.get_weights()
    assert [a.shape for a in w] == [(D, 12), (12,), (12,), (12,), (12, K), (K,)]
    with pytest.raises(ValueError, match="expects 6 arrays, got 5"):
        model.set_weights(w[:-1])
    with pytest.raises(ValueError, match="expects 6 arrays, got 7"):
        model.set_weights(w + [w[0]])
    bad = list(w)
    bad[4] = np.zeros((K, 12))
    with pytest.raises(ValueError, match=re.escape(f"must have shape (12, {K}), got ({K}, 12)")):
        model.set_weights(bad)
    bad = list(w)
    bad[1] = np.full(12, np.nan)
    with pytest.raises(ValueError, match="NaN or inf"):
        model.set_weights(bad)
    assert all(np.array_equal(a, b) for a, b in zip(w, model.get_weights()))
    with pytest.raises(ValueError, match="last layer must be Softmax"):
        fm.Sequential([fm.Dense(8), fm.ReLU(), fm.Dense(K)]).build(D)
    with pytest.raises(ValueError, match="last layer must be Softmax"):
        fm.Sequential([fm.Dense(K)]).fit(X, y, verbose=0)
    with pytest.raises(ValueError, match="Softmax must be the last layer"):
        fm.Sequential([fm.Dense(K), fm.Softmax(), fm.Dense(K), fm.Softmax()]).build(D)
    with pytest.raises(ValueError, match="not built"):
        fm.Sequential(_small_net()).predict(X)


# ------------------------------------------------------------------ 9. divergence
def test_divergence_raises_and_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, D)) * 100 + 50        # unscaled
    y = rng.integers(0, K, size=200)
    make = lambda: fm.Sequential([fm.Dense(16), fm.ReLU(), fm.Dense(K), fm.Softmax()],  # noqa
                                 seed=0)
    model = make()
    with pytest.raises(fm.DivergenceError, match="NaN or inf") as info:
        model.fit(X, y, epochs=5, batch_size=20, optimizer=fm.SGD(lr=1e6), l2=0.01,
                  shuffle=False, verbose=0)
    assert isinstance(info.value, FloatingPointError)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    hist = info.value.history
    assert hist is model.history
    n_done = model.step
    assert 1 <= n_done < 10                      # diverged within the first epoch
    assert f"kept as it was after update {n_done}," in str(info.value)
    assert len(hist.steps["loss"]) == n_done and all(np.isfinite(hist.steps["loss"]))
    assert hist.epoch == [] and model.epochs_done == 0
    # the weights are those after the last finite step: the same as a run that
    # stops there on its own
    other = make()
    other.fit(X[: 20 * n_done], y[: 20 * n_done], epochs=1, batch_size=20,
              optimizer=fm.SGD(lr=1e6), l2=0.01, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))


# ------------------------------------------------------------------ 10. summary
def test_summary_counts():
    model = fm.Sequential([fm.Dense(8), fm.BatchNorm(), fm.ReLU(), fm.Dense(3), fm.Softmax()])
    model.build(10)
    lines = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    dense1, bn, dense2 = 10 * 8 + 8, 8 + 8, 8 * 3 + 3        # 88, 16, 27
    trainable, non_trainable = dense1 + bn + dense2, 8 + 8   # running mean and var
    assert trainable == 131
    rows = check_summary(model, text, trainable, non_trainable)
    assert rows == {"dense_0": "88", "batchnorm_1": "32", "relu_2": "0", "dense_3": "27",
                    "softmax_4": "0"}
    assert "(None, 8)" in text and "(None, 3)" in text
