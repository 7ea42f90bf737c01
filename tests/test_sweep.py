"""fastmlp.sweep: grids, random search, coarse-to-fine, parallel runs, CSV streaming, resume."""
import csv
import math
import os
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.sweep import (LogUniform, SweepResult, Uniform, coarse_to_fine, config_key, grid,
                           random_search, run_sweep)

# ---- module-level functions: spawned worker processes import them from this module


def square(x, y=0, fail=False):
    if fail:
        raise RuntimeError(f"boom at x={x}")
    return {"value": x * x + y, "neg": -x}


CALLS = []
FAILED = set()


def flaky(x):
    """Counts calls; x == 1 fails on its first call only."""
    CALLS.append(x)
    if x == 1 and 1 not in FAILED:
        FAILED.add(1)
        raise ValueError("first try fails")
    return {"value": float(x)}


def peek(i, path):
    """How many data rows the sweep's CSV holds when run i starts."""
    if not os.path.exists(path):
        return {"rows_before": 0}
    with open(path, newline="") as f:
        return {"rows_before": len(list(csv.DictReader(f)))}


def peaked(l2):
    return {"val_accuracy": -abs(math.log10(l2) - math.log10(0.003))}


def train_tiny(l2, seed=0):
    import numba
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 10)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3)
    model = fm.Sequential([fm.Dense(16), fm.BatchNorm(), fm.ReLU(), fm.Dense(3), fm.Softmax()],
                          seed=seed)
    h = model.fit(X, y, epochs=1, batch_size=20, optimizer=fm.SGD(0.05, momentum=0.9), l2=l2,
                  validation_split=0.2, verbose=0)
    return {"loss": h.history["loss"][-1], "val_accuracy": h.history["val_accuracy"][-1],
            "numba_threads": numba.config.NUMBA_NUM_THREADS, "fm_threads": fm.get_num_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS")}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _fields(rows, *names):
    return [{n: r.get(n) for n in names} for r in rows]


# ---- search spaces


def test_grid_is_cartesian_and_ordered():
    g = grid(a=[1, 2], b=("x", "y"), c=5, d=np.array([0.5]))
    assert g == [{"a": 1, "b": "x", "c": 5, "d": 0.5}, {"a": 1, "b": "y", "c": 5, "d": 0.5},
                 {"a": 2, "b": "x", "c": 5, "d": 0.5}, {"a": 2, "b": "y", "c": 5, "d": 0.5}]
    assert type(grid(l2=np.logspace(-3, -1, 3))[0]["l2"]) is float
    assert grid(a=[1, 2], b=[3]) == grid(a=[1, 2], b=[3])
    with pytest.raises(ValueError, match="empty"):
        grid(a=[])


def test_random_search_is_reproducible():
    space = {"l2": LogUniform(1e-5, 1e-1), "lr": Uniform(0.01, 0.1), "hidden": [50, 100],
             "epochs": 3}
    a, b = random_search(space, 40, seed=1), random_search(space, 40, seed=1)
    assert a == b and a != random_search(space, 40, seed=2)
    assert all(1e-5 <= c["l2"] <= 1e-1 and 0.01 <= c["lr"] <= 0.1 for c in a)
    assert {c["hidden"] for c in a} == {50, 100} and {c["epochs"] for c in a} == {3}
    assert min(c["l2"] for c in a) < 1e-4 and max(c["l2"] for c in a) > 1e-2   # log-spread
    with pytest.raises(ValueError):
        LogUniform(0, 1)


def test_config_key_is_stable():
    assert config_key({"a": 1, "b": 0.1}) == config_key({"b": np.float64(0.1), "a": 1})
    assert config_key({"h": (50, 50)}) == config_key({"h": [50, 50]})
    assert config_key({"a": 1}) != config_key({"a": 2})
    assert config_key({"l2": 0.001, "hidden": [50, 50]}) == "81b25ae5ef67"   # across runs


# ---- running


def test_parallel_processes_match_sequential(tmp_path):
    configs = grid(l2=[0.0, 0.01], seed=[0, 1]) + [{"l2": -1.0, "seed": 0}]   # last one fails
    par = run_sweep(train_tiny, configs, out=tmp_path / "par.csv", n_workers=2,
                    threads_per_worker=1, progress=False)
    seq = run_sweep(train_tiny, configs, n_workers=0, threads_per_worker=1, progress=False)
    assert [r["status"] for r in par] == ["ok"] * 4 + ["error"]
    assert par.rows[-1]["error"].startswith("ValueError") and "l2" in par.rows[-1]["error"]
    assert _fields(par.rows, "l2", "seed", "loss", "val_accuracy") == \
        _fields(seq.rows, "l2", "seed", "loss", "val_accuracy")   # bitwise: same thread count
    # workers start with their thread variables set before numba is imported
    assert {(r["numba_threads"], r["fm_threads"], r["omp"]) for r in par.rows[:4]} == {(1, 1, "1")}
    assert len(_csv(tmp_path / "par.csv")) == 6


def test_failing_config_is_recorded_and_others_finish(tmp_path):
    out = tmp_path / "s.csv"
    res = run_sweep(square, grid(x=[1, 2, 3], fail=[False]) + [{"x": 9, "fail": True}] +
                    [{"x": 4, "fail": False}], out=out, n_workers=0, progress=False)
    assert [r["status"] for r in res] == ["ok", "ok", "ok", "error", "ok"]
    assert res.rows[3]["error"] == "RuntimeError: boom at x=9"
    rows = list(csv.DictReader(open(out, newline="")))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error", "ok"]
    assert rows[3]["error"] == "RuntimeError: boom at x=9" and rows[3]["value"] == ""
    assert [r["value"] for r in rows if r["status"] == "ok"] == ["1", "4", "9", "16"]


def test_bad_results_are_errors():
    def not_a_dict(x):
        return x

    def clash(x):
        return {"x": 1}

    for fn, msg in ((not_a_dict, "dict of scalars"), (clash, "clash with config fields")):
        res = run_sweep(fn, [{"x": 1}], progress=False)
        assert res.rows[0]["status"] == "error" and msg in res.rows[0]["error"]
    res = run_sweep(lambda x: {"v": np.float32(0.5), "n": np.int64(3), "a": np.zeros(2)},
                    [{"x": 1}], progress=False)
    assert res.rows[0]["v"] == 0.5 and type(res.rows[0]["n"]) is int
    assert res.rows[0]["a"] == [0.0, 0.0]           # other JSON values are kept as such
    with pytest.raises(ValueError, match="reserved"):
        run_sweep(square, [{"x": 1, "status": 2}], progress=False)


def test_resume_skips_finished_and_retries_errors(tmp_path):
    CALLS.clear()
    FAILED.clear()
    out = tmp_path / "r.csv"
    first = run_sweep(flaky, grid(x=[1, 2]), out=out, n_workers=0, progress=False)
    assert CALLS == [1, 2] and [r["status"] for r in first] == ["error", "ok"]
    second = run_sweep(flaky, grid(x=[1, 2, 3]), out=out, n_workers=0, progress=False)
    assert CALLS == [1, 2, 1, 3]                       # 2 skipped, the error retried
    assert [(r["x"], r["status"], r["value"]) for r in second] == \
        [(1, "ok", 1.0), (2, "ok", 2.0), (3, "ok", 3.0)]
    third = run_sweep(flaky, grid(x=[1, 2, 3]), out=out, n_workers=0, progress=False)
    assert CALLS == [1, 2, 1, 3] and third.rows == second.rows
    table = _csv(out)
    # header once, widened when the first result field arrived after an error row
    assert table[0] == ["key", "x", "value", "status", "error", "seconds"]
    assert sum(r[0] == "key" for r in table) == 1 and len(table) == 1 + 4
    run_sweep(flaky, grid(x=[3]), out=out, resume=False, n_workers=0, progress=False)
    assert CALLS[-1] == 3 and len(_csv(out)) == 1 + 5


def test_rows_stream_into_csv_as_runs_finish(tmp_path):
    out = tmp_path / "stream.csv"
    res = run_sweep(peek, grid(i=[0, 1, 2, 3], path=str(out)), out=out, n_workers=0,
                    progress=False)
    assert [r["rows_before"] for r in res] == [0, 1, 2, 3]


def test_coarse_to_fine_refines_around_the_best(tmp_path):
    coarse, fine = coarse_to_fine(peaked, "l2", 1e-5, 1e-1, n_coarse=5, n_fine=3,
                                  metric="val_accuracy", out=tmp_path / "l2.csv", n_workers=0,
                                  progress=False)
    assert [r["l2"] for r in coarse] == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert coarse.best("val_accuracy")["l2"] == 1e-3
    assert [r["l2"] for r in fine] == pytest.approx([10 ** -3.5, 1e-3, 10 ** -2.5], rel=1e-5)
    assert fine.best("val_accuracy")["l2"] == pytest.approx(10 ** -2.5, rel=1e-5)
    for name in ("l2_coarse.csv", "l2_coarse.md", "l2_fine.csv", "l2_fine.md"):
        assert (tmp_path / name).exists()
    _, edge = coarse_to_fine(peaked, "l2", 1e-2, 1e2, 5, 2, n_workers=0, progress=False)
    assert all(1e-2 < r["l2"] < 1e-1 for r in edge)      # best at the low end


def test_sorted_best_and_markdown(tmp_path):
    out = tmp_path / "m.csv"
    res = run_sweep(square, grid(x=[1, 3, 2]) + [{"x": 5, "fail": "a|b"}], out=out,
                    n_workers=0, progress=False, metric="value")
    assert [r["x"] for r in res.sorted("value")] == [3, 2, 1, 5]   # errors last
    assert [r["x"] for r in res.sorted("value", "min")] == [1, 2, 3, 5]
    assert res.best("neg")["x"] == 1 and res.best("value", mode="min")["x"] == 1
    with pytest.raises(ValueError):
        res.best("missing")
    md = res.to_markdown("value")
    lines = md.splitlines()
    assert lines[0] == "| x | fail | value | neg | status | seconds | error |"
    assert lines[1] == "|---|---|---|---|---|---|---|"
    assert lines[2].startswith("| 3 |  | 9 | -3 | ok |") and "boom at x=5" in lines[-1]
    assert "| a\\|b |" in lines[-1]                         # pipes escaped
    assert (tmp_path / "m.md").read_text() == md              # written beside the CSV
    assert res.to_markdown().splitlines()[2].startswith("| 1 |")   # config order
    assert isinstance(res, SweepResult) and len(res) == 4


def test_markdown_leaves_out_constant_columns():
    configs = grid(x=[1, 3, 2], y=[10], path=["/data/set.csv"])
    res = run_sweep(lambda x, y, path: square(x, y), configs, executor="sequential",
                    progress=False)
    lines = res.to_markdown("value").splitlines()
    assert lines[0] == "| x | value | neg | seconds |"
    assert [line.split("|")[1].strip() for line in lines[2:5]] == ["3", "2", "1"]
    assert lines[-1] == "Same in every row (not shown): y = 10, path = /data/set.csv, status = ok."
    # a result that differs only beyond the printed digits is not constant
    close = run_sweep(lambda x: {"v": 1.0 + x * 1e-9}, grid(x=[1, 2]), executor="sequential",
                      progress=False)
    assert close.to_markdown().splitlines()[0] == "| x | v | seconds |"
    # a single row keeps every column
    one = run_sweep(square, grid(x=[2], y=[10]), n_workers=0, progress=False)
    assert one.to_markdown().splitlines()[0] == "| x | y | value | neg | status | seconds |"


def test_custom_executor(tmp_path):
    configs = grid(x=[1, 2, 3, 4], y=[10])
    with ThreadPoolExecutor(2) as pool:
        res = run_sweep(square, configs, out=tmp_path / "t.csv", executor=pool, progress=False)
        assert pool.submit(lambda: 7).result() == 7             # not shut down by run_sweep
    seq = run_sweep(square, configs, executor="sequential", progress=False)
    assert _fields(res.rows, "x", "value") == _fields(seq.rows, "x", "value")
    assert len(_csv(tmp_path / "t.csv")) == 5


def test_unpicklable_fn_is_refused_for_processes():
    with pytest.raises(TypeError, match="picklable"):
        run_sweep(lambda x: {"v": x}, grid(x=[1, 2]), n_workers=2, progress=False)
    pickle.dumps(train_tiny)


def test_progress_bar(capsys):
    run_sweep(square, grid(x=[1, 2]), n_workers=0, progress=True, metric="value")
    assert "2/2" in capsys.readouterr().err
