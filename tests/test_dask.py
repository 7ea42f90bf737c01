"""fastmlp on a Dask cluster: a LocalCluster of 2 spawned worker processes with 1 thread
each runs run_sweep and GridSearchCV with the same per-run results as a sequential run,
each worker with its own kernel cache folder and no more threads than it was given."""
import os
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("sklearn")
import joblib  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp as fm  # noqa: E402
from fastmlp.sklearn import FastMLPClassifier  # noqa: E402
from fastmlp.sweep import grid, run_sweep  # noqa: E402

# Numba in the workers starts with 4 threads whatever the host has, so a run that ignored
# the worker's single thread would show it
WORKER_NUMBA_THREADS = 4


def _data(n=300, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] + X[:, 2] > 0.5)
    return X, y


def train_run(alpha, seed=0):
    """One sweep run (module level: workers import it)."""
    X, y = _data()
    clf = FastMLPClassifier(hidden_layer_sizes=(16,), alpha=alpha, max_iter=5, batch_size=30,
                            random_state=seed).fit(X[:240], y[:240])
    return {"loss": clf.loss_, "val_accuracy": clf.score(X[240:], y[240:]),
            "fm_threads": fm.get_num_threads()}


def worker_facts():
    """Facts about the process this runs in."""
    import multiprocessing
    from fastmlp import _config
    with open("/proc/self/cmdline", "rb") as f:
        cmdline = f.read().replace(b"\0", b" ").decode()
    return {"pid": os.getpid(), "cache": _config.CACHE_FOLDER, "cmdline": cmdline,
            "name": multiprocessing.current_process().name,
            "numba_threads": __import__("numba").config.NUMBA_NUM_THREADS}


def threads_of_a_fit(n_threads=None):
    """The most of Numba's threads in effect at any compiled call of a fit and a predict
    made here."""
    import numba
    from fastmlp.kernels import loop
    seen = []
    original = loop.run_batches

    def spy(*args):
        seen.append(numba.get_num_threads())
        return original(*args)
    loop.run_batches = spy
    try:
        X, y = _data()
        FastMLPClassifier(hidden_layer_sizes=(16,), max_iter=3, batch_size=30, random_state=0,
                          n_threads=n_threads).fit(X, y).predict(X)
    finally:
        loop.run_batches = original
    return max(seen)


def cache_files(folder):
    return sum(1 for _, _, files in os.walk(folder) for f in files if f.endswith(".nbi"))


@pytest.fixture(scope="module")
def client():
    # the parent compiles (or loads) the kernels first: new worker folders start as copies
    train_run(1e-4)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None,
                                       env={"NUMBA_NUM_THREADS": str(WORKER_NUMBA_THREADS)})
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_are_spawned_with_their_own_cache_folders(client):
    from fastmlp import _config
    facts = client.run(worker_facts)
    assert len(facts) == 2
    for f in facts.values():
        # spawned (a fresh interpreter), not forked from this process that ran OpenMP
        assert "multiprocessing.spawn" in f["cmdline"] and f["pid"] != os.getpid()
        assert f["numba_threads"] == WORKER_NUMBA_THREADS
    folders = {f["cache"] for f in facts.values()}
    assert len(folders) == 2 and _config.CACHE_FOLDER not in folders
    root = str(_config.cache_root())
    assert all(folder.startswith(os.path.join(root, "slots")) for folder in folders)
    # a fit on each worker leaves its compiled kernels in that worker's folder
    client.run(train_run, 1e-3)
    assert all(cache_files(folder) > 0 for folder in folders)


def test_run_sweep_on_dask_matches_sequential(client):
    configs = grid(alpha=[1e-4, 1e-2, 1.0], seed=[0, 1])
    on_dask = run_sweep(train_run, configs, executor=client.get_executor(), progress=False)
    here = run_sweep(train_run, configs, executor="sequential", threads_per_worker=1,
                     progress=False)
    assert [r["status"] for r in on_dask] == ["ok"] * 6
    fields = ("alpha", "seed", "loss", "val_accuracy", "fm_threads")
    assert [{k: r[k] for k in fields} for r in on_dask] == \
        [{k: r[k] for k in fields} for r in here]          # bit for bit: one thread each
    assert {r["fm_threads"] for r in on_dask} == {1}


def test_grid_search_under_joblib_dask_matches_sequential(client):
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), FastMLPClassifier(hidden_layer_sizes=(16,),
                                                             max_iter=5, batch_size=30,
                                                             random_state=0))
    params = {"fastmlpclassifier__alpha": [1e-4, 1e-1, 1.0]}
    search = GridSearchCV(pipe, params, cv=2, scoring="neg_log_loss", n_jobs=-1)
    with joblib.parallel_backend("dask"):
        on_dask = search.fit(X, y).cv_results_      # n_threads=None: the worker's 1 thread
    pipe.set_params(fastmlpclassifier__n_threads=1)
    here = GridSearchCV(pipe, params, cv=2, scoring="neg_log_loss").fit(X, y).cv_results_
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        assert np.array_equal(on_dask[key], here[key])
    assert len(set(on_dask["mean_test_score"])) == 3      # three different fits


def test_runs_keep_to_the_worker_threads(client):
    # None: the worker's 1 thread (not Numba's 4); an explicit 3 is capped at 1 too
    workers = list(client.scheduler_info()["workers"])
    for n_threads in (None, 3):
        asked = client.gather([client.submit(threads_of_a_fit, n_threads, workers=[w],
                                             pure=False) for w in workers])
        assert asked == [1, 1]
    # the same function here, outside a worker, asks for its threads as usual
    assert threads_of_a_fit(2 if fm.get_num_threads() >= 2 else 1) == min(2, fm.get_num_threads())
