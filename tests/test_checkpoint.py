"""Checkpoints written during fit; resuming equals the uninterrupted run; Ctrl-C."""
import os
import signal

import numpy as np
import pytest

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


# ------------------------------------------------------------------ mid-epoch resume
TOTAL_EPOCHS = 4


def _optimizer():
    return fm.Adam(fm.CyclicLR(eta_min=1e-3, eta_max=2e-2, step_size=5))


def _fit(model, epochs, **kw):
    # n_threads left at the default: ~one compiled call per update at 8 updates an epoch
    # (with short calls not merged: _signal_after), so an interruption can land inside
    # an epoch
    return model.fit(*_data(), epochs=epochs, batch_size=16, verbose=0, **kw)


def _state(model):
    return (model.params, model.bn_run, model.opt_state, model.opt_scalars,
            model.step, model.opt_step, model.epochs_done, model.steps_into_epoch)


def _assert_same_state(a, b):
    for x, y in zip(_state(a), _state(b)):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        else:
            assert x == y


def _straight():
    model = _model()
    _fit(model, TOTAL_EPOCHS, optimizer=_optimizer())
    return model


def _signal_after(monkeypatch, n_calls, signum=signal.SIGINT):
    """Send `signum` to this process once the n_calls-th compiled call of training ran.
    Calls are not merged up to training.MIN_CALL_S: one update each (see _fit)."""
    from fastmlp import training
    original = training.EpochRunner.run_steps
    monkeypatch.setattr(training, "MIN_CALL_S", 0.0)
    calls = [0]

    def run_steps(self, *args):
        out = original(self, *args)
        calls[0] += 1
        if calls[0] == n_calls:
            os.kill(os.getpid(), signum)
        return out
    monkeypatch.setattr(training.EpochRunner, "run_steps", run_steps)


@pytest.mark.parametrize("calls", [3, 8, 11, 30])
def test_ctrl_c_mid_epoch_checkpoint_resumes_bit_identically(tmp_path, monkeypatch, calls):
    straight = _straight()
    path = tmp_path / "run.npz"
    first = _model()
    with monkeypatch.context() as patch:
        _signal_after(patch, calls)
        hist = _fit(first, TOTAL_EPOCHS, optimizer=_optimizer(), checkpoint=path)
    assert hist.interrupted and first.step < straight.step
    assert first.step == first.epochs_done * 8 + first.steps_into_epoch
    assert (first.steps_into_epoch > 0) == (calls % 8 != 0)
    resumed = fm.load(path)
    assert (resumed.epochs_done, resumed.steps_into_epoch) == (first.epochs_done,
                                                               first.steps_into_epoch)
    hist = _fit(resumed, TOTAL_EPOCHS - resumed.epochs_done)   # the documented resume
    _assert_same_state(straight, resumed)
    assert resumed.steps_into_epoch == 0 and resumed._partial_epoch is None
    # the finished epoch's metrics cover all of its updates, as in the uninterrupted run
    assert hist.history["loss"][-1] == straight.history.history["loss"][-1]
    # the in-memory model resumes the same way without a file
    _fit(first, TOTAL_EPOCHS - first.epochs_done)
    _assert_same_state(straight, first)


def test_two_interruptions_in_one_epoch_resume_bit_identically(monkeypatch):
    straight = _straight()
    model = _model()
    with monkeypatch.context() as patch:
        _signal_after(patch, 10)
        _fit(model, TOTAL_EPOCHS, optimizer=_optimizer())
    with monkeypatch.context() as patch:
        _signal_after(patch, 3)
        _fit(model, TOTAL_EPOCHS - model.epochs_done)
    assert model.steps_into_epoch == 5
    _fit(model, TOTAL_EPOCHS - model.epochs_done)
    _assert_same_state(straight, model)


def test_callback_stop_then_resume_is_bit_identical(tmp_path):
    straight = _straight()
    path = tmp_path / "run.npz"
    first = _model()
    stop = fm.LambdaCallback(lambda m, epoch, logs: epoch == 1)
    _fit(first, TOTAL_EPOCHS, optimizer=_optimizer(), checkpoint=path, callbacks=[stop])
    assert first.epochs_done == 2 and first.steps_into_epoch == 0
    resumed = fm.load(path)
    _fit(resumed, TOTAL_EPOCHS - resumed.epochs_done)
    _assert_same_state(straight, resumed)


def test_a_different_fit_starts_a_new_epoch_with_a_warning(monkeypatch):
    model = _model()
    with monkeypatch.context() as patch:
        _signal_after(patch, 3)
        _fit(model, 2, optimizer=_optimizer())
    assert model.steps_into_epoch == 3
    X, y = _data()
    with pytest.warns(UserWarning, match="starts a new epoch"):
        model.fit(X, y, epochs=1, batch_size=20, verbose=0)
    assert model.steps_into_epoch == 0 and model.epochs_done == 1 and model.step == 3 + 6


_CHILD = r"""
import os, signal, sys
import numpy as np
import pytest
import fastmlp as fm
sys.path.insert(0, os.path.dirname(sys.argv[2]))
from test_checkpoint import _data, _model, _optimizer, _signal_after, TOTAL_EPOCHS

path = sys.argv[1]
X, y = _data()
patch = pytest.MonkeyPatch()
_signal_after(patch, 11, signal.SIGINT)      # Ctrl-C in epoch 2: a mid-epoch checkpoint
model = _model()
model.fit(X, y, epochs=TOTAL_EPOCHS, batch_size=16, verbose=0, optimizer=_optimizer(),
          checkpoint=path)
model = fm.load(path)
patch.undo()
_signal_after(patch, 7, signal.SIGKILL)     # kill -9 in epoch 3, after epoch 2's checkpoint
model.fit(X, y, epochs=TOTAL_EPOCHS - model.epochs_done, batch_size=16, verbose=0,
          checkpoint=path)
"""


def test_kill_9_after_a_mid_epoch_resume_still_resumes_bit_identically(tmp_path):
    import subprocess
    import sys
    path = tmp_path / "run.npz"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root)   # this checkout's fastmlp
    proc = subprocess.run([sys.executable, str(script), str(path), __file__],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    resumed = fm.load(path)
    assert resumed.epochs_done == 2 and resumed.steps_into_epoch == 0
    _fit(resumed, TOTAL_EPOCHS - resumed.epochs_done)
    _assert_same_state(_straight(), resumed)
