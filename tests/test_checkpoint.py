"""Checkpoints written during fit; resuming equals the uninterrupted run; Ctrl-C."""
import os
import signal

import numpy as np

import fastmlp as fm


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 10)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)


def _model():
    return fm.Sequential([fm.Dense(16), fm.BatchNorm(), fm.ReLU(), fm.Dropout(0.2),
                          fm.Dense(3), fm.Softmax()], seed=3)


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    X, y = _data()
    straight = _model()
    straight.fit(X, y, epochs=4, batch_size=16, optimizer=fm.Adam(1e-2), verbose=0)
    path = tmp_path / "run.npz"
    first = _model()
    first.fit(X, y, epochs=2, batch_size=16, optimizer=fm.Adam(1e-2), verbose=0, checkpoint=path)
    assert path.exists() and not [p for p in os.listdir(tmp_path) if p != "run.npz"]
    resumed = fm.load(path)
    resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)  # optimizer and its state restored
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(straight.bn_run, resumed.bn_run)
    assert resumed.step == straight.step and resumed.epochs_done == 4


def test_checkpoint_every_k_epochs(tmp_path):
    X, y = _data()
    path = tmp_path / "m.npz"
    steps_seen = []
    cb = fm.LambdaCallback(lambda m, e, logs: steps_seen.append(
        fm.load(path).step if path.exists() else None))
    model = _model()
    model.fit(X, y, epochs=4, batch_size=40, verbose=0, callbacks=[cb], checkpoint=path,
              checkpoint_every=2)
    # the lambda runs before the checkpoint callback of the same epoch
    assert steps_seen == [None, None, 6, 6]
    assert fm.load(path).step == 12  # saved again at the end


def test_ctrl_c_stops_after_the_current_chunk_and_keeps_history():
    X, y = _data()
    model = _model()

    def interrupt(m, epoch, logs):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)

    hist = model.fit(X, y, epochs=10, batch_size=16, verbose=0,
                     callbacks=[fm.LambdaCallback(interrupt)])
    assert hist.interrupted
    assert len(hist.epoch) == 2 and model.epochs_done == 2
    assert model.step == len(hist.steps["loss"]) == 2 * 8
    assert all(np.isfinite(w).all() for w in model.get_weights())
