"""DD2424: k-layer networks with batch normalisation on CIFAR-10, with fastmlp.

    python examples/dd2424.py                  # the bundled CIFAR-10 sample (about a minute)
    python examples/dd2424.py --data PATH      # all five batches, last 5,000 for validation
    python examples/dd2424.py --smoke          # 8 updates per experiment (tests)

Writes figures (PNG) and results.md into --out (default out/dd2424) and prints a summary.
With --data the course's settings are used: batch 100, a cyclic learning rate between 1e-5
and 1e-1 whose half cycle (n_s) is 5 * 45000 / 100 = 2250 updates, 2 cycles, He
initialisation, shuffling every epoch. --smoke: n_s = 4 and 1 cycle, gradient checks of the
2- and 3-layer nets only, and the learning-curve figure of the 3-layer BN net only.
"""
import argparse
import pathlib
import time

import numpy as np

import fastmlp as fm
from fastmlp import plots
from fastmlp.datasets import cifar10_course_split, load_cifar10
from fastmlp.preprocess import standardize
from fastmlp.sweep import coarse_to_fine, grid, run_sweep

BUNDLED = pathlib.Path(__file__).resolve().parents[1] / "data" / "cifar10-sample"
_DATA = {}


def load_data(path=None):
    """((X, y) train, val, test), standardised with the training mean and std."""
    key = str(path)
    if key not in _DATA:
        if path:
            split = cifar10_course_split(path, mode="all", n_val=5000)
            (Xtr, ytr), (Xva, yva), (Xte, yte) = split.train, split.val, split.test
        else:  # the sample: 1,000 training images, the last 100 held out for validation
            (X, y), (Xte, yte) = load_cifar10(BUNDLED, batches=(1,))
            Xtr, ytr, Xva, yva = X[:-100], y[:-100], X[-100:], y[-100:]
        Xtr, Xva, Xte = standardize(Xtr, Xva, Xte)
        assert np.allclose(Xtr.mean(axis=0), 0, atol=1e-4) and np.allclose(Xtr.std(axis=0), 1, atol=1e-3)
        _DATA[key] = ((Xtr, ytr), (Xva, yva), (Xte, yte))
    return _DATA[key]


def make_net(hidden, bn=True, bn_after=False, init="he_normal", sigma=None, dropout=0.0, seed=0,
             dtype=np.float32):
    """Dense -> [BN] -> ReLU (or ReLU -> BN) -> [Dropout] per hidden layer, then Dense -> Softmax."""
    layers = []
    for width in hidden:
        layers.append(fm.Dense(width, init=init, sigma=sigma))
        block = [fm.ReLU(), fm.BatchNorm()] if bn_after else [fm.BatchNorm(), fm.ReLU()]
        layers += block if bn else [fm.ReLU()]
        if dropout:
            layers.append(fm.Dropout(dropout))
    return fm.Sequential(layers + [fm.Dense(10, init=init, sigma=sigma), fm.Softmax()],
                         seed=seed, dtype=dtype)


def train(model, data, lam, n_s, cycles, augment=None):
    """Cyclic-lr SGD as in the course; returns (history, test accuracy)."""
    (Xtr, ytr), (Xva, yva), (Xte, yte) = data
    hist = model.fit(Xtr, ytr, batch_size=100, optimizer=fm.SGD(fm.CyclicLR(1e-5, 1e-1, n_s)),
                     l2=lam, cycles=cycles, validation_data=(Xva, yva), augment=augment,
                     verbose=0)
    return hist, model.evaluate(Xte, yte)["accuracy"]


def sweep_run(path, n_s, cycles, lam=0.005, hidden=(50, 50), bn=True):
    """One configuration of a search (module level, so worker processes can run it)."""
    data = load_data(path)
    hist, test_acc = train(make_net(list(hidden), bn), data, lam, n_s, cycles)
    return {"train_acc": hist.history["accuracy"][-1], "val_acc": hist.history["val_accuracy"][-1],
            "test_acc": test_acc}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def gradient_checks(data, smoke):
    (X, y), _, _ = data
    nets = {2: [50], 3: [50, 50], 4: [50, 30, 20], 9: [50, 30, 20, 20, 10, 10, 10, 10]}
    if smoke:
        nets = {k: nets[k] for k in (2, 3)}
    rows = []
    for k, hidden in nets.items():
        for bn in (False, True):
            model = make_net(hidden, bn, seed=1, dtype=np.float64)
            model.build(10)
            t = fm.check_gradients(model, X[:20, :10], y[:20], l2=0.005,
                                   max_entries=3 if smoke else None)
            worst = {}
            for r in t:  # a bias feeding BN has a zero gradient: only its absolute error counts
                if not (bn and r.param == "b" and r.max_abs_error < 1e-9):
                    worst[r.param] = max(worst.get(r.param, 0.0), r.max_rel_error)
            rows.append([f"{k}-layer", "yes" if bn else "no"] +
                        [f"{worst[p]:.1e}" if p in worst else "-" for p in ("W", "b", "gamma", "beta")])
    return table(["net", "BN", "W", "b", "gamma", "beta"], rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder with the CIFAR-10 python batches (default: bundled sample)")
    p.add_argument("--out", default="out/dd2424", help="output folder")
    p.add_argument("--smoke", action="store_true", help="tiny settings, for the tests")
    p.add_argument("--workers", type=int, default=None, help="parallel search processes")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = load_data(args.data)
    n_train = len(data[0][0])
    n_s = 5 * n_train // 100 if not args.smoke else 4   # DD2424: n_s = 5 * 45000 / n_batch
    cycles = 2 if not args.smoke else 1
    md = [f"# DD2424 with fastmlp\n\n{n_train} training images; batch 100; cyclic lr 1e-5..1e-1, "
          f"n_s = {n_s}, {cycles} cycle(s); He init.\n"]

    md += ["## Gradient check (float64, 20 samples, first 10 features, l2 = 0.005)\n",
           gradient_checks(data, args.smoke), ""]

    runs, rows = {}, []
    for name, hidden in (("3-layer", [50, 50]), ("9-layer", [50, 30, 20, 20, 10, 10, 10, 10])):
        for bn in (False, True):
            model = make_net(hidden, bn)
            hist, acc = train(model, data, 0.005, n_s, cycles)
            label = f"{name} {'BN' if bn else 'no BN'}"
            runs[label] = hist
            rows.append([label, f"{acc:.4f}"])
            if not args.smoke or (name == "3-layer" and bn):
                plots.plot_history(hist, title=label,
                                   path=out / f"curves_{name}_{'bn' if bn else 'nobn'}.png")
            if name == "3-layer" and bn:
                md += ["## Report: 3-layer with BN\n",
                       fm.report(model, train=data[0], val=data[1], test=data[2], history=hist,
                                 print_fn=None), ""]
    plots.plot_runs(runs, metric=["loss", "val_loss"], path=out / "bn_vs_nobn_loss.png")
    plots.plot_runs(runs, metric="val_accuracy", path=out / "bn_vs_nobn_accuracy.png")
    md += ["## 3- and 9-layer nets, lambda = 0.005\n", table(["net", "test accuracy"], rows), ""]

    workers = 0 if args.smoke else args.workers
    coarse, fine = coarse_to_fine(
        sweep_run, "lam", 1e-5, 1e-1, n_coarse=3 if args.smoke else 8, n_fine=3 if args.smoke else 8,
        log=True, metric="val_acc", mode="max", base={"path": args.data, "n_s": n_s, "cycles": 1},
        out=out / "lambda.csv", n_workers=workers, progress=False)
    lam = fine.best("val_acc", "max")["lam"]
    md += ["## Lambda search (one cycle each)\n", "### Coarse\n", coarse.to_markdown("val_acc"),
           "### Fine\n", fine.to_markdown("val_acc"), f"Best lambda: {lam:.3g}\n"]
    for label, res in (("coarse", coarse), ("fine", fine)):
        lams = [r["lam"] for r in res.rows if r["status"] == "ok"]
        order = np.argsort(lams)
        plots.plot_metric_vs_param(
            np.array(lams)[order],
            {k: np.array([r[k] for r in res.rows if r["status"] == "ok"])[order]
             for k in ("train_acc", "val_acc", "test_acc")},
            xlabel="lambda", log_x=True, path=out / f"lambda_{label}.png")

    rows = []
    for sigma in (1e-1, 1e-3, 1e-4):
        for bn in (False, True):
            _, acc = train(make_net([50, 50], bn, init="normal", sigma=sigma), data, lam, n_s, cycles)
            rows.append([f"{sigma:g}", "yes" if bn else "no", f"{acc:.4f}"])
    md += ["## Sensitivity to initialisation: W ~ N(0, sigma)\n",
           table(["sigma", "BN", "test accuracy"], rows), ""]

    rows = []
    variants = {"BN before ReLU": dict(bn=True), "BN after ReLU": dict(bn=True, bn_after=True),
                "dropout 0.5, no BN": dict(bn=False, dropout=0.5),
                "dropout 0.5, BN": dict(bn=True, dropout=0.5)}
    for label, kw in variants.items():
        _, acc = train(make_net([50, 50], **kw), data, lam, n_s, cycles)
        rows.append([label, f"{acc:.4f}"])
    for label, aug in (("Gaussian noise 0.01", fm.Augment(noise_std=0.01)),
                       ("salt and pepper 1%", fm.Augment(salt_pepper=0.01))):
        _, acc = train(make_net([50, 50]), data, lam, n_s, cycles, augment=aug)
        rows.append([label, f"{acc:.4f}"])
    md += ["## BN placement, dropout and input noise (3-layer)\n",
           table(["variant", "test accuracy"], rows), ""]

    depths = (2, 3) if args.smoke else (2, 3, 4, 6)
    widths = (50,) if args.smoke else (50, 100)
    configs = [dict(c, path=args.data, n_s=n_s, cycles=cycles, lam=lam,
                    hidden=tuple([c.pop("width")] * (c.pop("depth") - 1)))
               for c in grid(depth=depths, width=widths)]
    arch = run_sweep(sweep_run, configs, out=out / "architecture.csv", n_workers=workers,
                     progress=False)
    md += ["## Architecture search (BN, best lambda)\n", arch.to_markdown("val_acc"), ""]

    md.append(f"Total time: {time.perf_counter() - t_start:.1f} s")
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md))
    print(f"\nfigures and results.md in {out}")


if __name__ == "__main__":
    main()
