"""Validate fastmlp/reference.py itself (finite differences, BN, softmax,
optimizer steps worked by hand, a small training run)."""
import importlib.util
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parent.parent / "fastmlp" / "reference.py"
_spec = importlib.util.spec_from_file_location("fastmlp_reference", _PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

N, D, K = 20, 10, 5

NETS = {
    "2-layer": [("dense", 8), ("relu",), ("dense", K), ("softmax",)],
    "2-layer-bn": [("dense", 8), ("bn",), ("relu",), ("dense", K), ("softmax",)],
    "3-layer-bn": [("dense", 9), ("bn",), ("relu",), ("dense", 7), ("bn",),
                   ("relu",), ("dense", K), ("softmax",)],
    "4-layer": [("dense", 9), ("relu",), ("dense", 8), ("relu",), ("dense", 7),
                ("relu",), ("dense", K), ("softmax",)],
    "4-layer-bn": [("dense", 9), ("bn",), ("relu",), ("dense", 8), ("bn",),
                   ("relu",), ("dense", 7), ("bn",), ("relu",), ("dense", K),
                   ("softmax",)],
    "bn-first": [("bn",), ("dense", 8), ("relu",), ("dense", K), ("softmax",)],
    "bn-after-relu": [("dense", 8), ("relu",), ("bn",), ("dense", K),
                      ("softmax",)],
}


def _problem(spec, seed=0):
    """Random data and weights; b, gamma, beta perturbed away from their
    defaults so every gradient formula is exercised."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)) * 2 + 0.5
    y = rng.integers(0, K, size=N)
    weights = ref.init_weights(spec, D, rng)
    for w in weights:
        if w.ndim == 1:
            w += 0.3 * rng.normal(size=w.shape)
    return X, y, weights, rng


def _check_gradients(spec, X, y, weights, rng, l2, training=True, bn_state=None,
                     h=1e-5, max_entries=30):
    """Worst relative error of backward vs centred differences of cost.
    h = 1e-5 balances truncation (~h**2) and round-off (~1e-16 / h)."""
    _, cache = ref.forward(spec, weights, X, training=training, bn_state=bn_state)
    grads = ref.backward(spec, weights, cache, y, l2=l2)
    assert len(grads) == len(weights)
    worst = 0.0
    for w, g in zip(weights, grads):
        assert g.shape == w.shape
        flat_w, flat_g = w.reshape(-1), g.reshape(-1)
        idx = np.arange(flat_w.size)
        if idx.size > max_entries:
            idx = rng.choice(idx, size=max_entries, replace=False)
        for i in idx:
            old = flat_w[i]
            flat_w[i] = old + h
            c_plus = ref.cost(spec, weights, X, y, l2, training, bn_state)
            flat_w[i] = old - h
            c_minus = ref.cost(spec, weights, X, y, l2, training, bn_state)
            flat_w[i] = old
            a, n = flat_g[i], (c_plus - c_minus) / (2 * h)
            # A dense bias feeding a BN layer has an exactly zero gradient
            # (BN is shift invariant); there both sides are pure round-off.
            if abs(a) < 1e-9 and abs(n) < 1e-9:
                continue
            worst = max(worst, abs(a - n) / max(1e-12, abs(a) + abs(n)))
    return worst


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_gradients_training_mode(name, l2):
    spec = NETS[name]
    X, y, weights, rng = _problem(spec)
    assert _check_gradients(spec, X, y, weights, rng, l2) <= 1e-6


@pytest.mark.parametrize("name", ["3-layer-bn", "bn-first"])
def test_gradients_eval_mode(name):
    spec = NETS[name]
    X, y, weights, rng = _problem(spec, seed=1)
    bn_state = ref.init_bn_state(spec, D)
    for mean, var in bn_state:
        mean += rng.normal(size=mean.shape)
        var *= rng.uniform(0.5, 2.0, size=var.shape)
    assert _check_gradients(spec, X, y, weights, rng, 0.01, training=False,
                            bn_state=bn_state) <= 1e-6


def test_weight_shapes_and_init():
    spec = NETS["3-layer-bn"]
    w = ref.init_weights(spec, D, np.random.default_rng(0), dtype=np.float32)
    shapes = [(D, 9), (9,), (9,), (9,), (9, 7), (7,), (7,), (7,), (7, K), (K,)]
    assert [a.shape for a in w] == shapes
    assert all(a.dtype == np.float32 for a in w)
    assert np.all(w[1] == 0) and np.all(w[2] == 1) and np.all(w[3] == 0)
    big = ref.init_weights([("dense", 2000), ("softmax",)], 500,
                           np.random.default_rng(0))[0]
    assert abs(big.std() - np.sqrt(2 / 500)) < 0.01 * np.sqrt(2 / 500)
    assert [s[0].shape for s in ref.init_bn_state(spec, D)] == [(9,), (7,)]


def test_bn_normalises_in_training_mode():
    spec = [("dense", 6), ("bn",), ("softmax",)]
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, D)) * 5 + 3
    weights = ref.init_weights(spec, D, rng)   # gamma = 1, beta = 0
    weights[1] += 7.0                          # bias is removed by BN
    _, cache = ref.forward(spec, weights, X)
    out = cache[-1][1]                         # logits = BN output
    assert np.allclose(out.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(out.std(axis=0), 1, atol=1e-3)   # eps = 1e-5 shrinks


def test_bn_running_stats_and_eval_mode():
    spec = [("bn",), ("softmax",)]
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 4)) * 3 + 2
    weights = ref.init_weights(spec, 4, rng)
    state = ref.init_bn_state(spec, 4)
    ref.forward(spec, weights, X, bn_state=state, update_bn_state=True)
    mu, var = X.mean(axis=0), X.var(axis=0)
    assert np.allclose(state[0][0], 0.1 * mu)
    assert np.allclose(state[0][1], 0.9 + 0.1 * var)
    _, cache = ref.forward(spec, weights, X, training=False, bn_state=state)
    expected = (X - 0.1 * mu) / np.sqrt(0.9 + 0.1 * var + 1e-5)
    assert np.allclose(cache[-1][1], expected)
    # without update_bn_state the state is left alone
    ref.forward(spec, weights, X, bn_state=state)
    assert np.allclose(state[0][0], 0.1 * mu)


def test_softmax_stability_with_huge_logits():
    spec = [("dense", 3), ("softmax",)]
    W = np.array([[1e4, -1e4, 0.0]])
    weights = [W, np.zeros(3)]
    X = np.array([[1.0], [-1.0], [1.0]])
    y = np.array([0, 1, 2])
    probs, cache = ref.forward(spec, weights, X)
    assert np.all(np.isfinite(probs))
    assert np.allclose(probs.sum(axis=1), 1)
    loss, acc = ref.loss_and_accuracy(probs, y, logits=cache[-1][1])
    assert np.isfinite(loss)
    # rows 0, 1 are right with prob 1, row 2 has logit 0 vs max 1e4
    assert loss == pytest.approx(1e4 / 3)
    assert acc == pytest.approx(2 / 3)
    loss_clipped, _ = ref.loss_and_accuracy(probs, y)
    assert np.isfinite(loss_clipped)
    assert np.isfinite(ref.cost(spec, weights, X, y, l2=0.1))


def test_loss_and_accuracy_simple():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    y = np.array([0, 1])
    loss, acc = ref.loss_and_accuracy(probs, y)
    assert loss == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2)
    assert acc == 0.5


def test_adam_step_by_hand():
    w = np.array([1.0, -2.0])
    g = np.array([0.5, -0.1])
    m = np.array([0.1, 0.2])
    v = np.array([0.01, 0.04])
    ref.adam_update([w], [g], [m], [v], t=2, lr=0.01)
    # m = 0.9*m + 0.1*g ; v = 0.999*v + 0.001*g^2
    m_exp = [0.9 * 0.1 + 0.1 * 0.5, 0.9 * 0.2 + 0.1 * -0.1]        # 0.14, 0.17
    v_exp = [0.999 * 0.01 + 0.001 * 0.25, 0.999 * 0.04 + 0.001 * 0.01]
    # bias corrections at t = 2: 1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    w_exp = [1.0 - 0.01 * (m_exp[0] / 0.19) / ((v_exp[0] / 0.001999) ** 0.5 + 1e-8),
             -2.0 - 0.01 * (m_exp[1] / 0.19) / ((v_exp[1] / 0.001999) ** 0.5 + 1e-8)]
    assert np.allclose(m, m_exp, rtol=1e-14)
    assert np.allclose(v, v_exp, rtol=1e-14)
    assert np.allclose(w, w_exp, rtol=1e-14)


def test_adam_first_step_is_lr_sign():
    w, g = np.array([1.0, -2.0]), np.array([0.5, -3.0])
    m, v = np.zeros(2), np.zeros(2)
    ref.adam_update([w], [g], [m], [v], t=1, lr=0.1)
    assert np.allclose(w, [0.9, -1.9], atol=1e-7)   # |m_hat| / sqrt(v_hat) = 1


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_step_by_hand(nesterov):
    w = np.array([1.0, -2.0])
    g = np.array([0.5, -0.1])
    vel = np.array([0.2, 0.3])
    ref.momentum_update([w], [g], [vel], lr=0.1, momentum=0.9, nesterov=nesterov)
    v_exp = [0.9 * 0.2 + 0.5, 0.9 * 0.3 - 0.1]                    # 0.68, 0.17
    if nesterov:
        step = [0.5 + 0.9 * 0.68, -0.1 + 0.9 * 0.17]               # 1.112, 0.053
    else:
        step = v_exp
    assert np.allclose(vel, v_exp, rtol=1e-14)
    assert np.allclose(w, [1.0 - 0.1 * step[0], -2.0 - 0.1 * step[1]], rtol=1e-14)


def test_sgd_step_by_hand():
    w = np.array([1.0, -2.0])
    ref.sgd_update([w], [np.array([0.5, -0.1])], lr=0.1)
    assert np.allclose(w, [0.95, -1.99], rtol=1e-14)


def _separable(n=200, seed=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, D)) * 4
    y = rng.integers(0, 3, size=n)
    X = centres[y] + rng.normal(size=(n, D))
    return X, y


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_train_epoch_reduces_loss(optimizer):
    X, y = _separable()
    spec = [("dense", 16), ("bn",), ("relu",), ("dense", 3), ("softmax",)]
    rng = np.random.default_rng(6)
    weights = ref.init_weights(spec, D, rng)
    bn_state = ref.init_bn_state(spec, D)
    opt_state = {}
    lr = {"sgd": 0.1, "momentum": 0.02, "adam": 0.01}[optimizer]
    before = ref.cost(spec, weights, X, y)
    step, epoch_means = 0, []
    for _ in range(3):
        losses, step = ref.train_epoch(spec, weights, X, y, batch_size=32, lr=lr,
                                       l2=1e-4, optimizer=optimizer,
                                       opt_state=opt_state,
                                       order=rng.permutation(len(y)),
                                       bn_state=bn_state, step=step)
        assert len(losses) == 7   # 6 batches of 32 and one of 8
        epoch_means.append(np.mean(losses))
    assert step == 21
    after = ref.cost(spec, weights, X, y)
    assert after < 0.5 * before
    assert epoch_means[2] < epoch_means[0] < before
    probs, _ = ref.forward(spec, weights, X, training=False, bn_state=bn_state)
    assert ref.loss_and_accuracy(probs, y)[1] > 0.9
    if optimizer != "sgd":
        assert opt_state   # state was created in the caller's dict


def test_train_epoch_float32_stays_float32():
    X, y = _separable(n=64)
    spec = [("dense", 8), ("bn",), ("relu",), ("dense", 3), ("softmax",)]
    weights = ref.init_weights(spec, D, np.random.default_rng(7), dtype=np.float32)
    opt_state = {}
    losses, step = ref.train_epoch(spec, weights, X.astype(np.float32), y, 16,
                                   0.01, l2=1e-3, optimizer="adam",
                                   opt_state=opt_state, momentum=0.9)
    assert step == 4 and all(np.isfinite(losses))
    assert all(w.dtype == np.float32 for w in weights)
    assert all(a.dtype == np.float32 for a in opt_state["m"] + opt_state["v"])
    probs, cache = ref.forward(spec, weights, X.astype(np.float32))
    assert probs.dtype == np.float32
    grads = ref.backward(spec, weights, cache, y, l2=1e-3)
    assert all(g.dtype == np.float32 for g in grads)


def test_spec_validation():
    with pytest.raises(ValueError):
        ref.init_weights([("dense", 3)], D, np.random.default_rng(0))
    with pytest.raises(ValueError):
        ref.init_weights([("softmax",), ("dense", 3)], D, np.random.default_rng(0))
