"""Bad arguments raise ValueError / TypeError naming the argument, before anything changes."""
import numpy as np
import pytest

import fastmlp as fm
# the data and configuration of tests/test_checkpoint.py (its kernels are cached)
from test_checkpoint import _data, _model

INF, NAN = float("inf"), float("nan")


def _snapshot(model):
    """Every attribute: arrays copied, the rest with its identity and repr."""
    out = {}
    for key, value in vars(model).items():
        if isinstance(value, np.ndarray):
            out[key] = ("array", value.copy())
        else:
            out[key] = ("object", id(value), repr(value))
    opt = model.optimizer
    if opt is not None:
        out["optimizer.schedule"] = ("object", id(opt.schedule), repr(opt.schedule))
    if model.history is not None:
        out["history.len"] = ("object", 0, repr(sorted((k, len(v)) for k, v in
                                                      model.history.steps.items())))
    return out


def _assert_unchanged(before, after):
    assert before.keys() == after.keys()
    for key in before:
        if before[key][0] == "array":
            a, b = before[key][1], after[key][1]
            assert a.dtype == b.dtype and np.array_equal(a, b), key
        else:
            assert before[key] == after[key], key


@pytest.fixture(scope="module")
def trained():
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, batch_size=16, optimizer=fm.Adam(1e-2), l2=1e-3, verbose=0)
    return model


BAD_FIT = [
    dict(seed="s", optimizer=fm.SGD(0.1), l2=0.5),     # checks after the optimizer's
    dict(seed=2 ** 63), dict(seed=-1), dict(seed=1.5),
    dict(epochs=-1), dict(epochs=2.5), dict(epochs="3"),
    dict(batch_size=0), dict(batch_size=INF), dict(batch_size="32"),
    dict(l2=NAN), dict(l2=-1.0), dict(l2=1e39), dict(l1=INF), dict(l1="x"),
    dict(optimizer="adamm"), dict(optimizer=3), dict(optimizer=fm.Adam(1e-3), schedule="fast"),
    dict(schedule=-1.0), dict(cycles=2), dict(cycles=INF, schedule=fm.CyclicLR()),
    dict(validation_split=1.0), dict(validation_split=NAN), dict(validation_split="x"),
    dict(validation_data=(1, 2, 3)), dict(validation_data=5),
    dict(shuffle="yes"), dict(shuffle=2), dict(verbose="loud"),
    dict(n_threads=0), dict(n_threads=1.5),
    dict(callbacks=[3]), dict(callbacks="cb"),
    dict(checkpoint="/no/such/folder/m.npz"), dict(checkpoint=3),
    dict(checkpoint="x.npz", checkpoint_every=0), dict(checkpoint="x.npz", checkpoint_every=INF),
    dict(augment="noise"), dict(initial_metrics="no"), dict(initial_metrics=2),
]


@pytest.mark.parametrize("kwargs", BAD_FIT, ids=[", ".join(k) for k in map(sorted, BAD_FIT)])
def test_failed_fit_leaves_the_model_as_it_was(trained, kwargs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = _data()
    before = _snapshot(trained)
    with pytest.raises((ValueError, TypeError)) as err:
        trained.fit(X, y, verbose=0, **kwargs)
    names = [k for k in kwargs if k not in ("optimizer", "l2") or len(kwargs) == 1]
    assert any(name in str(err.value) for name in names + ["lr"]), str(err.value)
    _assert_unchanged(before, _snapshot(trained))


@pytest.mark.parametrize("bad", ["y", "X", "seed"])
def test_failed_fit_leaves_an_unbuilt_model_unbuilt(bad):
    X, y = _data()
    args = {"y": (X, y + 5, {}), "X": (X[:, :0], y, {}), "seed": (X, y, {"seed": "s"})}[bad]
    model = _model()
    before = _snapshot(model)
    with pytest.raises(ValueError):
        model.fit(args[0], args[1], verbose=0, **args[2])
    assert not model.built
    _assert_unchanged(before, _snapshot(model))


@pytest.mark.parametrize("change", ["nan", "inf", "1e39", "shape", "count", "str", "complex"])
def test_failed_set_weights_changes_nothing(trained, change):
    weights = [w.astype(np.float64) for w in trained.get_weights()]
    if change == "nan":
        weights[-1][0] = NAN
    elif change == "inf":
        weights[2][0] = INF
    elif change == "1e39":   # finite in float64, inf in the model's float32
        weights[0][0, 0] = 1e39
    elif change == "shape":
        weights[0] = weights[0].T
    elif change == "count":
        weights = weights[:-1]
    elif change == "str":
        weights[1] = weights[1].astype(str)
    else:
        weights[1] = weights[1] + 1j
    before = _snapshot(trained)
    with pytest.raises((ValueError, TypeError), match="weights|arrays"):
        trained.set_weights(weights)
    _assert_unchanged(before, _snapshot(trained))


@pytest.mark.parametrize("call, name", [
    (lambda m, X, y: m.predict(X, batch_size=0), "batch_size"),
    (lambda m, X, y: m.evaluate(X, y, batch_size=0), "batch_size"),
    (lambda m, X, y: m.predict(X, batch_size=-3), "batch_size"),
    (lambda m, X, y: m.evaluate(X, y, l2=NAN), "l2"),
    (lambda m, X, y: m.evaluate(X, y, l2=-1), "l2"),
    (lambda m, X, y: m.compute_loss(X, y, l2=INF), "l2"),
    (lambda m, X, y: m.compute_gradients(X, y, l1=NAN), "l1"),
])
def test_inference_arguments_are_checked(trained, call, name):
    X, y = _data()
    with pytest.raises(ValueError, match=name):
        call(trained, X, y)


def test_numpy_integer_batch_sizes_work(trained):
    X, y = _data()
    expect = trained.predict(X, batch_size=4)
    assert np.array_equal(trained.predict(X, batch_size=np.uint64(4)), expect)
    assert np.array_equal(trained.predict(X, batch_size=np.int8(4)), expect)


@pytest.mark.parametrize("make, name", [
    (lambda: fm.Sequential(seed=2 ** 63), "seed"),
    (lambda: fm.Sequential(seed=-1), "seed"),
    (lambda: fm.Sequential(loss=3), "loss"),
    (lambda: fm.Sequential(loss="hinge-ish"), "loss"),
    (lambda: fm.Sequential(dtype="garbage"), "dtype"),
    (lambda: fm.Sequential(fm.Dense(3)), "layers"),
    (lambda: fm.Dense(INF), "units"),
    (lambda: fm.Dense(NAN), "units"),
    (lambda: fm.Dense(2.5), "units"),
    (lambda: fm.Dense(4, sigma=INF), "sigma"),
    (lambda: fm.Dense(4, init="normal", sigma=1e38), "sigma"),
    (lambda: fm.Dense(4, bias=1e300), "bias"),
    (lambda: fm.Dense(4, bias="0"), "bias"),
    (lambda: fm.Dense(4, l2=1e39), "l2"),
    (lambda: fm.BatchNorm(momentum="x"), "momentum"),
    (lambda: fm.BatchNorm(eps=INF), "eps"),
    (lambda: fm.LeakyReLU(INF), "alpha"),
    (lambda: fm.Dropout("0.5"), "rate"),
    (lambda: fm.Residual(fm.Dense(3)), "layers"),
    (lambda: fm.CyclicLR(step_size=INF), "step_size"),
    (lambda: fm.CyclicLR(eta_max=1e39), "eta_max"),
    (lambda: fm.CyclicLR(cycles=INF), "cycles"),
    (lambda: fm.ExponentialDecay(0.1, rate=1e40), "rate"),
    (lambda: fm.ExponentialDecay(0.1, decay_steps=INF), "decay_steps"),
    (lambda: fm.StepDecay(0.1, every=INF), "every"),
    (lambda: fm.CosineAnnealing(0.1, period=NAN), "period"),
    (lambda: fm.CosineAnnealing(0.1, restarts=True, t_mult="2"), "t_mult"),
    (lambda: fm.Constant(0.1, warmup=INF), "warmup"),
    (lambda: fm.SGD(1e40), "lr"),
    (lambda: fm.SGD(INF), "lr"),
    (lambda: fm.SGD(None), "lr"),
    (lambda: fm.SGD(0.1, momentum="x"), "momentum"),
    (lambda: fm.Adam(eps=INF), "eps"),
    (lambda: fm.Adam(weight_decay=1e39), "weight_decay"),
    (lambda: fm.GradientNoise(eta=INF), "eta"),
    (lambda: fm.GradientNoise(seed=INF), "seed"),
    (lambda: fm.EarlyStopping(patience=INF), "patience"),
    (lambda: fm.EarlyStopping(min_delta="x"), "min_delta"),
    (lambda: fm.ReduceLROnPlateau(cooldown=INF), "cooldown"),
    (lambda: fm.ReduceLROnPlateau(factor=NAN), "factor"),
    (lambda: fm.LambdaCallback(3), "on_epoch_end"),
    (lambda: fm.Augment(shift=INF), "shift"),
    (lambda: fm.Augment(noise_std=1e39), "noise_std"),
    (lambda: fm.Augment(image_shape=(28, INF)), "image_shape"),
])
def test_constructors_refuse_bad_values_naming_them(make, name):
    with pytest.raises((ValueError, TypeError), match=name):
        make()


def test_largest_float32_values_still_pass():
    assert fm.Dense(4, bias=-3e38).bias == -3e38
    assert fm.SGD(3e38).schedule.lr == 3e38
    assert fm.Dense(4.0).units == 4
