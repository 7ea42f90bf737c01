"""Command line: `fastmlp {train,evaluate,gradcheck,warmup,cache} ...` (or `python -m
fastmlp ...`; see --help of each).

train      trains an MLP (default: batch-normalised, on the MNIST subset bundled with the
           package), prints the run report and writes to --out (default out/):
           learning_curves.png, report.md and model.npz. With --compare, also times one
           epoch of the same net in the plain-numpy reference (and PyTorch when installed).
evaluate   loads a saved model.npz and prints loss, cost and accuracy on a data split.
gradcheck  compares analytic and finite-difference gradients of a float64 net on a few
           samples and features of the data: a per-layer table and a PASS / FAIL verdict
           (max relative error < 1e-6; near-zero gradients and ReLU kinks set apart).
warmup     compiles the kernels of the common configurations ahead of time.
cache      shows where compiled kernels are cached (--clear deletes them).

A mistake in the command line or its files is reported in one line on stderr with a
hint, exit status 2; --debug shows the traceback instead.
"""
import argparse
import os
import sys
import time

import numpy as np


class UserError(Exception):
    """A mistake in the command line or in the files it names: reported as one line on
    stderr, `hint` appended, exit status 2."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


# the data files each dataset needs (CIFAR-10: with --n-val 0 / unset, and with N > 0)
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")
_CIFAR_FILES = {False: ("data_batch_1", "data_batch_2", "test_batch"),
                True: tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)}


def missing_data(name, path, n_val):
    """(folder, [missing file names]) for a dataset as the loaders look for it;
    ([], None folder) for the bundled MNIST subset."""
    from pathlib import Path
    from . import datasets
    if name == "mnist" and path is None:
        return None, []
    if name == "cifar10":
        folder = datasets._cifar_dir(path, None)
        return folder, [f for f in _CIFAR_FILES[bool(n_val)] if not (folder / f).is_file()]
    folder = Path(path) if path is not None else datasets.get_data_dir() / "fashion_mnist"
    return folder, [f for f in _IDX_FILES
                    if not (folder / f).is_file() and not (folder / (f + ".gz")).is_file()]


def _check_data_present(name, path, n_val):
    """UserError naming the missing files and what to do, before a loader says it its
    library way (its messages mention download=True, an argument of the Python API)."""
    folder, missing = missing_data(name, path, n_val)
    if not missing:
        return
    what = {"cifar10": "the files of cifar-10-python.tar.gz (its cifar-10-batches-py/ folder)",
            "fashion-mnist": "the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...)",
            "mnist": "the four MNIST IDX files (train-images-idx3-ubyte.gz, ...)"}[name]
    raise UserError(f"{name}: {len(missing)} data file(s) missing in {folder}: "
                    f"{', '.join(missing)}",
                    hint=f"point --path at the folder holding {what}, or add --download to fetch "
                         f"them (checksum-verified) into {folder}")


def load_dataset(name, path, n_val, download=False):
    """((X_train, y_train), (X_val, y_val), (X_test, y_test)) standardised float32.
    UserError when the dataset's files are missing (and download is False)."""
    from . import datasets
    from .preprocess import standardize, train_val_split
    if name not in ("mnist", "fashion-mnist", "cifar10"):
        raise UserError(f"unknown dataset {name!r}", hint="choose mnist, fashion-mnist or cifar10")
    if not download:
        _check_data_present(name, path, n_val)
    if name == "mnist":
        (Xtr, ytr), (Xte, yte) = datasets.load_mnist(path, flatten=True, download=download)
    elif name == "fashion-mnist":
        (Xtr, ytr), (Xte, yte) = datasets.load_fashion_mnist(path, flatten=True,
                                                             download=download)
    else:
        split = datasets.cifar10_course_split(path, mode="all" if n_val else "batch1",
                                              n_val=n_val or 5000, download=download)
        (Xtr, ytr), (Xva, yva), (Xte, yte) = split.train, split.val, split.test
        Xtr, Xva, Xte = standardize(Xtr, Xva, Xte)
        return (Xtr, ytr), (Xva, yva), (Xte, yte)
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


def check_out_folder(out, overwrite):
    """UserError unless `out` is a folder that may receive train's files: missing,
    empty, or non-empty with overwrite."""
    if not out:
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file, not a folder", hint="choose another --out")
    if os.path.isdir(out) and not overwrite:
        names = sorted(os.listdir(out))
        if names:
            shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
            raise UserError(f"--out {out} is not empty ({shown})",
                            hint="add --overwrite to replace its files, or choose another --out")


def cmd_train(args):
    import fastmlp as fm
    check_out_folder(args.out, args.overwrite)
    (Xtr, ytr), (Xva, yva), (Xte, yte) = load_dataset(args.data, args.path, args.n_val,
                                                      args.download)
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
    from .progress import CompileNotice
    if not os.path.isfile(args.model):
        raise UserError(f"no model file {args.model}" if not os.path.exists(args.model)
                        else f"{args.model} is not a file",
                        hint=f"give the path of a model.npz; `{args.prog} train` writes "
                             "out/model.npz")
    model = fm.load(args.model)
    saved = model.history.params if model.history is not None else {}
    data = args.data or saved.get("data", "mnist")
    path = args.path if args.path is not None else saved.get("path")
    n_val = args.n_val if args.n_val is not None else saved.get("n_val")
    splits = dict(zip(("train", "val", "test"), load_dataset(data, path, n_val, args.download)))
    X, y = splits[args.split]
    if X.shape[1] != model.n_features:
        raise UserError(f"{args.model} expects {model.n_features} features; {data} has "
                        f"{X.shape[1]}", hint="pass the --data the model was trained on")
    from .compile_times import compile_key
    # a fresh cache compiles the evaluation kernels here
    with CompileNotice(1, key=compile_key(model.dtype, model.plan.switches())):
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
    from .compile_times import compile_key
    from .gradcheck import RTOL
    from .progress import CompileNotice
    (Xtr, ytr), _, _ = load_dataset(args.data, args.path, args.n_val, args.download)
    if args.features > Xtr.shape[1] or args.samples > len(Xtr):
        raise UserError(f"--features {args.features} / --samples {args.samples}: {args.data} "
                        f"has {Xtr.shape[1]} features and {len(Xtr)} training samples",
                        hint="ask for fewer")
    offset = args.offset
    if offset is None:
        offset = first_varying_window(Xtr[:args.samples], args.features)
    stop = offset + args.features
    if stop > Xtr.shape[1]:
        raise UserError(f"--offset {offset} + --features {args.features} > the "
                        f"{Xtr.shape[1]} features of {args.data}", hint="lower --offset")
    X = Xtr[:args.samples, offset:stop].astype(np.float64)
    y = ytr[:args.samples]
    if np.all(np.ptp(X, axis=0) == 0):
        print(f"warning: features {offset}..{stop - 1} are constant in these samples "
              f"(MNIST's border pixels are); a check on them says little")
    model = build_model(args.hidden, args.bn, args.seed, dtype=np.float64)
    model.build(X.shape[1])
    print(f"gradient check: layers {args.hidden} {'with' if args.bn else 'without'} BN, "
          f"{len(X)} samples x features {offset}..{stop - 1}, l2={args.l2}, float64, "
          f"h={args.h:g}; pass: max relative error < {RTOL:g}", flush=True)
    with CompileNotice(1, key=compile_key(np.float64, model.plan.switches())):
        model.compute_gradients(X, y)   # compiles (or loads) the kernels, with the notice
    table = fm.check_gradients(model, X, y, l2=args.l2, h=args.h, max_entries=args.max_entries,
                               progress=True)
    print(table)
    print(f"max relative error: {table.max_rel_error:.2e} (all entries)")
    explained = table.explain()
    if explained:
        print(explained)
    print(table.verdict())
    return 0 if table.passed else 1


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


def cmd_warmup(args):
    """Compile (or load) the kernels of the chosen configurations, with a progress bar."""
    from . import precompile as W
    if args.list:
        for name, config in W.CONFIGURATIONS.items():
            mark = "*" if name in W.DEFAULT else " "
            print(f"{mark} {name:<13} {config.description}")
        print("* compiled by default")
        return 0
    from . import _config
    t0 = time.perf_counter()
    times = W.warmup(args.config or None)
    print(f"{len(times)} configuration(s) ready in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    if _config.CACHE:
        print(f"kernels cached in {_config.CACHE_FOLDER}")
    else:
        print("the kernel cache is disabled (FASTMLP_NO_CACHE): nothing was kept for later "
              "processes")
    return 0


# ---------------------------------------------------------------- option values
def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: kind (int or float) within [low, high] (open ends as asked),
    with a message naming the range."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if value != value or (low is not None and (value <= low if low_open else value < low)) \
                or (high is not None and (value >= high if high_open else value > high)):
            lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
            hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
            bounds = " and ".join(filter(None, (lo, hi)))
            raise argparse.ArgumentTypeError(f"{text} must be {bounds}")
        return value
    return parse


COUNT = _number(int, 1)             # 1, 2, ...
NON_NEGATIVE_INT = _number(int, 0)
POSITIVE = _number(float, 0, low_open=True)
NON_NEGATIVE = _number(float, 0)
FRACTION = _number(float, 0, 1, high_open=True)


def _add_data_options(p, default="mnist"):
    p.add_argument("--data", default=default, choices=["mnist", "fashion-mnist", "cifar10"],
                   help="dataset (default: %(default)s; without --path the bundled MNIST subset)")
    p.add_argument("--path", default=None, help="folder with the dataset's original files")
    p.add_argument("--download", action="store_true",
                   help="fetch missing dataset files (checksum-verified) into --path, or into "
                        "$FASTMLP_DATA (default ~/.fastmlp/data) without it")
    p.add_argument("--n-val", type=NON_NEGATIVE_INT, default=None, help="validation rows held "
                   "out (default 10%%; cifar10: 0 = batch 1/2 split, N = all batches, last N)")


def _add_net_options(p, hidden):
    p.add_argument("--hidden", type=COUNT, nargs="+", default=hidden,
                   help="hidden layer widths (default: %(default)s)")
    p.add_argument("--bn", action=argparse.BooleanOptionalAction, default=True,
                   help="batch normalisation after each hidden dense layer, before its ReLU")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0,
                   help="weights and shuffling seed (default 0)")
    p.add_argument("--threads", type=COUNT, default=None,
                   help="compute threads (default: all cores)")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: "PROG: error: MESSAGE (see PROG --help)", status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def program_name(argv0=None):
    """How the user ran the command line: "python -m fastmlp" when argv[0] is this
    module's file, else "fastmlp" (the console script)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    try:
        ours = os.path.samefile(argv0, __file__)
    except (OSError, TypeError, ValueError):   # "-c", "", a path that does not exist
        ours = False
    return "python -m fastmlp" if ours else "fastmlp"


def build_parser(prog="fastmlp"):
    from . import __version__
    from .precompile import CONFIGURATIONS
    p = _Parser(prog=prog, description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"fastmlp {__version__}",
                   help="print the version and exit")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error (anywhere on the command line)")
    sub = p.add_subparsers(dest="command", metavar="{train,evaluate,gradcheck,warmup,cache}")
    t = sub.add_parser("train", help="train an MLP; print the report; write plots, report, model")
    _add_data_options(t)
    _add_net_options(t, [100, 50])
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="update rule (default: sgd)")
    t.add_argument("--lr", type=POSITIVE, default=None, help="learning rate (sgd 0.01, adam 1e-3)")
    t.add_argument("--momentum", type=FRACTION, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD)")
    t.add_argument("--cyclic", action="store_true",
                   help="triangular cyclical learning rate from --eta-min to --eta-max")
    t.add_argument("--eta-min", type=POSITIVE, default=1e-5, help="cyclic minimum lr (1e-5)")
    t.add_argument("--eta-max", type=POSITIVE, default=1e-1, help="cyclic maximum lr (0.1)")
    t.add_argument("--step-size", type=COUNT, default=500,
                   help="cyclic half-cycle: updates from the minimum lr to the maximum (500)")
    t.add_argument("--l2", type=NON_NEGATIVE, default=0.0,
                   help="penalty l2 * sum ||W||^2 (default 0)")
    t.add_argument("--epochs", type=NON_NEGATIVE_INT, default=5, help="epochs (default 5)")
    t.add_argument("--batch-size", type=COUNT, default=100, help="minibatch size (default 100)")
    t.add_argument("--out", default="out", metavar="DIR",
                   help="folder for learning_curves.png, report.md and model.npz "
                        "(default: out; '' writes nothing); it must be empty or new")
    t.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out, replacing those files")
    t.add_argument("--compare", action="store_true",
                   help="also time one epoch in the numpy reference and PyTorch")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("evaluate", help="print loss, cost and accuracy of a saved model")
    e.add_argument("model", help="a model.npz written by train --out or model.save()")
    e.add_argument("--data", default=None, choices=["mnist", "fashion-mnist", "cifar10"],
                   help="dataset (default: the one the model was trained on by `train`, else "
                        "mnist); standardised with its training split's statistics")
    e.add_argument("--path", default=None, help="folder with the dataset's original files")
    e.add_argument("--download", action="store_true",
                   help="fetch missing dataset files (checksum-verified)")
    e.add_argument("--n-val", type=NON_NEGATIVE_INT, default=None,
                   help="validation rows (default: as in training); fixes the training split")
    e.add_argument("--split", choices=["train", "val", "test"], default="test",
                   help="which split to evaluate (default: test)")
    e.add_argument("--threads", type=COUNT, default=None, help="compute threads")
    g = sub.add_parser("gradcheck", help="analytic vs finite-difference gradients (float64), "
                                         "with a PASS / FAIL verdict")
    _add_data_options(g)
    _add_net_options(g, [50, 50])
    g.add_argument("--features", type=COUNT, default=10, help="input features used (default 10)")
    g.add_argument("--offset", type=NON_NEGATIVE_INT, default=None,
                   help="index of the first feature used (default: the first run of "
                        "--features columns that vary across the samples)")
    g.add_argument("--samples", type=COUNT, default=20, help="training samples used (default 20)")
    g.add_argument("--l2", type=NON_NEGATIVE, default=0.0,
                   help="l2 penalty in the cost (default 0)")
    g.add_argument("--h", type=POSITIVE, default=1e-5,
                   help="finite-difference step (default 1e-5)")
    g.add_argument("--max-entries", type=COUNT, default=None,
                   help="check at most this many entries per array (default: all)")
    w = sub.add_parser("warmup", help="compile the kernels of the common configurations now, "
                                      "so that later runs load them from the cache")
    w.add_argument("--config", nargs="+", choices=list(CONFIGURATIONS), default=None,
                   metavar="NAME", help="configurations to compile (default: the common ones; "
                                        "--list shows them all)")
    w.add_argument("--list", action="store_true", help="list the configurations and exit")
    w.set_defaults(threads=None)
    c = sub.add_parser("cache", help="where compiled kernels are cached; --clear deletes them")
    c.add_argument("--clear", action="store_true", help="delete every fastmlp build's cache folder")
    c.set_defaults(threads=None)
    return p


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "gradcheck": cmd_gradcheck,
            "warmup": cmd_warmup, "cache": cmd_cache}


def error_line(exc, prog):
    """(one line for stderr, exit status) for an exception a command raised: 2 for
    the user's mistakes (UserError, a missing or unreadable file, a bad value in a
    file), 1 for anything else (a fault of fastmlp's, to report)."""
    from .datasets import DownloadError
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, UserError):
        hint = exc.hint
    elif isinstance(exc, DownloadError):
        hint = "check the network connection, or fetch the files yourself and point --path at them"
    elif isinstance(exc, OSError):
        if exc.filename is not None and exc.strerror:
            message = f"{exc.strerror}: {exc.filename}"
        hint = "check the path"
    elif isinstance(exc, ValueError):
        hint = "check the file or option it names; --debug shows where it was raised"
    else:
        return (f"{prog}: internal error: {type(exc).__name__}: {message} (please report it; "
                f"--debug shows the traceback)", 1)
    return f"{prog}: error: {message}" + (f" (hint: {hint})" if hint else ""), 2


def main(argv=None, prog=None):
    """Run the command line; returns the exit status (0 ok, 1 a failed check or an
    internal error, 2 a user error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or program_name()
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + argv      # `fastmlp --compare` means train
    args = build_parser(prog).parse_args(argv)
    args.prog = prog
    try:
        if args.threads:
            import fastmlp as fm
            fm.set_num_threads(args.threads)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (every error becomes one line, or a traceback)
        if debug:
            raise
        line, status = error_line(exc, prog)
        print(line, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
