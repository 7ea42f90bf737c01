"""fastmlp in scikit-learn: a Pipeline(StandardScaler, FastMLPClassifier) tuned with GridSearchCV,
then the same search on a Dask cluster (a LocalCluster of worker processes here).

    python examples/sklearn_and_dask.py            # bundled MNIST subset, about a minute
    python examples/sklearn_and_dask.py --smoke    # seconds (CI)
    python examples/sklearn_and_dask.py --scheduler tcp://scheduler:8786   # a real cluster

The search: alpha (scikit-learn's L2 strength) on a log grid, 3-fold cross-validation on
the first 3,000 training images (pixels / 255, then standardised inside the pipeline),
one hidden layer of 100 ReLUs, Adam, batch 100. It runs twice: here, one fit after the
other, and on the cluster under joblib's "dask" backend, each fit a task of a worker (one
thread each). The estimators use one thread in both, so the two searches give the same
scores bit for bit. The best pipeline is refit on the search's rows and scored on the
2,000 test images.

Writes val_score_vs_alpha.png (mean validation accuracy against alpha, both searches,
and the training accuracy) and results.md into --out (default out/sklearn_and_dask).
"""
import argparse
import pathlib
import time
import warnings

import numpy as np

from fastmlp import plots
from fastmlp.datasets import load_mnist
from fastmlp.preprocess import scale_to_unit


def search(X, y, alphas, epochs, cv, backend=None):
    """GridSearchCV over alpha of Pipeline(StandardScaler, FastMLPClassifier); under the
    joblib backend `backend` when given. Returns (fitted search, seconds)."""
    import joblib
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fastmlp.sklearn import FastMLPClassifier
    pipe = make_pipeline(StandardScaler(), FastMLPClassifier(
        hidden_layer_sizes=(100,), batch_size=100, max_iter=epochs, random_state=0,
        n_threads=1))
    gs = GridSearchCV(pipe, {"fastmlpclassifier__alpha": alphas}, cv=cv,
                      return_train_score=True, n_jobs=None if backend is None else -1)
    t0 = time.perf_counter()
    if backend is None:
        gs.fit(X, y)
    else:
        with joblib.parallel_backend(backend):
            gs.fit(X, y)
    return gs, time.perf_counter() - t0


def on_cluster(scheduler, n_workers, run):
    """run() with a Dask client: on `scheduler` if given, else on a new LocalCluster of
    n_workers spawned processes with one thread each. None when dask is not installed."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("dask[distributed] is not installed: the cluster search is skipped")
        return None
    if scheduler:
        with Client(scheduler):
            return run()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        return run()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/sklearn_and_dask", help="output folder")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (default: a "
                                       "LocalCluster of --workers processes)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--smoke", action="store_true", help="tiny settings, for CI")
    args = p.parse_args(argv)
    # few epochs on purpose: scikit-learn's "not converged" warning says nothing new here
    warnings.filterwarnings("ignore", message="Stochastic Optimizer: Maximum iterations")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    (X, y), (Xt, yt) = load_mnist(flatten=True)
    X, Xt = scale_to_unit(X), scale_to_unit(Xt)
    n, epochs, cv = (600, 2, 2) if args.smoke else (3000, 10, 3)
    alphas = [1e-4, 1e-1, 10.0] if args.smoke else [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 3.0, 10.0]
    X, y = X[:n], y[:n]

    local, t_local = search(X, y, alphas, epochs, cv)
    print(f"local search: {len(alphas) * cv} fits in {t_local:.1f} s, best alpha "
          f"{local.best_params_['fastmlpclassifier__alpha']:g}", flush=True)
    remote = on_cluster(args.scheduler, args.workers,
                        lambda: search(X, y, alphas, epochs, cv, backend="dask"))
    val = {"validation (here)": local.cv_results_["mean_test_score"]}
    if remote is not None:
        dask_search, t_dask = remote
        val["validation (Dask)"] = dask_search.cv_results_["mean_test_score"]
        same = np.array_equal(val["validation (Dask)"], val["validation (here)"])
        print(f"Dask search: {t_dask:.1f} s, scores {'identical' if same else 'DIFFERENT'}",
              flush=True)
    test_accuracy = local.score(Xt, yt)

    curves = dict(val, training=local.cv_results_["mean_train_score"])
    fig = plots.plot_metric_vs_param(alphas, curves, "alpha (scikit-learn's L2 strength)",
                                     log_x=True, title=f"{cv}-fold CV accuracy, {n} MNIST "
                                     f"images, {epochs} epochs")
    fig.savefig(out / "val_score_vs_alpha.png", dpi=90)

    head = ["alpha", "mean validation accuracy", "std", "mean training accuracy"]
    if remote is not None:
        head.insert(2, "on Dask")
    rows = []
    for i, a in enumerate(alphas):
        cells = [f"{a:g}", f"{local.cv_results_['mean_test_score'][i]:.4f}",
                 f"{local.cv_results_['std_test_score'][i]:.4f}",
                 f"{local.cv_results_['mean_train_score'][i]:.4f}"]
        if remote is not None:
            cells.insert(2, f"{val['validation (Dask)'][i]:.4f}")
        rows.append("| " + " | ".join(cells) + " |")
    where = args.scheduler or f"a LocalCluster of {args.workers} processes"
    cluster = ("not run (dask[distributed] missing)" if remote is None else
               f"{t_dask:.1f} s on {where}, the same scores: {same}")
    md = ["# Pipeline(StandardScaler, FastMLPClassifier) tuned with GridSearchCV\n",
          f"Data: the first {n} images of the bundled MNIST subset (pixels / 255), {cv}-fold "
          f"cross-validation; FastMLPClassifier(hidden_layer_sizes=(100,), batch_size=100, "
          f"max_iter={epochs}, random_state=0, n_threads=1), Adam.\n",
          "## Grid search\n", "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, "",
          f"Best alpha: {local.best_params_['fastmlpclassifier__alpha']:g}; the best pipeline "
          f"refit on all {n} images scores {test_accuracy:.4f} on the 2,000 test images.\n",
          f"Search here, one fit after the other: {t_local:.1f} s. On Dask: {cluster}.\n",
          "![validation accuracy against alpha](val_score_vs_alpha.png)\n",
          f"Total time: {time.perf_counter() - t_start:.1f} s"]
    (out / "results.md").write_text("\n".join(md))
    print("\n".join(md[2:-3]))
    print(md[-1])
    print(f"\nfigure and results.md in {out}")
    return local


if __name__ == "__main__":
    main()
