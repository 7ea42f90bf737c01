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


# ------------------------------------------------------------------ hostile files
def _tampered(tmp_path, change, name="bad.npz"):
    """A copy of a trained model's file with `change(config dict, arrays dict)` applied."""
    good = tmp_path / "good.npz"
    if not good.exists():
        _trained("adam").save(good)
    with np.load(good, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["config"][()]))
    change(config, arrays)
    arrays["config"] = np.array(json.dumps(config))
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _set(key, value):
    def change(config, arrays):
        config[key] = value
    return change


def _array(name, fn):
    def change(config, arrays):
        arrays[name] = fn(arrays[name])
    return change


def _nan_at_0(a):
    a = a.copy()
    a.flat[0] = np.nan
    return a


@pytest.mark.parametrize("change, field", [
    (_set("lr_scale", -1.0), "lr_scale"),
    (_set("lr_scale", float("inf")), "lr_scale"),
    (_set("l2", -0.5), "l2"),
    (_set("l1", "x"), "l1"),
    (_set("step", -3), "step"),
    (_set("step", "12"), "step"),
    (_set("step", 1.5), "step"),
    (_set("opt_step", True), "opt_step"),
    (_set("epochs_done", -1), "epochs_done"),
    (_set("n_features", 10 ** 12), "params"),       # would allocate 10^13 weights
    (_set("seed", 2 ** 64), "seed"),
    (_set("steps_into_epoch", 2), "epoch_in_progress"),
    (_array("params", _nan_at_0), "params"),
    (_array("params", lambda a: np.full_like(a, np.inf)), "params"),
    (_array("bn_run", _nan_at_0), "bn_run"),
    (_array("bn_run", lambda a: -np.abs(a) - 1), "bn_run"),
    (_array("opt_state", _nan_at_0), "opt_state"),
    (_array("opt_scalars", lambda a: a[:2]), "opt_scalars"),
    (_array("opt_scalars", lambda a: a.astype(np.float32)), "opt_scalars"),
    (_array("opt_scalars", _nan_at_0), "opt_scalars"),
])
def test_load_refuses_out_of_range_values_naming_the_field(tmp_path, change, field):
    path = _tampered(tmp_path, change)
    with pytest.raises(ValueError, match=field) as err:
        fm.load(path)
    assert str(path) in str(err.value)


def test_load_keeps_only_known_history_fields(tmp_path):
    def change(config, arrays):
        config["history"]["append_epoch"] = "overwritten"
    model = fm.load(_tampered(tmp_path, change))
    model.history.append_epoch(0, {"loss": 1.0})   # still the method
    assert model.history.history["loss"][-1] == 1.0


def test_partial_epoch_fields_are_checked(tmp_path):
    def change(config, arrays):
        config["steps_into_epoch"] = 2
        config["epoch_in_progress"] = {"n_samples": 48, "batch_size": 16, "shuffle": True,
                                       "seed": 5}
        for key in ("loss", "metric", "lr"):
            arrays["epoch_in_progress." + key] = np.ones(2)
    model = fm.load(_tampered(tmp_path, change))
    assert model.steps_into_epoch == 2
    for key, value, where in (("n_samples", 32, "steps_into_epoch"),   # epoch of 2 steps
                              ("shuffle", 1, "shuffle"), ("seed", -1, "seed")):
        def bad(config, arrays, key=key, value=value):
            change(config, arrays)
            config["epoch_in_progress"][key] = value
        with pytest.raises(ValueError, match=where):
            fm.load(_tampered(tmp_path, bad, f"bad-{key}.npz"))

    def short(config, arrays):
        change(config, arrays)
        arrays["epoch_in_progress.lr"] = np.ones(1)
    with pytest.raises(ValueError, match="epoch_in_progress.lr"):
        fm.load(_tampered(tmp_path, short, "short.npz"))


# ------------------------------------------------------------------ interrupted saves
def _temps(folder, name):
    return [p for p in os.listdir(folder) if p.startswith(f".{name}.") and p.endswith(".tmp")]


def test_save_removes_temporary_files_of_dead_savers_only(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".m.npz.{dead}.abc123.tmp"
    live = tmp_path / f".m.npz.{os.getppid()}.def456.tmp"    # a running process's save
    other = tmp_path / f".other.npz.{dead}.x.tmp"            # another path's
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    _trained("sgd-plain").save(tmp_path / "m.npz")
    assert not stale.exists() and live.exists() and other.exists()


def test_sigkill_during_saves_never_breaks_the_file_nor_piles_up_temporaries(tmp_path):
    """A child saving a ~8 MB model in a loop is killed 20 times at staggered moments."""
    import signal
    import time
    model = fm.Sequential([fm.Dense(1000), fm.ReLU(), fm.Dense(3), fm.Softmax()], seed=0)
    model.build(2000)
    path = tmp_path / "big.npz"
    model.save(path)
    most = 0
    for i in range(20):
        pid = os.fork()
        if pid == 0:   # the child: save forever (numpy and zipfile only, no kernels)
            try:
                while True:
                    model.save(path)
            finally:
                os._exit(1)
        time.sleep(0.03 + 0.011 * i)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        loaded = fm.load(path)
        assert np.array_equal(loaded.params, model.params)
        most = max(most, len(_temps(tmp_path, "big.npz")))
    assert most <= 1          # each save removed the previous victim's file
    model.save(path)
    assert _temps(tmp_path, "big.npz") == []
