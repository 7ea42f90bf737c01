"""Optimizers: hyperparameters and state shapes; the update runs in kernels/optim.py.

`lr` may be a number or a schedule (fastmlp.schedules). Every optimizer also takes
`weight_decay` (decoupled, AdamW-style: p *= 1 - lr * wd before the update, on
weight matrices only) and `noise` (annealed Gaussian gradient noise,
`GradientNoise(eta, gamma)`). The L2/L1 penalties of the cost are fit arguments,
kept apart from the update rule. State arrays belong to the model and have the
layout of the flat parameters; `Optimizer.step` applies one update to any flat array.
"""
import numbers

import numpy as np

from . import _validation as V
from .kernels import optim as _k
from .schedules import SCHEDULES, Schedule, as_schedule


class GradientNoise:
    """Annealed Gaussian gradient noise (Neelakantan et al. 2015):
    g += N(0, eta / (1 + t)^gamma), t the 1-based update count; seeded, counter-based."""

    def __init__(self, eta=0.01, gamma=0.55, seed=0):
        eta = V.check_number(eta, "GradientNoise eta", 0.0, above=True)
        gamma = V.check_number(gamma, "GradientNoise gamma", 0.0)
        seed = V.check_count(seed, "GradientNoise seed", 0)
        if seed >= 2 ** 53:   # the kernels carry it as a float64
            raise ValueError(f"GradientNoise seed must be < 2**53, got {seed!r}")
        self.eta, self.gamma, self.seed = eta, gamma, seed

    def config(self):
        return {"eta": self.eta, "gamma": self.gamma, "seed": self.seed}

    def __repr__(self):
        return f"GradientNoise(eta={self.eta}, gamma={self.gamma}, seed={self.seed})"


def _unit(value, name, closed=False):
    value = V.check_number(value, name, 0.0)
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1{']' if closed else ')'}, got {value!r}")
    return float(value)


def _positive(value, name):
    return V.check_number(value, name, 0.0, above=True)


class Optimizer:
    """Base class. Subclasses set `kind`, `n_slots` and `_hyper()`."""
    kind = None
    n_slots = 0

    def __init__(self, lr, weight_decay=0.0, noise=None):
        if not isinstance(lr, (numbers.Real, Schedule)) or isinstance(lr, bool):
            raise ValueError(f"lr must be a number or a fastmlp schedule, got {lr!r}")
        self.schedule = as_schedule(lr)
        weight_decay = V.check_number(weight_decay, "weight_decay", 0.0)
        if isinstance(noise, dict):
            noise = GradientNoise(**noise)
        if noise is not None and not isinstance(noise, GradientNoise):
            noise = GradientNoise(*noise) if isinstance(noise, (tuple, list)) else GradientNoise(noise)
        self.weight_decay, self.noise = float(weight_decay), noise

    @property
    def lr(self):
        return self.schedule

    def hyper(self):
        """The kernels' hyperparameters (kernels/optim.Hyper): gradient noise, then the
        family's own fields from _hyper()."""
        n = self.noise
        noise = (dict(noise_eta=float(n.eta), noise_gamma=float(n.gamma),
                      noise_seed=float(n.seed)) if n is not None else {})
        return _k.Hyper(**noise, **{k: type(_k.Hyper._field_defaults[k])(v)
                                    for k, v in self._hyper().items()})

    def init_state(self, n_params, dtype=np.float32):
        """(state (n_slots, n_params), scalars (4,) float64) for a fresh optimizer."""
        scalars = np.zeros(4)
        scalars[0] = 1.0  # Nadam's running product of momentum coefficients
        return np.zeros((self.n_slots, n_params), dtype), scalars

    def step(self, params, grad, state, scalars, t):
        """Apply update number t (1-based) to the flat array params in place.

        params, grad (n,) of one float dtype; state/scalars from init_state(n);
        no penalty; decoupled weight decay applies to every entry.
        Returns the learning rate used (the schedule at t - 1).
        """
        params = np.ascontiguousarray(params)
        grads = np.ascontiguousarray(grad, dtype=params.dtype).reshape(1, -1).copy()
        blocks = np.array([[0, params.size, 0, 1]], dtype=np.int64)
        seg = np.array([[0.0, 0.0, self.weight_decay]])
        lr = float(self.schedule(t - 1))
        hyper = self.hyper()
        _k.link_update(hyper, params, grads, state, blocks, seg, True, True)
        _k.optimizer_step(self.kind, hyper, lr, t, params, grads, state, scalars, blocks, seg, 1)
        return lr

    def _lr_config(self):
        s = self.schedule
        if type(s).__name__ == "Constant" and not s.warmup:
            return s.lr
        return {"schedule": type(s).__name__, **s.config()}

    def config(self):
        """JSON-able hyperparameters: cls(**config) rebuilds the optimizer (see from_config)."""
        cfg = {"lr": self._lr_config(), **self._config()}
        if self.weight_decay:
            cfg["weight_decay"] = self.weight_decay
        if self.noise is not None:
            cfg["noise"] = self.noise.config()
        return cfg

    def __repr__(self):
        lr = self._lr_config()
        parts = [f"lr={lr if not isinstance(lr, dict) else self.schedule!r}"]
        parts += [f"{k}={v!r}" for k, v in self.config().items() if k != "lr"]
        return f"{type(self).__name__}({', '.join(parts)})"


class SGD(Optimizer):
    """Minibatch SGD with optional momentum (PyTorch's form, Sutskever et al. 2013):
    v = momentum v + g; p -= lr (g + momentum v) if nesterov else lr v."""
    kind = _k.SGD

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, **common):
        super().__init__(lr, **common)
        self.momentum, self.nesterov = _unit(momentum, "momentum"), bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.n_slots = 1 if self.momentum > 0 else 0

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011): s += g^2; p -= lr g / (sqrt(s) + eps)."""
    kind = _k.ADAGRAD
    n_slots = 1

    def __init__(self, lr=0.01, eps=1e-10, **common):
        super().__init__(lr, **common)
        self.eps = _positive(eps, "eps")

    def _hyper(self):
        return {"eps": self.eps}

    def _config(self):
        return {"eps": self.eps}


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012), PyTorch's form: v = rho v + (1-rho) g^2;
    d = sqrt(u + eps) / sqrt(v + eps) g; u = rho u + (1-rho) d^2; p -= lr d."""
    kind = _k.ADADELTA
    n_slots = 2

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, **common):
        super().__init__(lr, **common)
        self.rho, self.eps = _unit(rho, "rho"), _positive(eps, "eps")

    def _hyper(self):
        return {"rho": self.rho, "eps": self.eps}

    def _config(self):
        return {"rho": self.rho, "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), PyTorch's form: v = rho v + (1-rho) g^2;
    den = sqrt(v - a^2) + eps with a = rho a + (1-rho) g when centered, else sqrt(v) + eps;
    p -= lr g / den, or with momentum b = momentum b + g / den, p -= lr b."""
    kind = _k.RMSPROP
    n_slots = 3

    def __init__(self, lr=0.01, rho=0.99, eps=1e-8, momentum=0.0, centered=False, **common):
        super().__init__(lr, **common)
        self.rho, self.eps = _unit(rho, "rho"), _positive(eps, "eps")
        self.momentum, self.centered = _unit(momentum, "momentum"), bool(centered)

    def _hyper(self):
        return {"rho": self.rho, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}

    def _config(self):
        return {"rho": self.rho, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's form: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps). amsgrad=True (Reddi et al.
    2018) uses v_max = max(v_max, v) in the denominator."""
    kind = _k.ADAM
    variant = _k.V_ADAM

    def __init__(self, lr=0.001, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, **common):
        super().__init__(lr, **common)
        self.b1, self.b2, self.eps = _unit(b1, "b1"), _unit(b2, "b2"), _positive(eps, "eps")
        self.amsgrad = bool(amsgrad)
        if self.amsgrad:
            self.variant = _k.V_AMSGRAD
        self.n_slots = 3 if self.amsgrad else 2

    def _hyper(self):
        return {"b1": self.b1, "b2": self.b2, "eps": self.eps, "variant": self.variant}

    def _config(self):
        cfg = {"b1": self.b1, "b2": self.b2, "eps": self.eps}
        if type(self) is Adam:
            cfg["amsgrad"] = self.amsgrad
        return cfg


class Adamax(Adam):
    """AdaMax (Kingma & Ba 2015, sec. 7), PyTorch's form: m = b1 m + (1-b1) g,
    u = max(b2 u, |g| + eps), p -= lr / (1 - b1^t) m / u."""
    variant = _k.V_ADAMAX

    def __init__(self, lr=0.002, b1=0.9, b2=0.999, eps=1e-8, **common):
        super().__init__(lr, b1, b2, eps, **common)


class Nadam(Adam):
    """Nadam (Dozat 2016), PyTorch's NAdam: mu_t = b1 (1 - 0.5 * 0.96^(t psi)),
    p -= lr (1-mu_t)/(1-prod_{i<=t} mu_i) g/den + lr mu_{t+1}/(1-prod_{i<=t+1} mu_i) m/den,
    den = sqrt(v / (1 - b2^t)) + eps; psi = momentum_decay."""
    variant = _k.V_NADAM

    def __init__(self, lr=0.002, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=0.004, **common):
        super().__init__(lr, b1, b2, eps, **common)
        self.momentum_decay = _positive(momentum_decay, "momentum_decay")

    def _hyper(self):
        return dict(super()._hyper(), momentum_decay=self.momentum_decay)

    def _config(self):
        return dict(super()._config(), momentum_decay=self.momentum_decay)


class Lion(Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"):
    c = b1 m + (1-b1) g; p -= lr sign(c); m = b2 m + (1-b2) g. Its updates have unit
    size per entry, so it wants a learning rate 3-10x smaller than AdamW's; decoupled
    weight decay (weight_decay=) as in the paper."""
    kind = _k.LION
    n_slots = 1

    def __init__(self, lr=1e-4, b1=0.9, b2=0.99, **common):
        super().__init__(lr, **common)
        self.b1, self.b2 = _unit(b1, "b1"), _unit(b2, "b2")

    def _hyper(self):
        return {"b1": self.b1, "b2": self.b2}

    def _config(self):
        return {"b1": self.b1, "b2": self.b2}


OPTIMIZERS = {c.__name__: c for c in (SGD, Adagrad, Adadelta, RMSprop, Adam, Adamax, Nadam,
                                      Lion)}


def optimizer_from_config(name, config):
    """Rebuild an optimizer from its class name and config() (e.g. after loading a model)."""
    cfg = dict(config)
    lr = cfg.pop("lr")
    if isinstance(lr, dict):
        lr = dict(lr)
        lr = SCHEDULES[lr.pop("schedule")](**lr)
    if "noise" in cfg:
        cfg["noise"] = GradientNoise(**cfg["noise"])
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}") from None
    return cls(lr, **cfg)


def get_optimizer(optimizer):
    """An Optimizer from an instance (returned as is) or a Keras name: "sgd", "adam",
    "rmsprop", "adagrad", "adadelta", "adamax", "nadam" or "lion" (any case; the class
    name such as "Adam" works too). A name gives that class with fastmlp's defaults
    (PyTorch's: Adam lr 1e-3, RMSprop lr 1e-2 and rho 0.99, ...), a fresh optimizer
    with fresh state; pass an instance, e.g. fm.RMSprop(lr=1e-3, rho=0.9), for others.
    ValueError listing the names otherwise."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    names = {name.lower(): cls for name, cls in OPTIMIZERS.items()}
    if isinstance(optimizer, str) and optimizer.lower() in names:
        return names[optimizer.lower()]()
    raise ValueError(f"optimizer must be a fastmlp optimizer such as fm.SGD(lr=0.01) or one of "
                     f"the names {sorted(names)}, got {optimizer!r}")
