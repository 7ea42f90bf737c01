"""fastmlp.bench: the least-squares fit, the peak-memory subprocess and a tiny end-to-end run."""
import argparse
import json
import math

import numpy as np
import pytest

from fastmlp import bench


def test_linear_fit_recovers_exact_line():
    x = np.array([5000, 10000, 20000, 30000, 45000])
    t = 0.07 + 2.5e-5 * x
    fit = bench.linear_fit(x, t)
    assert fit["slope"] == pytest.approx(2.5e-5, rel=1e-9)
    assert fit["intercept"] == pytest.approx(0.07, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-12)
    assert fit["max_rel_dev"] < 1e-9
    assert len(fit["rel_devs"]) == len(x)


def test_linear_fit_flags_an_outlier():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(1, 100, size=12))
    t = 3.0 + 0.5 * x
    t[7] *= 1.5
    fit = bench.linear_fit(x, t)
    # independent least squares and R^2
    slope, intercept = np.polyfit(x, t, 1)
    fitted = intercept + slope * x
    r2 = 1 - ((t - fitted) ** 2).sum() / ((t - t.mean()) ** 2).sum()
    assert fit["slope"] == pytest.approx(slope, rel=1e-9)
    assert fit["intercept"] == pytest.approx(intercept, rel=1e-9)
    assert fit["r2"] == pytest.approx(r2, rel=1e-9)
    assert fit["r2"] < bench.R2_TARGET
    devs = np.array(fit["rel_devs"])
    assert np.allclose(devs, (t - fitted) / fitted)
    assert int(np.argmax(np.abs(devs))) == 7
    assert fit["max_rel_dev"] == pytest.approx(abs(devs[7])) and fit["max_rel_dev"] > 0.2


@pytest.mark.parametrize("x, t", [([1.0], [2.0]), ([2.0, 2.0], [1.0, 3.0]),
                                  ([1.0, 2.0], [1.0, 2.0, 3.0])])
def test_linear_fit_rejects_degenerate_input(x, t):
    with pytest.raises(ValueError):
        bench.linear_fit(x, t)


def test_target_lines_judge_each_ratio_and_the_compile_times():
    results = [{"workload": "W1", "speedup_vs_torch": 3.2, "speedup_vs_numpy": 3.9,
                "fastmlp": {"gflops": 90.0}},
               {"workload": "W3-b256", "speedup_vs_torch": 1.29, "fastmlp": {"gflops": 130.0}}]
    lines = bench.target_lines(results, 200.0, {"cold_import_plus_first_fit_s": 20.5,
                                                "warm_import_plus_first_fit_s": 0.7,
                                                "cold_notice": "fastmlp: compiling ..."},
                               {"runs": [{"workload": "W2", "ratio": 1.08, "met": True},
                                         {"workload": "W3-b256", "ratio": 1.14, "met": False}]})
    verdicts = {line.split(":")[0].strip(): line.rsplit(": ", 1)[1] for line in lines}
    assert verdicts == {"W1 vs torch 3.20x >= 3.0x": "met",
                        "W1 vs numpy 3.90x >= 4.0x": "NOT met",
                        "W3-b256 vs torch 1.29x >= 1.3x": "NOT met",
                        "W3-b256 at 65% of sgemm >= 60%": "met",
                        "cold import + first fit 20.5 s <= 20 s": "NOT met",
                        "warm import + first fit 0.70 s <= 1 s": "met",
                        "compile notice shown on a cold first fit": "met",
                        "contended W2": "met", "contended W3-b256": "NOT met"}


def test_busy_host_judges_no_timing():
    results = [{"workload": "W1", "speedup_vs_torch": 3.2, "fastmlp": {"gflops": 90.0}}]
    compile_info = {"cold_import_plus_first_fit_s": 20.5, "warm_import_plus_first_fit_s": 0.7,
                    "cold_notice": "fastmlp: compiling ..."}
    lines = bench.target_lines(results, 200.0, compile_info, busy=True)
    verdicts = {line.split(":")[0].strip(): line.rsplit(": ", 1)[1] for line in lines}
    assert verdicts == {"W1 vs torch 3.20x >= 3.0x": "host busy, not judged",
                        "cold import + first fit 20.5 s <= 20 s": "host busy, not judged",
                        "warm import + first fit 0.70 s <= 1 s": "host busy, not judged",
                        # not a timing: judged on a busy host too
                        "compile notice shown on a cold first fit": "met"}
    # --quick's compile figures have no cold run: only the warm-start target
    quick = bench.target_lines([], 200.0, {"first_import_plus_first_fit_s": 0.9,
                                           "warm_import_plus_first_fit_s": 1.5})
    assert quick == ["  warm import + first fit 1.50 s <= 1 s: NOT met"]


@pytest.mark.parametrize("sgemm, quiet, busy", [(98.0, 197.0, True), (99.0, 197.0, False),
                                                (33.0, None, False), (300.0, 197.0, False)])
def test_host_check_halves_the_quiet_figure(sgemm, quiet, busy):
    got, text = bench.host_check(sgemm, quiet)
    assert got is busy
    assert ("busy" in text) is busy
    if quiet:
        assert f"{100 * sgemm / quiet:.0f}% of the quiet figure" in text


def test_quiet_sgemm_is_the_best_run_of_this_machine(tmp_path):
    def write(name, **doc):
        (tmp_path / name).write_text(json.dumps(doc))
    here = dict(cores=2, threads=2, machine="Linux-6.1-x86_64-with-glibc2.36")
    write("a.json", sgemm_gflops=181.0, **here)
    write("b.json", sgemm_gflops=196.5, **here)
    write("c.json", sgemm_gflops=190.0, cpu_model="AMD EPYC", **here)
    write("other-cpu.json", sgemm_gflops=900.0, cpu_model="Other CPU", **here)
    write("4-cores.json", sgemm_gflops=400.0, **dict(here, cores=4))
    write("1-thread.json", sgemm_gflops=300.0, **dict(here, threads=1))
    write("arm.json", sgemm_gflops=500.0, **dict(here, machine="Linux-6.1-aarch64"))
    write("no-rate.json", **here)
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "notes.txt").write_text("sgemm 999")
    kw = dict(results_dir=str(tmp_path), cores=2, model="AMD EPYC", arch="x86_64")
    assert bench.quiet_sgemm(2, **kw) == (196.5, "b.json")
    assert bench.quiet_sgemm(1, **kw) == (300.0, "1-thread.json")
    assert bench.quiet_sgemm(2, **dict(kw, cores=8)) == (None, None)
    assert bench.quiet_sgemm(2, **dict(kw, results_dir=str(tmp_path / "absent"))) == (None, None)


def test_recorded_results_give_a_quiet_figure_for_their_machine():
    """Each file in bench/results is found by a lookup with its own machine's figures."""
    import glob
    import os
    files = sorted(glob.glob(os.path.join(bench.RESULTS_DIR, "*.json")))
    assert files, "bench/results holds the recorded runs"
    doc = json.loads(open(files[-1]).read())
    rate, _ = bench.quiet_sgemm(doc["threads"], cores=doc["cores"],
                                model=doc.get("cpu_model", ""), arch="x86_64")
    assert rate is not None and rate >= doc["sgemm_gflops"]


def test_int_list_option():
    assert bench.int_list("300, 600,900") == [300, 600, 900]
    for bad in ("", "a,b", "0,5"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.int_list(bad)


def test_memory_measurement_on_tiny_data():
    n, d = 4000, 512
    m = bench.measure_memory(n_samples=n, n_features=d, threads=1)
    assert (m["n_samples"], m["n_features"], m["threads"]) == (n, d, 1)
    assert m["dataset_bytes"] == n * d * 4
    assert m["baseline_rss"] > 10e6                  # bytes, not KiB: Python + numpy alone
    # the data is resident during the fit, so the peak covers baseline + most of X
    assert m["rss_after_data"] >= m["baseline_rss"] + 0.5 * m["dataset_bytes"]
    assert m["peak_rss"] >= m["rss_after_data"] >= m["baseline_rss"]
    assert m["overhead"] == m["peak_rss"] - m["baseline_rss"] - m["dataset_bytes"]
    assert m["overhead_mb"] == pytest.approx(m["overhead"] / 1e6)
    assert m["met"] == (m["overhead_mb"] <= bench.OVERHEAD_TARGET_MB)
    assert "overhead" in bench.format_memory(m)


def test_quick_sizes_shrink_everything():
    quick = bench.sizes(bench.build_parser().parse_args(["--quick"]))
    full = bench.sizes(bench.build_parser().parse_args([]))
    assert full["scaling_samples"] == bench.SCALING_SAMPLES
    assert [5 * n for n in quick["scaling_samples"]] == full["scaling_samples"]
    assert max(quick["scaling_widths"]) <= 256 < max(full["scaling_widths"])
    for key in ("width_samples", "threads_samples", "memory_samples"):
        assert 5 * quick[key] == full[key]
    parse = bench.build_parser().parse_args
    assert bench.timed_epochs(parse(["--quick"])) == bench.QUICK_EPOCHS < 3
    assert bench.timed_epochs(parse([])) == 3 == bench.timed_epochs(parse(["--epochs", "1"]))
    assert bench.timed_epochs(parse(["--quick", "--epochs", "5"])) == 5
    # --quick: numpy and PyTorch on whole batches of at most QUICK_REF_SAMPLES samples
    for n, batch in ((10000, 32), (10000, 256), (12000, 100), (900, 1000), (500, 100)):
        m = bench.reference_samples(n, batch, quick=True)
        assert m <= n and (m == n or (m % batch == 0 and m <= max(batch, bench.QUICK_REF_SAMPLES)))
        assert bench.reference_samples(n, batch, quick=False) == n


def check_fit_consistent(section, x_of):
    """The stored fit is the fit of the stored points and the deviations match it."""
    pts = section["points"]
    x = [x_of(p) for p in pts]
    t = [p["s_per_epoch"] for p in pts]
    assert all(v > 0 for v in t)
    expected = bench.linear_fit(x, t)
    for key in ("slope", "intercept", "r2", "max_rel_dev"):
        assert section["fit"][key] == pytest.approx(expected[key])
    for p, xi in zip(pts, x):
        fitted = section["fit"]["intercept"] + section["fit"]["slope"] * xi
        assert p["rel_dev"] == pytest.approx((p["s_per_epoch"] - fitted) / fitted)
        assert p["s_per_epoch"] == pytest.approx(np.median(p["epoch_times"]))
    assert section["met"] == (section["fit"]["r2"] >= bench.R2_TARGET)


def test_main_smoke_with_tiny_scaling_and_threads(tmp_path, capsys, monkeypatch):
    from fastmlp import _threads
    # main() calls fm.set_num_threads(1): give later tests their default back
    monkeypatch.setattr(_threads, "_default_threads", _threads._default_threads)
    out = tmp_path / "bench.json"
    # a quiet figure no host reaches: the host counts as busy
    bench.main(["--quick", "--no-torch", "--no-compile", "--no-memory", "--quiet-sgemm", "1e9",
                "--workload", "W2", "--epochs", "3", "--threads", "1", "--scaling",
                "--scaling-samples", "300,600,900", "--scaling-widths", "8,16,32",
                "--scaling-width-samples", "300", "--threads-samples", "512",
                "--json", str(out)])
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["memory"] is None and doc["quick"] is True
    assert [r["workload"] for r in doc["results"]] == ["W2"]
    # the host's sgemm rate comes first, right after the header line
    lines = text.splitlines()
    assert lines[1].startswith("numpy sgemm 2048^2:") and "host busy" in lines[1]
    assert doc["host_busy"] is True and doc["quiet_sgemm_gflops"] == 1e9
    assert "host busy, not judged" in text and "NOT met" not in text and ": met" not in text
    # --quick: the numpy reference ran on the first samples, its s/epoch scaled to n
    row = doc["results"][0]
    n, ref = row["n_samples"], row["numpy"]
    assert n == 60000 // 5 and ref["timed_samples"] == bench.reference_samples(n, 100, True) < n
    assert len(ref["epoch_times"]) == 3 and "timed_samples" not in row["fastmlp"]
    assert ref["s_per_epoch"] == pytest.approx(np.median(ref["epoch_times"]) * n
                                               / ref["timed_samples"])
    assert row["speedup_vs_numpy"] == pytest.approx(ref["s_per_epoch"]
                                                    / row["fastmlp"]["s_per_epoch"])
    assert f"on {ref['timed_samples']} samples, scaled to {n}" in text
    assert "bench took" in text
    s, w = doc["scaling"]["samples"], doc["scaling"]["width"]
    assert [p["n_samples"] for p in s["points"]] == [300, 600, 900]
    assert [p["width"] for p in w["points"]] == [8, 16, 32]
    check_fit_consistent(s, lambda p: p["n_samples"])
    check_fit_consistent(w, lambda p: p["flops"])
    for p in w["points"]:
        assert p["flops"] == bench.training_flops(784, [p["width"]] * 2, 300)
    t16, t32 = w["points"][1]["s_per_epoch"], w["points"][2]["s_per_epoch"]
    assert w["loglog_slope_widest"] == pytest.approx(math.log(t32 / t16) / math.log(2))
    assert "linear in samples" in text and "proportional to GEMM FLOPs" in text
    tc = doc["threads_compare"]
    if tc is not None:                     # None when Numba started with a single thread
        assert [r["threads"] for r in tc["runs"]] == [1, 2] and tc["n_samples"] == 512
        assert tc["speedup"] == pytest.approx(tc["runs"][0]["s_per_epoch"]
                                              / tc["runs"][1]["s_per_epoch"])
        assert tc["met"] == (tc["speedup"] >= bench.SPEEDUP_TARGET)
        assert "speedup 2 vs 1" in text


def test_threads_compare_restores_the_thread_count():
    import fastmlp as fm
    before = fm.get_num_threads()
    tc = bench.threads_compare(256, 3, counts=(1, 1))
    assert fm.get_num_threads() == before
    assert tc["speedup"] > 0 and len(tc["runs"]) == 2


def test_sklearn_workload_on_tiny_data():
    pytest.importorskip("sklearn")
    from fastmlp import bench_sklearn
    r = bench_sklearn.compare(1200, 2, 1, repeats=2)
    for name in ("fastmlp", "sklearn"):
        assert len(r[name]["fit_epoch_times"]) == 2
        assert r[name]["s_per_epoch"] == pytest.approx(np.median(r[name]["fit_epoch_times"]))
        assert math.isfinite(r[name]["final_loss"])
    assert r["speedup"] == pytest.approx(r["sklearn"]["s_per_epoch"] / r["fastmlp"]["s_per_epoch"])
    assert r["met"] == (r["speedup"] >= bench_sklearn.SPEEDUP_TARGET)
    # the same net, data, initial weights and updates (shuffles differ): similar losses
    assert r["fastmlp"]["final_loss"] == pytest.approx(r["sklearn"]["final_loss"], rel=0.2)
    assert "| W2 via the estimators" in bench_sklearn.format_result(r)


def test_run_interleaves_the_frameworks_epochs(monkeypatch):
    """Epoch e of every framework runs before epoch e + 1 of any, and each one's first
    epoch (the warm-up) is left out of its median and its epoch times."""
    calls = []

    def fake_epochs(label, seconds):
        def epochs_of(w, X, y, threads):
            for e in range(100):
                calls.append((label, e))
                yield seconds[e], float(e)
        return epochs_of

    monkeypatch.setattr(bench, "fastmlp_epochs", fake_epochs("fastmlp", [9.0, 1.0, 3.0, 2.0]))
    monkeypatch.setattr(bench, "reference_epochs", fake_epochs("numpy", [9.0, 4.0, 6.0, 5.0]))
    monkeypatch.setattr(bench, "make_data", lambda n, d: (np.zeros((n, d), np.float32),
                                                           np.zeros(n, np.int64)))
    monkeypatch.setattr(bench, "settle", lambda: calls.append("pause"))
    [row] = bench.run(["W2"], 1, quick=False, with_torch=False, with_numpy=True, epochs=3)
    # a pause before every epoch: none starts while the previous framework's threads spin
    assert calls == [c for e in range(4) for label in ("fastmlp", "numpy")
                     for c in ("pause", (label, e))]
    assert row["fastmlp"]["epoch_times"] == [1.0, 3.0, 2.0]
    assert row["fastmlp"]["s_per_epoch"] == 2.0 and row["numpy"]["s_per_epoch"] == 5.0
    assert row["speedup_vs_numpy"] == 2.5 and row["fastmlp"]["final_loss"] == 3.0


def test_sklearn_fits_each_start_after_a_pause(monkeypatch):
    """bench_sklearn times the two estimators' fits in turn, each after bench.settle."""
    pytest.importorskip("sklearn")
    from fastmlp import bench_sklearn
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def fit(self, X, y):
            calls.append((self.name, len(X)))
            self.loss_curve_ = [0.5]
            return self

    monkeypatch.setattr(bench, "settle", lambda: calls.append("pause"))
    X, y = np.zeros((1500, 3), np.float32), np.zeros(1500, np.int64)
    out = bench_sklearn._fit_times([(lambda: Fake("a"), 1), (lambda: Fake("b"), 1)], X, y,
                                   epochs=2, repeats=2)
    warm = [("a", 1000), ("b", 1000)]   # the warm-up fits, on 1000 rows
    assert calls == warm + ["pause", ("a", 1500), "pause", ("b", 1500)] * 2
    assert [len(times) for _, times, _ in out] == [2, 2]


def test_contended_compare_alternates_the_settings_fits(monkeypatch):
    """The default and the 1-thread fits alternate in ABBA order, and each setting's
    s/epoch is the median over the timed epochs of all its fits."""
    calls = []
    epoch_times = {None: iter([[5.0, 1.0], [2.0, 9.0]]), 1: iter([[4.0, 4.0], [1.0, 2.0]])}

    def fake_time_fastmlp(w, X, y, epochs, threads):
        calls.append(threads)
        return next(epoch_times[threads]), 0.0

    monkeypatch.setattr(bench, "time_fastmlp", fake_time_fastmlp)
    monkeypatch.setattr(bench, "make_data", lambda n, d: (np.zeros((n, d), np.float32),
                                                           np.zeros(n, np.int64)))
    monkeypatch.setattr(bench, "_BUSY_SCRIPT", "import time\ntime.sleep(60)\n")
    cc = bench.contended_compare(64, 2, workloads=("W2",), rounds=2)
    assert calls == [None, 1, 1, None]
    [row] = cc["runs"]
    assert row["epoch_times_default"] == [5.0, 1.0, 2.0, 9.0]
    assert row["s_per_epoch_default"] == 3.5 and row["s_per_epoch_1"] == 3.0
    assert row["ratio"] == pytest.approx(3.5 / 3.0) and not row["met"]
    assert cc["rounds"] == 2 and "2 fits per setting" in bench.format_contended(cc)
