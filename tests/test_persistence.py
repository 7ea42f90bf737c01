"""save_model / load_model: exact round trip of every array and counter, identical
predictions and continued training, no pickle, atomic writes, clear errors."""
import json
import os

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import persistence

N, D, K = 60, 8, 3


def _data(seed=0, n=N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return X, y


def _layers():
    return [fm.Dense(12, init="glorot_uniform"), fm.BatchNorm(momentum=0.8), fm.ReLU(),
            fm.Dense(6, init="normal", sigma=0.3), fm.LeakyReLU(0.05), fm.Dense(K), fm.Softmax()]


OPTIMIZERS = {
    "sgd-cyclic": lambda: fm.SGD(fm.CyclicLR(1e-4, 0.1, 4), momentum=0.9, nesterov=True),
    "adam": lambda: fm.Adam(0.01),
    "sgd-plain": lambda: fm.SGD(0.05),
}


def _trained(opt="sgd-cyclic", dtype=np.float32):
    X, y = _data()
    model = fm.Sequential(_layers(), dtype=dtype, seed=3)
    model.fit(X, y, epochs=2, batch_size=16, optimizer=OPTIMIZERS[opt](), l2=0.01,
              validation_split=0.2, seed=5, verbose=0, n_threads=1)
    return model


def _same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_round_trip_is_exact(tmp_path, opt):
    model = _trained(opt)
    path = tmp_path / "model.npz"
    assert model.save(path) == path
    loaded = fm.load(path)
    assert [repr(a) for a in loaded.layers] == [repr(a) for a in model.layers]
    assert loaded.dtype == model.dtype and loaded.seed == model.seed
    assert loaded.n_features == model.n_features
    assert _same(loaded.params, model.params)
    assert _same(loaded.bn_run, model.bn_run)
    assert all(_same(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
    assert _same(loaded.opt_state, model.opt_state)
    assert _same(loaded.opt_scalars, model.opt_scalars)
    for key in ("l2", "step", "opt_step", "epochs_done", "lr_scale"):
        assert getattr(loaded, key) == getattr(model, key), key
    assert type(loaded.optimizer) is type(model.optimizer)
    assert repr(loaded.optimizer) == repr(model.optimizer)
    assert loaded.optimizer.config() == model.optimizer.config()
    h0, h1 = model.history, loaded.history
    assert h1.history == h0.history and h1.initial == h0.initial
    assert h1.epoch == h0.epoch and h1.params == h0.params
    assert h1.steps == h0.steps and list(h1.steps) == list(h0.steps)
    assert h1.interrupted == h0.interrupted


def test_predict_bitwise_equal_after_load(tmp_path):
    model = _trained()
    X, y = _data(seed=1)
    fm.save_model(model, tmp_path / "m.npz")
    loaded = fm.load_model(tmp_path / "m.npz")
    assert _same(loaded.predict(X, n_threads=1), model.predict(X, n_threads=1))
    assert loaded.evaluate(X, y, n_threads=1) == model.evaluate(X, y, n_threads=1)


@pytest.mark.parametrize("opt", ["sgd-cyclic", "adam"])
def test_continued_training_matches_original(tmp_path, opt):
    model = _trained(opt)
    model.save(tmp_path / "m.npz")
    loaded = fm.load(tmp_path / "m.npz")
    assert loaded.optimizer is not None and loaded.opt_state is not None
    X, y = _data(seed=2)
    for m in (model, loaded):
        m.fit(X, y, epochs=1, batch_size=16, shuffle=True, seed=11, verbose=0, n_threads=1)
    assert _same(loaded.params, model.params)
    assert _same(loaded.bn_run, model.bn_run)
    assert _same(loaded.opt_state, model.opt_state)
    assert loaded.step == model.step and loaded.epochs_done == model.epochs_done == 3
    assert loaded.history.steps == model.history.steps


def test_float64_and_untrained_models(tmp_path):
    model = fm.Sequential([fm.Dense(4, activation="tanh"), fm.Dense(K), fm.Softmax()],
                          dtype=np.float64, seed=1).build(D)
    model.save(tmp_path / "u.npz")
    loaded = fm.load(tmp_path / "u.npz")
    assert loaded.dtype == np.float64 and loaded.optimizer is None and loaded.history is None
    assert _same(loaded.params, model.params)
    X, y = _data()
    loaded.fit(X, y, epochs=1, batch_size=20, verbose=0, n_threads=1)  # trains from the load


def test_file_loads_without_pickle_and_is_one_npz(tmp_path):
    model = _trained()
    path = tmp_path / "m.npz"
    model.save(path)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    with np.load(path, allow_pickle=False) as data:
        assert {"params", "bn_run", "opt_state", "config", "history.steps.loss"} <= set(data.files)
        config = json.loads(str(data["config"][()]))
    assert config["format"] == "fastmlp-model"
    assert config["layers"][0] == ["Dense", {"units": 12, "init": "glorot_uniform"}]
    assert config["optimizer"]["class"] == "SGD"
    assert config["optimizer"]["config"]["lr"]["schedule"] == "CyclicLR"


def test_save_without_suffix_keeps_the_name(tmp_path):
    model = _trained()
    model.save(tmp_path / "checkpoint")
    assert os.listdir(tmp_path) == ["checkpoint"]
    assert _same(fm.load(tmp_path / "checkpoint").params, model.params)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    old, new = _trained("adam"), _trained("sgd-plain")
    path = tmp_path / "m.npz"
    old.save(path)
    before = path.read_bytes()

    def broken_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]          # no temporary file left behind
    assert repr(fm.load(path).optimizer) == repr(old.optimizer)


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "m.npz"
    _trained("adam").save(path)
    model = _trained("sgd-plain")
    model.save(path)
    assert repr(fm.load(path).optimizer) == repr(model.optimizer)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_corrupted_and_foreign_files_raise_value_error(tmp_path):
    model = _trained()
    good = tmp_path / "good.npz"
    model.save(good)
    data = good.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "garbage.npz": b"this is not a model",
        "empty.npz": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    np.save(tmp_path / "array.npy", np.arange(3))
    np.savez(tmp_path / "wrongformat.npz", config=np.array(json.dumps({"format": "x"})))
    np.savez(tmp_path / "badjson.npz", config=np.array("{not json"))
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["params"] = arrays["params"][:-1]
    np.savez(tmp_path / "badshape.npz", **arrays)
    for name in list(cases) + ["other.npz", "array.npy", "wrongformat.npz", "badjson.npz",
                               "badshape.npz"]:
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            fm.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        fm.load(tmp_path / "missing.npz")


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        fm.Sequential([fm.Dense(3), fm.Softmax()]).save(tmp_path / "m.npz")


def test_config_is_plain_json():
    model = _trained()
    config = persistence.model_config(model)
    json.dumps(config)  # no custom objects left
    assert config["history"]["epoch"] == [0, 1]
