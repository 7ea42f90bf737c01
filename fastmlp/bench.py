"""Speed benchmark: fastmlp vs the plain-numpy reference vs PyTorch CPU (when installed).

    python -m fastmlp.bench [--quick] [--threads N] [--workload W1 ...] [--json PATH]
                            [--scaling] [--no-threads-compare] [--no-memory]

Trains on synthetic data of the seed workloads' shapes and prints seconds per
epoch (median of >= 3 timed epochs after one warm-up epoch; the frameworks' epochs
interleaved, so that a drifting host slows them alike, each after a 0.3 s pause in
which the previous one's threads go idle), samples/s, the
effective training GFLOP/s (2 flops per multiply-add of the dense GEMMs:
forward, dW and dX except for the first layer) and ratios measured in the same
run, with the same thread count. Also times numpy's sgemm (2048^2) and the
cold compile of `import fastmlp` and a first fit in fresh processes with an empty Numba cache.

Also, each with a verdict against its target:
  threads  fastmlp W3-b256 s/epoch at 1 and at 2 threads (10000 samples) and the
           speedup (target >= 1.6x); skip with --no-threads-compare.
  memory   W1 (45000 x 3072 float32) trained 1 epoch in a fresh process: RSS
           after `import numpy, fastmlp`, the dataset's bytes, peak RSS (VmHWM)
           during the fit, and overhead = peak - baseline - dataset bytes
           (target <= 300 MB, 1 MB = 1e6 bytes); skip with --no-memory.
  scaling  (--scaling) s/epoch (a) against n_samples on the W1 shape, fitted as
           t = a + b*n, and (b) against hidden width w of a 784-w-w-10 BN Adam
           net, fitted as t = a + c*FLOPs; R^2, each point's deviation from the
           fit and, for (b), the log-log slope between the two widest nets
           (-> 2 as the GEMMs dominate). Target R^2 >= 0.98.
--quick (about 30 s on a quiet 2-core machine with a warm kernel cache; at most 60 s)
shrinks all of them: 1/5 of the samples, widths up to 256, 2 timed epochs; the numpy
reference and PyTorch are timed on the first QUICK_REF_SAMPLES samples and their s/epoch
extrapolated to the workload's size (stated in the output); the compile timing measures a
fresh process with the kernel cache as found instead of an empty one.

The host's sgemm rate is measured first. When it is below half of the quiet figure recorded
for this machine (the best sgemm of bench/results/*.json from a machine with the same
processor, cores and threads, or --quiet-sgemm), the host is busy and the timing verdicts
read "host busy, not judged".
--workload sklearn times FastMLPClassifier against scikit-learn's MLPClassifier on W2
(fastmlp/bench_sklearn.py); it runs only when asked for.
"""
import argparse
import gc
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

# --scaling: (a) n_samples on the W1 shape, (b) hidden width w of 784-w-w-10 BN Adam
SCALING_SAMPLES = [5000, 10000, 20000, 30000, 45000]
SCALING_WIDTHS = [64, 128, 256, 512, 1024]
WIDTH_SAMPLES = 10000
THREADS_SAMPLES = 10000
MEMORY_WORKLOAD = "W1"
# targets of the speed issue
R2_TARGET = 0.98
SPEEDUP_TARGET = 1.6
# fastmlp's speedup targets per workload: {workload: {"numpy"/"torch": x faster}}, and
# W3-b256's effective GFLOP/s as a fraction of numpy's sgemm in the same run
RATIO_TARGETS = {"W1": {"torch": 3.0, "numpy": 4.0}, "W2": {"torch": 2.5},
                 "W3-b256": {"torch": 1.3}, "W3-b32": {"torch": 2.0}}
SGEMM_FRACTION_TARGET = {"W3-b256": 0.60}
COLD_FIT_TARGET_S = 20.0
CONTENDED_TOLERANCE = 0.10   # --contended: default threads at most 10% slower than 1
CONTENDED_ROUNDS = 4         # --contended: fits per setting, alternating (contended_compare)
WARM_START_TARGET_S = 1.0
OVERHEAD_TARGET_MB = 300
MB = 1e6
# --quick: the numpy reference and PyTorch run on this many samples (whole batches) and
# their s/epoch is scaled to the workload's n; fastmlp runs this many timed epochs
QUICK_REF_SAMPLES = 2000
QUICK_EPOCHS = 2
# the host counts as busy when its sgemm rate is below this fraction of the quiet figure
BUSY_FRACTION = 0.5
# pause before each timed epoch or fit (settle()): after a multi-threaded call, a BLAS or
# OpenMP runtime's idle threads keep spinning for a while before they sleep (OpenBLAS:
# OPENBLAS_THREAD_TIMEOUT; on the order of 0.1 s here, see settle) and take a core from
# whatever runs next
SETTLE_S = 0.3
BUSY = "host busy, not judged"
RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "bench", "results")


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


def build_fastmlp(w):
    """(fastmlp model, optimizer) for workload tuple w."""
    import fastmlp as fm
    hidden, bn, _, _, _, opt, _ = w
    layers = []
    for h in hidden:
        layers += [fm.Dense(h)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU()]
    model = fm.Sequential(layers + [fm.Dense(N_CLASSES), fm.Softmax()], seed=0)
    optimizer = {"sgd": fm.SGD(LR["sgd"]), "momentum": fm.SGD(LR["momentum"], momentum=0.9),
                 "adam": fm.Adam(LR["adam"])}[opt]
    return model, optimizer


def settle():
    """Sleep SETTLE_S seconds, so that the threads of the framework timed before have
    gone idle. Measured: a W2 fit (2 threads) started right after a 2-thread numpy
    sgemm ran its first 120 updates at 671-1026 us each, against 343-354 us after a
    0.5 s pause and 322-513 us after a 1-thread sgemm; PyTorch's W2 epoch of 120
    updates took 0.149-0.220 s right after such an sgemm and 0.100-0.154 s after a
    0.3 s pause (5 pairs). Without it, the bench would charge a framework for the
    spinning threads of the one timed before it: PyTorch after the numpy reference,
    fastmlp after MLPClassifier (a fastmlp epoch right after PyTorch's was not slowed,
    6 pairs)."""
    time.sleep(SETTLE_S)


def _dot():
    """One '.' per finished epoch, so that a long run is never silent."""
    print(".", end="", flush=True)


def time_fastmlp(w, X, y, epochs, threads, progress=False):
    """(times of `epochs` epochs after one warm-up epoch in s, the last epoch's mean
    batch loss) of fastmlp on X (n, d) float32, y (n,) int labels; threads None: the
    default (fm.get_num_threads() chunks, the thread count following the load).
    progress: print a dot after each epoch."""
    import fastmlp as fm

    class Dots(fm.Callback):
        def on_epoch_end(self, model, epoch, logs):
            _dot()
    _, _, batch, _, _, _, l2 = w
    model, optimizer = build_fastmlp(w)
    hist = model.fit(X, y, epochs=epochs + 1, batch_size=batch, optimizer=optimizer, l2=l2,
                     seed=0, verbose=0, n_threads=threads, callbacks=[Dots()] if progress else [])
    return hist.history["time"][1:], hist.history["loss"][-1]


def fastmlp_epochs(w, X, y, threads):
    """Generator: each next() trains fastmlp one more epoch on X, y (fit(epochs=1),
    continuing from the previous one) and yields (seconds, mean batch loss) of that
    epoch, as its History records them. threads as in time_fastmlp."""
    _, _, batch, _, _, _, l2 = w
    model, optimizer = build_fastmlp(w)
    while True:
        hist = model.fit(X, y, epochs=1, batch_size=batch, optimizer=optimizer, l2=l2,
                         seed=0, verbose=0, n_threads=threads)
        optimizer = None   # later fits keep the first one's optimizer and its state
        yield hist.history["time"][-1], hist.history["loss"][-1]


def reference_epochs(w, X, y, threads):
    """Generator as fastmlp_epochs, for the plain-numpy reference (fastmlp/reference.py)
    with BLAS limited to `threads` while an epoch runs."""
    from threadpoolctl import threadpool_limits
    from . import reference as ref
    hidden, bn, batch, _, _, opt, l2 = w
    spec = spec_of(hidden, bn)
    weights = ref.init_weights(spec, X.shape[1], np.random.default_rng(0), dtype=np.float32)
    bn_state = ref.init_bn_state(spec, X.shape[1])
    opt_state = {}
    kind = "momentum" if opt == "momentum" else opt
    rng = np.random.default_rng(0)
    step = 0
    while True:
        with threadpool_limits(threads):
            t0 = time.perf_counter()
            order = rng.permutation(len(X))
            losses, step = ref.train_epoch(spec, weights, X, y, batch, LR[opt], l2=l2,
                                           optimizer=kind, opt_state=opt_state, order=order,
                                           bn_state=bn_state, momentum=0.9, step=step,
                                           dtype=np.float32)
            seconds = time.perf_counter() - t0
        yield seconds, float(np.mean(losses))


def first_epochs(epochs_of, w, X, y, epochs, threads, progress=False):
    """(times of `epochs` epochs after one warm-up epoch, the last epoch's loss) from an
    epoch generator (fastmlp_epochs, reference_epochs, torch_epochs)."""
    runner = epochs_of(w, X, y, threads)
    times, loss = [], None
    for _ in range(epochs + 1):
        seconds, loss = next(runner)
        times.append(seconds)
        if progress:
            _dot()
    return times[1:], loss


def time_reference(w, X, y, epochs, threads, progress=False):
    """As time_fastmlp, for the plain-numpy reference (fastmlp/reference.py) with BLAS
    limited to `threads`."""
    return first_epochs(reference_epochs, w, X, y, epochs, threads, progress)


def time_torch(w, X, y, epochs, threads, progress=False):
    """As time_fastmlp, for the same net in PyTorch (CPU, `threads` intra-op threads;
    its default initialisation, so losses agree only roughly)."""
    return first_epochs(torch_epochs, w, X, y, epochs, threads, progress)


def torch_epochs(w, X, y, threads):
    """Generator as fastmlp_epochs, for the same net in PyTorch (CPU, `threads` intra-op
    threads, set before each epoch; its default initialisation, so losses agree only
    roughly). The loss is the epoch's mean batch loss, averaged after the clock stops."""
    import torch
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
    while True:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        perm = torch.randperm(len(Xt), generator=gen)
        losses = []  # detached batch losses
        for s in range(0, len(Xt), batch):
            idx = perm[s: s + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        seconds = time.perf_counter() - t0
        yield seconds, float(torch.stack(losses).mean())


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
from fastmlp.progress import CompileNotice
with CompileNotice(1):   # the notice a fit(verbose=1) shows, on stderr
    m.fit(X, y, epochs=1, batch_size=50, optimizer=fm.SGD(0.01), verbose=0)
print(t_import, time.perf_counter() - t1, time.perf_counter() - t0)
"""


def compile_times():
    """Seconds of `import fastmlp` and of a first fit in fresh processes, with an empty
    Numba cache (cold) and then with the cache that run left (warm): dict with
    cold_import_s, cold_first_fit_s, cold_import_plus_first_fit_s (what a first run
    waits: kernels compile on first use, in the fit or earlier), warm_import_s,
    warm_import_plus_first_fit_s, and cold_notice: the compile notice the cold fit
    printed on stderr (empty if none)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTMLP_CACHE_DIR=cache)
        runs, notices = [], []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=env, check=True,
                                  capture_output=True, text=True)
            runs.append([float(v) for v in done.stdout.split()])
            notices.append(done.stderr.strip())
    (cold_import, cold_fit, cold_total), (warm_import, _, warm_total) = runs
    return {"cold_import_s": cold_import, "cold_first_fit_s": cold_fit,
            "cold_import_plus_first_fit_s": cold_total, "warm_import_s": warm_import,
            "warm_import_plus_first_fit_s": warm_total, "cold_notice": notices[0]}


def warm_start_times():
    """--quick's compile timing: `import fastmlp` and a first fit in two fresh processes
    with the kernel cache as found (FASTMLP_CACHE_DIR or the default); the first may
    compile (a cold cache), the second loads from the cache. Dict with
    first_import_plus_first_fit_s, warm_import_s and warm_import_plus_first_fit_s."""
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], check=True,
                              capture_output=True, text=True)
        runs.append([float(v) for v in done.stdout.split()])
    (_, _, first_total), (warm_import, _, warm_total) = runs
    return {"first_import_plus_first_fit_s": first_total, "warm_import_s": warm_import,
            "warm_import_plus_first_fit_s": warm_total}


def torch_available():
    try:
        import torch
        del torch
        return True
    except ImportError:
        return False


def verdict(ok, busy=False):
    """'met' or 'NOT met'; BUSY ("host busy, not judged") when busy is true."""
    if busy:
        return BUSY
    return "met" if ok else "NOT met"


def cpu_model():
    """The processor's model name ("model name" of /proc/cpuinfo, else
    platform.processor()); "" when unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def quiet_sgemm(threads, results_dir=RESULTS_DIR, cores=None, model=None, arch=None):
    """(GFLOP/s, file name) of the best sgemm rate recorded in results_dir/*.json by a run
    on this machine (same cores, threads and architecture, and the same cpu_model where
    the file records one); (None, None) when there is none. The best of several runs
    stands for the quiet host: contention only lowers the rate."""
    cores = os.cpu_count() if cores is None else cores
    model = cpu_model() if model is None else model
    arch = platform.machine() if arch is None else arch
    best, name = None, None
    try:
        files = sorted(f for f in os.listdir(results_dir) if f.endswith(".json"))
    except OSError:
        return None, None
    for f in files:
        try:
            with open(os.path.join(results_dir, f)) as fh:
                doc = json.load(fh)
            rate = float(doc["sgemm_gflops"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if (doc.get("cores") != cores or doc.get("threads") != threads
                or arch not in str(doc.get("machine", ""))
                or doc.get("cpu_model", model) != model):
            continue
        if best is None or rate > best:
            best, name = rate, f
    return best, name


def host_check(sgemm, quiet):
    """(busy, text): busy when sgemm (GFLOP/s) is below BUSY_FRACTION of the quiet
    figure; never busy when there is no quiet figure."""
    if not quiet:
        return False, ("no quiet sgemm figure recorded for this machine (bench/results or "
                       "--quiet-sgemm): verdicts are judged as measured")
    busy = sgemm < BUSY_FRACTION * quiet
    state = (f"host busy (below {BUSY_FRACTION:.0%} of it): timing verdicts not judged" if busy
             else "host quiet enough to judge")
    return busy, f"{100 * sgemm / quiet:.0f}% of the quiet figure {quiet:.0f}; {state}"


def linear_fit(x, t):
    """Least-squares fit t = intercept + slope * x.

    Returns dict(slope, intercept, r2, rel_devs, max_rel_dev): r2 = 1 - SS_res / SS_tot
    (1.0 when t is constant), rel_devs[i] = (t[i] - fit[i]) / fit[i] and max_rel_dev the
    largest |rel_devs[i]| (inf where a fitted value is 0). Needs >= 2 distinct x."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if x.ndim != 1 or x.shape != t.shape or len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("linear_fit needs two 1-d arrays of equal length with >= 2 distinct x")
    dx, dt = x - x.mean(), t - t.mean()
    slope = float(dx @ dt / (dx @ dx))
    intercept = float(t.mean() - slope * x.mean())
    fitted = intercept + slope * x
    ss_res, ss_tot = float(((t - fitted) ** 2).sum()), float((dt ** 2).sum())
    r2 = 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(fitted != 0, (t - fitted) / fitted, np.inf)
    return {"slope": slope, "intercept": intercept, "r2": r2,
            "rel_devs": [float(v) for v in rel], "max_rel_dev": float(np.abs(rel).max())}


def median_epoch_time(w, epochs, threads):
    """(median s/epoch, epoch times) of fastmlp on fresh synthetic data of w's shape."""
    _, _, _, n, n_features, _, _ = w
    X, y = make_data(n, n_features)
    times, _ = time_fastmlp(w, X, y, epochs, threads)
    return statistics.median(times), times


def with_samples(w, n):
    """Workload tuple w with n_samples replaced by n."""
    return tuple(w[:3]) + (n,) + tuple(w[4:])


def width_workload(width, n):
    """784-width-width-10, BN, batch 100, Adam, n samples (scaling against width)."""
    return ([width, width], True, 100, n, 784, "adam", 0.0)


def scaling_points(workloads, xs, epochs, threads, label):
    """[{label: x, s_per_epoch, epoch_times}] timing fastmlp on each workload."""
    points = []
    for w, x in zip(workloads, xs):
        med, times = median_epoch_time(w, epochs, threads)
        points.append({label: x, "s_per_epoch": med, "epoch_times": times})
        print(f"  scaling {label}={x}: {med:.4f} s/epoch", flush=True)
    return points


def scaling_vs_samples(samples, epochs, threads):
    """s/epoch against n_samples on the W1 shape, fitted as t = a + b*n."""
    base = WORKLOADS["W1"]
    points = scaling_points([with_samples(base, n) for n in samples], samples, epochs, threads,
                            "n_samples")
    fit = linear_fit(samples, [p["s_per_epoch"] for p in points])
    for p, dev in zip(points, fit["rel_devs"]):
        p["rel_dev"] = dev
    return {"description": DESCRIPTIONS["W1"], "model": "t = a + b * n_samples",
            "points": points, "fit": fit, "r2_target": R2_TARGET, "met": fit["r2"] >= R2_TARGET}


def loglog_slope(x1, t1, x2, t2):
    """d log t / d log x between two points."""
    return float(np.log(t2 / t1) / np.log(x2 / x1))


def scaling_vs_width(widths, n, epochs, threads):
    """s/epoch against hidden width of 784-w-w-10 (n samples), fitted as t = a + c*FLOPs,
    plus the log-log slope of t against width between the two widest nets."""
    widths = sorted(widths)
    points = scaling_points([width_workload(wd, n) for wd in widths], widths, epochs, threads,
                            "width")
    flops = [training_flops(784, [wd, wd], n) for wd in widths]
    fit = linear_fit(flops, [p["s_per_epoch"] for p in points])
    for p, f, dev in zip(points, flops, fit["rel_devs"]):
        p.update(flops=f, gflops=f / p["s_per_epoch"] / 1e9, rel_dev=dev)
    a, b = points[-2], points[-1]
    return {"description": f"784-w-w-10, BN, b100, Adam, n={n}", "n_samples": n,
            "model": "t = a + c * training_flops", "points": points, "fit": fit,
            "loglog_slope_widest": loglog_slope(a["width"], a["s_per_epoch"], b["width"],
                                                b["s_per_epoch"]),
            "r2_target": R2_TARGET, "met": fit["r2"] >= R2_TARGET}


def spread(times):
    """(max - min) / median of epoch times: how noisy a median is."""
    return (max(times) - min(times)) / statistics.median(times)


def format_fit_rows(points, label, fit, x_of):
    """Table rows: label value, s/epoch, fitted s/epoch, relative deviation, epoch-time
    spread and (when present) GFLOP/s."""
    rows = []
    for p in points:
        fitted = fit["intercept"] + fit["slope"] * x_of(p)
        extra = f"  {p['gflops']:7.1f}" if "gflops" in p else ""
        rows.append(f"  {p[label]:>9}  {p['s_per_epoch']:9.4f}  {fitted:9.4f}  "
                    f"{100 * p['rel_dev']:+6.1f}%  {100 * spread(p['epoch_times']):5.1f}%{extra}")
    return rows


def format_scaling(scaling, busy=False):
    """Readable tables, fits and verdicts of scaling_vs_samples / scaling_vs_width results
    (busy: verdicts read BUSY)."""
    lines = []
    s = scaling.get("samples")
    if s:
        f = s["fit"]
        lines += [f"scaling (a): s/epoch vs n_samples, W1 shape ({s['description']})",
                  "  n_samples    s/epoch        fit     dev  spread"]
        lines += format_fit_rows(s["points"], "n_samples", f, lambda p: p["n_samples"])
        lines += [f"  fit t = {f['intercept']:.4f} s + {f['slope'] * 1e6:.3f} us/sample * n; "
                  f"R^2 = {f['r2']:.4f}; max |dev| = {100 * f['max_rel_dev']:.1f}%",
                  f"  verdict: linear in samples (R^2 {f['r2']:.4f} >= {R2_TARGET}): "
                  f"{verdict(s['met'], busy)}"]
    w = scaling.get("width")
    if w:
        f = w["fit"]
        lines += [f"scaling (b): s/epoch vs hidden width ({w['description']})",
                  "      width    s/epoch        fit     dev  spread  GFLOP/s"]
        lines += format_fit_rows(w["points"], "width", f, lambda p: p["flops"])
        gflops = 1 / (f["slope"] * 1e9) if f["slope"] > 0 else float("nan")
        a, b = w["points"][-2]["width"], w["points"][-1]["width"]
        lines += [f"  fit t = {f['intercept']:.4f} s + FLOPs / ({gflops:.1f} GFLOP/s); "
                  f"R^2 = {f['r2']:.4f}; max |dev| = {100 * f['max_rel_dev']:.1f}%",
                  f"  log-log slope of t vs width, {a} -> {b}: {w['loglog_slope_widest']:.2f} "
                  "(-> 2 as the GEMMs dominate)",
                  f"  verdict: proportional to GEMM FLOPs (R^2 {f['r2']:.4f} >= {R2_TARGET}): "
                  f"{verdict(w['met'], busy)}"]
    return "\n".join(lines)


def threads_compare(n_samples, epochs, counts=(1, 2), workload="W3-b256"):
    """fastmlp s/epoch of `workload` (n_samples) at each thread count in counts and the
    speedup of the last over the first; the default thread count is restored after.
    The counts' epochs are interleaved (as in run), after a warm-up epoch of each."""
    import fastmlp as fm
    w = with_samples(WORKLOADS[workload], n_samples)
    X, y = make_data(n_samples, w[4])
    previous = fm.get_num_threads()
    epochs_of = [fastmlp_epochs(w, X, y, k) for k in counts]
    times = [[] for _ in counts]
    try:
        for _ in range(epochs + 1):
            for i, k in enumerate(counts):
                fm.set_num_threads(k)
                times[i].append(next(epochs_of[i])[0])
    finally:
        fm.set_num_threads(previous)
    rows = [{"threads": k, "s_per_epoch": statistics.median(t[1:]), "epoch_times": t[1:]}
            for k, t in zip(counts, times)]
    speedup = rows[0]["s_per_epoch"] / rows[-1]["s_per_epoch"]
    return {"workload": workload, "description": DESCRIPTIONS[workload], "n_samples": n_samples,
            "runs": rows, "speedup": speedup, "speedup_target": SPEEDUP_TARGET,
            "met": speedup >= SPEEDUP_TARGET}


_BUSY_SCRIPT = "while True:\n    pass\n"


def contended_compare(n_samples, epochs, workloads=("W2", "W3-b256"), rounds=None):
    """With another process keeping one core busy: fastmlp s/epoch of each workload
    (n_samples) at the default thread count and at 1 thread, and their ratio (target:
    the default at most CONTENDED_TOLERANCE slower).

    Each setting is timed in `rounds` fits (default CONTENDED_ROUNDS) of a warm-up epoch
    plus `epochs`, the two settings' fits alternating in ABBA order (default, 1, 1,
    default, ...), so that a drift of the host's speed over the comparison weighs on
    both alike; s/epoch is the median over all of a setting's timed epochs."""
    import fastmlp as fm
    rounds = CONTENDED_ROUNDS if rounds is None else rounds
    busy = subprocess.Popen([sys.executable, "-c", _BUSY_SCRIPT])
    default = fm.get_num_threads()
    rows = []
    try:
        time.sleep(0.5)
        for name in workloads:
            w = with_samples(WORKLOADS[name], n_samples)
            X, y = make_data(n_samples, w[4])
            times = {None: [], 1: []}
            for r in range(rounds):
                for threads in ((None, 1) if r % 2 == 0 else (1, None)):
                    times[threads] += time_fastmlp(w, X, y, epochs, threads)[0]
            t_default, t_one = (statistics.median(times[k]) for k in (None, 1))
            rows.append({"workload": name, "description": DESCRIPTIONS[name],
                         "default_threads": default, "s_per_epoch_default": t_default,
                         "s_per_epoch_1": t_one, "epoch_times_default": times[None],
                         "epoch_times_1": times[1], "ratio": t_default / t_one,
                         "met": t_default <= (1 + CONTENDED_TOLERANCE) * t_one})
    finally:
        busy.kill()
        busy.wait()
    return {"n_samples": n_samples, "rounds": rounds, "runs": rows,
            "met": all(r["met"] for r in rows)}


def format_contended(cc, busy=False):
    """One line per workload: default vs 1 thread under load, and the verdict."""
    lines = [f"contended (another process keeps a core busy), n={cc['n_samples']}, "
             f"{cc.get('rounds', 1)} fits per setting:"]
    for r in cc["runs"]:
        lines.append(f"  {r['workload']}: {r['default_threads']} threads (default) "
                     f"{r['s_per_epoch_default']:.3f} s/epoch, 1 thread {r['s_per_epoch_1']:.3f}"
                     f" s/epoch: default/1 = {r['ratio']:.2f} (<= {1 + CONTENDED_TOLERANCE:.2f}):"
                     f" {verdict(r['met'], busy)}")
    return "\n".join(lines)


def versions():
    """Versions of what the timings depend on: Python, numpy, numba, llvmlite, SciPy,
    torch, the BLAS libraries (threadpoolctl) and Numba's threading layer."""
    import llvmlite
    import numba
    import scipy
    from threadpoolctl import threadpool_info
    from fastmlp import _threads
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "numba": numba.__version__, "llvmlite": llvmlite.__version__,
           "scipy": scipy.__version__, "threading_layer": _threads.threading_layer(),
           "blas": [{k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                             "filepath")}
                    for lib in threadpool_info() if lib.get("user_api") == "blas"]}
    if torch_available():
        import torch
        out["torch"] = torch.__version__
    return out


def format_threads(tc, busy=False):
    """One line per thread count, then the speedup and its verdict."""
    lines = [f"threads: {tc['workload']} ({tc['description']}, n={tc['n_samples']}), fastmlp"]
    lines += [f"  {r['threads']} thread(s): {r['s_per_epoch']:.3f} s/epoch (spread "
              f"{100 * spread(r['epoch_times']):.0f}%)" for r in tc["runs"]]
    first, last = tc["runs"][0]["threads"], tc["runs"][-1]["threads"]
    lines.append(f"  speedup {last} vs {first} thread(s): {tc['speedup']:.2f}x "
                 f"(target >= {SPEEDUP_TARGET}x): {verdict(tc['met'], busy)}")
    return "\n".join(lines)


def _proc_status_bytes(field):
    """A 'kB' field of /proc/self/status (VmRSS: current RSS, VmHWM: peak RSS) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(workload, n_samples, n_features, threads, epochs=1):
    """Run inside a fresh process (see measure_memory): RSS figures around building the
    data and fitting; prints them as one JSON line. Peak RSS is read from VmHWM: the
    getrusage ru_maxrss of a child started by subprocess also counts the parent's peak
    before exec, and VmHWM can be reset after the data is built."""
    baseline = _proc_status_bytes("VmRSS")
    X, y = make_data(n_samples, n_features)
    gc.collect()
    after_data, data_peak = _proc_status_bytes("VmRSS"), _proc_status_bytes("VmHWM")
    reset = _reset_peak_rss()
    w = with_samples(WORKLOADS[workload], n_samples)
    model, optimizer = build_fastmlp(w)
    t0 = time.perf_counter()
    model.fit(X, y, epochs=epochs, batch_size=w[2], optimizer=optimizer, l2=w[6], seed=0,
              verbose=0, n_threads=threads)
    fit_s = time.perf_counter() - t0
    peak = _proc_status_bytes("VmHWM")
    if not reset:
        peak = max(peak, data_peak)
    print(json.dumps({"workload": workload, "n_samples": n_samples, "n_features": n_features,
                      "threads": threads, "epochs": epochs, "baseline_rss": baseline,
                      "dataset_bytes": int(X.nbytes), "labels_bytes": int(y.nbytes),
                      "rss_after_data": after_data, "peak_rss_data_build": data_peak,
                      "peak_reset_after_data": reset, "peak_rss": peak,
                      "rss_after_fit": _proc_status_bytes("VmRSS"), "fit_s": fit_s,
                      "overhead": peak - baseline - int(X.nbytes)}))


_MEMORY_SCRIPT = """
import sys, numpy, fastmlp
from fastmlp.bench import memory_child
memory_child(sys.argv[1], *map(int, sys.argv[2:]))
"""


def measure_memory(n_samples=None, n_features=None, threads=None, workload=MEMORY_WORKLOAD,
                   epochs=1):
    """Peak memory of training `workload` (default shape and n unless given) in a fresh
    process: dict of memory_child's figures (bytes) plus overhead_mb and met (overhead
    <= OVERHEAD_TARGET_MB). Linux only (/proc/self/status)."""
    import fastmlp as fm
    _, _, _, n0, d0, _, _ = WORKLOADS[workload]
    args = [workload, n_samples or n0, n_features or d0, threads or fm.get_num_threads(), epochs]
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, *map(str, args)], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["overhead_mb"] = result["overhead"] / MB
    result["overhead_target_mb"] = OVERHEAD_TARGET_MB
    result["met"] = result["overhead_mb"] <= OVERHEAD_TARGET_MB
    return result


def format_memory(m):
    """What was measured, in MB (1e6 bytes), and the verdict."""
    peak_kind = ("peak RSS during the fit (VmHWM, reset after building the data)"
                 if m["peak_reset_after_data"] else "peak RSS of the process (VmHWM)")
    hidden, bn, batch, _, _, opt, l2 = WORKLOADS[m["workload"]]
    net = "-".join(str(v) for v in [m["n_features"], *hidden, N_CLASSES])
    return "\n".join([
        f"memory: {m['workload']} net {net}{', BN' if bn else ''}, b{batch}, {opt}, l2={l2}; "
        f"X {m['n_samples']} x {m['n_features']} float32; {m['epochs']} epoch(s), "
        f"{m['threads']} thread(s), fresh process",
        f"  RSS after import numpy, fastmlp (baseline) {m['baseline_rss'] / MB:8.1f} MB",
        f"  dataset X bytes                           {m['dataset_bytes'] / MB:8.1f} MB",
        f"  RSS after building the data               {m['rss_after_data'] / MB:8.1f} MB "
        f"(peak while building {m['peak_rss_data_build'] / MB:.1f} MB)",
        f"  {peak_kind}: {m['peak_rss'] / MB:.1f} MB",
        f"  overhead = peak - baseline - dataset bytes = {m['overhead_mb']:.1f} MB "
        f"(target <= {OVERHEAD_TARGET_MB} MB): {verdict(m['met'])}"])


def quick_samples(n, batch):
    """Samples of a --quick workload: n / 5, at least 10 batches."""
    return max(n // 5, 10 * batch)


def reference_samples(n, batch, quick):
    """Samples the numpy reference and PyTorch train on: all n, or with quick the first
    QUICK_REF_SAMPLES rounded down to whole batches (at least one batch)."""
    if not quick:
        return n
    return min(n, max(batch, QUICK_REF_SAMPLES // batch * batch))


def run(workloads, threads, quick, with_torch, with_numpy, epochs):
    """Time every framework on each workload; list of result rows (one per workload). A
    runner timed on fewer samples (quick: the numpy reference and PyTorch) records
    timed_samples, and its s/epoch is scaled by n_samples / timed_samples.

    The frameworks' epochs are interleaved (epoch e of each runner, then epoch e + 1),
    so that a host whose speed drifts over the minutes of a workload slows all of them
    alike and the ratios stay fair, with a pause (settle) before each, so that none
    starts while the previous one's threads still spin; each runner's first epoch is
    its warm-up."""
    results = []
    for name in workloads:
        w = WORKLOADS[name]
        hidden, _, batch, n, n_features, _, _ = w
        if quick:
            n = quick_samples(n, batch)
        X, y = make_data(n, n_features)
        flops = training_flops(n_features, hidden, n)
        row = {"workload": name, "description": DESCRIPTIONS[name], "n_samples": n,
               "batch_size": batch, "threads": threads, "gflop_per_epoch": flops / 1e9}
        runners = [("fastmlp", fastmlp_epochs, n)]
        m = reference_samples(n, batch, quick)
        if with_numpy:
            runners.append(("numpy", reference_epochs, m))
        if with_torch:
            runners.append(("torch", torch_epochs, m))
        labels = ", ".join(label for label, _, _ in runners)
        print(f"  {name:8s} {epochs}+1 epochs each of {labels}, interleaved ", end="",
              flush=True)
        epochs_of = {label: fn(w, X[:k], y[:k], threads) for label, fn, k in runners}
        times = {label: [] for label, _, _ in runners}
        losses = {}
        for _ in range(epochs + 1):
            for label, _, _ in runners:
                settle()
                seconds, losses[label] = next(epochs_of[label])
                times[label].append(seconds)
                _dot()
        print(flush=True)
        for label, _, k in runners:
            med = statistics.median(times[label][1:]) * n / k
            row[label] = {"s_per_epoch": med, "epoch_times": times[label][1:],
                          "samples_per_s": n / med, "gflops": flops / med / 1e9,
                          "final_loss": losses[label]}
            part = f"on {k} samples, scaled to {n}" if k < n else f"n={n}"
            if k < n:
                row[label]["timed_samples"] = k
            print(f"  {name:8s} {label:8s} ({part}) {med:8.3f} s/epoch  {n / med:10.0f} "
                  f"samples/s  {flops / med / 1e9:6.1f} GFLOP/s", flush=True)
        for label in ("numpy", "torch"):
            if label in row:
                row[f"speedup_vs_{label}"] = row[label]["s_per_epoch"] / row["fastmlp"]["s_per_epoch"]
        results.append(row)
    return results


def format_table(results, sgemm):
    """Markdown table of run()'s rows; a figure scaled from fewer samples is marked *."""
    lines = ["| workload | fastmlp s/epoch | numpy ref s/epoch | PyTorch s/epoch | vs numpy | vs PyTorch "
             "| fastmlp GFLOP/s | % of sgemm |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        def cell(label):
            if label not in r:
                return "n/a"
            return f"{r[label]['s_per_epoch']:.3f}" + ("*" * ("timed_samples" in r[label]))

        def ratio(label):
            key = f"speedup_vs_{label}"
            return f"{r[key]:.2f}x" if key in r else "n/a"
        g = r["fastmlp"]["gflops"]
        lines.append(f"| {r['workload']} ({r['description']}, n={r['n_samples']}) | {cell('fastmlp')} "
                     f"| {cell('numpy')} | {cell('torch')} | {ratio('numpy')} | {ratio('torch')} "
                     f"| {g:.1f} | {100 * g / sgemm:.0f}% |")
    scaled = {r[k]["timed_samples"] for r in results for k in ("numpy", "torch")
              if k in r and "timed_samples" in r[k]}
    if scaled:
        lines.append(f"\n* timed on the first {'/'.join(map(str, sorted(scaled)))} samples, "
                     "s/epoch scaled to n (--quick)")
    return "\n".join(lines)


def int_list(text):
    """'5000,10000' -> [5000, 10000] (argparse type; each value >= 1)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def build_parser():
    """The command-line options of python -m fastmlp.bench."""
    p = argparse.ArgumentParser(prog="python -m fastmlp.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1/5 of the samples everywhere (also in "
                   "--scaling, the threads comparison and the memory run), widths up to 256, "
                   f"{QUICK_EPOCHS} timed epochs, numpy and PyTorch timed on "
                   f"{QUICK_REF_SAMPLES} samples and scaled, compile timed with the cache "
                   "as found")
    p.add_argument("--threads", type=int, default=None, help="threads for every framework "
                   "(default: all cores); the threads comparison always uses 1 and 2")
    p.add_argument("--workload", action="append", choices=sorted(WORKLOADS) + ["sklearn"],
                   help="repeatable; default all but sklearn (FastMLPClassifier vs "
                   "MLPClassifier on W2, fastmlp/bench_sklearn.py)")
    p.add_argument("--epochs", type=int, default=None, help="timed epochs after one warm-up "
                   f"(default and minimum 3; {QUICK_EPOCHS} with --quick)")
    p.add_argument("--quiet-sgemm", type=float, default=None, metavar="GFLOPS",
                   help="this machine's sgemm rate when quiet (default: the best recorded in "
                   "bench/results for the same processor, cores and threads)")
    p.add_argument("--json", help="write the results as JSON to this path")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--no-numpy", action="store_true", help="skip the plain-numpy reference")
    p.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    p.add_argument("--no-threads-compare", action="store_true", help="skip the fastmlp W3-b256 "
                   "1-thread vs 2-thread comparison")
    p.add_argument("--threads-samples", type=int, default=None, help="samples of the threads "
                   f"comparison (default {THREADS_SAMPLES}, /5 with --quick)")
    p.add_argument("--no-memory", action="store_true", help="skip the W1 peak-memory run")
    p.add_argument("--contended", action="store_true", help="also time W2 and W3-b256 at the "
                   "default thread count and at 1 thread while another process keeps a core "
                   "busy (target: the default at most 10%% slower)")
    p.add_argument("--memory-samples", type=int, default=None, help="samples of the memory run "
                   f"(default {WORKLOADS[MEMORY_WORKLOAD][3]}, /5 with --quick)")
    p.add_argument("--scaling", action="store_true", help="also time s/epoch against n_samples "
                   "(W1 shape) and against hidden width (784-w-w-10, BN, Adam) and fit both")
    p.add_argument("--scaling-samples", type=int_list, default=None, metavar="N,N,...",
                   help=f"n_samples of --scaling (a) (default {SCALING_SAMPLES}, /5 with --quick)")
    p.add_argument("--scaling-widths", type=int_list, default=None, metavar="W,W,...",
                   help=f"widths of --scaling (b) (default {SCALING_WIDTHS}, up to 256 with "
                   "--quick)")
    p.add_argument("--scaling-width-samples", type=int, default=None, help="n_samples of "
                   f"--scaling (b) (default {WIDTH_SAMPLES}, /5 with --quick)")
    return p


def sizes(args):
    """Sample counts and widths of the extra measurements, from the options and --quick."""
    div = 5 if args.quick else 1
    widths = [w for w in SCALING_WIDTHS if not args.quick or w <= 256]
    return {"scaling_samples": args.scaling_samples or [n // div for n in SCALING_SAMPLES],
            "scaling_widths": args.scaling_widths or widths,
            "width_samples": args.scaling_width_samples or WIDTH_SAMPLES // div,
            "threads_samples": args.threads_samples or THREADS_SAMPLES // div,
            "memory_samples": args.memory_samples or WORKLOADS[MEMORY_WORKLOAD][3] // div}


def run_memory(args, sz, threads):
    """The peak-memory measurement (printed), or None when skipped or not possible."""
    if args.no_memory:
        return None
    if not os.path.exists("/proc/self/status"):
        print("memory: skipped (needs Linux /proc/self/status)")
        return None
    print(f"memory: training {MEMORY_WORKLOAD} ({sz['memory_samples']} samples, 1 epoch) in a "
          "fresh process ...", flush=True)
    mem = measure_memory(n_samples=sz["memory_samples"], threads=threads)
    print(format_memory(mem), flush=True)
    return mem


def run_threads_compare(args, sz, epochs, busy=False):
    """The 1- vs 2-thread comparison (printed), or None when skipped or not possible."""
    import numba
    if args.no_threads_compare:
        return None
    if numba.config.NUMBA_NUM_THREADS < 2:
        print("threads: skipped (Numba started with 1 thread)")
        return None
    print(f"threads: timing W3-b256 ({sz['threads_samples']} samples) at 1 and 2 threads ...",
          flush=True)
    tc = threads_compare(sz["threads_samples"], epochs)
    print(format_threads(tc, busy), flush=True)
    return tc


def run_scaling(args, sz, threads, epochs, busy=False):
    """The --scaling measurements and fits (printed), or None without --scaling."""
    if not args.scaling:
        return None
    print("scaling: timing s/epoch against n_samples and hidden width ...", flush=True)
    scaling = {"samples": scaling_vs_samples(sz["scaling_samples"], epochs, threads),
               "width": scaling_vs_width(sz["scaling_widths"], sz["width_samples"], epochs,
                                         threads)}
    print(format_scaling(scaling, busy), flush=True)
    return scaling


def target_lines(results, sgemm, compile_info, contended=None, busy=False):
    """Verdict lines of the speed targets: ratios, fraction of sgemm, compile times, the
    default thread count under load. busy: every verdict reads BUSY (timings of a busy
    host judge nothing). compile_info from compile_times, or from warm_start_times
    (--quick: no cold-cache figures, so only the warm-start target)."""
    lines = []
    for r in results:
        for label, target in RATIO_TARGETS.get(r["workload"], {}).items():
            key = f"speedup_vs_{label}"
            if key in r:
                lines.append(f"  {r['workload']} vs {label} {r[key]:.2f}x >= {target}x: "
                             f"{verdict(r[key] >= target, busy)}")
        frac = SGEMM_FRACTION_TARGET.get(r["workload"])
        if frac is not None:
            got = r["fastmlp"]["gflops"] / sgemm
            lines.append(f"  {r['workload']} at {100 * got:.0f}% of sgemm >= {100 * frac:.0f}%: "
                         f"{verdict(got >= frac, busy)}")
    if compile_info:
        cold = compile_info.get("cold_import_plus_first_fit_s")
        warm = compile_info["warm_import_plus_first_fit_s"]
        if cold is not None:
            lines.append(f"  cold import + first fit {cold:.1f} s <= {COLD_FIT_TARGET_S:.0f} s: "
                         f"{verdict(cold <= COLD_FIT_TARGET_S, busy)}")
        lines.append(f"  warm import + first fit {warm:.2f} s <= {WARM_START_TARGET_S:.0f} s: "
                     f"{verdict(warm <= WARM_START_TARGET_S, busy)}")
        if cold is not None:
            notice = compile_info.get("cold_notice", "")
            lines.append(f"  compile notice shown on a cold first fit: {verdict(bool(notice))}")
    if contended:
        for r in contended["runs"]:
            lines.append(f"  contended {r['workload']}: default/1 thread {r['ratio']:.2f} <= "
                         f"{1 + CONTENDED_TOLERANCE:.2f}: {verdict(r['met'], busy)}")
    return lines


def print_verdicts(tc, mem, scaling, quick, speed_lines=(), busy=False):
    """One line per target measured in this run (busy: timing verdicts read BUSY; the
    memory overhead does not depend on the load and is judged)."""
    lines = list(speed_lines)
    if tc:
        lines.append(f"  threads speedup {tc['speedup']:.2f}x >= {SPEEDUP_TARGET}x: "
                     f"{verdict(tc['met'], busy)}")
    if mem:
        lines.append(f"  memory overhead {mem['overhead_mb']:.1f} MB <= {OVERHEAD_TARGET_MB} MB: "
                     f"{verdict(mem['met'])}")
    if scaling:
        for key, what in (("samples", "linear in samples"), ("width", "proportional to FLOPs")):
            r2 = scaling[key]["fit"]["r2"]
            lines.append(f"  {what}: R^2 {r2:.4f} >= {R2_TARGET}: "
                         f"{verdict(scaling[key]['met'], busy)}")
    if lines:
        note = " (--quick: reduced sizes, indicative only)" if quick else ""
        if busy:
            note += " (host busy: sgemm below half its quiet figure)"
        print("\ntargets" + note + ":\n" + "\n".join(lines))


def timed_epochs(args):
    """Timed epochs of every measurement: --epochs (at least 3), else 3, or QUICK_EPOCHS
    with --quick unless --epochs is given."""
    if args.epochs is None:
        return QUICK_EPOCHS if args.quick else 3
    return max(3, args.epochs)


def run_compile(args):
    """The compile timing (printed): cold and warm cache in fresh processes; with --quick
    only fresh processes with the cache as found. None with --no-compile."""
    if args.no_compile:
        return None
    if args.quick:
        print("compile: import + first fit in 2 fresh processes, kernel cache as found ...",
              flush=True)
        info = warm_start_times()
        print("compile: first process {first_import_plus_first_fit_s:.2f} s; warm cache: "
              "import {warm_import_s:.2f} s, import + first fit "
              "{warm_import_plus_first_fit_s:.2f} s (empty-cache compile: not timed with "
              "--quick)".format(**info), flush=True)
        return info
    print("compile: import + first fit in fresh processes with an empty kernel cache "
          "(compiles: 13-25 s on a 2-core host), then warm ...", flush=True)
    info = compile_times()
    print("compile: empty cache: import {cold_import_s:.2f} s + first fit "
          "{cold_first_fit_s:.1f} s = {cold_import_plus_first_fit_s:.1f} s; warm cache: "
          "import {warm_import_s:.2f} s, import + first fit "
          "{warm_import_plus_first_fit_s:.2f} s".format(**info), flush=True)
    return info


def main(argv=None):
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    import numba
    import fastmlp as fm
    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    fm.set_num_threads(threads)
    workloads = args.workload or list(WORKLOADS)
    with_sklearn = "sklearn" in workloads
    workloads = [w for w in workloads if w != "sklearn"]
    with_torch = not args.no_torch and torch_available()
    epochs = timed_epochs(args)
    sz = sizes(args)
    print(f"fastmlp {fm.__version__} bench: {cpu_model() or platform.machine()}, "
          f"{os.cpu_count()} cores, threads={threads}, numba {numba.__version__}, "
          f"numpy {np.__version__}, torch {'absent' if not with_torch else __import__('torch').__version__}"
          f"{', --quick' if args.quick else ''}", flush=True)
    # the host's state first: every timing below is read against it
    sgemm = sgemm_gflops(threads)
    if args.quiet_sgemm:
        quiet, source = args.quiet_sgemm, "--quiet-sgemm"
    else:
        quiet, source = quiet_sgemm(threads)
    busy, state = host_check(sgemm, quiet)
    print(f"numpy sgemm 2048^2: {sgemm:.0f} GFLOP/s at {threads} thread(s): {state}"
          + (f" ({source})" if quiet else ""), flush=True)
    compile_info = run_compile(args)
    if workloads:
        print(f"speed: {len(workloads)} workload(s), 1 warm-up + {epochs} timed epochs each, "
              "the frameworks' epochs interleaved, a dot per epoch", flush=True)
    results = run(workloads, threads, args.quick, with_torch, not args.no_numpy, epochs)
    if results:
        print()
        print(format_table(results, sgemm))
        print()
    sk = None
    if with_sklearn:
        from . import bench_sklearn
        sk = bench_sklearn.compare(WORKLOADS["W2"][3] // (5 if args.quick else 1),
                                   max(bench_sklearn.EPOCHS_PER_FIT, epochs), threads)
        print(bench_sklearn.format_result(sk), flush=True)
    # after the speed runs, so that the child process finds W1's kernels in the cache
    mem = run_memory(args, sz, threads)
    tc = run_threads_compare(args, sz, epochs, busy)
    cc = None
    if args.contended:
        print("contended: timing W2 and W3-b256 with a busy core ...", flush=True)
        cc = contended_compare(sz["threads_samples"], epochs)
        print(format_contended(cc, busy), flush=True)
    scaling = run_scaling(args, sz, threads, epochs, busy)
    print_verdicts(tc, mem, scaling, args.quick,
                   target_lines(results, sgemm, compile_info, cc, busy), busy)
    total = time.perf_counter() - t_start
    print(f"\nbench took {total:.0f} s", flush=True)
    if args.json:
        # "threads" stays the thread count of the run (as in earlier result files)
        doc = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
               "processor": platform.processor(), "cpu_model": cpu_model(),
               "cores": os.cpu_count(), "threads": threads, "quick": args.quick,
               "epochs": epochs, "sgemm_gflops": sgemm, "quiet_sgemm_gflops": quiet,
               "quiet_sgemm_source": source, "host_busy": busy, "total_s": total,
               "compile": compile_info, "results": results, "threads_compare": tc,
               "memory": mem, "scaling": scaling, "contended": cc, "sklearn": sk,
               "versions": versions()}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
