"""scikit-learn's MLP parameters as a fastmlp network, optimizer and l2 penalty.

The objective. scikit-learn's MLP takes, on each minibatch of b rows, the gradient of

    J = (1/b) sum_i L_i + alpha / (2 b) * sum ||W||^2
    (gradient: (1/b) sum_i dL_i + (alpha / b) W)

where L_i is row i's loss summed over the outputs: cross-entropy (softmax output),
binary cross-entropy per output (logistic output: binary and multilabel), half the
squared error (identity output: regression). fastmlp's heads average over the rows and,
for the per-output losses, over the k outputs too: cross-entropy (1/b) sum, binary
cross-entropy (1/(b k)) sum, mse (1/(b k)) sum (a - t)^2. Their data gradient is
therefore `scale` times scikit-learn's, scale = 1, 1/k and 2/k respectively.

fastmlp's penalty is l2 * sum ||W||^2 (gradient 2 l2 W, weight matrices only, as in
scikit-learn), so

    l2 = scale * alpha / (2 * batch_size)

makes fastmlp's whole gradient exactly `scale` times scikit-learn's, and the optimizer
absorbs the scale: SGD (with or without momentum) takes lr = learning_rate_init / scale,
which gives scikit-learn's updates; Adam and the other adaptive optimizers are
unchanged by a constant gradient scale except for eps, which becomes scale * epsilon.
Two differences remain. scikit-learn divides the penalty by the size of each batch,
so on an epoch's last, smaller batch (when batch_size does not divide the training
rows) its decay is batch_size / last_batch times fastmlp's. scikit-learn's Adam adds
epsilon to sqrt(v) before its bias correction sqrt(1 - beta_2^t), fastmlp's (PyTorch's)
after it: scikit-learn's epsilon acts 1 / sqrt(1 - beta_2^t) times larger (31.6x at the
first update, 1.01x after 4,000), which matters only while sqrt(v) is near epsilon.
With a changing learning rate (learning_rate='invscaling' or 'adaptive'), SGD's
momentum differs too: scikit-learn's velocity holds steps (lr * g), fastmlp's holds
gradients scaled by the current lr.

The initial weights are scikit-learn's: W and b of each layer uniform in +-sqrt(f /
(fan_in + fan_out)), f = 2 for the logistic activation and 6 otherwise, drawn from the
estimator's random_state in scikit-learn's order, so the same random_state starts both
from the same weights.
"""
import numpy as np

import fastmlp as fm

# activation name -> the fastmlp layer class (None: no activation layer)
ACTIVATIONS = {"identity": None, "logistic": fm.Sigmoid, "tanh": fm.Tanh, "relu": fm.ReLU,
               "leaky_relu": fm.LeakyReLU}

# output head -> (fastmlp loss name, scale of its data gradient for k outputs)
HEADS = {"softmax": ("cross_entropy", lambda k: 1.0),
         "logistic": ("binary_cross_entropy", lambda k: 1.0 / k),
         "identity": ("mse", lambda k: 2.0 / k)}

# the loss scikit-learn reports, from fastmlp's mean over rows (and outputs): per head
LOSS_FACTORS = {"softmax": lambda k: 1.0, "logistic": lambda k: float(k),
                "identity": lambda k: 0.5}

# solver name -> fastmlp optimizer class; sgd and adam are scikit-learn's
SOLVERS = {"sgd": fm.SGD, "adam": fm.Adam, "adamax": fm.Adamax, "nadam": fm.Nadam,
           "amsgrad": fm.Adam, "rmsprop": fm.RMSprop, "adagrad": fm.Adagrad,
           "adadelta": fm.Adadelta, "lion": fm.Lion}


def gradient_scale(head, n_outputs):
    """fastmlp's data gradient / scikit-learn's for this head and number of outputs."""
    return HEADS[head][1](n_outputs)


def loss_factor(head, n_outputs):
    """scikit-learn's reported loss / fastmlp's mean loss for this head."""
    return LOSS_FACTORS[head](n_outputs)


def l2_for(alpha, batch_size, scale):
    """fastmlp's l2 giving scikit-learn's alpha: scale * alpha / (2 * batch_size)."""
    return scale * alpha / (2.0 * batch_size)


def build_model(hidden, activation, head, n_features, n_outputs, batch_norm, dropout, dtype,
                rng, seed):
    """An initialised fm.Sequential: per hidden width, Dense [+ BatchNorm] + activation
    [+ Dropout(dropout)]; then Dense(n_outputs) and the head (Softmax, Sigmoid with
    binary cross-entropy, or a linear output with mse). Weights and biases are drawn
    from `rng` (a RandomState) as scikit-learn draws them; `seed` seeds dropout masks."""
    layers = []
    act = ACTIVATIONS[activation]
    for width in hidden:
        layers.append(fm.Dense(width))
        if batch_norm:
            layers.append(fm.BatchNorm())
        if act is not None:
            layers.append(act())
        if dropout:
            layers.append(fm.Dropout(dropout))
    layers.append(fm.Dense(n_outputs))
    loss = HEADS[head][0]
    if head == "softmax":
        layers.append(fm.Softmax())
    elif head == "logistic":
        layers.append(fm.Sigmoid())
    model = fm.Sequential(layers, dtype=dtype, seed=seed, loss=loss)
    model.build(n_features)
    model.set_weights(initial_weights(model, rng, activation))
    return model


def initial_weights(model, rng, activation):
    """get_weights()-ordered arrays: W (fan_in, fan_out) and b (fan_out,) of each Dense
    uniform in +-sqrt(f / (fan_in + fan_out)) (f = 2 for logistic, else 6), drawn W then
    b layer by layer as scikit-learn does; BatchNorm's gamma and beta as they are."""
    factor = 2.0 if activation == "logistic" else 6.0
    weights = model.get_weights()
    bound = None
    for i, e in enumerate(model.plan.entries):
        if e.name == "W":
            bound = np.sqrt(factor / (e.shape[0] + e.shape[1]))
            weights[i] = rng.uniform(-bound, bound, e.shape)
        elif e.name == "b":
            weights[i] = rng.uniform(-bound, bound, e.shape[0])
    return weights


def make_optimizer(solver, learning_rate_init, momentum, nesterovs_momentum, beta_1, beta_2,
                   epsilon, scale):
    """The fastmlp optimizer of `solver`, its lr / eps converted for the gradient scale
    (see the module docstring). Momentum applies to sgd only, beta_1 / beta_2 to the
    Adam family and Lion, epsilon to the optimizers that have an eps."""
    cls = SOLVERS[solver]
    lr = learning_rate_init
    eps = scale * epsilon
    if solver == "sgd":
        return fm.SGD(lr / scale, momentum=momentum,
                      nesterov=bool(nesterovs_momentum) and momentum > 0)
    if solver in ("adam", "amsgrad", "adamax", "nadam"):
        kwargs = {"amsgrad": True} if solver == "amsgrad" else {}
        return cls(lr, b1=beta_1, b2=beta_2, eps=eps, **kwargs)
    if solver == "lion":
        return fm.Lion(lr, b1=beta_1, b2=beta_2)
    return cls(lr, eps=eps)
