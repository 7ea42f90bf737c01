"""The bench's `sklearn` workload: FastMLPClassifier against scikit-learn's MLPClassifier.

    python -m fastmlp.bench --workload sklearn [--quick] [--threads N] [--epochs E] [--json PATH]

Both estimators train the W2 net (784-100-30-10, ReLU, SGD with momentum 0.9, batch
100, lr 0.01, alpha 0) on the same float32 data (fastmlp.bench.make_data: W2's 60,000
rows, 1/5 with --quick), with the same parameters and random_state: EPOCHS_PER_FIT
epochs per fit (or --epochs if more; tol=0 and n_iter_no_change above the epochs, so no
fit stops early), one warm-up fit of each first (fastmlp's kernels compile or load
there), then the two estimators' fits in turn (so that a host whose speed drifts slows
both alike), each after a pause in which the other's BLAS threads stop spinning. s/epoch
is the wall time of a whole fit divided by its epochs (median of `repeats` fits): what a
user waits, including each fit's setup (input checks). Like MLPClassifier,
FastMLPClassifier evaluates nothing before training (it fits with initial_metrics=False).
scikit-learn's BLAS and fastmlp both get `threads` threads.
Target: fastmlp at least 3x faster.
"""
import statistics
import time
import warnings

SPEEDUP_TARGET = 3.0
EPOCHS_PER_FIT = 5
HIDDEN = (100, 30)
PARAMS = dict(hidden_layer_sizes=HIDDEN, solver="sgd", momentum=0.9, nesterovs_momentum=False,
              learning_rate_init=0.01, alpha=0.0, batch_size=100, random_state=0, tol=0.0)


def _fit_times(makers, X, y, epochs, repeats):
    """For each (make, threads) in makers: (median s/epoch over `repeats` timed fits,
    the fits' s/epoch, the last fit's final loss). One warm-up fit of each first, then
    the makers' fits in turn, each after a pause (bench.settle); BLAS limited to the
    maker's threads while it fits."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from .bench import settle
    times = [[] for _ in makers]
    losses = [None for _ in makers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for make, threads in makers:
            with threadpool_limits(threads):
                make().fit(X[:1000], y[:1000])   # warm-up: compile / load, first touches
        for _ in range(repeats):
            for i, (make, threads) in enumerate(makers):
                settle()   # the other estimator's BLAS threads stop spinning first
                with threadpool_limits(threads):
                    est = make()
                    t0 = time.perf_counter()
                    est.fit(X, y)
                    times[i].append((time.perf_counter() - t0) / epochs)
                losses[i] = float(est.loss_curve_[-1])
    return [(statistics.median(t), t, loss) for t, loss in zip(times, losses)]


def compare(n_samples, epochs, threads, repeats=3):
    """Time both estimators on W2-shaped data; dict of s/epoch, epoch times, final
    losses and fastmlp's speedup with its verdict."""
    from sklearn.neural_network import MLPClassifier

    from .bench import make_data
    from .sklearn import FastMLPClassifier
    X, y = make_data(n_samples, 784)
    params = dict(PARAMS, max_iter=epochs, n_iter_no_change=epochs + 1)
    fast, slow = _fit_times([(lambda: FastMLPClassifier(n_threads=threads, **params), threads),
                             (lambda: MLPClassifier(**params), threads)], X, y, epochs, repeats)
    speedup = slow[0] / fast[0]
    return {"description": "784-100-30-10, b100, SGD momentum 0.9, float32", "n_samples": n_samples,
            "epochs_per_fit": epochs, "threads": threads,
            "fastmlp": {"s_per_epoch": fast[0], "fit_epoch_times": fast[1], "final_loss": fast[2]},
            "sklearn": {"s_per_epoch": slow[0], "fit_epoch_times": slow[1], "final_loss": slow[2]},
            "speedup": speedup, "speedup_target": SPEEDUP_TARGET,
            "met": speedup >= SPEEDUP_TARGET}


def format_result(r):
    """The README table row and the verdict."""
    from .bench import verdict
    return "\n".join([
        "| workload | FastMLPClassifier s/epoch | MLPClassifier s/epoch | speedup |",
        "|---|---|---|---|",
        f"| W2 via the estimators ({r['description']}, n={r['n_samples']}, {r['threads']} "
        f"thread(s)) | {r['fastmlp']['s_per_epoch']:.3f} | {r['sklearn']['s_per_epoch']:.3f} "
        f"| {r['speedup']:.2f}x |",
        f"final loss: fastmlp {r['fastmlp']['final_loss']:.4f}, scikit-learn "
        f"{r['sklearn']['final_loss']:.4f}",
        f"  sklearn speedup {r['speedup']:.2f}x >= {SPEEDUP_TARGET}x: {verdict(r['met'])}"])
