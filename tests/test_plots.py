"""fastmlp.plots: every figure renders headless to a PNG with labelled axes, a title
and a legend where it has several lines; dead_unit_fraction counts dead ReLUs."""
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import fastmlp as fm
from fastmlp import plots

D, K = 6, 3


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)


def _fit(bn=True, opt=None, seed=0):
    layers = [fm.Dense(10)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU(), fm.Dense(K),
                                                                  fm.Softmax()]
    model = fm.Sequential(layers, seed=seed)
    X, y = _data()
    model.fit(X, y, epochs=3, batch_size=16, optimizer=opt or fm.SGD(fm.CyclicLR(1e-3, 0.1, 4)),
              validation_split=0.25, verbose=0, n_threads=1)
    return model


@pytest.fixture(scope="module")
def runs():
    return {"BN": _fit(True).history, "no BN": _fit(False).history}


def _check(fig, path, legend=True):
    assert isinstance(fig, Figure)
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.get_axes()
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        if legend and len(ax.get_lines()) > 1:
            assert ax.get_legend() is not None
    return axes


def test_no_pyplot_state(runs, tmp_path):
    import sys
    plots.plot_history(runs["BN"], path=tmp_path / "h.png")
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()


def test_plot_history(runs, tmp_path):
    path = tmp_path / "sub" / "history.png"
    fig = plots.plot_history(runs["BN"], path=path)
    axes = _check(fig, path)
    # no penalty: cost equals loss, so its panel is left out and the loss panel says so
    hist = runs["BN"]
    assert hist.history["cost"] == hist.history["loss"]
    assert [ax.get_title() for ax in axes] == ["loss (= cost: no L2/L1 penalty)", "accuracy"]
    train, val = axes[1].get_lines()[:2]
    assert list(train.get_xdata()) == [0, 1, 2, 3]   # history.initial as epoch 0
    assert train.get_ydata()[0] == hist.initial["accuracy"]
    assert list(val.get_ydata()[1:]) == hist.history["val_accuracy"]
    fig = plots.plot_history(hist.history, metrics=("accuracy",), path=tmp_path / "d.png")
    assert list(fig.get_axes()[0].get_lines()[0].get_xdata()) == [1, 2, 3]
    with pytest.raises(ValueError, match="none of the metrics"):
        plots.plot_history(hist, metrics=("nope",))


def test_plot_history_keeps_a_cost_that_differs(tmp_path):
    model = fm.Sequential([fm.Dense(10), fm.ReLU(), fm.Dense(K), fm.Softmax()], seed=0)
    X, y = _data()
    hist = model.fit(X, y, epochs=3, batch_size=16, optimizer=fm.SGD(0.05), l2=0.01,
                     validation_split=0.25, verbose=0, n_threads=1)
    assert hist.history["cost"][-1] > hist.history["loss"][-1]
    fig = plots.plot_history(hist, path=tmp_path / "l2.png")
    axes = _check(fig, tmp_path / "l2.png")
    assert [ax.get_title() for ax in axes] == ["loss", "cost", "accuracy"]


def _inside(fig, artist):
    """True when artist's rendered box lies within the figure's."""
    fig.canvas.draw()
    box = artist.get_window_extent(renderer=fig.canvas.get_renderer())
    frame = fig.bbox
    return box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1


def test_long_titles_are_wrapped_to_fit(runs, tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    long = ("S3: hidden-layer activations of the untrained 5 x 100 network on 1,000 MNIST test "
            "images (ReLU row: log10 of the positive values; a red bar marks a constant layer)")
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1)
    unwrapped = fig.suptitle(long, fontsize="medium")
    assert not _inside(fig, unwrapped)       # as matplotlib draws it: cut at the edges
    title = plots.set_suptitle(fig, long, fontsize="medium")
    assert "\n" in title.get_text() and title.get_text().replace("\n", " ") == long
    assert _inside(fig, title)
    fig = plots.plot_runs(runs, title=long, path=tmp_path / "long.png")
    FigureCanvasAgg(fig)
    assert _inside(fig, fig.axes[0].title)


def test_plot_runs_gives_every_run_its_own_look(runs, tmp_path):
    many = {f"run {r}": runs["BN" if r % 2 else "no BN"] for r in range(18)}
    for metric in ("val_accuracy", ["accuracy", "val_accuracy"]):
        fig = plots.plot_runs(many, metric=metric, path=tmp_path / "many.png")
        lines = fig.axes[0].get_lines()
        looks = {(l.get_color(), l.get_linestyle(), l.get_marker()) for l in lines}
        assert len(lines) == 18 * (1 if isinstance(metric, str) else 2) == len(looks)
        # the legend shows the same look as each line
        handles = fig.axes[0].get_legend().legend_handles
        assert [(h.get_color(), h.get_linestyle(), h.get_marker()) for h in handles] == \
            [(l.get_color(), l.get_linestyle(), l.get_marker()) for l in lines]


def test_plot_history_of_a_continued_fit(tmp_path):
    model = _fit()
    X, y = _data(1)
    hist = model.fit(X, y, epochs=2, batch_size=16, verbose=0, n_threads=1)
    fig = plots.plot_history(hist, metrics=("loss",), path=tmp_path / "c.png")
    assert list(fig.get_axes()[0].get_lines()[0].get_xdata()) == [3, 4, 5]


def test_plot_runs(runs, tmp_path):
    fig = plots.plot_runs(runs, path=tmp_path / "runs.png")
    (ax,) = _check(fig, tmp_path / "runs.png")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["BN", "no BN"]
    fig = plots.plot_runs(runs, metric=["accuracy", "val_accuracy"], path=tmp_path / "r2.png")
    (ax,) = _check(fig, tmp_path / "r2.png")
    assert len(ax.get_lines()) == 4
    with pytest.raises(ValueError):
        plots.plot_runs(runs, metric="nope")


def test_plot_steps(runs, tmp_path):
    hist = runs["BN"]
    fig = plots.plot_steps(hist, key="lr", path=tmp_path / "lr.png")
    (ax,) = _check(fig, tmp_path / "lr.png")
    assert list(ax.get_lines()[0].get_ydata()) == hist.steps["lr"]
    fig = plots.plot_steps(hist, key="loss", smooth=3, path=tmp_path / "loss.png")
    (ax,) = _check(fig, tmp_path / "loss.png")
    assert len(ax.get_lines()) == 2
    with pytest.raises(ValueError):
        plots.plot_steps(hist, key="nope")


def test_dead_unit_fraction():
    model = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(3, activation="relu"),
                           fm.Dense(K), fm.Softmax()], seed=0).build(D)
    X, _ = _data()
    w = model.get_weights()
    w[0][:, :2] = 0                 # units 0, 1 of layer 0: output 0 = relu(b)
    w[1][:2] = -1.0                 # negative bias: dead for every row
    w[3][:] = 0.5                   # layer 2 biases positive and
    w[2][:] = 0                     # zero weights: never dead
    model.set_weights(w)
    assert plots.dead_unit_fraction(model, X) == {1: 0.5, 2: 0.0}


def test_plot_activations(tmp_path):
    model = _fit(bn=False)
    X, _ = _data(2)
    fig = plots.plot_activations(model, X, path=tmp_path / "act.png")
    (ax,) = _check(fig, tmp_path / "act.png")
    labels = [t.get_text() for t in ax.get_xticklabels()]
    dead = plots.dead_unit_fraction(model, X)
    assert len(labels) == 1 and "layer 1" in labels[0] and f"dead {dead[1]:.0%}" in labels[0]
    assert "dead ReLU" in ax.get_title()
    fig = plots.plot_activations(model, X, kind="box", which="all", path=tmp_path / "box.png")
    (ax,) = _check(fig, tmp_path / "box.png", legend=False)
    assert len(ax.get_xticklabels()) == 2     # the hidden ReLU and the logits
    with pytest.raises(ValueError):
        plots.plot_activations(model, X, kind="pie")


def test_plot_activations_with_dead_layers(tmp_path):
    layers = []
    for _ in range(4):
        layers += [fm.Dense(2), fm.ReLU()]
    model = fm.Sequential(layers + [fm.Dense(K), fm.Softmax()], seed=0).build(D)
    w = model.get_weights()
    w[3][:] = -100.0                # second ReLU layer dead, so are all after it
    model.set_weights(w)
    X, _ = _data()
    dead = plots.dead_unit_fraction(model, X)
    assert sorted(dead) == [1, 3, 5, 7] and dead[3] == dead[5] == dead[7] == 1.0
    fig = plots.plot_activations(model, X, path=tmp_path / "dead.png")
    (ax,) = _check(fig, tmp_path / "dead.png")
    assert ax.get_legend() is not None  # "constant output" marker explained


def test_plot_metric_vs_param(tmp_path):
    lambdas = [1e-1, 1e-5, 1e-3]
    fig = plots.plot_metric_vs_param(lambdas, {"train": [0.4, 0.6, 0.62], "val": [0.38, 0.5, 0.53]},
                                     "lambda", log_x=True, path=tmp_path / "search.png")
    (ax,) = _check(fig, tmp_path / "search.png")
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "lambda"
    assert list(ax.get_lines()[0].get_xdata()) == sorted(lambdas)
    with pytest.raises(ValueError, match="values"):
        plots.plot_metric_vs_param([1, 2], {"a": [1]}, "x")


def test_backend_untouched():
    before = matplotlib.get_backend()
    plots.plot_metric_vs_param([1, 2], {"a": [1, 2]}, "x")
    assert matplotlib.get_backend() == before
