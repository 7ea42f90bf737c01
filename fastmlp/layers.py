"""Layer specifications. They hold hyperparameters only; the model compiles them
into a plan (fastmlp/plan.py) and owns all arrays."""
import numpy as np

from . import _validation as V
from .initializers import get_initializer
from .kernels import activations as _act
from ._config import BN_EPS, BN_MOMENTUM


class Layer:
    """Base class: a layer maps (n, n_in) -> (n, output_dim(n_in))."""
    name = "layer"

    def output_dim(self, n_in):
        return n_in

    def param_shapes(self, n_in):
        """[(name, shape)] of trainable arrays, in get_weights order."""
        return []

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def config(self):
        return {}

    #: width of the model's input declared on this layer (Keras's input_shape /
    #: input_dim on the first layer), or None
    input_dim = None

    def _declare_input(self, input_shape, input_dim):
        """Set input_dim from Keras's input_shape=(n_features,) or input_dim=n_features."""
        if input_shape is not None:
            shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
            if len(shape) != 1:
                raise ValueError(f"input_shape must be (n_features,): fastmlp takes flat rows, "
                                 f"got {input_shape!r}; flatten images first, e.g. "
                                 f"X.reshape(len(X), -1), and pass input_shape=({_prod(shape)},)")
            if input_dim is not None and input_dim != shape[0]:
                raise ValueError(f"input_shape={input_shape!r} and input_dim={input_dim!r} "
                                 "disagree")
            input_dim = shape[0]
        if input_dim is not None:
            if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) \
                    or input_dim < 1:
                raise ValueError(f"input_dim (the number of input features) must be a positive "
                                 f"integer, got {input_dim!r}")
            self.input_dim = int(input_dim)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d if isinstance(d, int) else 1
    return out


class Dense(Layer):
    """Fully connected layer Z = X @ W + b, W of shape (n_in, units).

    init: "he_normal" (default), "he_uniform", "glorot_normal", "glorot_uniform",
    "normal" with `sigma` (standard deviation) or "uniform" with `limit` (U(-limit,
    limit)); biases start at the constant `bias` (default 0). `activation` fuses an
    activation ("relu", "sigmoid", "tanh", "linear", "leaky_relu", or a layer such as
    LeakyReLU(0.1)) like a following activation layer would; "softmax" (last layer
    only) makes it the output: the model stores it as Dense(units) then Softmax().
    l2 / l1 override fit's penalties for this layer's W (None: use fit's).
    input_shape=(n_features,) or input_dim=n_features (first layer only, as in Keras)
    declares the input width: the model can then be built, summarised and compiled
    before fit, which checks X against it.
    """
    name = "dense"

    def __init__(self, units, activation=None, init="he_normal", sigma=None, l2=None, l1=None,
                 limit=None, bias=0.0, input_shape=None, input_dim=None):
        units = V.check_count(units, "Dense units", 1)
        if units > V.MAX_WIDTH:
            raise ValueError(f"Dense units must be <= {V.MAX_WIDTH}, got {units}")
        get_initializer(init)
        if init == "normal" and sigma is None:
            raise ValueError(f"Dense(init='normal') needs sigma > 0, got sigma={sigma!r}")
        if init == "uniform" and limit is None:
            raise ValueError(f"Dense(init='uniform') needs limit > 0, got limit={limit!r}")
        # the initial weights (a few sigma at most) must fit float32
        spread = V.FLOAT32_MAX / 64
        if sigma is not None:
            sigma = V.check_number(sigma, f"Dense(init={init!r}) sigma", 0.0, spread,
                                   above=True)
        if limit is not None:
            limit = V.check_number(limit, f"Dense(init={init!r}) limit", 0.0, V.FLOAT32_MAX,
                                   above=True)
        if init == "uniform":
            sigma = limit  # the spread parameter the initialiser reads
        bias = V.check_number(bias, "Dense bias (the initial value)")
        self.limit, self.bias = limit, bias
        self.units = int(units)
        self.activation = activation
        if activation is not None and activation != "softmax":
            activation_from_name(activation)
        self._declare_input(input_shape, input_dim)
        self.init = init
        self.sigma = sigma
        for name, value in (("l2", l2), ("l1", l1)):
            if value is not None:
                V.check_number(value, f"Dense {name}", 0.0)
        self.l2, self.l1 = l2, l1  # None: use fit's value
    def output_dim(self, n_in):
        return self.units

    def param_shapes(self, n_in):
        return [("W", (n_in, self.units)), ("b", (self.units,))]

    def config(self):
        cfg = {"units": self.units}
        if self.activation is not None:
            cfg["activation"] = self.activation
        if self.init != "he_normal":
            cfg["init"] = self.init
        if self.limit is not None:
            cfg["limit"] = self.limit
        elif self.sigma is not None:
            cfg["sigma"] = self.sigma
        if self.bias:
            cfg["bias"] = self.bias
        for name in ("l2", "l1"):
            if getattr(self, name) is not None:
                cfg[name] = getattr(self, name)
        if self.input_dim is not None:
            cfg["input_dim"] = self.input_dim
        return cfg


class BatchNorm(Layer):
    """Batch normalisation over features (Ioffe & Szegedy 2015).

    Training: batch mean and biased variance; evaluation: running averages
    updated as run = momentum * run + (1 - momentum) * batch. Trainable
    gamma (init 1) and beta (init 0). input_shape / input_dim: as for Dense, when
    this is the first layer (normalising the inputs).
    """
    name = "batchnorm"

    def __init__(self, momentum=BN_MOMENTUM, eps=BN_EPS, input_shape=None, input_dim=None):
        if not 0.0 <= V.check_number(momentum, "BatchNorm momentum", 0.0) < 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1), got {momentum!r}")
        V.check_number(eps, "BatchNorm eps", 0.0, above=True)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._declare_input(input_shape, input_dim)

    def param_shapes(self, n_in):
        return [("gamma", (n_in,)), ("beta", (n_in,))]

    def config(self):
        cfg = {"momentum": self.momentum, "eps": self.eps}
        if self.input_dim is not None:
            cfg["input_dim"] = self.input_dim
        return cfg


BatchNormalization = BatchNorm


class Activation(Layer):
    """Element-wise activation layer."""
    code = _act.LINEAR
    alpha = 0.0


class ReLU(Activation):
    name = "relu"
    code = _act.RELU


class Sigmoid(Activation):
    name = "sigmoid"
    code = _act.SIGMOID


class Tanh(Activation):
    name = "tanh"
    code = _act.TANH


class Linear(Activation):
    name = "linear"
    code = _act.LINEAR


class LeakyReLU(Activation):
    """max(x, alpha x) with a small slope alpha for negative inputs."""
    name = "leaky_relu"
    code = _act.LEAKY_RELU

    def __init__(self, alpha=0.01):
        V.check_number(alpha, "LeakyReLU alpha", 0.0, above=True)
        self.alpha = float(alpha)

    def config(self):
        return {"alpha": self.alpha}


class Softmax(Layer):
    """Softmax output; trained with cross-entropy (fused with its gradient)."""
    name = "softmax"


_ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "linear": Linear,
                "leaky_relu": LeakyReLU}


def activation_from_name(name):
    """Activation layer instance for a name such as "relu"."""
    if isinstance(name, Activation):
        return name
    if name == "softmax":
        raise ValueError("'softmax' is the output: use it on the last layer, "
                         "Dense(n_classes, activation='softmax'), or end the model with Softmax()")
    try:
        return _ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {name!r}; choose one of "
                         f"{sorted(_ACTIVATIONS)}, or 'softmax' on the last layer") from None


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training each unit is kept with
    probability 1 - rate and scaled by 1 / (1 - rate); identity at evaluation.
    Masks come from a counter-based generator of (seed, update, layer, row, column),
    so a run reproduces on any thread count."""
    name = "dropout"

    def __init__(self, rate=0.5):
        if not (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                and 0.0 <= rate < 1.0):
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)

    def config(self):
        return {"rate": self.rate}


class Residual(Layer):
    """x + f(x) for a stack f of layers (He et al. 2016), e.g. the S4 blocks
    Residual([Dense(512), BatchNorm(), ReLU(), Dense(512), BatchNorm(), ReLU()]).
    f must keep the width of its input; the model says so at build time otherwise."""
    name = "residual"

    def __init__(self, layers):
        if not isinstance(layers, (list, tuple)):
            raise TypeError(f"Residual layers must be a list of layers, got {layers!r}")
        built = []
        for layer in layers:
            if isinstance(layer, (list, tuple)) and len(layer) == 2 and isinstance(layer[0], str):
                layer = layer_from_config(*layer)  # [class name, config] as saved
            if not isinstance(layer, Layer) or isinstance(layer, Softmax):
                raise ValueError(f"Residual takes hidden layers, got {layer!r}")
            built.append(layer)
        if not built:
            raise ValueError("Residual needs at least one layer")
        self.layers = built

    def output_dim(self, n_in):
        return n_in

    def config(self):
        return {"layers": [[type(l).__name__, l.config()] for l in self.layers]}


LAYERS = {c.__name__: c for c in (Dense, BatchNorm, ReLU, Sigmoid, Tanh, Linear, LeakyReLU,
                                   Softmax, Dropout, Residual)}


def layer_from_config(name, config):
    """Rebuild a layer from its class name and config()."""
    try:
        cls = LAYERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer {name!r}; known: {sorted(LAYERS)}") from None
    return cls(**config)


def output_head(layer):
    """[Dense(units, same config), Softmax()] for a Dense(..., activation="softmax"),
    else [layer]: how the model stores Keras's softmax output layer."""
    if isinstance(layer, Dense) and layer.activation == "softmax":
        cfg = layer.config()
        del cfg["activation"]
        return [Dense(**cfg), Softmax()]
    return [layer]
