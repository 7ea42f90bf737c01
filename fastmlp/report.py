"""The DD2424-style run report: a "Model parameters" block, then accuracy before and
after training and the final cost for each data split, as markdown text."""
from .layers import Activation, BatchNorm, Dense


def _fmt(value):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _activation_name(layer):
    if isinstance(layer, Activation):
        return type(layer).__name__
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return act if isinstance(act, str) else type(act).__name__


def hidden_widths(model):
    """Units of every Dense layer but the output one, e.g. [50, 50]."""
    dense = [layer.units for layer in model.layers if isinstance(layer, Dense)]
    return dense[:-1]


def batchnorm_placement(model):
    """["before activation" | "after activation" | "on the input" | "other"] per BatchNorm layer."""
    out = []
    layers = model.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, BatchNorm):
            continue
        prev = layers[i - 1] if i > 0 else None
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if getattr(layer, "activation", None) is not None:
            out.append("before activation")
        elif prev is not None and _activation_name(prev) is not None:
            out.append("after activation")
        elif nxt is not None and isinstance(nxt, Activation):
            out.append("before activation")
        elif prev is None:
            out.append("on the input")
        else:
            out.append("other")
    return out


def _initialisation(model):
    parts = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            init = layer.init if layer.sigma is None else f"{layer.init}(sigma={layer.sigma:g})"
            parts.append(f"layer {i} Dense({layer.units}): {init}")
    return "; ".join(parts) or "n/a"


def _layers_named(model, word):
    """Config of layers whose class name contains `word` (e.g. Dropout, Noise), or "none"."""
    found = [f"layer {i} {layer!r}" for i, layer in enumerate(model.layers)
             if word.lower() in type(layer).__name__.lower()]
    return "; ".join(found) or "none"


def parameters_block(model, history=None):
    """[(name, value text)] of the "Model parameters" block for a built model."""
    params = history.params if history is not None else {}
    bn = batchnorm_placement(model)
    if bn:
        kinds = sorted(set(bn))
        bn_text = f"yes, {' / '.join(kinds)} ({len(bn)} layer{'s' if len(bn) > 1 else ''})"
    else:
        bn_text = "no"
    opt = model.optimizer
    schedule = getattr(opt, "schedule", None)
    acts = sorted({a for a in map(_activation_name, model.layers) if a})
    rows = [
        ("hidden layers", ", ".join(map(str, hidden_widths(model))) or "none (linear model)"),
        ("activation", ", ".join(acts) or "none"),
        ("batch norm", bn_text),
        ("lambda (l2)", _fmt(float(model.l2))),
        ("optimizer", repr(opt) if opt is not None else params.get("optimizer", "n/a (not trained)")),
        ("learning-rate schedule", repr(schedule) if schedule is not None else "n/a"),
        ("batch size", _fmt(params.get("batch_size"))),
        ("epochs", f"{_fmt(params.get('epochs'))} in the last fit, {model.epochs_done} in total"),
        ("updates", _fmt(model.step)),
        ("shuffle", _fmt(params.get("shuffle"))),
        ("seed", _fmt(params.get("seed", model.seed))),
        ("initialisation", _initialisation(model)),
        ("dropout", _layers_named(model, "Dropout")),
        ("noise", _layers_named(model, "Noise")),
        ("trainable parameters", f"{model.count_params():,}"),
    ]
    return rows


def final_cost_line(split, n, metrics):
    """The report's one final-cost line: the trained model's cost on the first split given
    (training data when given), from model.evaluate's metrics {"loss", "cost", ...}."""
    penalty = metrics["cost"] - metrics["loss"]
    return (f"Final cost: {metrics['cost']:.4f} = mean loss over the {n} {split} samples "
            f"after training, in evaluation mode ({metrics['loss']:.4f}), + the L2/L1 penalty "
            f"on the weights ({penalty:.4f})")


def report(model, train=None, val=None, test=None, history=None, print_fn=print):
    """Markdown report of a trained model; printed with print_fn (None: not printed).

    model: a built Sequential. train/val/test: (X (n, n_features), y (n,) or
    (n, n_classes)) pairs, each optional. history: the History of the fit
    (default model.history): its params give batch size, epochs and seed, its
    `initial` the accuracy before training ("accuracy" for train, "val_accuracy"
    for val; test has none: "n/a"). Accuracy after training, loss and cost come
    from model.evaluate. One final-cost line follows the table: the cost of the first
    split given (see final_cost_line), or without data the last epoch's cost of history.
    Returns the text.
    """
    model._require_built()
    history = model.history if history is None else history
    rows = parameters_block(model, history)
    width = max(len(name) for name, _ in rows)
    lines = ["## Model parameters", ""]
    lines += [f"- {name + ':':<{width + 1}} {value}" for name, value in rows]
    initial = history.initial if history is not None else {}
    splits = [("train", train, "accuracy"), ("val", val, "val_accuracy"), ("test", test, None)]
    results = []
    for name, data, key in splits:
        if data is None:
            continue
        X, y = data
        m = model.evaluate(X, y)
        before = initial.get(key) if key else None
        results.append((name, len(X), before, m))
    if results:
        lines += ["", "## Results", "",
                  "| split | samples | accuracy untrained | accuracy trained | loss | cost |",
                  "|---|---|---|---|---|---|"]
        for name, n, before, m in results:
            b = "n/a" if before is None else f"{100 * before:.2f}%"
            lines.append(f"| {name} | {n} | {b} | {100 * m['accuracy']:.2f}% "
                         f"| {m['loss']:.4f} | {m['cost']:.4f} |")
        name, n, _, m = results[0]
        lines += ["", final_cost_line(name, n, m)]
    elif history is not None and history.history.get("cost"):
        lines += ["", f"Final cost: {history.history['cost'][-1]:.4f} = the last epoch's mean "
                      "minibatch loss (training mode) + the L2/L1 penalty at its end (no data "
                      "given to evaluate)"]
    text = "\n".join(lines) + "\n"
    if print_fn is not None:
        print_fn(text)
    return text
