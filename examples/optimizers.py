"""The optimizer lab on MNIST with fastmlp.

    python examples/optimizers.py                 # bundled 8,000/2,000 MNIST subset, 20 epochs
    python examples/optimizers.py --data PATH     # full MNIST (IDX files), 50 epochs
    python examples/optimizers.py --smoke         # 1 epoch on 500 images (tests)

Network [784, 100, 30, 10], ReLU hidden units, softmax + cross-entropy, batch 100, pixels
scaled to [0, 1]. One run per technique of the lab (plain SGD with lr 0.05, L2, L1, momentum
+ L2, Nesterov, annealed gradient noise, Adagrad, Adadelta, RMSprop, Adam, AdaMax, Nadam,
AMSGrad, dropout, batch normalisation, augmentation, an extra hidden layer) plus the lab's
starting point: sigmoid outputs trained with MSE on one-hot targets. The last 1,000 (bundled)
or 10,000 (full MNIST) training images are held out for validation. Every run starts from
the same seed.

Writes val_accuracy.png (validation accuracy per epoch, all runs), results.md (final test
accuracy and training time per run) into --out (default out/optimizers).
"""
import argparse
import pathlib
import time

import numpy as np

import fastmlp as fm
from fastmlp import plots
from fastmlp.datasets import load_mnist
from fastmlp.preprocess import one_hot, scale_to_unit

LR = 0.05          # the lab's plain SGD learning rate
L2 = 1e-4          # cost = loss + L2 * sum ||W||^2  (DD2424 convention, see fastmlp README)
L1 = 1e-5          # cost = loss + L1 * sum |W|


def load_data(path=None, smoke=False):
    """(X, y) train, val, test: pixels / 255; the last n_val training images for validation."""
    (X, y), (Xt, yt) = load_mnist(path, flatten=True)
    X, Xt = scale_to_unit(X), scale_to_unit(Xt)
    n_val = 10_000 if len(X) > 20_000 else 1_000
    if smoke:
        X, y, Xt, yt, n_val = X[:600], y[:600], Xt[:200], yt[:200], 100
    return (X[:-n_val], y[:-n_val]), (X[-n_val:], y[-n_val:]), (Xt, yt)


def mlp(hidden=(100, 30), out=None, bn=False, dropout=0.0, seed=0, loss=None):
    """Dense -> [BN] -> ReLU -> [Dropout] per hidden layer, then Dense(10) -> out (Softmax)."""
    layers = []
    for width in hidden:
        layers.append(fm.Dense(width))
        if bn:
            layers.append(fm.BatchNorm())
        layers.append(fm.ReLU())
        if dropout:
            layers.append(fm.Dropout(dropout))
    layers += [fm.Dense(10), out if out is not None else fm.Softmax()]
    return fm.Sequential(layers, seed=seed, loss=loss)


def runs():
    """{label: (model factory, fit keyword arguments)} for every technique of the lab."""
    sgd = dict(optimizer=lambda: fm.SGD(LR))
    return {
        "MSE + sigmoid outputs (start)": (lambda: mlp(out=fm.Sigmoid(), loss="mse"), sgd),
        "SGD lr 0.05": (mlp, sgd),
        f"SGD + L2 {L2:g}": (mlp, dict(sgd, l2=L2)),
        f"SGD + L1 {L1:g}": (mlp, dict(sgd, l1=L1)),
        "momentum 0.9 + L2": (mlp, dict(optimizer=lambda: fm.SGD(0.01, momentum=0.9), l2=L2)),
        "Nesterov 0.9": (mlp, dict(optimizer=lambda: fm.SGD(0.01, momentum=0.9, nesterov=True))),
        "SGD + gradient noise": (mlp, dict(optimizer=lambda: fm.SGD(
            LR, noise=fm.GradientNoise(eta=0.01, gamma=0.55)))),
        "Adagrad": (mlp, dict(optimizer=lambda: fm.Adagrad(0.01))),
        "Adadelta": (mlp, dict(optimizer=lambda: fm.Adadelta(1.0))),
        "RMSprop": (mlp, dict(optimizer=lambda: fm.RMSprop(0.001))),
        "Adam": (mlp, dict(optimizer=lambda: fm.Adam(0.001))),
        "AdaMax": (mlp, dict(optimizer=lambda: fm.Adamax(0.002))),
        "Nadam": (mlp, dict(optimizer=lambda: fm.Nadam(0.002))),
        "AMSGrad": (mlp, dict(optimizer=lambda: fm.Adam(0.001, amsgrad=True))),
        "dropout 0.2": (lambda: mlp(dropout=0.2), sgd),
        "batch norm": (lambda: mlp(bn=True), sgd),
        "augmentation": (mlp, dict(sgd, augment=fm.Augment(shift=1, rotate=8.0,
                                                           image_shape=(28, 28)))),
        "extra layer [100, 100, 30]": (lambda: mlp(hidden=(100, 100, 30)), sgd),
    }


class ValAccuracy(fm.Callback):
    """Validation accuracy per epoch for a model whose loss reports RMSE (the MSE run)."""

    def __init__(self, X, y):
        self.X, self.y, self.values = X, y, []

    def accuracy(self, model):
        return float(np.mean(model.predict(self.X).argmax(axis=1) == self.y))

    def on_epoch_end(self, model, epoch, logs):
        self.values.append(self.accuracy(model))


def train_one(make_model, kw, data, epochs, batch_size=100):
    """Fit one run; returns (history with val_accuracy, test accuracy, seconds)."""
    (X, y), (Xv, yv), (Xt, yt) = data
    model = make_model()
    kw = dict(kw, optimizer=kw["optimizer"]())
    callbacks = []
    if model.loss == "mse":   # one-hot targets; accuracy from the argmax of the outputs
        y, val = one_hot(y, 10), (Xv, one_hot(yv, 10))
        callbacks = [ValAccuracy(Xv, yv)]
        model.build(X.shape[1])
        start = callbacks[0].accuracy(model)
    else:
        val = (Xv, yv)
    t0 = time.perf_counter()
    hist = model.fit(X, y, epochs=epochs, batch_size=batch_size, validation_data=val, seed=0,
                     verbose=0, callbacks=callbacks, **kw)
    seconds = time.perf_counter() - t0
    if callbacks:
        hist.history["val_accuracy"] = callbacks[0].values
        hist.initial["val_accuracy"] = start
        test = float(np.mean(model.predict(Xt).argmax(axis=1) == yt))
    else:
        test = model.evaluate(Xt, yt)["accuracy"]
    return hist, test, seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder with the MNIST IDX files (default: bundled subset)")
    p.add_argument("--out", default="out/optimizers", help="output folder")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per run (default 20 bundled, 50 with --data, 1 with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny settings, for the tests")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or (1 if args.smoke else 50 if args.data else 20)
    t_start = time.perf_counter()
    data = load_data(args.data, args.smoke)
    n_train, n_val, n_test = (len(d[0]) for d in data)

    histories, rows = {}, []
    for label, (make_model, kw) in runs().items():
        hist, test, seconds = train_one(make_model, kw, data, epochs)
        histories[label] = hist
        per_epoch = float(np.median(hist.history["time"]))
        rows.append((label, hist.history["val_accuracy"][-1], test, seconds, per_epoch))
        print(f"{label:<32} val {rows[-1][1]:.4f}  test {test:.4f}  {seconds:6.1f} s "
              f"({per_epoch:.3f} s/epoch)", flush=True)

    top = max(max(h.history["val_accuracy"]) for h in histories.values())
    high = min(1.0, top + 0.01)
    for name, low in (("val_accuracy.png", max(0.0, top - 0.1)), ("val_accuracy_full.png", 0.0)):
        # the title names the axis range the figure shows
        fig = plots.plot_runs(histories, metric="val_accuracy", title=(
            f"Optimizer lab: validation accuracy per epoch (y axis {low:.2f}-{high:.2f})"))
        ax = fig.axes[0]
        ax.set_ylim(low, high)
        ax.legend(fontsize="x-small", ncol=2, loc="lower right")
        fig.set_size_inches(8.5, 5.5)
        fig.tight_layout()
        fig.savefig(out / name, dpi=80)

    table = ["| run | final val accuracy | test accuracy | training time (s) | s/epoch (median) |",
             "|---|---|---|---|---|"]
    table += [f"| {label} | {v:.4f} | {t:.4f} | {s:.1f} | {e:.3f} |" for label, v, t, s, e in rows]
    best = max(rows, key=lambda r: r[2])
    md = ["# Optimizer lab on MNIST\n",
          f"{'Full MNIST' if args.data else 'Bundled MNIST subset'}: {n_train} training, "
          f"{n_val} validation, {n_test} test images; pixels / 255. Network [784, 100, 30, 10], "
          f"ReLU hidden units, softmax + cross-entropy (except the first run: sigmoid outputs + "
          f"MSE on one-hot targets), batch 100, {epochs} epochs, seed 0 for every run. "
          f"L2 = {L2:g} and L1 = {L1:g} on the weights (cost = loss + lambda * penalty). "
          f"Training time is the wall time of fit, validation after every epoch included; it also "
          f"holds any Numba compilation (a cold cache), which the median epoch time leaves out. "
          f"The MSE run averages the squared error over the 10 outputs, so with the same lr its "
          f"gradients are ~10x smaller than Nielsen's summed form: it learns slowly.\n",
          "\n".join(table), "",
          f"Best test accuracy: {best[2]:.4f} ({best[0]}). Reported by the lab on full MNIST: "
          f"plain SGD (lr 0.05) ~0.975, momentum + L2 ~0.979.\n",
          "![validation accuracy](val_accuracy.png)\n",
          "![validation accuracy, full range](val_accuracy_full.png)\n",
          f"Total time: {time.perf_counter() - t_start:.1f} s"]
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nfigures and results.md in {out}")
    return rows


if __name__ == "__main__":
    main()
