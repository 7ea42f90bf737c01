"""Keras conventions: compile(), optimizers and losses by name, Dense(activation="softmax")
as the output, input_shape / input_dim, label columns. Each Keras-style model is checked
against the same model written the fastmlp way (bit-identical training)."""
import numpy as np
import pytest

import fastmlp as fm

N, D, K = 120, 12, 3


def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


FIT = dict(epochs=2, batch_size=16, verbose=0, n_threads=1)


def test_keras_style_model_trains_like_the_fastmlp_way():
    X, y = data()
    keras = fm.Sequential([fm.Dense(8, activation="relu", input_shape=(D,)),
                           fm.Dense(K, activation="softmax")], seed=0)
    keras.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = keras.fit(X, y, **FIT)                    # no optimizer repeated
    plain = fm.Sequential([fm.Dense(8), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=0)
    plain.fit(X, y, optimizer=fm.Adam(), **FIT)
    assert isinstance(keras.optimizer, fm.Adam) and keras.optimizer.lr(0) == 1e-3
    assert same_weights(keras, plain)
    assert "accuracy" in hist.history and len(hist.history["accuracy"]) == 2
    # a second fit continues with the compiled optimizer and its state
    keras.fit(X, y, **FIT)
    plain.fit(X, y, **FIT)
    assert same_weights(keras, plain)


def test_softmax_activation_on_the_last_dense_is_the_softmax_output():
    model = fm.Sequential([fm.Dense(8, activation="tanh"), fm.Dense(K, activation="softmax")])
    assert [type(l).__name__ for l in model.layers] == ["Dense", "Dense", "Softmax"]
    assert model.layers[1].activation is None
    model.build(D)
    probs = model.predict(data()[0])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-6) and probs.min() >= 0
    assert "softmax_2" in model.summary(print_fn=None)
    with pytest.raises(ValueError, match="Softmax must be the last layer"):
        fm.Sequential([fm.Dense(8, activation="softmax"), fm.Dense(K), fm.Softmax()]).build(D)
    with pytest.raises(ValueError, match="'softmax' is the output"):
        fm.Sequential([fm.Residual([fm.Dense(D, activation="softmax")]), fm.Dense(K),
                       fm.Softmax()]).build(D)


def test_optimizer_names_and_instances():
    from fastmlp.optimizers import get_optimizer
    for name, cls in [("sgd", fm.SGD), ("adam", fm.Adam), ("rmsprop", fm.RMSprop),
                      ("adagrad", fm.Adagrad), ("adadelta", fm.Adadelta), ("adamax", fm.Adamax),
                      ("nadam", fm.Nadam), ("lion", fm.Lion), ("Adam", fm.Adam),
                      ("RMSprop", fm.RMSprop)]:
        opt = get_optimizer(name)
        assert type(opt) is cls
        assert opt.config() == cls().config()       # the class's own defaults
    mine = fm.Adam(lr=0.01)
    assert get_optimizer(mine) is mine
    for bad in ("adamw", "ftrl", 3, None):
        with pytest.raises(ValueError, match=r"one of the names \['adadelta', 'adagrad'"):
            get_optimizer(bad)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy",
                                  "cross_entropy", None])
def test_cross_entropy_names_train_identically(loss):
    X, y = data()
    onehot = np.eye(K)[y]
    model = fm.Sequential([fm.Dense(6), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=1)
    model.compile(optimizer=fm.SGD(0.05, momentum=0.9), loss=loss, metrics=["acc"])
    model.fit(X, onehot if loss == "categorical_crossentropy" else y, **FIT)
    plain = fm.Sequential([fm.Dense(6), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=1)
    plain.fit(X, y, optimizer=fm.SGD(0.05, momentum=0.9), **FIT)
    assert same_weights(model, plain)


def test_mse_by_keras_name_is_regression():
    X, _ = data()
    target = (X[:, :2] @ np.array([[1.0], [-2.0]])).astype(np.float32)
    model = fm.Sequential([fm.Dense(1, input_dim=D)], seed=0)
    model.compile(optimizer="sgd", loss="mean_squared_error", metrics=["root_mean_squared_error"])
    model.fit(X, target, **FIT)
    plain = fm.Sequential([fm.Dense(1)], seed=0, loss="mse")
    plain.fit(X, target, optimizer=fm.SGD(), **FIT)
    assert same_weights(model, plain)
    assert set(model.evaluate(X, target)) == {"loss", "cost", "rmse"}


def test_compile_checks_everything_before_changing_anything():
    model = fm.Sequential([fm.Dense(K, input_shape=(D,)), fm.Softmax()], seed=0)
    model.compile(optimizer="rmsprop")
    before = model.optimizer
    with pytest.raises(ValueError, match=r"unknown loss 'kld'; choose one of .*'mse'.*Keras"):
        model.compile(optimizer="adam", loss="kld")
    with pytest.raises(ValueError, match="Softmax\\(\\) output goes with cross_entropy"):
        model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="'mae' is not reported with loss 'cross_entropy'"):
        model.compile(optimizer="adam", metrics=["accuracy", "mae"])
    assert model.optimizer is before


def test_compile_after_build_swaps_the_loss_and_keeps_the_weights():
    X, _ = data()
    model = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(2), fm.Sigmoid()], seed=0,
                          loss="mse")
    model.build(D)
    weights = model.get_weights()
    model.compile(loss="binary_crossentropy")
    assert model.plan.loss.name == "binary_cross_entropy"
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    targets = (X[:, :2] > 0).astype(np.float32)
    # the binary cross-entropy of the sigmoid outputs, computed here in numpy
    p = model.predict(X).astype(np.float64)
    expected = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    assert model.evaluate(X, targets)["loss"] == pytest.approx(expected, rel=1e-4)


def test_input_shape_builds_before_fit_and_checks_the_data():
    model = fm.Sequential([fm.Dense(5, input_shape=(D,)), fm.ReLU(), fm.Dense(K, activation="softmax")])
    assert model.input_dim == D and not model.built
    text = model.summary(print_fn=None)                  # builds, as Keras does
    assert model.built and f"Total params: {D * 5 + 5 + 5 * K + K:,}" in text
    X, y = data()
    with pytest.raises(ValueError, match=r"X has 7 features but the model was built for 12"):
        model.fit(X[:, :7], y, **FIT)
    unbuilt = fm.Sequential([fm.Dense(5, input_dim=D), fm.Dense(K), fm.Softmax()])
    with pytest.raises(ValueError, match=r"X has 7 features but the first layer declares "
                                         r"input_shape=\(12,\)"):
        unbuilt.fit(X[:, :7], y, **FIT)
    assert not unbuilt.built
    with pytest.raises(ValueError, match=r"flatten images first.*input_shape=\(784,\)"):
        fm.Dense(5, input_shape=(28, 28))
    with pytest.raises(ValueError, match="disagree"):
        fm.Dense(5, input_shape=(3,), input_dim=4)
    with pytest.raises(ValueError, match="positive integer"):
        fm.Dense(5, input_dim=0)
    with pytest.raises(ValueError, match="first layer only"):
        fm.Sequential([fm.Dense(5), fm.Dense(K, input_dim=5), fm.Softmax()])
    bn_first = fm.Sequential([fm.BatchNorm(input_shape=(D,)), fm.Dense(K), fm.Softmax()])
    assert bn_first.count_params() == 2 * D + D * K + K


def test_input_dim_survives_save_and_load(tmp_path):
    X, y = data()
    model = fm.Sequential([fm.Dense(6, activation="relu", input_dim=D),
                           fm.Dense(K, activation="softmax")], seed=0)
    model.compile(optimizer="adam")
    path = model.save(tmp_path / "m.npz")          # compiled, built from input_dim, unfitted
    loaded = fm.load(path)
    assert loaded.input_dim == D and isinstance(loaded.optimizer, fm.Adam)
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_label_column_is_read_as_class_ids():
    X, y = data()
    make = lambda: fm.Sequential([fm.Dense(6), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=2)  # noqa
    column, flat = make(), make()
    column.fit(X, y.reshape(-1, 1), optimizer="sgd", **FIT)
    flat.fit(X, y, optimizer="sgd", **FIT)
    assert same_weights(column, flat)
    assert column.evaluate(X, y[:, None]) == flat.evaluate(X, y)
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\)"):
        column.evaluate(X, (y + 1)[:, None])


def test_verbose_accepts_keras_values(capsys):
    X, y = data()
    model = fm.Sequential([fm.Dense(K), fm.Softmax()], seed=0)
    model.fit(X, y, epochs=1, batch_size=60, verbose="auto", n_threads=1)
    assert "epoch 1/1" in capsys.readouterr().err
    for bad in (3, -1, "yes", 1.5):
        with pytest.raises(ValueError, match="verbose must be 0"):
            model.fit(X, y, verbose=bad)
