"""`python -m fastmlp` end to end on the bundled MNIST subset (tiny nets, one epoch)."""
import re
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
import fastmlp.__main__ as cli
from fastmlp.__main__ import build_parser, first_varying_window, load_dataset, main, program_name

TINY = ["--epochs", "1", "--hidden", "16", "--quiet", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    rc = main(["train", *TINY, "--out", str(out), "--l2", "0.001", "--cyclic",
               "--step-size", "30"])
    assert rc == 0
    return out


def test_train_writes_plot_report_and_model(trained, capsys):
    assert sorted(p.name for p in trained.iterdir()) == ["learning_curves.png", "model.npz",
                                                         "report.md"]
    png = (trained / "learning_curves.png").read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 5000
    report = (trained / "report.md").read_text()
    assert re.search(r"hidden layers:\s+16\n", report)
    assert "CyclicLR(eta_min=1e-05, eta_max=0.1, step_size=30" in report
    assert re.search(r"lambda \(l2\):\s+0\.001\n", report)
    model = fm.load(trained / "model.npz")
    assert model.epochs_done == 1 and model.history.params["data"] == "mnist"
    (Xtr, ytr), _, (Xte, yte) = load_dataset("mnist", None, None)
    test = model.evaluate(Xte, yte)
    row = next(l for l in report.splitlines() if l.startswith("| test |"))
    assert f"{100 * test['accuracy']:.2f}%" in row and test["accuracy"] > 0.5


def test_evaluate_prints_the_test_metrics(trained, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(trained / "model.npz"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    model = fm.load(trained / "model.npz")
    _, _, (Xte, yte) = load_dataset("mnist", None, None)
    m = model.evaluate(Xte, yte)
    assert "mnist test (2000 samples)" in out
    assert f"loss {m['loss']:.4f}  cost {m['cost']:.4f}  accuracy {m['accuracy']:.4f}" in out
    assert main(["evaluate", str(trained / "model.npz"), "--split", "val", "--threads", "1"]) == 0
    assert "val (800 samples)" in capsys.readouterr().out


def one_error_line(capsys, status, expected_status=2):
    """The single stderr line of a failed command (asserting status and shape)."""
    err = capsys.readouterr().err
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_evaluate_rejects_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    line = one_error_line(capsys, main(["evaluate", str(bad)]))
    assert line.startswith("fastmlp: error: ") and "bad.npz" in line and "hint:" in line


def test_evaluate_on_a_missing_file_is_one_line_with_a_hint(tmp_path, capsys):
    status = main(["evaluate", str(tmp_path / "nothere.npz")])
    line = one_error_line(capsys, status)
    assert "no model file" in line and "nothere.npz" in line and "fastmlp train" in line


def test_debug_shows_the_exception_instead(tmp_path):
    with pytest.raises(cli.UserError, match="no model file"):
        main(["evaluate", str(tmp_path / "nothere.npz"), "--debug"])


def test_a_fresh_process_prints_no_traceback(tmp_path):
    """End to end: `python -m fastmlp evaluate MISSING` -> one line, status 2; --debug
    gives the traceback."""
    cmd = [sys.executable, "-m", "fastmlp", "evaluate", str(tmp_path / "none.npz")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("python -m fastmlp: error: no model file")
    done = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" in done.stderr and "UserError" in done.stderr


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", "x"], ["--epochs", "'x' is not an integer"]),
    (["train", "--batch-size", "0"], ["--batch-size", "must be >= 1"]),
    (["train", "--lr", "-0.1"], ["--lr", "must be > 0"]),
    (["train", "--momentum", "1"], ["--momentum", "< 1"]),
    (["train", "--data", "imagenet"], ["--data", "invalid choice"]),
    (["gradcheck", "--h", "0"], ["--h", "must be > 0"]),
    (["train", "--threads", "0"], ["--threads", "must be >= 1"]),
    (["train", "--no-such-option"], ["unrecognized arguments"]),
])
def test_bad_option_values_are_one_line_with_status_2(argv, words, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    line = one_error_line(capsys, stop.value.code)
    assert line.startswith(f"fastmlp {argv[0]}: error: ") or line.startswith("fastmlp: error: ")
    assert "--help" in line
    for word in words:
        assert word in line


def test_missing_cifar_files_say_what_to_do(tmp_path, capsys):
    status = main(["train", "--data", "cifar10", "--path", str(tmp_path), "--out", ""])
    line = one_error_line(capsys, status)
    assert "data_batch_1" in line and str(tmp_path) in line
    assert "download=True" not in line      # a Python argument, not a CLI flag
    assert "--path" in line and "--download" in line
    assert "--download" in build_parser().format_help() or \
        "--download" in next(a for a in build_parser()._actions
                             if a.dest == "command").choices["train"].format_help()


def test_missing_fashion_files_are_a_user_error(tmp_path, capsys):
    status = main(["gradcheck", "--data", "fashion-mnist", "--path", str(tmp_path)])
    line = one_error_line(capsys, status)
    assert "fashion-mnist" in line and "train-images-idx3-ubyte" in line


def test_an_internal_error_is_one_line_with_status_1(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("something fastmlp got wrong")
    monkeypatch.setitem(cli.COMMANDS, "cache", broken)
    line = one_error_line(capsys, main(["cache"]), expected_status=1)
    assert "internal error" in line and "something fastmlp got wrong" in line and "--debug" in line


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastmlp {fm.__version__}"


def test_program_name_in_usage():
    assert program_name(cli.__file__) == "python -m fastmlp"
    assert program_name("/usr/local/bin/fastmlp") == "fastmlp"
    assert program_name("-c") == "fastmlp"
    module = subprocess.run([sys.executable, "-m", "fastmlp", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert module.stdout.startswith("usage: python -m fastmlp ")
    # the console script: argv[0] is the installed `fastmlp` executable
    script = ("import sys; sys.argv[0] = '/usr/local/bin/fastmlp'; "
              "from fastmlp.__main__ import main; sys.exit(main())")
    console = subprocess.run([sys.executable, "-c", script, "train", "--help"],
                             capture_output=True, text=True, timeout=120)
    assert console.returncode == 0 and console.stdout.startswith("usage: fastmlp train ")


def test_train_refuses_a_non_empty_out_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    line = one_error_line(capsys, main(["train", *TINY, "--epochs", "0", "--out", str(out)]))
    assert "not empty" in line and "notes.txt" in line and "--overwrite" in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["train", *TINY, "--epochs", "0", "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model.npz", "notes.txt", "report.md"]
    assert (out / "notes.txt").read_text() == "mine"


def test_gradcheck_prints_the_table(capsys):
    assert main(["gradcheck", "--hidden", "6", "5", "--offset", "300", "--features", "6",
                 "--samples", "10", "--l2", "0.01", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "gradient check" in captured.err          # the progress bar
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("PASS: max relative error ") and "< 1e-06" in verdict
    assert "pass: max relative error < 1e-06" in out
    # the biases feeding BN are set apart (true gradient 0) and explained
    assert "set apart, near-zero gradient" in out and "layer 0 b" in out and "BatchNorm" in out
    assert "| layer | param | shape |" in out
    for row in ("| 0 | W | 6x6 |", "| 1 | gamma | 6 |", "| 4 | beta | 5 |", "| 6 | W | 5x10 |"):
        assert row in out
    worst = float(re.search(r"max relative error: (\S+)", out).group(1))
    assert worst < 1e-2      # near-zero gradients (b before BN) sit at the 1e-8 floor
    w_errors = [float(m) for m in re.findall(r"\| \d+ \| (?:W|gamma|beta) \| \S+ \| \d+ \| (\S+)", out)]
    assert max(w_errors) < 1e-5


def test_gradcheck_fails_on_a_wrong_gradient(monkeypatch, capsys):
    original = fm.Sequential.compute_gradients

    def broken(self, *args, **kwargs):
        grads = original(self, *args, **kwargs)
        grads[-2] = grads[-2] * 1.001   # 0.1% error in the last W
        return grads

    monkeypatch.setattr(fm.Sequential, "compute_gradients", broken)
    status = main(["gradcheck", "--hidden", "6", "5", "--offset", "300", "--features", "6",
                   "--samples", "10", "--max-entries", "10", "--threads", "1"])
    out = capsys.readouterr().out
    assert status == 1
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("FAIL: ") and "layer 6 W[" in verdict


def test_gradcheck_without_bn_warns_on_constant_features(capsys):
    assert main(["gradcheck", "--hidden", "4", "--no-bn", "--samples", "5", "--offset", "0",
                 "--max-entries", "3", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "are constant" in out and "| 2 | W | 4x10 |" in out


def test_gradcheck_default_features_vary(capsys):
    """Without --offset the check starts at the first run of features that vary across the
    samples: MNIST's first pixels are border pixels, and a check on them compares zeros."""
    assert main(["gradcheck", "--hidden", "4", "--samples", "8", "--max-entries", "3",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    first, last = map(int, re.search(r"features (\d+)\.\.(\d+)", out).groups())
    assert "are constant" not in out and first > 0 and last - first == 9
    w_errors = [float(m) for m in re.findall(r"\| \d+ \| W \| \S+ \| \d+ \| (\S+)", out)]
    assert w_errors and max(w_errors) < 1e-4


@pytest.mark.parametrize("columns, width, start", [
    ("0011111", 3, 2),        # the first varying run long enough
    ("0110111", 2, 1),
    ("0110111", 3, 4),        # a shorter run before is skipped
    ("1110000", 3, 0),
    ("0101010", 2, 0),        # none: 0
])
def test_first_varying_window(columns, width, start):
    rng = np.random.default_rng(0)
    X = np.ones((5, len(columns)), np.float32)
    for j, c in enumerate(columns):
        if c == "1":
            X[:, j] = rng.normal(size=5)
    assert first_varying_window(X, width) == start


def test_no_output_folder_when_out_is_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "--epochs", "0", "--out", ""]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "## Model parameters" in capsys.readouterr().out


def test_help_documents_every_option():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) == {"train", "evaluate", "gradcheck", "warmup", "cache"}
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    text = subparsers["train"].format_help()
    for option in ("--out", "--overwrite", "--download", "--compare", "--cyclic", "--hidden",
                   "--bn"):
        assert option in text
    text = subparsers["gradcheck"].format_help()
    for option in ("--features", "--samples", "--hidden", "--bn", "--l2"):
        assert option in text


def test_module_entry_point_runs(tmp_path):
    """`python -m fastmlp --help` in a fresh interpreter (the README's entry point)."""
    result = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--out DIR" in result.stdout


def test_cache_command_lists_and_clears_the_builds(tmp_path, monkeypatch, capsys):
    from fastmlp import _config
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    for name in ("fastmlp-0.0.1-aaaa-numba0-auto", "fastmlp-0.0.1-bbbb-numba0-blas"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "k.nbc").write_bytes(b"x" * 2_000_000)
    (tmp_path / "someone-elses").mkdir()
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and _config.CACHE_FOLDER in out
    assert "fastmlp-0.0.1-aaaa-numba0-auto: 2.0 MB" in out
    assert main(["cache", "--clear"]) == 0
    assert "removed 2 folder(s)" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["someone-elses"]


def test_warmup_command_lists_and_compiles(capsys):
    assert main(["warmup", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("sgd", "adam", "sgd-dropout", "adam-dropout", "float64"):
        assert re.search(rf"^[* ] {name} ", out, re.M)
    assert main(["warmup", "--config", "sgd"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"1 configuration\(s\) ready in [\d.]+ s: sgd [\d.]+ s", captured.out)
    assert "fastmlp warmup" in captured.err     # the progress bar
