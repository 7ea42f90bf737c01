"""fm.report: the "Model parameters" block and the accuracy/cost table."""
import re

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.report import batchnorm_placement, hidden_widths

D, K = 8, 3


def _data(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


@pytest.fixture(scope="module")
def trained():
    train, val, test = _data(0, 80), _data(1, 30), _data(2, 40)
    model = fm.Sequential([fm.Dense(12), fm.BatchNorm(), fm.ReLU(),
                           fm.Dense(7, init="normal", sigma=0.01), fm.BatchNorm(), fm.ReLU(),
                           fm.Dense(K), fm.Softmax()], seed=0)
    history = model.fit(*train, epochs=2, batch_size=20, l2=0.003, validation_data=val,
                        optimizer=fm.SGD(fm.CyclicLR(1e-4, 0.05, 4)), seed=9, verbose=0,
                        n_threads=1)
    return model, history, train, val, test


def _row(text, split):
    line = next(l for l in text.splitlines() if l.startswith(f"| {split} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_parameters_block(trained):
    model, history, train, val, test = trained
    text = fm.report(model, train=train, val=val, test=test, print_fn=None)
    assert text.startswith("## Model parameters")
    assert re.search(r"hidden layers:\s+12, 7\n", text)
    assert re.search(r"batch norm:\s+yes, before activation \(2 layers\)", text)
    assert re.search(r"lambda \(l2\):\s+0\.003\n", text)
    assert "CyclicLR(eta_min=0.0001, eta_max=0.05, step_size=4" in text
    assert re.search(r"optimizer:\s+SGD\(", text)
    assert re.search(r"batch size:\s+20\n", text)
    assert re.search(r"epochs:\s+2 in the last fit, 2 in total", text)
    assert re.search(r"seed:\s+9\n", text)
    assert "layer 0 Dense(12): he_normal" in text
    assert "layer 3 Dense(7): normal(sigma=0.01)" in text
    assert re.search(r"dropout:\s+none\n", text) and re.search(r"noise:\s+none\n", text)


def test_numbers_match_evaluate(trained):
    model, history, train, val, test = trained
    text = fm.report(model, train=train, val=val, test=test, print_fn=None)
    for split, data, key in (("train", train, "accuracy"), ("val", val, "val_accuracy"),
                             ("test", test, None)):
        m = model.evaluate(*data)
        _, n, before, after, loss, cost = _row(text, split)
        assert int(n) == len(data[0])
        assert after == f"{100 * m['accuracy']:.2f}%"
        assert loss == f"{m['loss']:.4f}" and cost == f"{m['cost']:.4f}"
        assert before == ("n/a" if key is None else f"{100 * history.initial[key]:.2f}%")
    m = model.evaluate(*train)
    finals = [l for l in text.splitlines() if "final" in l.lower() and "cost" in l.lower()]
    assert len(finals) == 1                      # one final cost, defined on its line
    assert finals[0].startswith(f"Final cost: {m['cost']:.4f} = mean loss over the "
                                f"{len(train[0])} train samples")
    # the penalty it names is the L2 term, computed here from the weights
    l2_term = 0.003 * sum(float((w.astype(np.float64) ** 2).sum())
                          for w in model.get_weights() if w.ndim == 2)
    assert f"({m['loss']:.4f}), + the L2/L1 penalty on the weights ({l2_term:.4f})" in finals[0]


def test_final_cost_without_data_is_the_history_cost(trained):
    model, history, *_ = trained
    text = fm.report(model, print_fn=None)
    finals = [l for l in text.splitlines() if "final" in l.lower() and "cost" in l.lower()]
    assert finals == [f"Final cost: {history.history['cost'][-1]:.4f} = the last epoch's mean "
                      "minibatch loss (training mode) + the L2/L1 penalty at its end (no data "
                      "given to evaluate)"]


def test_printed_by_default(trained, capsys):
    model, _, train, _, _ = trained
    text = fm.report(model, train=train)
    assert capsys.readouterr().out.strip() == text.strip()
    assert "| val |" not in text and "| test |" not in text


def test_untrained_model_and_placements():
    model = fm.Sequential([fm.Dense(5), fm.ReLU(), fm.BatchNorm(), fm.Dense(K), fm.Softmax()],
                          seed=0).build(D)
    assert hidden_widths(model) == [5]
    assert batchnorm_placement(model) == ["after activation"]
    text = fm.report(model, test=_data(3, 10), print_fn=None)
    assert re.search(r"batch norm:\s+yes, after activation \(1 layer\)", text)
    assert re.search(r"optimizer:\s+n/a", text)
    assert _row(text, "test")[2] == "n/a"
    plain = fm.Sequential([fm.Dense(K), fm.Softmax()]).build(D)
    assert re.search(r"batch norm:\s+no\n", fm.report(plain, print_fn=None))
    assert re.search(r"hidden layers:\s+none", fm.report(plain, print_fn=None))
