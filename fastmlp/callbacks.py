"""Callbacks run between compiled chunks of training (Keras-style names).

A callback's `on_epoch_end(model, epoch, logs)` sees the epoch's metrics and may
set `model.stop_training = True` or change `model.lr_scale` (a factor on the
optimizer's schedule, applied inside the compiled loop).
"""
import numpy as np

from . import _validation as V


class Callback:
    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_train_end(self, model):
        pass


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta, patience):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be a metric name such as 'val_loss', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        min_delta = V.check_number(min_delta, "min_delta", 0.0)
        patience = V.check_count(patience, "patience", 0)
        self.monitor, self.mode = monitor, mode
        self.min_delta, self.patience = min_delta, patience
        self.best, self.wait = None, 0

    def _value(self, logs):
        if self.monitor not in logs:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, which this fit "
                             f"does not record (available: {sorted(logs)}); pass validation data?")
        return logs[self.monitor]

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` when `monitor` has not improved by
    min_delta for `patience` epochs; then wait `cooldown` epochs (not counted towards
    patience) before resuming normal operation, as Keras does; the scale never goes
    below min_scale (a factor on the schedule, in [0, 1])."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, cooldown=0,
                 min_scale=0.0, mode="auto"):
        super().__init__(monitor, mode, min_delta, patience)
        factor = V.check_number(factor, "factor", 0.0, above=True)
        if not factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        cooldown = V.check_count(cooldown, "cooldown", 0)
        min_scale = V.check_number(min_scale, "min_scale", 0.0, 1.0)
        self.factor, self.cooldown, self.min_scale = factor, cooldown, min_scale
        self._cool = 0

    def on_train_begin(self, model):
        self.best, self.wait, self._cool = None, 0, 0

    def on_epoch_end(self, model, epoch, logs):
        value = self._value(logs)
        if self._cool > 0:
            self._cool -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        if self._cool > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            model.lr_scale = max(model.lr_scale * self.factor, self.min_scale)
            self.wait, self._cool = 0, self.cooldown


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by min_delta for `patience` epochs;
    restore_best_weights puts back the parameters (and BN statistics) of the best epoch."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=5, restore_best_weights=True,
                 mode="auto"):
        super().__init__(monitor, mode, min_delta, patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.best_epoch = None
        self._best_arrays = None

    def on_train_begin(self, model):
        self.best, self.wait, self.best_epoch, self._best_arrays = None, 0, None, None

    def on_epoch_end(self, model, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.wait, self.best_epoch = value, 0, epoch
            if self.restore_best_weights:
                self._best_arrays = (model.params.copy(), model.bn_run.copy())
            return
        self.wait += 1
        if self.wait >= self.patience:
            model.stop_training = True

    def on_train_end(self, model):
        if self.restore_best_weights and self._best_arrays is not None:
            np.copyto(model.params, self._best_arrays[0])
            np.copyto(model.bn_run, self._best_arrays[1])


class LambdaCallback(Callback):
    """on_epoch_end(model, epoch, logs) from a plain function; return True to stop training."""

    def __init__(self, on_epoch_end):
        if not callable(on_epoch_end):
            raise TypeError(f"on_epoch_end must be callable, got {on_epoch_end!r}")
        self._fn = on_epoch_end

    def on_epoch_end(self, model, epoch, logs):
        if self._fn(model, epoch, logs):
            model.stop_training = True


class ModelCheckpoint(Callback):
    """Save the model to `path` (atomically: temporary file + rename) every `every`
    epochs and when training ends, so an interrupted run loses at most `every` epochs.
    `fit(checkpoint=path)` adds one."""

    def __init__(self, path, every=1):
        self.path, self.every = path, V.check_count(every, "checkpoint_every", 1)
        self._saved_at = None

    def on_epoch_end(self, model, epoch, logs):
        if (epoch + 1) % self.every == 0:
            model.save(self.path)
            self._saved_at = model.step

    def on_train_end(self, model):
        if model.built and model.step != self._saved_at:
            model.save(self.path)
            self._saved_at = model.step
