"""Optimizers: hyperparameters only; the update runs in fastmlp/kernels/optim.py.

`lr` may be a number or a schedule (fastmlp.schedules). State arrays (momentum,
Adam moments) belong to the model and have the layout of the flat parameters.
"""
import numpy as np

from .kernels import optim as _k
from .schedules import as_schedule


class Optimizer:
    kind = None
    n_slots = 0

    def __init__(self, lr):
        self.schedule = as_schedule(lr)

    @property
    def lr(self):
        return self.schedule

    def hyper(self):
        """float64 hyperparameters as the kernel expects them."""
        raise NotImplementedError

    def config(self):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _check_unit_interval(value, name):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")


class SGD(Optimizer):
    """Minibatch SGD with optional momentum / Nesterov momentum (PyTorch's form):
    v = momentum * v + g; p -= lr * (g + momentum * v) if nesterov else lr * v."""
    kind = _k.SGD

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        super().__init__(lr)
        _check_unit_interval(momentum, "momentum")
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.n_slots = 1 if self.momentum > 0 else 0

    def hyper(self):
        return np.array([self.momentum, float(self.nesterov)])

    def config(self):
        return {"lr": self.schedule, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's form:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)."""
    kind = _k.ADAM
    n_slots = 2

    def __init__(self, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
        super().__init__(lr)
        _check_unit_interval(b1, "b1")
        _check_unit_interval(b2, "b2")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.b1, self.b2, self.eps = float(b1), float(b2), float(eps)

    def hyper(self):
        return np.array([self.b1, self.b2, self.eps])

    def config(self):
        return {"lr": self.schedule, "b1": self.b1, "b2": self.b2, "eps": self.eps}
