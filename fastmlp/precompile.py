"""Compile the kernels of the common configurations ahead of time (`fastmlp.warmup()`,
`fastmlp warmup`), so that CI jobs, workers and classrooms pay for compilation once:
later processes load the kernels from the on-disk cache in under a second.

What compiles is one signature of the training loop per *configuration*: the dtype
and the optional features a fit uses (compile_times.compile_key). Layer sizes,
BatchNorm, the activation, momentum, the learning rate and the batch size are data
for the same kernels and need no compile of their own; neither do evaluate and
predict of a model trained with the same configuration. The common ones, from what
the README's Usage, the examples and `fastmlp train` run:

=============  ============================================================================
sgd            Dense + BatchNorm + ReLU + Softmax, SGD (with or without momentum), float32
adam           the same net with Adam, or any other adaptive optimizer (RMSprop, Adagrad,
               Adadelta, Adamax, Nadam, Lion share these kernels)
sgd-dropout    with a Dropout layer, SGD
adam-dropout   with a Dropout layer, Adam (or another adaptive optimizer)
float64        not by default: float64 gradient checks (`fastmlp gradcheck`,
               fm.check_gradients)
=============  ============================================================================

Other features (L1, decoupled weight decay or gradient noise; augmentation; losses
other than softmax cross-entropy) compile on their first fit, as before.
"""
import threading
import time
from typing import NamedTuple

import numpy as np


class Configuration(NamedTuple):
    description: str
    dtype: type
    optimizer: str      # "sgd" or "adam"
    dropout: bool


CONFIGURATIONS = {
    "sgd": Configuration("Dense + BatchNorm + ReLU + Softmax, SGD (with or without momentum), "
                         "float32: the README's Usage, `fastmlp train`", np.float32, "sgd", False),
    "adam": Configuration("the same with Adam or any adaptive optimizer (RMSprop, Adagrad, "
                          "Adadelta, Adamax, Nadam, Lion): `train --optimizer adam`",
                          np.float32, "adam", False),
    "sgd-dropout": Configuration("with a Dropout layer, SGD, float32", np.float32, "sgd", True),
    "adam-dropout": Configuration("with a Dropout layer, an adaptive optimizer, float32",
                                  np.float32, "adam", True),
    "float64": Configuration("float64 gradient checks: `fastmlp gradcheck`, "
                             "fm.check_gradients", np.float64, "sgd", False),
}
DEFAULT = ("sgd", "adam", "sgd-dropout", "adam-dropout")


def _names(configurations):
    if configurations is None:
        return list(DEFAULT)
    names = [configurations] if isinstance(configurations, str) else list(configurations)
    unknown = [n for n in names if n not in CONFIGURATIONS]
    if unknown or not names:
        raise ValueError(f"configurations must name some of {list(CONFIGURATIONS)}, "
                         f"got {configurations!r}")
    return names


def configuration_key(name):
    """compile_times.compile_key of configuration `name` (where its timings are kept)."""
    from .compile_times import compile_key
    from .plan import Switches
    config = CONFIGURATIONS[name]
    return compile_key(config.dtype, Switches(adaptive=True if config.optimizer == "adam" else None,
                                              dropout=True if config.dropout else None))


def compile_configuration(name):
    """Compile (or load from the cache) the kernels of configuration `name`: one
    epoch of a tiny net on 64 random rows, a predict, and for float64 the gradient
    pass of a check. Returns the seconds it took."""
    from . import layers as ly
    from .model import Sequential
    from .optimizers import SGD, Adam
    config = CONFIGURATIONS[name]
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8))
    y = np.arange(64) % 3
    layers = [ly.Dense(16), ly.BatchNorm(), ly.ReLU()]
    layers += [ly.Dropout(0.2)] if config.dropout else []
    model = Sequential(layers + [ly.Dense(3), ly.Softmax()], dtype=config.dtype, seed=0)
    optimizer = SGD(0.01, momentum=0.9) if config.optimizer == "sgd" else Adam()
    model.fit(X, y, epochs=1, batch_size=32, optimizer=optimizer, verbose=0, n_threads=1)
    model.predict(X, n_threads=1)
    if config.dtype == np.float64:
        model.compute_gradients(X[:8], y[:8], n_threads=1)
    return time.perf_counter() - t0


def warmup(configurations=None, progress=True, stream=None):
    """Compile the kernels of `configurations` now (names of CONFIGURATIONS; default
    DEFAULT, the common ones), each cached on disk for every later process.

    progress: a tqdm bar over the configurations on `stream` (default sys.stderr),
    its elapsed time refreshed every second while a configuration compiles.
    Returns {name: seconds}: 13-25 s for each configuration compiled from
    scratch, under a second for one already in the cache. ValueError for an unknown
    name (before anything compiles). With FASTMLP_NO_CACHE=1 the kernels compile for
    this process only.
    """
    from tqdm.auto import tqdm
    from .compile_times import expected
    names = _names(configurations)
    bar = tqdm(total=len(names), unit="config", desc="fastmlp warmup", file=stream,
               disable=not progress, dynamic_ncols=True)
    stop = threading.Event()

    def refresh():
        while not stop.wait(1.0):
            bar.refresh()

    ticker = threading.Thread(target=refresh, name="fastmlp-warmup", daemon=True)
    if progress:
        ticker.start()
    times = {}
    try:
        for name in names:
            seconds, _ = expected(configuration_key(name))
            bar.set_postfix_str(f"{name}: compiling or loading (a compile takes ~{seconds:.0f} s)")
            times[name] = compile_configuration(name)
            bar.update(1)
        bar.set_postfix_str("done")
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
        bar.close()
    return times
