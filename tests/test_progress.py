"""fastmlp/progress.py: the compile notice with its elapsed-time count and expected
duration (compile_times), one line per epoch (verbose=1 and 2), and warmup."""
import io
import json
import re
import subprocess
import sys
import time

import numba
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import compile_times
from fastmlp.progress import CompileNotice, Progress, format_metrics


@pytest.fixture
def record_dir(tmp_path, monkeypatch):
    """compile-times.json in a folder of its own."""
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    return tmp_path


def fresh_kernel():
    """A new dispatcher each call: nothing compiled (or cached) for it yet."""
    @numba.njit
    def inner(x):
        return x * 2.0

    @numba.njit
    def outer(x):
        return inner(x) + 1.0   # compiling outer compiles inner: a nested compile

    return outer


def test_notice_brackets_all_compiles_with_two_lines_off_a_terminal(record_dir):
    out = io.StringIO()
    kernel = fresh_kernel()
    t0 = time.perf_counter()
    with CompileNotice(verbose=1, stream=out) as notice:
        assert kernel(1.5) == 4.0
        time.sleep(0.2)
        assert kernel(np.float32(2.0)) == 5.0   # a second compile: part of the same notice
    wall = time.perf_counter() - t0
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    assert lines[0].startswith("fastmlp: compiling kernels")
    assert (f"expected ~{compile_times.DEFAULT_ESTIMATE_S:.0f} s: an estimate; nothing was "
            "compiled on this machine yet") in lines[0]
    seconds = float(re.fullmatch(r"fastmlp: compiled in ([\d.]+) s", lines[1]).group(1))
    assert 0.2 <= seconds <= wall + 0.05          # from the first compile to the last
    assert notice.elapsed == pytest.approx(seconds, abs=0.06)


def test_notice_counts_the_wait_for_a_compiling_helper_process(record_dir):
    from numba.core import event
    from fastmlp.kernels.split_compile import COMPILE_EVENT
    out = io.StringIO()
    kernel = fresh_kernel()
    with CompileNotice(verbose=1, stream=out, key="float32 sgd"):
        assert kernel(1.5) == 4.0
        with event.trigger_event(COMPILE_EVENT, data={"helper": 0}):
            time.sleep(0.5)    # a first fit waiting for its helper (kernels/split_compile.py)
    seconds = float(re.fullmatch(r"fastmlp: compiled in ([\d.]+) s",
                                 out.getvalue().splitlines()[-1]).group(1))
    assert seconds >= 0.5
    assert compile_times.expected("float32 sgd")[0] >= 0.5


def test_notice_is_silent_without_a_compile_or_when_not_verbose():
    kernel = fresh_kernel()
    quiet = io.StringIO()
    with CompileNotice(verbose=0, stream=quiet):
        kernel(1.0)
    kernel(2)   # compiled now for both argument types
    compiled = io.StringIO()
    with CompileNotice(verbose=1, stream=compiled):
        kernel(3.0)
        kernel(4)
    assert quiet.getvalue() == "" and compiled.getvalue() == ""


def test_notice_stops_listening_after_the_block():
    out = io.StringIO()
    with CompileNotice(verbose=1, stream=out):
        pass
    fresh_kernel()(1.0)
    assert out.getvalue() == ""


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_one_line_counts_the_seconds(record_dir):
    compile_times.record("float32 sgd", 12.0)
    out = FakeTerminal()
    with CompileNotice(verbose=1, stream=out, key="float32 sgd", interval=0.01) as notice:
        notice.on_start(None)        # what Numba's compile event calls
        deadline = time.perf_counter() + 10
        while out.getvalue().count("\r") < 3 and time.perf_counter() < deadline:
            time.sleep(0.01)
        notice.on_end(None)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")    # one line, ended at the end
    updates = text.split("\r")[1:]
    assert updates[0].startswith("fastmlp: compiling kernels for this configuration (first use")
    assert "expected ~12 s: the last compile on this machine" in updates[0]
    ticks = [u for u in updates if re.match(r"fastmlp: compiling kernels for this configuration: "
                                           r"\d+ s \(expected ~12 s", u)]
    assert len(ticks) >= 2
    assert re.fullmatch(r"fastmlp: compiled in [\d.]+ s *\n", updates[-1])
    # each update overwrites the whole previous one
    for before, after in zip(updates, updates[1:]):
        assert len(after.rstrip("\n")) >= len(before.rstrip("\n"))


def test_compile_times_record_and_expectations(record_dir):
    assert compile_times.expected("float32 sgd") == (compile_times.DEFAULT_ESTIMATE_S, "estimate")
    compile_times.record("float32 adaptive", 41.5)
    assert compile_times.expected("float32 sgd") == (41.5, "measured for another configuration")
    compile_times.record("float32 sgd", 27.25)
    assert compile_times.expected("float32 sgd") == (27.25, "measured")
    assert compile_times.expected("float32 adaptive") == (41.5, "measured")
    saved = json.loads((record_dir / "compile-times.json").read_text())
    assert saved["last"]["key"] == "float32 sgd" and set(saved["configs"]) == {
        "float32 sgd", "float32 adaptive"}
    (record_dir / "compile-times.json").write_text("{not json")
    assert compile_times.expected("float32 sgd")[1] == "estimate"     # unreadable: ignored
    compile_times.record("float32 sgd", 5.0)                         # and replaced
    assert compile_times.expected("float32 sgd") == (5.0, "measured")


def test_a_keyed_notice_records_its_compile_even_when_silent(record_dir):
    quiet = io.StringIO()
    t0 = time.perf_counter()
    with CompileNotice(verbose=0, stream=quiet, key="test key"):
        fresh_kernel()(1.0)
    wall = time.perf_counter() - t0
    assert quiet.getvalue() == ""
    seconds, source = compile_times.expected("test key")
    assert source == "measured" and 0 < seconds <= wall + 0.01
    before = (record_dir / "compile-times.json").read_text()
    kernel = fresh_kernel()
    kernel(1.0)
    with CompileNotice(verbose=0, key="test key"):   # nothing compiles: nothing recorded
        kernel(2.0)
    assert (record_dir / "compile-times.json").read_text() == before


def test_compile_key_names_the_switches():
    from fastmlp.compile_times import compile_key
    from fastmlp.plan import Switches
    assert compile_key(np.float32, Switches()) == "float32 sgd"
    assert compile_key(np.float64, Switches(adaptive=True, dropout=True)) == \
        "float64 adaptive+dropout"
    assert compile_key(np.float32, Switches(augmented=True, general_loss=True)) == \
        "float32 general_loss+augment"


# ------------------------------------------------------------------ one line per epoch
def small_fit(verbose, epochs=3, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((90, 5)).astype(np.float32)
    y = np.arange(90) % 3
    model = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(3), fm.Softmax()], seed=0)
    return model.fit(X, y, epochs=epochs, batch_size=10, verbose=verbose, n_threads=1,
                     validation_split=0.2, **kwargs)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    hist = small_fit(2)
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.startswith("epoch ")]
    assert len(lines) == 3 and "\r" not in err
    for i, line in enumerate(lines):
        m = {k: hist.history[k][i] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        assert line.startswith(f"epoch {i + 1}/3 - ")
        assert line.endswith(f"loss: {m['loss']:.4f} - accuracy: {m['accuracy']:.4f} - "
                             f"val_loss: {m['val_loss']:.4f} - val_accuracy: {m['val_accuracy']:.4f}")


def test_verbose_1_leaves_one_bar_line_per_epoch(capsys):
    hist = small_fit(1)
    err = capsys.readouterr().err
    # tqdm redraws a line with \r; what stays of each line is its last state
    kept = [line.split("\r")[-1] for line in err.split("\n") if line.strip()]
    epochs = [k for k in kept if k.startswith("epoch ")]
    assert len(epochs) == 3
    for i, line in enumerate(epochs):
        assert line.startswith(f"epoch {i + 1}/3: 100%") and "8/8" in line
        assert f"val_accuracy: {hist.history['val_accuracy'][i]:.4f}" in line


def test_progress_object_silent_and_format():
    out = io.StringIO()
    p = Progress(0, 2, stream=out)
    p.epoch_begin(5)
    p.update(5, loss=1.0)
    p.epoch_end({"loss": 1.0})
    p.close()
    assert out.getvalue() == ""
    assert format_metrics({"time": 1.0, "val_rmse": 0.5, "loss": 0.25, "rmse": 0.125}) == \
        "loss: 0.2500 - rmse: 0.1250 - val_rmse: 0.5000"


# ------------------------------------------------------------------ warmup
def test_warmup_configurations_cover_the_fits_they_name():
    """Each configuration's compile key is the key of the fits its description names."""
    from fastmlp.precompile import CONFIGURATIONS, DEFAULT, configuration_key
    from fastmlp.training import compile_key_of_fit
    assert set(DEFAULT) < set(CONFIGURATIONS)

    def key(layers, optimizer, dtype=np.float32, l2=0.0):
        m = fm.Sequential(layers + [fm.Dense(10), fm.Softmax()], dtype=dtype)
        m.build(20)
        m.optimizer, m.l2 = optimizer, l2
        return compile_key_of_fit(m)

    readme = [fm.Dense(50), fm.BatchNorm(), fm.ReLU(), fm.Dense(50), fm.BatchNorm(), fm.ReLU()]
    assert configuration_key("sgd") == key(readme, fm.SGD(0.05, momentum=0.9), l2=0.005)
    assert configuration_key("sgd") == key([fm.Dense(100), fm.ReLU()], fm.SGD(0.01))
    for opt in (fm.Adam(), fm.RMSprop(), fm.Nadam(), fm.Lion()):
        assert configuration_key("adam") == key(readme, opt)
    assert configuration_key("sgd-dropout") == key(readme + [fm.Dropout(0.3)], fm.SGD(0.1))
    assert configuration_key("adam-dropout") == key([fm.Dense(8), fm.Dropout(0.5)], fm.Adamax())
    assert configuration_key("float64") == key(readme, fm.SGD(), dtype=np.float64)
    with pytest.raises(ValueError, match="configurations must name some of"):
        fm.warmup(["sgd", "no-such"])


_WARMUP_THEN_FIT = """
import io, numpy as np, fastmlp as fm
from fastmlp.kernels import loop
bar = io.StringIO()
times = fm.warmup(["sgd"], stream=bar)
after_warmup = len(loop.run_batches.signatures)
rng = np.random.default_rng(0)
X = rng.standard_normal((300, 30)).astype(np.float32)
y = np.arange(300) % 4
m = fm.Sequential([fm.Dense(20), fm.BatchNorm(), fm.ReLU(), fm.Dense(4), fm.Softmax()], seed=1)
m.fit(X, y, epochs=2, batch_size=50, optimizer=fm.SGD(0.05, momentum=0.9), l2=1e-3, verbose=0)
m.evaluate(X, y)
print(list(times), after_warmup, len(loop.run_batches.signatures), "1/1" in bar.getvalue())
"""


def test_warmup_compiles_what_a_later_fit_uses():
    """In a fresh process: after warmup(["sgd"]) a README-style fit (other widths, BN,
    momentum, l2, batch size) and evaluate need no new signature of the training loop."""
    done = subprocess.run([sys.executable, "-c", _WARMUP_THEN_FIT], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['sgd']", "1", "1", "True"]


def test_nothing_is_recorded_while_the_cache_is_disabled(record_dir, monkeypatch):
    from fastmlp import _config
    monkeypatch.setattr(_config, "CACHE", False)
    compile_times.record("float32 sgd", 20.0)
    assert not (record_dir / "compile-times.json").exists()
    assert compile_times.expected("float32 sgd")[1] == "estimate"
