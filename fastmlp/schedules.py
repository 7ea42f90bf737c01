"""Learning-rate schedules: (kind, parameters) evaluated inside the compiled loop."""
import numpy as np

from .kernels import schedule as _k


class Schedule:
    """Base class. `kind` is the kernel code, `hyper()` its float64 parameters."""
    kind = _k.CONSTANT

    def hyper(self):
        raise NotImplementedError

    def __call__(self, step):
        """Learning rate at 0-based update `step` (same function the loop uses)."""
        return float(_k.schedule_lr(self.kind, self.hyper(), float(step)))


class Constant(Schedule):
    """lr at every step."""

    def __init__(self, lr):
        _check_lr(lr, "lr")
        self.lr = float(lr)

    def hyper(self):
        return np.array([self.lr])

    def config(self):
        return {"lr": self.lr}

    def __repr__(self):
        return f"Constant({self.lr})"


class CyclicLR(Schedule):
    """Triangular cyclical learning rate (Smith 2017), the DD2424 formula.

    Rises linearly from eta_min to eta_max over `step_size` updates (n_s), then
    falls back over the next n_s: one cycle is 2 * n_s updates. `cycles`, when
    given, lets `fit(cycles=...)` / `fit(epochs=None)` compute the number of updates.
    """
    kind = _k.CYCLIC

    def __init__(self, eta_min=1e-5, eta_max=1e-1, step_size=500, cycles=None):
        _check_lr(eta_min, "eta_min")
        _check_lr(eta_max, "eta_max")
        if eta_max < eta_min:
            raise ValueError(f"CyclicLR needs eta_max >= eta_min, got {eta_max} < {eta_min}")
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"CyclicLR step_size must be an integer >= 1, got {step_size!r}")
        self.eta_min, self.eta_max, self.step_size = float(eta_min), float(eta_max), int(step_size)
        self.cycles = cycles

    def hyper(self):
        return np.array([self.eta_min, self.eta_max, float(self.step_size)])

    def total_steps(self, cycles=None):
        cycles = self.cycles if cycles is None else cycles
        return None if cycles is None else int(round(2 * self.step_size * cycles))

    def config(self):
        return {"eta_min": self.eta_min, "eta_max": self.eta_max,
                "step_size": self.step_size, "cycles": self.cycles}

    def __repr__(self):
        return (f"CyclicLR(eta_min={self.eta_min}, eta_max={self.eta_max}, "
                f"step_size={self.step_size}, cycles={self.cycles})")


def _check_lr(value, name):
    if not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def as_schedule(lr):
    """A Schedule from a number or a Schedule."""
    if isinstance(lr, Schedule):
        return lr
    return Constant(lr)
