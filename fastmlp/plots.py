"""Figures for training runs: learning curves, run comparisons, per-update curves,
activation distributions and hyperparameter searches.

Headless-safe: every function builds a `matplotlib.figure.Figure` directly (no
pyplot global state, no window), returns it, and saves a PNG when `path` is given.
"""
import os
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .kernels import activations as _act
from .layers import Activation, activation_from_name

_LABELS = {"loss": "cross-entropy loss", "cost": "cost (loss + L2 term)", "accuracy": "accuracy",
           "lr": "learning rate"}


def _label(key):
    """Axis label of a history key: "val_accuracy" -> "validation accuracy"."""
    if key.startswith("val_"):
        return "validation " + _LABELS.get(key[4:], key[4:])
    return _LABELS.get(key, key)


# colours of matplotlib's default cycle; runs past the 10th also get a marker and, with one
# metric per figure, a line style of their own, so that no two runs look the same
_MARKERS = [None, "o", "s", "^", "D", "v", "P", "X"]
_RUN_STYLES = ["-", "--", "-.", ":"]
_METRIC_STYLES = ["-", "--", ":", "-."]


def run_style(r, n_metrics=1):
    """Style keywords of run r (0, 1, ...) in plot_runs: colour C{r % 10}; from the 11th
    run on a marker per group of 10 and, when one metric is drawn (line style free), a
    line style per group. Distinct for the first 80 runs."""
    group = r // 10
    style = {"color": f"C{r % 10}"}
    marker = _MARKERS[group % len(_MARKERS)]
    if marker:
        style.update(marker=marker, markersize=4, markevery=0.2)
    if n_metrics == 1:
        style["linestyle"] = _RUN_STYLES[group % len(_RUN_STYLES)]
    return style


def wrap_title(text, width_in, fontsize=10.0):
    """text with each line wrapped to fit width_in inches of a figure at fontsize points
    (an average glyph is about 0.55 fontsize wide). Use for titles and suptitles, whose
    text matplotlib does not wrap (a long one is cut at the figure's edge)."""
    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) if line else line
                     for line in str(text).split("\n"))


def _points(size):
    """A matplotlib font size (points or a name such as "medium") in points."""
    from matplotlib.font_manager import FontProperties
    return FontProperties(size=size).get_size_in_points()


def set_title(ax, text, fontsize="large"):
    """ax.set_title with the text wrapped to the width of ax (see wrap_title)."""
    width = ax.get_position().width * ax.figure.get_figwidth()
    return ax.set_title(wrap_title(text, width, _points(fontsize)), fontsize=fontsize)


def set_suptitle(fig, text, fontsize="large"):
    """fig.suptitle with the text wrapped to the figure's width (see wrap_title)."""
    return fig.suptitle(wrap_title(text, 0.95 * fig.get_figwidth(), _points(fontsize)),
                        fontsize=fontsize)


def _finish(fig, path, dpi=110):
    """Tight layout, optional PNG save (parent folders created); returns fig."""
    fig.tight_layout()
    if path is not None:
        folder = os.path.dirname(os.fspath(path))
        if folder:
            os.makedirs(folder, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


def _parts(history):
    """(per-epoch dict, initial dict, epoch x positions) of a History or a plain dict."""
    if isinstance(history, dict):
        per_epoch = history
        n = max((len(v) for v in per_epoch.values()), default=0)
        return per_epoch, {}, np.arange(1, n + 1)
    per_epoch, initial = history.history, history.initial
    epochs = np.asarray(history.epoch, dtype=float) + 1
    return per_epoch, initial, epochs


def _curve(history, key):
    """(x, y) of one metric: epoch e ends at x = e + 1; history.initial sits at the
    x where the fit started (0 for a first fit). None when the metric is absent."""
    per_epoch, initial, epochs = _parts(history)
    values = list(per_epoch.get(key, []))
    x = list(epochs[:len(values)])
    if key in initial:
        start = x[0] - 1 if x else 0.0
        x, values = [start] + x, [initial[key]] + values
    if not values:
        return None
    return np.asarray(x, dtype=float), np.asarray(values, dtype=float)


def plot_history(history, metrics=("loss", "cost", "accuracy"), path=None, title=None):
    """Learning curves: one subplot per metric present, training vs validation.

    history: a History from fit (or its `.history` dict of per-epoch lists).
    x = epochs completed; `history.initial` (before training) is drawn at the
    epoch the fit started from. Returns the Figure; saves a PNG at `path`.
    """
    present = [m for m in metrics if _curve(history, m) or _curve(history, "val_" + m)]
    if not present:
        raise ValueError(f"the history has none of the metrics {list(metrics)}")
    same_cost = "loss" in present and "cost" in present and _same_curves(history, "loss", "cost")
    if same_cost:          # no penalty (l2 = l1 = 0): the cost panel would repeat the loss
        present.remove("cost")
    fig = Figure(figsize=(4.2 * len(present), 3.6))
    for k, metric in enumerate(present):
        ax = fig.add_subplot(1, len(present), k + 1)
        for key, label, style in ((metric, "training", "-o"), ("val_" + metric, "validation", "--s")):
            curve = _curve(history, key)
            if curve is not None:
                ax.plot(*curve, style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(_label(metric))
        set_title(ax, "loss (= cost: no L2/L1 penalty)" if metric == "loss" and same_cost
                  else metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        set_suptitle(fig, title)
    return _finish(fig, path)


def _same_curves(history, a, b):
    """True when metrics a and b have equal training and validation curves (both absent
    counts as equal), e.g. loss and cost of a fit without a penalty."""
    for prefix in ("", "val_"):
        ca, cb = _curve(history, prefix + a), _curve(history, prefix + b)
        if (ca is None) != (cb is None):
            return False
        if ca is not None and not (np.array_equal(ca[0], cb[0])
                                   and np.allclose(ca[1], cb[1], rtol=1e-6, atol=0)):
            return False
    return True


def plot_runs(histories, metric="val_accuracy", path=None, title=None):
    """Several runs on one figure, e.g. BN vs no BN, or every optimizer.

    histories: {label: History}. metric: a key of History.history, or a list of
    keys (e.g. ["accuracy", "val_accuracy"]): one line style per metric, and each
    run its own look (run_style: a colour, and from the 11th run on a marker and,
    with one metric, a line style). Returns the Figure; saves a PNG at `path`.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    if not histories:
        raise ValueError("plot_runs needs at least one run")
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for r, (label, history) in enumerate(histories.items()):
        style = run_style(r, len(metrics))
        for m, key in enumerate(metrics):
            curve = _curve(history, key)
            if curve is None:
                continue
            name = label if len(metrics) == 1 else f"{label} ({key})"
            ax.plot(*curve, **dict({"linestyle": _METRIC_STYLES[m % len(_METRIC_STYLES)]},
                                   **style), label=name)
            drawn += 1
    if not drawn:
        raise ValueError(f"no run has the metric(s) {metrics}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(" / ".join(_label(m) for m in metrics))
    set_title(ax, title or f"{' and '.join(_label(m) for m in metrics)} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, path)


def plot_steps(history, key="loss", path=None, smooth=None, log_y=False, title=None):
    """Per-update curve of history.steps[key] ("loss", "accuracy" or "lr").

    x = update number (1..n_updates of the fit). smooth: a moving-average window
    (updates) drawn over the raw curve, e.g. 50 for the noisy minibatch loss.
    Returns the Figure; saves a PNG at `path`.
    """
    steps = history.steps if hasattr(history, "steps") else history
    values = np.asarray(steps.get(key, []), dtype=float)
    if values.size == 0:
        raise ValueError(f"the history has no per-update {key!r} values")
    x = np.arange(1, values.size + 1)
    fig = Figure(figsize=(7.5, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(x, values, lw=0.8, alpha=0.5 if smooth else 1.0, label=key)
    if smooth and smooth > 1 and values.size >= smooth:
        kernel = np.ones(int(smooth)) / int(smooth)
        ax.plot(x[int(smooth) - 1:], np.convolve(values, kernel, mode="valid"), lw=1.6,
                label=f"{key}, moving average of {int(smooth)}")
        ax.legend()
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("update (minibatch step)")
    ax.set_ylabel(_label(key))
    set_title(ax, title or f"{_label(key)} per update")
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def _activation_of(layer):
    """The activation a layer applies (Activation layer or Dense/BN(activation=...)), else None."""
    if isinstance(layer, Activation):
        return layer
    name = getattr(layer, "activation", None)
    return activation_from_name(name) if name is not None else None


def dead_unit_fraction(model, X, training=False):
    """{layer index: fraction of dead units} for every ReLU output of `model`.

    X (n, n_features). A unit is dead for this batch when its output is 0 for
    every row. training=True uses batch statistics in BatchNorm.
    """
    outputs = model.layer_outputs(X, training=training)
    out = {}
    for i, values in outputs.items():
        act = _activation_of(model.layers[i])
        if act is not None and act.code == _act.RELU:
            out[i] = float(np.mean(np.all(values == 0, axis=0)))
    return out


def _layer_name(layer):
    act = _activation_of(layer)
    base = type(layer).__name__
    return base if act is None or act is layer else f"{base}+{type(act).__name__}"


def plot_activations(model, X, path=None, kind="violin", which="activations", training=False,
                     max_values=5_000, seed=0, title=None):
    """Distribution of each hidden layer's outputs for X (n, n_features).

    kind: "violin" or "box". which: "activations" (outputs of activation
    functions, fused or not) or "all" (every stored layer output). Each label
    gives the layer index, its type, width and, for ReLU layers, the fraction
    of dead units (output 0 for every row, counted on all of X). At most
    `max_values` values per layer are drawn (seeded subsample): a violin's density
    estimate costs values x 100 evaluations, and 5,000 values give the same shape
    as all of them. Returns the Figure; saves a PNG at `path`.
    """
    if kind not in ("violin", "box"):
        raise ValueError(f"kind must be 'violin' or 'box', got {kind!r}")
    outputs = model.layer_outputs(X, training=training)
    keys = sorted(outputs)
    if which == "activations":
        keys = [i for i in keys if _activation_of(model.layers[i]) is not None] or keys
    elif which != "all":
        raise ValueError(f"which must be 'activations' or 'all', got {which!r}")
    dead = dead_unit_fraction(model, X, training=training)
    rng = np.random.default_rng(seed)
    data, labels = [], []
    for i in keys:
        values = outputs[i].ravel().astype(np.float64)
        if values.size > max_values:
            values = rng.choice(values, max_values, replace=False)
        data.append(values)
        label = f"layer {i}\n{_layer_name(model.layers[i])}\n{outputs[i].shape[1]} units"
        if i in dead:
            label += f"\ndead {dead[i]:.0%}"
        labels.append(label)
    fig = Figure(figsize=(max(5.0, 1.5 * len(data) + 1.5), 4.6))
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(1, len(data) + 1)
    if kind == "box":
        ax.boxplot(data, positions=positions, showfliers=False)
    else:
        constant = False
        for p, values in zip(positions, data):
            if np.ptp(values) > 0:
                parts = ax.violinplot([values], positions=[p], showmedians=True, widths=0.8)
                for body in parts["bodies"]:
                    body.set_facecolor("C0")
                for name in ("cbars", "cmins", "cmaxes", "cmedians"):
                    parts[name].set_color("C0")
            else:  # a constant layer (e.g. all units dead) has no density to draw
                ax.hlines(values[0], p - 0.35, p + 0.35, colors="C3", lw=3,
                          label="constant output" if not constant else None)
                constant = True
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, fontsize="small")
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("activation value")
    head = title or f"Activation distribution per layer ({len(X)} samples)"
    if dead:
        mean_dead = float(np.mean(list(dead.values())))
        head += (f"\ndead ReLU units (0 for every sample): {mean_dead:.0%} on average, "
                 f"per layer in the labels")
    set_title(ax, head, fontsize="medium")
    ax.grid(alpha=0.3, axis="y")
    if kind == "violin" and constant:
        ax.legend(loc="upper right", fontsize="small")
    return _finish(fig, path)


def plot_metric_vs_param(values, metrics, xlabel, log_x=False, path=None, ylabel="accuracy",
                         title=None, mark_best=True):
    """Search results: each metric (e.g. train/val/test accuracy) against a parameter.

    values: the parameter values (m,), e.g. the lambdas tried. metrics: {label:
    list of m numbers}. log_x: log-scale x (lambda grids). mark_best: circle the
    maximum of each curve. Returns the Figure; saves a PNG at `path`.
    """
    x = np.asarray(values, dtype=float)
    if not metrics:
        raise ValueError("plot_metric_vs_param needs at least one metric")
    order = np.argsort(x)
    fig = Figure(figsize=(7.0, 4.3))
    ax = fig.add_subplot(1, 1, 1)
    for k, (label, ys) in enumerate(metrics.items()):
        y = np.asarray(ys, dtype=float)
        if y.shape != x.shape:
            raise ValueError(f"metric {label!r} has {y.size} values for {x.size} parameter values")
        ax.plot(x[order], y[order], "-o", color=f"C{k % 10}", markersize=4, label=label)
        if mark_best and np.any(np.isfinite(y)):
            b = int(np.nanargmax(y))
            ax.plot(x[b], y[b], "o", ms=11, mfc="none", color=f"C{k % 10}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_title(ax, title or f"{ylabel} vs {xlabel}")
    ax.grid(alpha=0.3, which="both" if log_x else "major")
    ax.legend()
    return _finish(fig, path)
