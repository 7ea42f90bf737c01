"""Learning-rate schedules: pure functions of the update count, evaluated inside the
compiled loop. Pass one as `lr=` to any optimizer or as `fit(schedule=...)`.

Every schedule takes `warmup` (updates of linear warm-up, default 0) and
`warmup_start` (the factor warm-up starts from, default 0).
"""
import numpy as np

from . import _validation as V
from .kernels import schedule as _k


def _check_positive(value, name, allow_zero=False):
    """A finite number > 0 (>= 0 with allow_zero) that fits float32."""
    return V.check_number(value, name, 0.0, above=not allow_zero)


class Schedule:
    """Base class: `kind` (kernel code) and `values()` (its float64 parameters)."""
    kind = _k.CONSTANT

    def __init__(self, warmup=0, warmup_start=0.0):
        warmup = V.check_count(warmup, "warmup", 0)
        warmup_start = V.check_number(warmup_start, "warmup_start", 0.0, 1.0)
        self.warmup, self.warmup_start = warmup, warmup_start

    def values(self):
        raise NotImplementedError

    def hyper(self):
        """float64 array as the kernel reads it: warm-up, start factor, then values()."""
        return np.array([float(self.warmup), self.warmup_start] + [float(v) for v in self.values()])

    def __call__(self, step):
        """Learning rate at 0-based update `step` (the very function the loop uses)."""
        return float(_k.schedule_lr(self.kind, self.hyper(), float(step)))

    def total_steps(self, cycles=None):
        """Updates that `cycles` cycles take (cyclic schedules only), else None."""
        return None

    def config(self):
        cfg = dict(self._config())
        if self.warmup:
            cfg.update(warmup=self.warmup, warmup_start=self.warmup_start)
        return cfg

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """lr at every update."""

    def __init__(self, lr, **warmup):
        super().__init__(**warmup)
        self.lr = _check_positive(lr, "lr")

    def values(self):
        return [self.lr]

    def _config(self):
        return {"lr": self.lr}


class CyclicLR(Schedule):
    """Triangular cyclical learning rate (Smith 2017), the DD2424 formula.

    Rises linearly from eta_min to eta_max over `step_size` updates (n_s), then
    falls back over the next n_s: one cycle is 2 n_s updates. `cycles`, when
    given, lets fit() without epochs train exactly that many cycles.
    """
    kind = _k.CYCLIC

    def __init__(self, eta_min=1e-5, eta_max=1e-1, step_size=500, cycles=None, **warmup):
        super().__init__(**warmup)
        self.eta_min = _check_positive(eta_min, "eta_min")
        self.eta_max = _check_positive(eta_max, "eta_max")
        if self.eta_max < self.eta_min:
            raise ValueError(f"CyclicLR needs eta_max >= eta_min, got {eta_max} < {eta_min}")
        step_size = V.check_count(step_size, "CyclicLR step_size", 1)
        if cycles is not None:
            V.check_number(cycles, "cycles", 0.0, 1e9, above=True)
        self.step_size, self.cycles = step_size, cycles

    def values(self):
        return [self.eta_min, self.eta_max, self.step_size]

    def total_steps(self, cycles=None):
        cycles = self.cycles if cycles is None else cycles
        return None if cycles is None else int(round(2 * self.step_size * cycles))

    def _config(self):
        return {"eta_min": self.eta_min, "eta_max": self.eta_max, "step_size": self.step_size,
                "cycles": self.cycles}


class StepDecay(Schedule):
    """lr * drop ** floor(step / every): multiply by `drop` every `every` updates."""
    kind = _k.STEP

    def __init__(self, lr, drop=0.5, every=1000, **warmup):
        super().__init__(**warmup)
        self.lr = _check_positive(lr, "lr")
        self.drop = _check_positive(drop, "drop")
        self.every = V.check_count(every, "every", 1)

    def values(self):
        return [self.lr, self.drop, self.every]

    def _config(self):
        return {"lr": self.lr, "drop": self.drop, "every": self.every}


class ExponentialDecay(Schedule):
    """lr * rate ** (step / decay_steps) (Keras's ExponentialDecay, continuous)."""
    kind = _k.EXPONENTIAL

    def __init__(self, lr, rate=0.96, decay_steps=1000, **warmup):
        super().__init__(**warmup)
        self.lr = _check_positive(lr, "lr")
        self.rate = _check_positive(rate, "rate")
        self.decay_steps = _check_positive(decay_steps, "decay_steps")

    def values(self):
        return [self.lr, self.rate, self.decay_steps]

    def _config(self):
        return {"lr": self.lr, "rate": self.rate, "decay_steps": self.decay_steps}


class CosineAnnealing(Schedule):
    """Cosine annealing from lr_max to lr_min over `period` updates (Loshchilov & Hutter 2017).

    restarts=True starts again from lr_max after each period (SGDR), the
    period growing by t_mult each time; restarts=False stays at lr_min afterwards.
    """
    kind = _k.COSINE

    def __init__(self, lr_max, lr_min=0.0, period=1000, restarts=False, t_mult=1.0, **warmup):
        super().__init__(**warmup)
        self.lr_max = _check_positive(lr_max, "lr_max")
        self.lr_min = _check_positive(lr_min, "lr_min", allow_zero=True)
        if self.lr_min > self.lr_max:
            raise ValueError(f"lr_min must be <= lr_max, got {lr_min} > {lr_max}")
        period = V.check_count(period, "period", 1)
        t_mult = V.check_number(t_mult, "t_mult", 1.0 if restarts else 0.0)
        self.period, self.restarts, self.t_mult = period, bool(restarts), t_mult

    def values(self):
        return [self.lr_max, self.lr_min, self.period, self.t_mult if self.restarts else 0.0]

    def _config(self):
        return {"lr_max": self.lr_max, "lr_min": self.lr_min, "period": self.period,
                "restarts": self.restarts, "t_mult": self.t_mult}


SCHEDULES = {c.__name__: c for c in (Constant, CyclicLR, StepDecay, ExponentialDecay, CosineAnnealing)}


def as_schedule(lr):
    """A Schedule from a positive number or a Schedule."""
    if isinstance(lr, Schedule):
        return lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.integer, np.floating)):
        raise ValueError(f"lr (or schedule) must be a number or a fastmlp schedule, got {lr!r}")
    return Constant(lr)
