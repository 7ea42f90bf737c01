"""Plain-numpy reference MLP: forward, loss, backward and optimizer updates.

Written for clarity, not speed. It is the test oracle for the fast library and
the benchmark's "plain numpy" baseline.

A network is a ``spec``: a list of layer tuples, in order, e.g.
    [("dense", 50), ("bn",), ("relu",), ("dense", 10), ("softmax",)]
Kinds: ("dense", n_units), ("bn",), ("relu",), ("softmax",) (must be last;
softmax output with mean cross-entropy loss).

``weights`` is a flat list of arrays in layer order: each dense layer gives
W (n_in, n_out) then b (n_out,); each bn layer gives gamma (d,) then beta (d,).
Shapes below: n = rows in the batch, d = features of the current layer.
"""
import numpy as np

BN_EPS = 1e-5
BN_MOMENTUM = 0.9


def _check_spec(spec):
    """Validate the spec: known kinds, exactly one softmax, and it is last."""
    for i, layer in enumerate(spec):
        if layer[0] not in ("dense", "bn", "relu", "softmax"):
            raise ValueError(f"unknown layer kind {layer[0]!r}")
        if layer[0] == "softmax" and i != len(spec) - 1:
            raise ValueError("softmax must be the last layer")
    if not spec or spec[-1][0] != "softmax":
        raise ValueError("the last layer must be ('softmax',)")


def init_weights(spec, n_features, rng, dtype=np.float64):
    """He-normal initialisation.

    Dense: W (n_in, n_out) ~ N(0, sqrt(2 / n_in)), b (n_out,) = 0.
    BN: gamma (d,) = 1, beta (d,) = 0.  ``rng`` is a numpy Generator.
    Returns the list of arrays in layer order, all of ``dtype``.
    """
    _check_spec(spec)
    weights, d = [], n_features
    for layer in spec:
        if layer[0] == "dense":
            n_out = layer[1]
            W = rng.normal(0.0, np.sqrt(2.0 / d), size=(d, n_out))
            weights += [W.astype(dtype), np.zeros(n_out, dtype=dtype)]
            d = n_out
        elif layer[0] == "bn":
            weights += [np.ones(d, dtype=dtype), np.zeros(d, dtype=dtype)]
    return weights


def init_bn_state(spec, n_features, dtype=np.float64):
    """Running statistics for evaluation mode: one (running_mean (d,),
    running_var (d,)) tuple per bn layer, in order; mean 0 and var 1."""
    state, d = [], n_features
    for layer in spec:
        if layer[0] == "dense":
            d = layer[1]
        elif layer[0] == "bn":
            state.append((np.zeros(d, dtype=dtype), np.ones(d, dtype=dtype)))
    return state


def softmax(Z):
    """Row-wise softmax of logits Z (n, k), stable (row max subtracted)."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def cross_entropy_from_logits(Z, y):
    """Mean cross-entropy -mean(log softmax(Z)[i, y_i]) for logits Z (n, k)
    and integer labels y (n,), via a stable log-sum-exp."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def forward(spec, weights, X, training=True, bn_state=None, update_bn_state=False):
    """Forward pass of X (n, n_features).

    training=True: BN uses the batch mean and biased batch variance; if
    update_bn_state, each bn_state entry is updated in place with
        running = BN_MOMENTUM * running + (1 - BN_MOMENTUM) * batch_stat.
    training=False: BN uses bn_state's running statistics (required).
    Returns (probs (n, k), cache); cache is a list with one entry per layer
    holding what ``backward`` needs (the logits are in cache[-1][1]).
    """
    _check_spec(spec)
    if not training and bn_state is None and any(l[0] == "bn" for l in spec):
        raise ValueError("evaluation mode with bn layers needs bn_state")
    A, cache, w_i, bn_i = X, [], 0, 0
    for layer in spec:
        kind = layer[0]
        if kind == "dense":
            W, b = weights[w_i], weights[w_i + 1]
            w_i += 2
            cache.append(("dense", A))          # input needed for dW
            A = A @ W + b
        elif kind == "bn":
            gamma, beta = weights[w_i], weights[w_i + 1]
            w_i += 2
            if training:
                mu = A.mean(axis=0)
                var = ((A - mu) ** 2).mean(axis=0)   # biased: divide by n
                if update_bn_state:
                    run_mean, run_var = bn_state[bn_i]
                    run_mean *= BN_MOMENTUM
                    run_mean += (1 - BN_MOMENTUM) * mu
                    run_var *= BN_MOMENTUM
                    run_var += (1 - BN_MOMENTUM) * var
            else:
                mu = bn_state[bn_i][0].astype(A.dtype)
                var = bn_state[bn_i][1].astype(A.dtype)
            bn_i += 1
            inv_std = 1 / np.sqrt(var + BN_EPS)
            x_hat = (A - mu) * inv_std
            cache.append(("bn", x_hat, inv_std, training))
            A = gamma * x_hat + beta
        elif kind == "relu":
            cache.append(("relu", A > 0))       # mask of the input
            A = np.maximum(A, 0)
        else:  # softmax (last)
            cache.append(("softmax", A))        # logits
            A = softmax(A)
    return A, cache


def loss_and_accuracy(probs, y, logits=None):
    """Mean cross-entropy and accuracy for probs (n, k), labels y (n,).

    If logits (n, k) are given (cache[-1][1]) the loss is computed from them
    stably; otherwise from log(probs) clipped at the smallest normal number.
    Accuracy = fraction of rows with argmax(probs) == y.
    """
    if logits is not None:
        loss = cross_entropy_from_logits(logits, y)
    else:
        p = probs[np.arange(len(y)), y]
        loss = float(-np.log(np.maximum(p, np.finfo(probs.dtype).tiny)).mean())
    acc = float((probs.argmax(axis=1) == y).mean())
    return loss, acc


def l2_term(spec, weights, l2):
    """l2 * sum over dense layers of sum(W**2) (never b, gamma, beta)."""
    total, w_i = 0.0, 0
    for layer in spec:
        if layer[0] == "dense":
            total += float((weights[w_i] ** 2).sum())
        if layer[0] in ("dense", "bn"):
            w_i += 2
    return l2 * total


def cost(spec, weights, X, y, l2=0.0, training=True, bn_state=None):
    """Cost = mean cross-entropy + l2 * sum_dense sum(W**2), as a float, in
    the given mode (bn_state is not modified)."""
    _, cache = forward(spec, weights, X, training=training, bn_state=bn_state)
    return cross_entropy_from_logits(cache[-1][1], y) + l2_term(spec, weights, l2)


def backward(spec, weights, cache, y, l2=0.0):
    """Gradients of the cost (including 2 * l2 * W for dense W) for the
    forward pass in ``cache`` and labels y (n,).

    Returns a list with the same order and shapes as ``weights``.
    """
    grads = [None] * len(weights)
    w_i = sum(2 for layer in spec if layer[0] in ("dense", "bn"))
    G = None  # gradient wrt the output of the current layer
    for layer, entry in zip(reversed(spec), reversed(cache)):
        kind = layer[0]
        if kind == "softmax":
            Z = entry[1]
            n = Z.shape[0]
            onehot = np.zeros_like(Z)
            onehot[np.arange(n), y] = 1
            G = (softmax(Z) - onehot) / n        # dLoss/dZ for the logits
        elif kind == "relu":
            G = G * entry[1]
        elif kind == "dense":
            w_i -= 2
            A_prev, W = entry[1], weights[w_i]
            grads[w_i] = A_prev.T @ G + 2 * l2 * W
            grads[w_i + 1] = G.sum(axis=0)
            G = G @ W.T
        else:  # bn
            w_i -= 2
            _, x_hat, inv_std, training = entry
            gamma = weights[w_i]
            grads[w_i] = (G * x_hat).sum(axis=0)
            grads[w_i + 1] = G.sum(axis=0)
            G_hat = G * gamma                    # dCost/dx_hat
            if training:
                # mu and var depend on the batch:
                # dZ = inv_std / n * (n*G_hat - sum(G_hat) - x_hat*sum(G_hat*x_hat))
                n = G_hat.shape[0]
                G = inv_std / n * (n * G_hat - G_hat.sum(axis=0)
                                   - x_hat * (G_hat * x_hat).sum(axis=0))
            else:
                G = G_hat * inv_std              # fixed running statistics
    return grads


def sgd_update(weights, grads, lr):
    """In place: w -= lr * g for each (w, g)."""
    for w, g in zip(weights, grads):
        w -= lr * g


def momentum_update(weights, grads, velocity, lr, momentum, nesterov=False):
    """In place, PyTorch form, for each (w, g, v):
        v = momentum * v + g
        step = g + momentum * v  if nesterov  else  v
        w -= lr * step
    """
    for w, g, v in zip(weights, grads, velocity):
        v *= momentum
        v += g
        step = g + momentum * v if nesterov else v
        w -= lr * step


def adam_update(weights, grads, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """In place Adam step; t is the 1-based step count:
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t),  v_hat = v / (1 - b2**t)
        w -= lr * m_hat / (sqrt(v_hat) + eps)
    """
    for w, g, m_i, v_i in zip(weights, grads, m, v):
        m_i *= b1
        m_i += (1 - b1) * g
        v_i *= b2
        v_i += (1 - b2) * g ** 2
        m_hat = m_i / (1 - b1 ** t)
        v_hat = v_i / (1 - b2 ** t)
        w -= lr * m_hat / (np.sqrt(v_hat) + eps)


def train_epoch(spec, weights, X, y, batch_size, lr, l2=0.0, optimizer="sgd",
                opt_state=None, order=None, bn_state=None, momentum=0.9,
                nesterov=False, step=0, dtype=None):
    """One epoch of minibatch training over X[order] (n, n_features), y (n,).

    Batches are consecutive slices of ``batch_size`` rows of the permuted data
    (the last may be smaller). Per batch: training-mode forward (updating
    bn_state's running statistics), backward of the cost, optimizer update.
    Weights, bn_state and opt_state are modified in place.

    optimizer: "sgd", "momentum" (uses momentum, nesterov) or "adam" (default
    betas/eps, t = step + 1 for the update counted from 0).
    opt_state: dict filled on first use: {"velocity": [...]} for momentum,
    {"m": [...], "v": [...]} for adam (arrays like weights, zero-initialised).
    Pass the same dict each epoch to carry the state over; if None a
    throw-away dict is used. Likewise a None bn_state means a throw-away one.
    order: permutation of row indices (default: identity).
    step: number of updates done before this epoch.
    dtype: arithmetic dtype (default: the dtype of weights[0]); X is cast.
    Returns (list of per-batch mean cross-entropy losses, measured in the
    forward pass before each update and without the l2 term, new step count).
    """
    if dtype is None:
        dtype = weights[0].dtype
    n = X.shape[0]
    if order is None:
        order = np.arange(n)
    if opt_state is None:
        opt_state = {}
    if bn_state is None:
        bn_state = init_bn_state(spec, X.shape[1], dtype=dtype)
    if optimizer == "momentum" and "velocity" not in opt_state:
        opt_state["velocity"] = [np.zeros_like(w) for w in weights]
    if optimizer == "adam" and "m" not in opt_state:
        opt_state["m"] = [np.zeros_like(w) for w in weights]
        opt_state["v"] = [np.zeros_like(w) for w in weights]
    if optimizer not in ("sgd", "momentum", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}")

    losses = []
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        Xb, yb = X[idx].astype(dtype, copy=False), y[idx]
        _, cache = forward(spec, weights, Xb, training=True,
                           bn_state=bn_state, update_bn_state=True)
        losses.append(cross_entropy_from_logits(cache[-1][1], yb))
        grads = backward(spec, weights, cache, yb, l2=l2)
        if optimizer == "sgd":
            sgd_update(weights, grads, lr)
        elif optimizer == "momentum":
            momentum_update(weights, grads, opt_state["velocity"], lr,
                            momentum, nesterov=nesterov)
        else:
            adam_update(weights, grads, opt_state["m"], opt_state["v"],
                        step + 1, lr)
        step += 1
    return losses, step
