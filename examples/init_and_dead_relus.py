"""Perceptron vs hinge, initialisation, dying ReLU networks, eggholder regression (fastmlp).

    python examples/init_and_dead_relus.py             # reduced settings (about two minutes)
    python examples/init_and_dead_relus.py --full      # the homework's settings
    python examples/init_and_dead_relus.py --smoke     # seconds with a warm kernel cache (tests)

(a) Perceptron (loss max(0, -y w.x)) vs hinge (max(0, 1 - y w.x)) on 2-D separable data
    y = sign(x1 - x2): 20 training points, 1,000 test points, repeated on fresh draws.
(b) Activations of 5 hidden layers of 100 units on MNIST images for weights N(0, sigma),
    sigma in {0.01, 0.14, 0.28}, Glorot and He; ReLU, sigmoid and tanh. The violins show the
    UNTRAINED network (weights at initialisation, biases 0); the table also gives the test
    accuracy after one brief epoch of Adam, to show which initialisations train.
(c) Dying ReLU networks: 10 hidden layers of width 2 (He init) fit y = |x| on 3,000 points in
    [-sqrt 7, sqrt 7] with Adam (lr 1e-3) for 1 epoch, batch 64, MSE; count the random
    initialisations whose network collapses to a constant function; the same with LeakyReLU(0.01).
(d) Eggholder regression: MSE (RMSE reported) with Nesterov SGD, batch 1,000, Dense + BN + ReLU
    layers; sweep 1-3 hidden layers of widths {16, ..., 512} with at most 512 units in all.

Writes PNGs and results.md into --out (default out/init_and_dead_relus) and prints a summary.
--data PATH uses the full MNIST (IDX files) in (b) instead of the bundled subset.
"""
import argparse
import itertools
import pathlib
import time

import numpy as np
from matplotlib.figure import Figure

import fastmlp as fm
from fastmlp import plots
from fastmlp.datasets import load_mnist
from fastmlp.preprocess import scale_to_unit
from fastmlp.sweep import run_sweep

DPI = 80
VIOLIN_VALUES = 5_000   # values per violin (seeded subsample; the density estimate's cost)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


# ---------------------------------------------------------------- (a) perceptron vs hinge
def perceptron_vs_hinge(repeats, epochs=100):
    """Test accuracy of a linear unit trained with the perceptron and the hinge loss."""
    acc = {"perceptron": [], "hinge": []}
    for r in range(repeats):
        rng = np.random.default_rng(1000 + r)
        X = rng.uniform(-1, 1, (1020, 2)).astype(np.float32)
        y = np.where(X[:, 0] - X[:, 1] > 0, 1.0, -1.0).astype(np.float32)
        for loss in acc:
            model = fm.Sequential([fm.Dense(1, init="glorot_uniform")], loss=loss, seed=r)
            model.fit(X[:20], y[:20], epochs=epochs, batch_size=1, optimizer=fm.SGD(0.1),
                      verbose=0, seed=r)
            acc[loss].append(model.evaluate(X[20:], y[20:])["accuracy"])
    rows = [[loss, f"{np.mean(a):.4f}", f"{np.std(a):.4f}", f"{np.min(a):.4f}",
             f"{np.mean(np.array(a) == 1.0):.0%}"] for loss, a in acc.items()]
    return acc, table(["loss", "mean test accuracy", "std", "worst", "runs with 100%"], rows)


# ---------------------------------------------------------------- (b) initialisation study
INITS = {"N(0, 0.01)": dict(init="normal", sigma=0.01), "N(0, 0.14)": dict(init="normal", sigma=0.14),
         "N(0, 0.28)": dict(init="normal", sigma=0.28), "Glorot": dict(init="glorot_normal"),
         "He": dict(init="he_normal")}
ACTS = {"relu": fm.ReLU, "sigmoid": fm.Sigmoid, "tanh": fm.Tanh}


def deep_net(act, init, seed=0):
    layers = []
    for _ in range(5):
        layers += [fm.Dense(100, **init), ACTS[act]()]
    return fm.Sequential(layers + [fm.Dense(10, **init), fm.Softmax()], seed=seed)


def init_study(path, out, smoke):
    (X, y), (Xt, yt) = load_mnist(path, flatten=True)
    X, Xt = scale_to_unit(X), scale_to_unit(Xt)
    if smoke:
        X, y, Xt, yt = X[:500], y[:500], Xt[:200], yt[:200]
    sample = Xt[:1000]
    inits = {k: v for k, v in INITS.items() if not smoke or k in ("N(0, 0.01)", "He")}
    grid = Figure(figsize=(3 * len(inits), 7.5))
    rows = []
    for a, act in enumerate(ACTS):
        for i, (iname, init) in enumerate(inits.items()):
            model = deep_net(act, init)
            model.build(X.shape[1])
            tag = f"{act}_{iname.replace('N(0, ', 'sigma').replace(')', '').replace(' ', '')}"
            fig = plots.plot_activations(model, sample, title=f"{act}, W ~ {iname}, untrained "
                                         f"({len(sample)} test images)")
            fig.savefig(out / f"activations_{tag}.png", dpi=DPI)
            outputs = model.layer_outputs(sample)
            values = [outputs[k].ravel() for k in sorted(outputs)][:5]
            ax = grid.add_subplot(len(ACTS), len(inits), a * len(inits) + i + 1)
            if act == "relu":   # half the values are 0, the rest spans decades: log10 of v > 0
                shown = [np.log10(v[v > 0]) if np.any(v > 0) else v for v in values]
            else:
                shown = values
            flat = [v for v in shown if np.ptp(v) > 0]
            pos = [k + 1 for k, v in enumerate(shown) if np.ptp(v) > 0]
            if flat:
                parts = ax.violinplot([np.random.default_rng(0).choice(v, VIOLIN_VALUES) for v in flat],
                                      positions=pos, showmedians=True)
                for body in parts["bodies"]:
                    body.set_facecolor(f"C{a}")
            for k, v in enumerate(shown):
                if np.ptp(v) == 0:
                    ax.hlines(v[0], k + 0.65, k + 1.35, colors="C3", lw=3)
            ax.set_xticks(range(1, 6))
            ax.set_title(f"{act}, {iname}", fontsize="small")
            ax.tick_params(labelsize="x-small")
            if a == len(ACTS) - 1:
                ax.set_xlabel("hidden layer", fontsize="small")
            if i == 0:
                ax.set_ylabel("log10 activation (> 0)" if act == "relu" else "activation",
                              fontsize="small")
            stds = [float(np.std(v)) for v in values]
            dead = plots.dead_unit_fraction(model, sample)
            try:   # brief training: does this initialisation learn?
                model.fit(X, y, epochs=1, batch_size=100, optimizer=fm.Adam(1e-3), verbose=0,
                          seed=0)
                acc = f"{model.evaluate(Xt, yt)['accuracy']:.4f}"
            except fm.DivergenceError:
                acc = "diverged"
            rows.append([act, iname, " / ".join(f"{s:.2g}" for s in stds),
                         f"{np.mean(list(dead.values())):.0%}" if dead else "-", acc])
    plots.set_suptitle(grid, f"Hidden-layer activations of the untrained 5 x 100 network on "
                       f"{len(sample):,} MNIST test images\n(ReLU row: log10 of the positive "
                       "values; a red bar marks a constant layer)", fontsize="medium")
    save(grid, out / "activations_grid.png")
    return table(["activation", "weights", "std of layers 1-5 (untrained)",
                  "dead ReLU units (untrained)", "test acc. after 1 epoch Adam"], rows)


# ---------------------------------------------------------------- (c) dying ReLU networks
def narrow_net(act, seed):
    layers = []
    for _ in range(10):
        layers += [fm.Dense(2), fm.ReLU() if act == "relu" else fm.LeakyReLU(0.01)]
    return fm.Sequential(layers + [fm.Dense(1)], seed=seed, loss="mse")


def blocked(model, X):
    """True when some hidden layer outputs <= 0 in every unit for every input: a dead layer for
    ReLU (all zeros, the net is exactly constant); for LeakyReLU all units on the 0.01 slope."""
    outs = model.layer_outputs(X)
    return any(np.all(v <= 0) for k, v in outs.items() if isinstance(model.layers[k], fm.Activation))


def collapse_study(n_inits, epochs_long, n_long):
    """Fractions of collapsed networks over n_inits seeds, for ReLU and LeakyReLU."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-np.sqrt(7), np.sqrt(7), (3000, 1)).astype(np.float32)
    y = np.abs(X)
    sd = float(y.std())
    rows, long_rows, fractions = [], [], {}
    for act in ("relu", "leaky"):
        stats = {k: [] for k in ("blocked0", "blocked", "const", "flat", "rmse")}
        for seed in range(n_inits):
            model = narrow_net(act, seed)
            model.build(1)
            stats["blocked0"].append(blocked(model, X))
            model.fit(X, y, epochs=1, batch_size=64, optimizer=fm.Adam(1e-3), verbose=0, seed=seed)
            pred = model.predict(X).ravel()
            stats["blocked"].append(blocked(model, X))
            stats["const"].append(pred.std() < 1e-6 * sd)
            stats["flat"].append(pred.std() < 1e-2 * sd)
            stats["rmse"].append(float(np.sqrt(np.mean((pred - y.ravel()) ** 2))))
        name = "ReLU" if act == "relu" else "LeakyReLU(0.01)"
        fractions[name] = {k: float(np.mean(stats[k])) for k in ("blocked0", "blocked", "const",
                                                                 "flat")}
        rows.append([name, n_inits] + [f"{np.mean(stats[k]):.1%}" for k in
                                       ("blocked0", "blocked", "const", "flat")]
                    + [f"{np.median(stats['rmse']):.3f}"])
        learned = []     # a longer run on the first n_long seeds: does the net recover?
        for seed in range(n_long):
            model = narrow_net(act, seed)
            model.fit(X, y, epochs=epochs_long, batch_size=64, optimizer=fm.Adam(1e-3), verbose=0,
                      seed=seed)
            pred = model.predict(X).ravel()
            learned.append((pred.std() < 1e-6 * sd,
                            np.sqrt(np.mean((pred - y.ravel()) ** 2)) < 0.5 * sd))
        learned = np.array(learned).reshape(-1, 2)
        long_rows.append([name, n_long, epochs_long, f"{learned[:, 0].mean():.0%}",
                          f"{learned[:, 1].mean():.0%}"])
        fractions[name].update(long_const=float(learned[:, 0].mean()),
                               long_fits=float(learned[:, 1].mean()))
    head = ["activation", "inits", "blocked layer at init", "blocked layer after 1 epoch",
            "constant output (std < 1e-6 std(y))", "flat output (std < 1e-2 std(y))",
            "median RMSE"]
    return sd, table(head, rows), table(["activation", "inits", "epochs", "constant output",
                                         "fits abs(x) (RMSE < std(y) / 2)"], long_rows), fractions


def collapse_plot(fractions, n_inits, n_long, epochs_long, path):
    """Bar chart of collapse_study's fractions: ReLU next to LeakyReLU for each criterion,
    after 1 epoch (left) and after the longer training (right)."""
    fig = Figure(figsize=(11, 4.4))
    panels = ((("blocked0", "a layer blocked\nat init"), ("blocked", "a layer blocked\nafter 1 epoch"),
               ("const", "constant output\n(std < 1e-6 std(y))"),
               ("flat", "flat output\n(std < 1e-2 std(y))")),
              (("long_const", "constant output"), ("long_fits", "fits |x|\n(RMSE < std(y) / 2)")))
    titles = (f"{n_inits} random initialisations, 1 epoch of Adam",
              f"first {n_long} initialisations, {epochs_long} epochs of Adam")
    for p, (criteria, head) in enumerate(zip(panels, titles)):
        ax = fig.add_subplot(1, 2, p + 1)
        x = np.arange(len(criteria))
        for k, (name, hatch) in enumerate((("ReLU", ""), ("LeakyReLU(0.01)", "//"))):
            values = [100 * fractions[name][key] for key, _ in criteria]
            bars = ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color=f"C{k}", hatch=hatch,
                          label=name)
            ax.bar_label(bars, fmt="%.0f%%", fontsize="x-small")
        ax.set_xticks(x)
        ax.set_xticklabels([label for _, label in criteria], fontsize="small")
        ax.set_ylim(0, 125)              # room for the legend above the 100% bars
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("networks (%)")
        ax.set_xlabel("criterion")
        plots.set_title(ax, head, fontsize="medium")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize="small", loc="upper center", ncol=2)
    plots.set_suptitle(fig, "Dying ReLU: 10 hidden layers of width 2 (He init) fitting y = |x|",
                       fontsize="medium")
    save(fig, path)


# ---------------------------------------------------------------- (d) eggholder regression
NOISE = 30.0   # std of the Gaussian noise on the targets (~10% of the function's std, ~300)
_EGG = {}


def eggholder(x1, x2):
    return (-(x2 + 47) * np.sin(np.sqrt(np.abs(x1 / 2 + x2 + 47)))
            - x1 * np.sin(np.sqrt(np.abs(x1 - (x2 + 47)))))


def egg_data(n, n_test, seed=0):
    """Standardised (X, Y) train and test, the clean test targets and (mean, std) of y.
    Inputs / 512 (into [-1, 1]); targets (noisy) minus their training mean, over their std."""
    key = (n, n_test, seed)
    if key not in _EGG:
        rng = np.random.default_rng(seed)
        P = rng.uniform(-512, 512, (n + n_test, 2))
        clean = eggholder(P[:, 0], P[:, 1])
        noisy = clean + rng.normal(0, NOISE, clean.shape)
        mu, sd = noisy[:n].mean(), noisy[:n].std()
        X = (P / 512).astype(np.float32)
        Y = ((noisy - mu) / sd).astype(np.float32)[:, None]
        _EGG[key] = (X[:n], Y[:n], X[n:], Y[n:], clean[n:], mu, sd)
    return _EGG[key]


def egg_run(hidden, n, n_test, epochs, lr=0.01, seed=0):
    """One configuration of the sweep (module level: worker processes import it)."""
    X, Y, Xt, Yt, clean, mu, sd = egg_data(n, n_test)
    layers = []
    for width in hidden:
        layers += [fm.Dense(width), fm.BatchNorm(), fm.ReLU()]
    model = fm.Sequential(layers + [fm.Dense(1)], seed=seed, loss="mse")
    t0 = time.perf_counter()
    hist = model.fit(X, Y, epochs=epochs, batch_size=1000, verbose=0, seed=seed,
                     optimizer=fm.SGD(lr, momentum=0.9, nesterov=True))
    seconds = time.perf_counter() - t0
    pred = model.predict(Xt).ravel() * sd + mu
    return {"layers": len(hidden), "units": int(sum(hidden)), "params": model.count_params(),
            "train_rmse": model.evaluate(X, Y)["rmse"] * sd,
            "test_rmse": float(np.sqrt(np.mean((pred - (Yt.ravel() * sd + mu)) ** 2))),
            "test_rmse_clean": float(np.sqrt(np.mean((pred - clean) ** 2))),
            "train_seconds": seconds, "s_per_epoch": float(np.median(hist.history["time"]))}


def egg_configs(full, smoke):
    widths = (16, 32, 64, 128, 256, 512)
    if smoke:
        return [(16,), (32, 16)]
    out = []
    for depth in (1, 2, 3):
        if full:   # every funnel (non-increasing widths) with at most 512 units
            out += [c for c in itertools.product(widths, repeat=depth)
                    if sum(c) <= 512 and list(c) == sorted(c, reverse=True)]
        else:      # equal widths
            out += [(w,) * depth for w in widths if w * depth <= 512]
    return out


def egg_plot(res, path):
    rows = [r for r in res.rows if r["status"] == "ok"]
    fig = Figure(figsize=(13, 4))
    panels = (("units", "test_rmse", "total hidden units", "test RMSE"),
              ("params", "test_rmse", "parameters", "test RMSE"),
              ("params", "train_seconds", "parameters", "training time (s)"))
    for p, (xk, yk, xl, yl) in enumerate(panels):
        ax = fig.add_subplot(1, 3, p + 1)
        for depth in (1, 2, 3):
            pts = sorted((r[xk], r[yk]) for r in rows if r["layers"] == depth)
            if pts:
                ax.plot(*zip(*pts), "-o", ms=4, label=f"{depth} hidden layer{'s' * (depth > 1)}")
        if yk == "test_rmse":
            ax.axhline(NOISE, color="gray", ls=":", label=f"noise std {NOISE:g}")
        ax.set_xscale("log", base=2 if xk == "units" else 10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{yl} vs {xl}", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="small")
    save(fig, path)


# ---------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="folder with the MNIST IDX files for (b) (default: bundled)")
    p.add_argument("--full", action="store_true",
                   help="the homework's settings: 100,000 eggholder points, 200 epochs, all funnel "
                        "architectures")
    p.add_argument("--out", default="out/init_and_dead_relus", help="output folder")
    p.add_argument("--smoke", action="store_true", help="tiny settings, for the tests")
    p.add_argument("--inits", type=int, default=None, help="initialisations in (c) (default 1000)")
    p.add_argument("--workers", type=int, default=None, help="sweep processes (default: cores)")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    md = ["# Perceptron, initialisation, dying ReLUs, eggholder regression\n"]

    t0 = time.perf_counter()
    repeats = 2 if args.smoke else 20
    acc, tab = perceptron_vs_hinge(repeats, epochs=5 if args.smoke else 100)
    md += ["## (a) Perceptron vs hinge loss\n",
           f"A linear unit (Dense(1), Glorot uniform, bias) on x ~ U[-1, 1]^2, y = sign(x1 - x2); "
           f"20 training points, 1,000 test points, SGD lr 0.1, batch 1, "
           f"{5 if args.smoke else 100} epochs; {repeats} independent draws of the data.\n", tab,
           f"\n({time.perf_counter() - t0:.1f} s)\n"]
    print("\n".join(md[-4:]), flush=True)

    t0 = time.perf_counter()
    tab = init_study(args.data, out, args.smoke)
    md += ["## (b) Initialisation: activations of 5 hidden layers of 100 units\n",
           f"{'Full' if args.data else 'Bundled'} MNIST, pixels / 255. Figures show the UNTRAINED "
           "network (biases 0) on 1,000 test images: `activations_<act>_<init>.png` "
           "(fastmlp.plots.plot_activations) and all 15 in `activations_grid.png`. The last "
           "column trains the same network for one epoch (Adam lr 1e-3, batch 100) and tests it.\n",
           tab, "\n![activations](activations_grid.png)\n",
           f"({time.perf_counter() - t0:.1f} s)\n"]
    print("\n".join(md[-4:]), flush=True)

    t0 = time.perf_counter()
    n_inits = args.inits or (20 if args.smoke else 1000)
    n_long, epochs_long = (4, 2) if args.smoke else (100 if not args.full else 1000, 20)
    sd, tab, tab_long, fractions = collapse_study(n_inits, epochs_long, n_long)
    collapse_plot(fractions, n_inits, n_long, epochs_long, out / "dead_relus.png")
    md += ["## (c) Dying ReLU networks: 10 hidden layers of width 2\n",
           f"y = |x| on 3,000 points in [-sqrt 7, sqrt 7] (std(y) = {sd:.3f}); He init, Adam lr 1e-3, "
           "1 epoch, batch 64, MSE; one random initialisation per seed.\n"
           "*Blocked layer*: some hidden layer outputs <= 0 in every unit for every input. For "
           "ReLU that is a dead layer: everything after it is the same for every input, so the "
           "network is a constant function (collapsed) and no gradient reaches the layers below "
           "it, so it stays collapsed. *Constant output*: the predictions' std over the 3,000 "
           "inputs is below 1e-6 std(y), i.e. at float32 rounding level (a collapsed ReLU net "
           "is constant up to rounding: its last layers are computed row by row by BLAS). "
           "LeakyReLU never outputs exactly 0, so no network is exactly constant, but a "
           "blocked layer multiplies all variation by 0.01 per layer and can leave the output "
           "numerically flat.\n", tab,
           "\nLonger training of the first seeds (Adam lr 1e-3, batch 64): does a network leave "
           "the constant state? (A dead ReLU layer gets no gradient, so it cannot; a blocked "
           "LeakyReLU layer still passes 0.01 x the gradient.)\n", tab_long,
           "\nReported (Lu et al. 2019, the homework): ~90% of the ReLU networks collapse; 0 with "
           "LeakyReLU(0.01).\n", "![dying ReLU networks](dead_relus.png)\n",
           f"({time.perf_counter() - t0:.1f} s)\n"]
    print("\n".join(md[-7:]), flush=True)

    t0 = time.perf_counter()
    n, n_test, epochs = ((100_000, 10_000, 200) if args.full else
                         (1_000, 500, 2) if args.smoke else (20_000, 5_000, 100))
    configs = [dict(hidden=list(c), n=n, n_test=n_test, epochs=epochs)
               for c in egg_configs(args.full, args.smoke)]
    res = run_sweep(egg_run, configs, out=out / "eggholder.csv", resume=False, progress=False,
                    n_workers=0 if args.smoke else args.workers, metric="test_rmse", mode="min")
    egg_plot(res, out / "eggholder.png")
    ok = [r for r in res.rows if r["status"] == "ok"]
    best = min(ok, key=lambda r: r["test_rmse"]) if ok else None
    _, _, _, _, _, mu, ysd = egg_data(n, n_test)
    md += ["## (d) Eggholder regression\n",
           f"f(x1, x2) = -(x2 + 47) sin(sqrt|x1/2 + x2 + 47|) - x1 sin(sqrt|x1 - (x2 + 47)|) on "
           f"{n:,} points uniform in [-512, 512]^2, targets + N(0, {NOISE:g}^2) noise; "
           f"{n_test:,} more noisy points for testing. Inputs divided by 512 (into [-1, 1]); "
           f"targets standardised with the training mean {mu:.1f} and std {ysd:.1f} (RMSE below "
           f"is in the original units: the model's RMSE x {ysd:.1f}). Dense -> BN -> ReLU hidden "
           f"layers, linear output, MSE, SGD lr 0.01 with Nesterov momentum 0.9, batch 1,000, "
           f"{epochs} epochs. Predicting the mean gives RMSE ~{ysd:.0f}; the noise floor is "
           f"{NOISE:g}. `test_rmse_clean` compares with the noise-free f.\n",
           res.to_markdown("test_rmse", "min"),
           f"Best: {best['hidden'] if best else '-'} with test RMSE "
           f"{best['test_rmse'] if best else float('nan'):.1f}.\n",
           "![eggholder](eggholder.png)\n", f"({time.perf_counter() - t0:.1f} s)\n"]
    print("\n".join(md[-5:]), flush=True)

    md.append(f"Total time: {time.perf_counter() - t_start:.1f} s")
    (out / "results.md").write_text("\n".join(md))
    print(md[-1])
    print(f"\nfigures and results.md in {out}")


if __name__ == "__main__":
    main()
