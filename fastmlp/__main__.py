"""Command line: `python -m fastmlp train ...` (see --help).

With no options, trains a batch-normalised MLP on the MNIST subset bundled with
the package and, with --compare, times one epoch of the same net in the
plain-numpy reference (and PyTorch when installed) for a side-by-side speed figure.
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
    for split, (X, y) in (("train", (Xtr, ytr)), ("val", (Xva, yva)), ("test", (Xte, yte))):
        m = model.evaluate(X, y)
        print(f"{split:5s} loss {m['loss']:.4f}  cost {m['cost']:.4f}  accuracy {m['accuracy']:.4f}")
    epoch_s = float(np.median(hist.history["time"])) if hist.history.get("time") else float("nan")
    print(f"trained {len(hist.epoch)} epochs in {wall:.2f} s ({epoch_s:.3f} s/epoch median)")
    if args.compare:
        compare_speed(args, Xtr, ytr, epoch_s)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastmlp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train an MLP and report train/val/test accuracy")
    t.add_argument("--data", default="mnist", choices=["mnist", "fashion-mnist", "cifar10"],
                   help="dataset (default: mnist; without --path the bundled MNIST subset)")
    t.add_argument("--path", default=None, help="folder with the dataset's original files")
    t.add_argument("--n-val", type=int, default=None, help="validation rows held out "
                   "(default 10%%; cifar10: 0 = batch 1/2 split, N = all batches, last N)")
    t.add_argument("--hidden", type=int, nargs="+", default=[100, 50], help="hidden widths")
    t.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True,
                   help="batch normalisation after each hidden dense layer")
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    t.add_argument("--lr", type=float, default=None, help="learning rate (sgd 0.01, adam 1e-3)")
    t.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    t.add_argument("--nesterov", action="store_true")
    t.add_argument("--cyclic", action="store_true", help="triangular cyclical learning rate")
    t.add_argument("--eta-min", type=float, default=1e-5)
    t.add_argument("--eta-max", type=float, default=1e-1)
    t.add_argument("--step-size", type=int, default=500, help="cyclic half-cycle n_s (updates)")
    t.add_argument("--l2", type=float, default=0.0, help="penalty l2 * sum ||W||^2")
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--compare", action="store_true",
                   help="also time one epoch in the numpy reference and PyTorch")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.command is None:
        args = p.parse_args(["train"] + list(argv or sys.argv[1:]))
    if args.threads:
        import fastmlp as fm
        fm.set_num_threads(args.threads)
    return cmd_train(args)


if __name__ == "__main__":
    sys.exit(main())
