"""Hyper-parameter sweeps: grids, random and coarse-to-fine searches, run in parallel.

    from fastmlp.sweep import grid, run_sweep
    def train(l2, hidden):     # module level (workers import it); returns a dict of scalars
        ...; return {"val_accuracy": ..., "test_accuracy": ...}
    res = run_sweep(train, grid(l2=[1e-4, 1e-3, 1e-2], hidden=[50, 100]), out="l2.csv")
    res.best("val_accuracy"); print(res.to_markdown("val_accuracy"))

Runs go to spawned local processes (workers x threads <= cores) or to any concurrent.futures
Executor: a Dask cluster's executor=distributed.Client(addr).get_executor() (dask stays optional;
each run then uses at most its worker's threads, see fastmlp/_worker.py).
Each run is appended to `out` (CSV) as it finishes, so an interrupted sweep resumes. Before local
workers start, warmup() fills Numba's on-disk cache (concurrent first compiles race on it).
Scripts need the `if __name__ == "__main__":` guard (workers start by "spawn").
"""
import concurrent.futures as cf
import csv
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

RESERVED = ("key", "status", "error", "seconds")
THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _plain(v):
    """numpy values and tuples as plain Python values (JSON-able, stable)."""
    if isinstance(v, (np.generic, np.ndarray)):
        v = v.tolist()
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def config_key(config):
    """Stable 12-hex-digit key of a config: the same fields and values give the same key."""
    text = json.dumps(_plain(config), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class Uniform:
    """Uniform(low, high) for random_search; any object with .sample(rng) works there too."""
    log = False

    def __init__(self, low, high):
        if not (np.isfinite([low, high]).all() and low < high and (low > 0 or not self.log)):
            raise ValueError(f"{type(self).__name__}: need finite low < high (low > 0 if log)")
        self.low, self.high = float(low), float(high)

    def sample(self, rng):
        f, g = (math.log, math.exp) if self.log else (float, float)
        return float(g(rng.uniform(f(self.low), f(self.high))))


class LogUniform(Uniform):
    """exp(Uniform(log low, log high)), 0 < low < high: an L2 strength, a learning rate."""
    log = True


def grid(**axes):
    """Cartesian product as a list of dicts, last axis fastest. Each value is a list (tuple,
    array) of choices; any other value is held fixed: grid(l2=[1e-3, 1e-2], epochs=10)."""
    values = [[_plain(v)] if isinstance(v, (str, bytes, Mapping)) or not np.iterable(v)
              else [_plain(x) for x in v] for v in axes.values()]
    if empty := [n for n, v in zip(axes, values) if not v]:
        raise ValueError(f"grid axes {empty} are empty")
    return [dict(zip(axes, combo)) for combo in itertools.product(*values)]


def random_search(space, n, seed=None):
    """n configs drawn from space {name: list of choices | Uniform | LogUniform | object with
    .sample(rng) | fixed value}, in space order. The same seed gives the same configs."""
    rng = np.random.default_rng(seed)

    def draw(d):
        if isinstance(d, (list, tuple, np.ndarray)):
            return _plain(d[int(rng.integers(len(d)))])
        return d.sample(rng) if hasattr(d, "sample") else _plain(d)
    return [{name: draw(d) for name, d in space.items()} for _ in range(int(n))]


class SweepResult:
    """A sweep's rows (dicts: key, config, results, status, error, seconds) in config order."""

    def __init__(self, rows, path=None, config_fields=()):
        self.rows, self.path, self.config_fields = list(rows), path, set(config_fields)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    @staticmethod
    def value(row, metric):     # row[metric] if the run succeeded and it is finite, else None
        v = row.get(metric)
        good = (row.get("status") == "ok" and isinstance(v, (int, float))
                and not isinstance(v, bool) and math.isfinite(v))
        return v if good else None

    def sorted(self, metric, mode="max"):
        """Rows best first by metric ("max" or "min"); rows without a finite value last."""
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        have = [r for r in self.rows if self.value(r, metric) is not None]
        rest = [r for r in self.rows if self.value(r, metric) is None]
        return sorted(have, key=lambda r: r[metric], reverse=mode == "max") + rest

    def best(self, metric, mode="max"):
        rows = self.sorted(metric, mode)
        if not rows or self.value(rows[0], metric) is None:
            raise ValueError(f"no successful run reported a finite {metric!r}")
        return rows[0]

    def to_markdown(self, metric=None, mode="max"):
        """Markdown table: config fields, result fields, status, seconds (error when any);
        best first by metric when given, else in config order. With two or more rows, a
        field (or status) with the same value in every row is left out of the table and
        named once in a line under it."""
        rows = self.sorted(metric, mode) if metric else self.rows
        fields = list(dict.fromkeys(k for r in rows for k in r if k not in RESERVED))
        fields.sort(key=lambda f: f not in self.config_fields)     # config fields first
        cols = fields + ["status", "seconds"] + ["error"] * any(r["status"] != "ok" for r in rows)

        def cell(v, digits):
            v = "" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)
            v = v.replace("|", "\\|").replace("\n", " ")
            return v if len(v) <= 120 else v[:117] + "..."

        def digits(c):
            return 6 if c in self.config_fields else 4
        constant = []
        if len(rows) > 1:
            constant = [c for c in cols if c not in ("seconds", "error")
                        and len({repr(r.get(c)) for r in rows}) == 1]
            cols = [c for c in cols if c not in constant]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            cells = [cell(r.get(c), digits(c)) for c in cols]
            lines.append("| " + " | ".join(cells) + " |")
        if constant:
            same = ", ".join(f"{c} = {cell(rows[0].get(c), digits(c)) or '(empty)'}"
                             for c in constant)
            lines += ["", f"Same in every row (not shown): {same}."]
        return "\n".join(lines) + "\n"


def _read_csv(path):
    """(columns, rows as dicts of strings) of a sweep CSV; ([], []) when absent or empty."""
    if not path or not path.exists() or path.stat().st_size == 0:
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _append_csv(path, columns, row):
    """Append one row (the file is closed, so flushed, at once); a row with new fields first
    rewrites the file with the wider header: key, config, results, status, error, seconds."""
    if new := [c for c in row if c not in columns]:
        tail = [c for c in columns if c in RESERVED[1:]] or list(RESERVED[1:])
        old = _read_csv(path)[1]
        columns = [c for c in columns if c not in tail] + [c for c in new if c not in tail] + tail
        with open(tmp := path.with_name(path.name + ".tmp"), "w", newline="") as f:
            csv.DictWriter(f, columns).writeheader()
            csv.DictWriter(f, columns).writerows(old)
        os.replace(tmp, path)
    cells = {k: "" if v is None else v if isinstance(v, str) else json.dumps(v, default=repr)
             for k, v in ((k, _plain(v)) for k, v in row.items())}
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, columns).writerow(cells)
    return columns


def _decode(s):
    try:
        return None if s in ("", None) else json.loads(s)
    except ValueError:
        return s


def _call(fn, threads, key, config):
    """fn(**config) in a worker -> (key, status, results, error message, seconds). In a Dask
    worker task the run gets at most the worker's threads (None: all of them) and takes
    turns with the worker's other fastmlp runs (fastmlp/_worker.py)."""
    from ._worker import thread_budget
    with thread_budget(threads) as threads:
        if threads:
            from . import set_num_threads
            set_num_threads(threads)
        return _timed_call(fn, key, config)


def _timed_call(fn, key, config):
    t0 = time.perf_counter()
    try:
        result = fn(**config)
        if not isinstance(result, Mapping):
            raise TypeError(f"fn must return a dict of scalars, got {type(result).__name__}")
        if clash := [k for k in result if k in RESERVED or k in config]:
            raise ValueError(f"result fields {clash} clash with config fields or {RESERVED}")
        return key, "ok", _plain(result), "", time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001  (recorded as an "error" row)
        return key, "error", {}, f"{type(e).__name__}: {e}"[:2000], time.perf_counter() - t0


def _init_worker(threads):
    os.environ.update({v: str(threads) for v in THREAD_VARS})   # set at spawn already
    signal.signal(signal.SIGINT, signal.SIG_IGN)                 # the parent handles Ctrl-C
    from . import set_num_threads
    set_num_threads(threads)


def warmup():
    """Train a tiny model so Numba's disk cache holds the kernels before workers start."""
    import fastmlp as fm
    X, y = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32), np.arange(64) % 3
    model = fm.Sequential([fm.Dense(8), fm.BatchNorm(), fm.ReLU(), fm.Dense(3), fm.Softmax()])
    model.fit(X, y, epochs=1, batch_size=16, optimizer=fm.SGD(0.01, momentum=0.9), l2=1e-3,
              validation_data=(X, y), verbose=0, seed=0)
    model.predict(X)


def _run_pool(fn, pending, record, executor, n_workers, threads, warm):
    if own := executor is None:
        try:
            pickle.dumps(fn)
        except Exception as e:
            raise TypeError(f"fn must be picklable (module level) for worker processes: {e}")
        from ._config import CACHE
        if callable(warm) or (warm in (None, True) and CACHE):
            (warm if callable(warm) else warmup)()
        executor = cf.ProcessPoolExecutor(n_workers, multiprocessing.get_context("spawn"),
                                          initializer=_init_worker, initargs=(threads,))
    futures = {}
    try:    # own pool: workers spawn in the submits and inherit the thread variables, read by Numba
        # and BLAS at import (unpickling the initializer already imports numba: too late there)
        saved = {v: os.environ.get(v) for v in THREAD_VARS}
        os.environ.update({v: str(threads) for v in THREAD_VARS} if own else {})
        try:
            for key, config in pending:
                futures[executor.submit(_call, fn, None if own else threads, key, config)] = key
        finally:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old
        for fut in cf.as_completed(futures):
            try:
                record(*fut.result())
            except Exception as e:  # noqa: BLE001  (a worker died, unpicklable result, ...)
                record(futures[fut], "error", {}, f"{type(e).__name__}: {e}", 0.0)
    except BaseException:          # Ctrl-C: keep what is recorded, stop the rest now
        for fut in futures:
            fut.cancel()
        if own:
            procs = list((getattr(executor, "_processes", None) or {}).values())
            executor.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
        raise
    if own:
        executor.shutdown()


def run_sweep(fn, configs, out=None, executor=None, n_workers=None, threads_per_worker=None,
              resume=True, progress=True, metric=None, mode="max", warmup=None):
    """Run fn(**config) -> dict of scalars for every config (duplicates once); a SweepResult.
    A config whose fn raises is recorded with status "error" and its message; the others go on.

    out: CSV, a row appended per finished run; the markdown table (best first by metric when
    given) goes beside it as .md. resume: skip configs with an "ok" row in out (errors rerun);
    resume=False reruns all, still appending. executor: None -> spawned local processes, each
    with threads_per_worker (1, or cores // n_workers) threads, n_workers = cores // that, at
    most one per config; "sequential" (or n_workers=0; the default for one config) -> here; any
    concurrent.futures.Executor (left running; threads_per_worker, if given, set in each run).
    warmup: None/True -> warmup() before local workers start, False, or a callable."""
    configs = [dict(c) for c in configs]
    if bad := sorted({f for c in configs for f in c if f in RESERVED}):
        raise ValueError(f"config fields {bad} are reserved column names")
    if threads_per_worker is not None and int(threads_per_worker) < 1:
        raise ValueError(f"threads_per_worker must be >= 1, got {threads_per_worker!r}")
    unique, path, results = {config_key(c): c for c in configs}, out and Path(out), {}
    if path and path.suffix == ".md":
        raise ValueError("out names the CSV file; the markdown table goes beside it (.md)")
    columns, rows = _read_csv(path)
    for row in rows if resume else []:
        if row.get("status") == "ok" and (k := row.get("key")) in unique:
            results[k] = {"key": k, **unique[k], **{c: _decode(v) for c, v in row.items()
                          if c not in RESERVED and c not in unique[k] and v not in ("", None)},
                          "status": "ok", "error": "", "seconds": _decode(row["seconds"])}
    pending = [(k, c) for k, c in unique.items() if k not in results]
    sequential = executor == "sequential" or n_workers == 0 or (
        executor is None and n_workers is None and len(pending) <= 1)
    if executor is None and not sequential:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads_per_worker = threads_per_worker or (n_workers and max(1, cpus // n_workers)) or 1
        n_workers = n_workers or max(1, min(cpus // threads_per_worker, len(pending)))
    from tqdm.auto import tqdm
    bar = tqdm(total=len(unique), initial=len(results), unit="run", desc="sweep",
               disable=not (progress and pending))

    def record(key, status, result, error, seconds):
        nonlocal columns
        row = results[key] = {"key": key, **unique[key], **result, "status": status,
                              "error": error, "seconds": round(seconds, 3)}
        if path:
            columns = _append_csv(path, columns, row)
        post = {"errors": sum(r["status"] != "ok" for r in results.values())}
        vals = [SweepResult.value(r, metric) for r in results.values()] if metric else []
        if vals := [v for v in vals if v is not None]:
            post[f"best {metric}"] = f"{(max if mode == 'max' else min)(vals):.4g}"
        bar.set_postfix(post, refresh=False)
        bar.update(1)

    try:
        if pending and sequential:
            from . import _threads
            previous = _threads._default_threads
            try:
                for key, config in pending:
                    record(*_call(fn, threads_per_worker, key, config))
            finally:
                _threads._default_threads = previous
        elif pending:
            _run_pool(fn, pending, record, executor, n_workers, threads_per_worker, warmup)
    finally:
        bar.close()
    result = SweepResult([results[k] for k in unique if k in results], path,
                         {f for c in configs for f in c})
    if path:
        path.with_suffix(".md").write_text(result.to_markdown(metric, mode))
    return result


def coarse_to_fine(run, key, low, high, n_coarse, n_fine, log=True, metric="val_accuracy",
                   mode="max", base=None, **sweep_kwargs):
    """Sweep n_coarse values of `key` over [low, high] (log-spaced when log), then n_fine values
    strictly between the best coarse value's neighbours: the DD2424 lambda search (coarse
    1e-5..1e-1, fine around the best). base: fixed fields of every config. sweep_kwargs go to
    run_sweep; out="l2.csv" writes l2_coarse.csv and l2_fine.csv (and their .md tables).
    Returns the (coarse, fine) SweepResults."""
    if n_coarse < 2 or n_fine < 1 or not (low < high and (low > 0 or not log)):
        raise ValueError("need n_coarse >= 2, n_fine >= 1 and low < high (low > 0 when log)")
    base, out = dict(base or {}), sweep_kwargs.pop("out", None)

    def points(a, b, n):
        a, b = (math.log10(a), math.log10(b)) if log else (a, b)
        return [float(f"{10 ** v if log else v:.6g}") for v in np.linspace(a, b, n)]

    def sweep(values, stage):
        path = out and Path(out).with_name(f"{Path(out).stem}_{stage}.csv")
        return run_sweep(run, [{**base, key: v} for v in values], out=path, metric=metric,
                         mode=mode, **sweep_kwargs)

    values = points(low, high, n_coarse)
    coarse = sweep(values, "coarse")
    i = values.index(coarse.best(metric, mode)[key])
    fine = sweep(points(values[max(i - 1, 0)], values[min(i + 1, n_coarse - 1)], n_fine + 2)[1:-1],
                 "fine")
    return coarse, fine
