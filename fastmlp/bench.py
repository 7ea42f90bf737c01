"""Speed benchmark: fastmlp vs the plain-numpy reference vs PyTorch CPU (when installed).

    python -m fastmlp.bench [--quick] [--threads N] [--workload W1 ...] [--json PATH]

Trains on synthetic data of the seed workloads' shapes and prints seconds per
epoch (median of >= 3 timed epochs after one warm-up epoch), samples/s, the
effective training GFLOP/s (2 flops per multiply-add of the dense GEMMs:
forward, dW and dX except for the first layer) and ratios measured in the same
run, with the same thread count. Also times numpy's sgemm (2048^2) and the
cold compile of a first fit in a fresh process with an empty Numba cache.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

WORKLOADS = {
    # name: (hidden widths, bn, batch, n_samples, n_features, optimizer, l2)
    "W1": ([50, 50], True, 100, 45000, 3072, "sgd", 0.005),
    "W2": ([100, 30], False, 100, 60000, 784, "momentum", 0.0),
    "W3-b256": ([512] * 6, True, 256, 50000, 784, "adam", 0.0),
    "W3-b32": ([512] * 6, True, 32, 50000, 784, "adam", 0.0),
}
DESCRIPTIONS = {
    "W1": "3072-50-50-10, BN, b100, SGD+L2",
    "W2": "784-100-30-10, b100, SGD momentum",
    "W3-b256": "784-512x6-10, BN, b256, Adam",
    "W3-b32": "784-512x6-10, BN, b32, Adam",
}
N_CLASSES = 10
LR = {"sgd": 0.01, "momentum": 0.01, "adam": 1e-3}


def make_data(n_samples, n_features, seed=0):
    """Synthetic standardised inputs with labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float32)
    teacher = rng.standard_normal((n_features, N_CLASSES)).astype(np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int64)
    return X, y


def training_flops(n_features, hidden, n_samples):
    """Dense GEMM flops of one epoch: 2*n_in*n_out per sample for forward, dW and dX
    (no dX for the first layer)."""
    sizes = [n_features] + list(hidden) + [N_CLASSES]
    total = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        total += 2 * a * b * (2 if i == 0 else 3)
    return total * n_samples


def spec_of(hidden, bn):
    spec = []
    for h in hidden:
        spec += [("dense", h)] + ([("bn",)] if bn else []) + [("relu",)]
    return spec + [("dense", N_CLASSES), ("softmax",)]


def time_fastmlp(w, X, y, epochs, threads):
    import fastmlp as fm
    hidden, bn, batch, _, _, opt, l2 = w
    layers = []
    for h in hidden:
        layers += [fm.Dense(h)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU()]
    model = fm.Sequential(layers + [fm.Dense(N_CLASSES), fm.Softmax()], seed=0)
    optimizer = {"sgd": fm.SGD(LR["sgd"]), "momentum": fm.SGD(LR["momentum"], momentum=0.9),
                 "adam": fm.Adam(LR["adam"])}[opt]
    hist = model.fit(X, y, epochs=epochs + 1, batch_size=batch, optimizer=optimizer, l2=l2,
                     seed=0, verbose=0, n_threads=threads)
    return hist.history["time"][1:], hist.history["loss"][-1]


def time_reference(w, X, y, epochs, threads):
    from threadpoolctl import threadpool_limits
    from . import reference as ref
    hidden, bn, batch, _, _, opt, l2 = w
    spec = spec_of(hidden, bn)
    weights = ref.init_weights(spec, X.shape[1], np.random.default_rng(0), dtype=np.float32)
    bn_state = ref.init_bn_state(spec, X.shape[1])
    opt_state = {}
    kind = "momentum" if opt == "momentum" else opt
    times, losses = [], []
    rng = np.random.default_rng(0)
    step = 0
    with threadpool_limits(threads):
        for _ in range(epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(len(X))
            losses, step = ref.train_epoch(spec, weights, X, y, batch, LR[opt], l2=l2,
                                           optimizer=kind, opt_state=opt_state, order=order,
                                           bn_state=bn_state, momentum=0.9, step=step,
                                           dtype=np.float32)
            times.append(time.perf_counter() - t0)
    return times[1:], float(np.mean(losses))


def time_torch(w, X, y, epochs, threads):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hidden, bn, batch, _, n_features, opt, l2 = w
    layers, d = [], n_features
    for h in hidden:
        layers.append(torch.nn.Linear(d, h))
        if bn:
            layers.append(torch.nn.BatchNorm1d(h, momentum=0.1, eps=1e-5))
        layers.append(torch.nn.ReLU())
        d = h
    layers.append(torch.nn.Linear(d, N_CLASSES))
    net = torch.nn.Sequential(*layers)
    weights = [p for n, p in net.named_parameters() if n.endswith("weight") and p.dim() == 2]
    others = [p for n, p in net.named_parameters() if not (n.endswith("weight") and p.dim() == 2)]
    # DD2424 L2: gradient 2*l2*W on weight matrices only
    groups = [{"params": weights, "weight_decay": 2 * l2}, {"params": others, "weight_decay": 0.0}]
    if opt == "adam":
        optimizer = torch.optim.Adam(groups, lr=LR[opt])
    else:
        optimizer = torch.optim.SGD(groups, lr=LR[opt], momentum=0.9 if opt == "momentum" else 0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xt), generator=gen)
        for s in range(0, len(Xt), batch):
            idx = perm[s: s + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - t0)
    return times[1:], float(loss.item())


def sgemm_gflops(threads, n=2048, reps=5):
    """numpy float32 matmul GFLOP/s (best of reps) at the given BLAS thread count."""
    from threadpoolctl import threadpool_limits
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    best = np.inf
    with threadpool_limits(threads):
        np.dot(a, a, out=c)
        for _ in range(reps):
            t0 = time.perf_counter()
            np.dot(a, a, out=c)
            best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


_COLD_SCRIPT = """
import time; t0 = time.perf_counter()
import numpy as np, fastmlp as fm
t_import = time.perf_counter() - t0
X = np.random.default_rng(0).standard_normal((200, 32)).astype(np.float32)
y = np.arange(200) % 10
m = fm.Sequential([fm.Dense(16), fm.BatchNorm(), fm.ReLU(), fm.Dense(10), fm.Softmax()], seed=0)
t1 = time.perf_counter()
m.fit(X, y, epochs=1, batch_size=50, optimizer=fm.SGD(0.01), verbose=0)
print(t_import, time.perf_counter() - t1, time.perf_counter() - t0)
"""


def compile_times():
    """(cold first fit s, warm import s, warm import + first fit s) in fresh processes."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            runs.append([float(v) for v in out])
    return runs[0][1], runs[1][0], runs[1][2]


def torch_available():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def run(workloads, threads, quick, with_torch, with_numpy, epochs):
    results = []
    for name in workloads:
        w = WORKLOADS[name]
        hidden, _, batch, n, n_features, _, _ = w
        if quick:
            n = max(n // 5, 10 * batch)
        X, y = make_data(n, n_features)
        flops = training_flops(n_features, hidden, n)
        row = {"workload": name, "description": DESCRIPTIONS[name], "n_samples": n,
               "batch_size": batch, "threads": threads, "gflop_per_epoch": flops / 1e9}
        runners = [("fastmlp", time_fastmlp)]
        if with_numpy:
            runners.append(("numpy", time_reference))
        if with_torch:
            runners.append(("torch", time_torch))
        for label, fn in runners:
            times, loss = fn(w, X, y, epochs, threads)
            med = statistics.median(times)
            row[label] = {"s_per_epoch": med, "epoch_times": times, "samples_per_s": n / med,
                          "gflops": flops / med / 1e9, "final_loss": loss}
            print(f"  {name:8s} {label:8s} {med:8.3f} s/epoch  {n / med:10.0f} samples/s  "
                  f"{flops / med / 1e9:6.1f} GFLOP/s", flush=True)
        for label in ("numpy", "torch"):
            if label in row:
                row[f"speedup_vs_{label}"] = row[label]["s_per_epoch"] / row["fastmlp"]["s_per_epoch"]
        results.append(row)
    return results


def format_table(results, sgemm):
    lines = ["| workload | fastmlp s/epoch | numpy ref s/epoch | PyTorch s/epoch | vs numpy | vs PyTorch "
             "| fastmlp GFLOP/s | % of sgemm |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        def cell(label):
            return f"{r[label]['s_per_epoch']:.3f}" if label in r else "n/a"

        def ratio(label):
            key = f"speedup_vs_{label}"
            return f"{r[key]:.2f}x" if key in r else "n/a"
        g = r["fastmlp"]["gflops"]
        lines.append(f"| {r['workload']} ({r['description']}, n={r['n_samples']}) | {cell('fastmlp')} "
                     f"| {cell('numpy')} | {cell('torch')} | {ratio('numpy')} | {ratio('torch')} "
                     f"| {g:.1f} | {100 * g / sgemm:.0f}% |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastmlp.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1/5 of the samples, 3 timed epochs")
    p.add_argument("--threads", type=int, default=None, help="threads for every framework "
                   "(default: all cores)")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="repeatable; "
                   "default all")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up (>= 3)")
    p.add_argument("--json", help="write the results as JSON to this path")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--no-numpy", action="store_true", help="skip the plain-numpy reference")
    p.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    args = p.parse_args(argv)
    import numba
    import fastmlp as fm
    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    fm.set_num_threads(threads)
    workloads = args.workload or list(WORKLOADS)
    with_torch = not args.no_torch and torch_available()
    print(f"fastmlp {fm.__version__} bench: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, threads={threads}, numba {numba.__version__}, "
          f"numpy {np.__version__}, torch {'absent' if not with_torch else __import__('torch').__version__}")
    compile_info = None
    if not args.no_compile:
        cold, warm_import, warm_first = compile_times()
        compile_info = {"cold_first_fit_s": cold, "warm_import_s": warm_import,
                        "warm_import_plus_first_fit_s": warm_first}
        print(f"compile: first fit with empty cache {cold:.1f} s; warm cache: import "
              f"{warm_import:.2f} s, import + first fit {warm_first:.2f} s", flush=True)
    sgemm = sgemm_gflops(threads)
    print(f"numpy sgemm 2048^2: {sgemm:.0f} GFLOP/s", flush=True)
    results = run(workloads, threads, args.quick, with_torch, not args.no_numpy,
                  max(3, args.epochs))
    print()
    print(format_table(results, sgemm))
    if args.json:
        doc = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
               "processor": platform.processor(), "cores": os.cpu_count(), "threads": threads,
               "quick": args.quick, "sgemm_gflops": sgemm, "compile": compile_info,
               "results": results}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
