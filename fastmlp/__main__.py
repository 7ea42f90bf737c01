"""Command line: `python -m fastmlp {train,evaluate,gradcheck} ...` (see --help of each).

train      trains an MLP (default: batch-normalised, on the MNIST subset bundled with the
           package), prints the run report and writes to --out (default out/):
           learning_curves.png, report.md and model.npz. With --compare, also times one
           epoch of the same net in the plain-numpy reference (and PyTorch when installed).
evaluate   loads a saved model.npz and prints loss, cost and accuracy on a data split.
gradcheck  compares analytic and finite-difference gradients of a float64 net on a few
           samples and features of the data, as a per-layer table.
"""
import argparse
import sys
import time

import numpy as np


def load_dataset(name, path, n_val):
    """((X_train, y_train), (X_val, y_val), (X_test, y_test)) standardised float32."""
    from . import datasets
    from .preprocess import standardize, train_val_split
    if name == "mnist":
        (Xtr, ytr), (Xte, yte) = datasets.load_mnist(path, flatten=True)
    elif name == "fashion-mnist":
        (Xtr, ytr), (Xte, yte) = datasets.load_fashion_mnist(path, flatten=True)
    elif name == "cifar10":
        split = datasets.cifar10_course_split(path, mode="all" if n_val else "batch1",
                                              n_val=n_val or 5000)
        (Xtr, ytr), (Xva, yva), (Xte, yte) = split.train, split.val, split.test
        Xtr, Xva, Xte = standardize(Xtr, Xva, Xte)
        return (Xtr, ytr), (Xva, yva), (Xte, yte)
    else:
        raise SystemExit(f"unknown dataset {name!r}")
    Xtr, ytr, Xva, yva = train_val_split(Xtr, ytr, val_size=n_val or 0.1, seed=0)
    Xtr, Xva, Xte = standardize(Xtr, Xva, Xte)
    return (Xtr, ytr), (Xva, yva), (Xte, yte)


def build_model(hidden, bn, seed, dtype=np.float32):
    import fastmlp as fm
    layers = []
    for h in hidden:
        layers += [fm.Dense(h)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU()]
    return fm.Sequential(layers + [fm.Dense(10), fm.Softmax()], dtype=dtype, seed=seed)


def make_optimizer(args):
    import fastmlp as fm
    lr = args.lr
    if args.cyclic:
        lr = fm.CyclicLR(args.eta_min, args.eta_max, args.step_size)
    if args.optimizer == "adam":
        return fm.Adam(lr if lr is not None else 1e-3)
    return fm.SGD(lr if lr is not None else 0.01, momentum=args.momentum,
                  nesterov=args.nesterov)


def compare_speed(args, X, y, fast_epoch_s):
    """Time one epoch of the same net in the numpy reference and in PyTorch."""
    from . import bench
    hidden, bn = args.hidden, args.bn
    opt = "adam" if args.optimizer == "adam" else ("momentum" if args.momentum else "sgd")
    w = (hidden, bn, args.batch_size, len(X), X.shape[1], opt, args.l2)
    import fastmlp as fm
    threads = fm.get_num_threads()
    print(f"\nspeed, one epoch of {len(X)} samples, {threads} threads:")
    print(f"  fastmlp          {fast_epoch_s:7.3f} s")
    times, _ = bench.time_reference(w, X, y, 1, threads)
    print(f"  numpy reference  {times[0]:7.3f} s   (fastmlp {times[0] / fast_epoch_s:.1f}x faster)")
    if bench.torch_available():
        times, _ = bench.time_torch(w, X, y, 1, threads)
        print(f"  PyTorch CPU      {times[0]:7.3f} s   (fastmlp {times[0] / fast_epoch_s:.1f}x faster)")
    else:
        print("  PyTorch CPU      not installed")


def cmd_train(args):
    import fastmlp as fm
    (Xtr, ytr), (Xva, yva), (Xte, yte) = load_dataset(args.data, args.path, args.n_val)
    print(f"data: {args.data} train {Xtr.shape} val {Xva.shape} test {Xte.shape}")
    model = build_model(args.hidden, args.bn, args.seed)
    model.build(Xtr.shape[1])
    model.summary()
    t0 = time.perf_counter()
    hist = model.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                     optimizer=make_optimizer(args), l2=args.l2, validation_data=(Xva, yva),
                     seed=args.seed, verbose=0 if args.quiet else 1)
    wall = time.perf_counter() - t0
    # recorded so that `evaluate` can rebuild the same standardised data by default
    hist.params.update(data=args.data, path=args.path, n_val=args.n_val)
    text = fm.report(model, train=(Xtr, ytr), val=(Xva, yva), test=(Xte, yte), history=hist)
    epoch_s = float(np.median(hist.history["time"])) if hist.history.get("time") else float("nan")
    startup = wall - sum(hist.history.get("time", []))
    print(f"trained {len(hist.epoch)} epochs in {wall:.2f} s: {epoch_s:.3f} s/epoch (median), "
          f"{startup:.2f} s start-up (evaluation before training and, on a first run, Numba's "
          f"one-time compilation, cached afterwards)")
    if args.out:
        write_outputs(args.out, model, hist, text)
    if args.compare:
        compare_speed(args, Xtr, ytr, epoch_s)
    return 0


def write_outputs(out, model, hist, text):
    """out/learning_curves.png (when there are epochs), out/report.md, out/model.npz."""
    import os
    from .plots import plot_history
    os.makedirs(out, exist_ok=True)
    written = []
    if hist.epoch:
        path = os.path.join(out, "learning_curves.png")
        plot_history(hist, path=path, title=f"{model.count_params():,} parameters")
        written.append(path)
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write(text)
    written.append(path)
    written.append(model.save(os.path.join(out, "model.npz")))
    print("wrote " + ", ".join(map(str, written)))


def cmd_evaluate(args):
    import fastmlp as fm
    model = fm.load(args.model)
    saved = model.history.params if model.history is not None else {}
    data = args.data or saved.get("data", "mnist")
    path = args.path if args.path is not None else saved.get("path")
    n_val = args.n_val if args.n_val is not None else saved.get("n_val")
    splits = dict(zip(("train", "val", "test"), load_dataset(data, path, n_val)))
    X, y = splits[args.split]
    if X.shape[1] != model.n_features:
        raise SystemExit(f"{args.model} expects {model.n_features} features; {data} has {X.shape[1]}")
    m = model.evaluate(X, y)
    print(f"{args.model}: {data} {args.split} ({len(X)} samples)")
    print(f"loss {m['loss']:.4f}  cost {m['cost']:.4f}  accuracy {m['accuracy']:.4f}")
    return 0


def first_varying_window(X, width):
    """Start of the first run of `width` consecutive columns of X (samples, features) that
    all vary across its rows (MNIST's first pixels are border pixels, 0 in every image:
    a gradient check on them compares zeros); 0 when there is none."""
    varies = np.ptp(X, axis=0) > 0   # not std: float32 rounding makes it > 0 for equal values
    run = 0
    for j, v in enumerate(varies):
        run = run + 1 if v else 0
        if run == width:
            return j - width + 1
    return 0


def cmd_gradcheck(args):
    import fastmlp as fm
    (Xtr, ytr), _, _ = load_dataset(args.data, args.path, args.n_val)
    if args.features > Xtr.shape[1] or args.samples > len(Xtr):
        raise SystemExit(f"{args.data} has {Xtr.shape[1]} features and {len(Xtr)} samples")
    offset = args.offset
    if offset is None:
        offset = first_varying_window(Xtr[:args.samples], args.features)
    stop = offset + args.features
    if stop > Xtr.shape[1]:
        raise SystemExit(f"--offset {offset} + --features {args.features} > the "
                         f"{Xtr.shape[1]} features of {args.data}")
    X = Xtr[:args.samples, offset:stop].astype(np.float64)
    y = ytr[:args.samples]
    if np.all(np.ptp(X, axis=0) == 0):
        print(f"warning: features {offset}..{stop - 1} are constant in these samples "
              f"(MNIST's border pixels are); a check on them says little")
    model = build_model(args.hidden, args.bn, args.seed, dtype=np.float64)
    model.build(X.shape[1])
    table = fm.check_gradients(model, X, y, l2=args.l2, h=args.h, max_entries=args.max_entries)
    print(f"gradient check: layers {args.hidden} {'with' if args.bn else 'without'} BN, "
          f"{len(X)} samples x features {offset}..{stop - 1}, l2={args.l2}, float64")
    print(table)
    print(f"max relative error: {table.max_rel_error:.2e}")
    return 0


def cmd_cache(args):
    """Print where compiled kernels are cached (and how much is there); --clear deletes
    every fastmlp build's folder in that place."""
    import shutil
    from fastmlp import _config
    root = _config.cache_root()
    builds = sorted(root.glob("fastmlp-*")) if root.is_dir() else []
    print(f"kernel cache: {root}")
    print(f"this build:   {_config.CACHE_FOLDER}" + ("" if _config.CACHE else " (disabled by "
                                                        "FASTMLP_NO_CACHE)"))
    for folder in builds:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"  {folder.name}: {size / 1e6:.1f} MB")
    if args.clear:
        for folder in builds:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {len(builds)} folder(s)")
    return 0


def _add_data_options(p, default="mnist"):
    p.add_argument("--data", default=default, choices=["mnist", "fashion-mnist", "cifar10"],
                   help="dataset (default: %(default)s; without --path the bundled MNIST subset)")
    p.add_argument("--path", default=None, help="folder with the dataset's original files")
    p.add_argument("--n-val", type=int, default=None, help="validation rows held out "
                   "(default 10%%; cifar10: 0 = batch 1/2 split, N = all batches, last N)")


def _add_net_options(p, hidden):
    p.add_argument("--hidden", type=int, nargs="+", default=hidden,
                   help="hidden layer widths (default: %(default)s)")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True,
                   help="batch normalisation after each hidden dense layer, before its ReLU")
    p.add_argument("--seed", type=int, default=0, help="weights and shuffling seed (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="compute threads (default: all cores)")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m fastmlp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train an MLP; print the report; write plots, report, model")
    _add_data_options(t)
    _add_net_options(t, [100, 50])
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="update rule (default: sgd)")
    t.add_argument("--lr", type=float, default=None, help="learning rate (sgd 0.01, adam 1e-3)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD)")
    t.add_argument("--cyclic", action="store_true",
                   help="triangular cyclical learning rate from --eta-min to --eta-max")
    t.add_argument("--eta-min", type=float, default=1e-5, help="cyclic minimum lr (1e-5)")
    t.add_argument("--eta-max", type=float, default=1e-1, help="cyclic maximum lr (0.1)")
    t.add_argument("--step-size", type=int, default=500, help="cyclic half-cycle n_s (updates)")
    t.add_argument("--l2", type=float, default=0.0, help="penalty l2 * sum ||W||^2 (default 0)")
    t.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    t.add_argument("--batch-size", type=int, default=100, help="minibatch size (default 100)")
    t.add_argument("--out", default="out", metavar="DIR",
                   help="folder for learning_curves.png, report.md and model.npz "
                        "(default: out; '' writes nothing)")
    t.add_argument("--compare", action="store_true",
                   help="also time one epoch in the numpy reference and PyTorch")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("evaluate", help="print loss, cost and accuracy of a saved model")
    e.add_argument("model", help="a model.npz written by train --out or model.save()")
    e.add_argument("--data", default=None, choices=["mnist", "fashion-mnist", "cifar10"],
                   help="dataset (default: the one the model was trained on by `train`, else "
                        "mnist); standardised with its training split's statistics")
    e.add_argument("--path", default=None, help="folder with the dataset's original files")
    e.add_argument("--n-val", type=int, default=None,
                   help="validation rows (default: as in training); fixes the training split")
    e.add_argument("--split", choices=["train", "val", "test"], default="test",
                   help="which split to evaluate (default: test)")
    e.add_argument("--threads", type=int, default=None, help="compute threads")
    g = sub.add_parser("gradcheck", help="analytic vs finite-difference gradients (float64)")
    _add_data_options(g)
    _add_net_options(g, [50, 50])
    g.add_argument("--features", type=int, default=10, help="input features used (default 10)")
    g.add_argument("--offset", type=int, default=None,
                   help="index of the first feature used (default: the first run of "
                        "--features columns that vary across the samples)")
    g.add_argument("--samples", type=int, default=20, help="training samples used (default 20)")
    g.add_argument("--l2", type=float, default=0.0, help="l2 penalty in the cost (default 0)")
    g.add_argument("--h", type=float, default=1e-5, help="finite-difference step (default 1e-5)")
    g.add_argument("--max-entries", type=int, default=None,
                   help="check at most this many entries per array (default: all)")
    c = sub.add_parser("cache", help="where compiled kernels are cached; --clear deletes them")
    c.add_argument("--clear", action="store_true", help="delete every fastmlp build's cache folder")
    c.set_defaults(threads=None)
    return p


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "gradcheck": cmd_gradcheck,
            "cache": cmd_cache}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv      # `python -m fastmlp --compare` means train
    args = build_parser().parse_args(argv)
    if args.threads:
        import fastmlp as fm
        fm.set_num_threads(args.threads)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
