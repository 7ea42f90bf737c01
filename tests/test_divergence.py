"""A diverging fit stops with DivergenceError and leaves the model exactly as it was after
its last update whose loss, BN running statistics, parameters and optimizer state were all
finite: the same bits as a fit that ran only those updates, and a model that predicts,
evaluates, saves and trains on."""
import numpy as np
import pytest

import fastmlp as fm
from fastmlp.callbacks import Callback

D, K, BS = 8, 3, 20
# the rows scaled to 1e21 are meant to be unscaled: no advice to standardise them
pytestmark = pytest.mark.filterwarnings("ignore::fastmlp.InputScaleWarning")


def _net(bn):
    layers = [fm.Dense(16)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU(), fm.Dense(K),
                                                                 fm.Softmax()]
    return fm.Sequential(layers, seed=3)


def _data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    y = rng.integers(0, K, size=n)
    return X, y


def _state(model):
    """Everything a training step changes, as copies."""
    return ([w.copy() for w in model.get_weights()] + [model.bn_run.copy()]
            + [model.opt_state.copy(), model.opt_scalars.copy()])


def _all_finite(model):
    return all(np.all(np.isfinite(a)) for a in _state(model))


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _usable(model, X, y, tmp_path):
    """predict, evaluate, save/load and a further fit all work and stay finite."""
    assert np.all(np.isfinite(model.predict(X)))
    assert all(np.isfinite(v) for v in model.evaluate(X, y).values())
    model.save(tmp_path / "m.npz")
    assert _same(_state(fm.load(tmp_path / "m.npz")), _state(model))
    model.fit(X, y, epochs=1, batch_size=BS, optimizer=fm.SGD(lr=1e-3), verbose=0, n_threads=1)
    assert _all_finite(model)


OPTIMIZERS = {"sgd": lambda lr: fm.SGD(lr=lr, momentum=0.9), "adam": lambda lr: fm.Adam(lr=lr)}


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_huge_learning_rate_leaves_a_finite_usable_model(opt, bn, tmp_path):
    X, y = _data()
    model = _net(bn)
    with pytest.raises(fm.DivergenceError, match="NaN or inf") as info:
        model.fit(X, y, epochs=3, batch_size=BS, optimizer=OPTIMIZERS[opt](1e30), verbose=0,
                  n_threads=2)
    assert isinstance(info.value, FloatingPointError)
    assert f"kept as it was after update {model.step}," in str(info.value)
    assert _all_finite(model)
    assert len(model.history.steps["loss"]) == model.step
    _usable(model, X, y, tmp_path)


def _reference(bn, X, y, n_updates, opt, **fit):
    """A fresh model trained for exactly n_updates steps over the rows in order."""
    model = _net(bn)
    model.fit(X[: BS * n_updates], y[: BS * n_updates], epochs=1, batch_size=BS,
              optimizer=opt, shuffle=False, verbose=0, **fit)
    return model


@pytest.mark.parametrize("n_threads", [2, None], ids=["one-call-per-epoch", "many-calls"])
def test_overflowing_bn_statistics_rewind_to_the_last_finite_update(n_threads):
    """Inputs near 1e21 overflow a BN running variance (float32) while the normalised
    loss stays finite: the fit stops there, and the model equals one trained for
    exactly the updates before. n_threads=None compiles ~1 call per update here, so the
    rewind replays across calls."""
    X, y = _data()
    bad_batch = 7
    X[BS * bad_batch + 3] *= 1e21      # batch variance ~ 1e42 / BS: 0.1 of it overflows float32
    model = _net(True)
    with pytest.raises(fm.DivergenceError, match="batch-norm running") as info:
        model.fit(X, y, epochs=2, batch_size=BS, optimizer=fm.Adam(lr=1e-3), shuffle=False,
                  verbose=0, n_threads=n_threads)
    assert model.step == bad_batch, str(info.value)
    ref = _reference(True, X, y, bad_batch, fm.Adam(lr=1e-3), n_threads=n_threads)
    assert _same(_state(model), _state(ref))
    assert model.history.steps["loss"] == ref.history.steps["loss"]


@pytest.mark.parametrize("n_threads", [1, 2], ids=["streaming-update", "per-tile-update"])
def test_overflowing_optimizer_state_rewinds_to_the_last_finite_update(n_threads):
    """On 2 threads the W are updated tile by tile in the backward pass, on 1 thread in
    the streaming update after it: both check what they wrote. Rows near 1e21 keep the loss finite (cross-entropy grows linearly in the logits)
    and Adam's step bounded, but the squared gradient overflows Adam's float32 second
    moment: the weights stay finite, the optimizer state does not. The model is left as
    after the update before."""
    X, y = _data()
    bad_batch = 5
    X[BS * bad_batch: BS * (bad_batch + 1)] *= 1e21
    model = _net(False)
    with pytest.raises(fm.DivergenceError, match="weight or the optimizer") as info:
        model.fit(X, y, epochs=1, batch_size=BS, optimizer=fm.Adam(lr=1e-3), shuffle=False,
                  verbose=0, n_threads=n_threads)
    assert model.step == bad_batch, str(info.value)
    ref = _reference(False, X, y, bad_batch, fm.Adam(lr=1e-3), n_threads=n_threads)
    assert _same(_state(model), _state(ref))


class _InfiniteLearningRate(Callback):
    """After the first epoch, scale the learning rate by inf (model.lr_scale): the next
    update makes every weight with a gradient inf or NaN."""

    def on_epoch_end(self, model, epoch, logs):
        model.lr_scale = np.inf


def test_divergence_in_a_later_epoch_keeps_the_finished_epochs():
    X, y = _data()
    model = _net(True)
    with pytest.raises(fm.DivergenceError, match="weight or the optimizer"):
        model.fit(X, y, epochs=3, batch_size=BS, optimizer=fm.SGD(lr=0.05), verbose=0,
                  n_threads=2, callbacks=[_InfiniteLearningRate()])
    assert model.epochs_done == 1 and len(model.history.epoch) == 1
    assert model.step == len(X) // BS           # the first update of epoch 2 diverged
    ref = _net(True)
    ref.fit(X, y, epochs=1, batch_size=BS, optimizer=fm.SGD(lr=0.05), verbose=0, n_threads=2)
    assert _same(_state(model), _state(ref))


def test_a_nan_loss_also_undoes_the_update_that_caused_it():
    """SGD at lr 1e15 on an unscaled batch makes weights whose next forward pass
    overflows: the step with the NaN loss is not applied, and neither is the update
    before it, which made those weights. The model is the one after the updates
    before, and it predicts finite outputs."""
    X, y = _data()
    model = _net(False)
    with pytest.raises(fm.DivergenceError, match="the loss became NaN or inf") as info:
        model.fit(X * 100, y, epochs=1, batch_size=BS, optimizer=fm.SGD(lr=1e15),
                  shuffle=False, verbose=0, n_threads=2)
    kept = model.step
    failed = int(str(info.value).split("at update ")[1].split(" ")[0])
    assert failed == kept + 2, str(info.value)
    ref = _reference(False, X * 100, y, kept, fm.SGD(lr=1e15), n_threads=2)
    assert _same(_state(model), _state(ref))
    assert np.all(np.isfinite(model.predict(X * 100)))


def test_an_epoch_never_ends_on_weights_whose_outputs_overflow():
    """One update per epoch: Adam at lr 1e30 moves every weight by ~1e30, and nothing in
    the epoch runs those weights forward. The epoch-end check does, and undoes that
    update: the model is its initial self, and no epoch is counted."""
    X, y = _data(n=BS)
    model = _net(False)
    model.build(D)
    initial = [w.copy() for w in model.get_weights()] + [model.bn_run.copy()]
    with pytest.raises(fm.DivergenceError, match="weights made by update 1 give NaN or inf"):
        model.fit(X, y, epochs=2, batch_size=BS, optimizer=fm.Adam(lr=1e30), verbose=0,
                  n_threads=2)
    assert model.step == 0 and model.epochs_done == 0
    assert _same(_state(model)[:-2], initial)
    assert not model.opt_state.any()                    # Adam's state as before any update
    assert np.all(np.isfinite(model.predict(X)))
