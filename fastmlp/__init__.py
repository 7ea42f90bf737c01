"""fastmlp: fast, trustworthy CPU training of multi-layer perceptrons (Numba kernels).

    import fastmlp as fm
    model = fm.Sequential([fm.Dense(50), fm.BatchNorm(), fm.ReLU(), fm.Dense(10), fm.Softmax()])
    history = model.fit(X, y, epochs=10, batch_size=100, optimizer=fm.SGD(lr=0.01), l2=0.005)
"""
from . import _cache_slot, _config
_cache_slot.configure(_config)   # a Dask worker's own kernel cache: before any kernel loads
from ._threads import get_num_threads, set_num_threads  # noqa: E402
from .gradcheck import check_gradients
from .history import History
from .layers import (Activation, BatchNorm, BatchNormalization, Dense, Dropout, Layer, LeakyReLU,
                     Linear, ReLU, Residual, Sigmoid, Softmax, Tanh)
from .losses import get_loss
from .model import DivergenceError, Sequential
from .augment import Augment
from .callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, ReduceLROnPlateau
from .optimizers import (SGD, Adadelta, Adagrad, Adam, Adamax, GradientNoise, Lion, Nadam, Optimizer,
                         RMSprop)
from .schedules import Constant, CosineAnnealing, CyclicLR, ExponentialDecay, Schedule, StepDecay
from ._validation import InputScaleWarning
from .precompile import warmup

Model = Sequential

__version__ = "0.1.0"

__all__ = [
    "Dropout", "Residual", "get_loss", "ModelCheckpoint", "Augment",
    "Adadelta", "Adagrad", "Adamax", "Callback", "CosineAnnealing", "EarlyStopping",
    "ExponentialDecay", "GradientNoise", "LambdaCallback", "Nadam", "RMSprop", "ReduceLROnPlateau",
    "Schedule", "StepDecay",
    "Activation", "Adam", "BatchNorm", "BatchNormalization", "Constant", "CyclicLR", "Dense",
    "DivergenceError", "History", "Layer", "LeakyReLU", "Linear", "Model", "Optimizer", "ReLU",
    "Lion", "SGD", "Sequential", "Sigmoid", "Softmax", "Tanh", "check_gradients", "get_num_threads",
    "set_num_threads", "InputScaleWarning", "warmup",
]

# Saving/loading, the run report; plots (matplotlib) load on first use: fm.plots.plot_history(...)
from .persistence import load_model, save_model
from .report import report

load = load_model
__all__ += ["load", "load_model", "plots", "report", "save_model"]


def __getattr__(name):
    if name == "plots":
        import importlib
        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'fastmlp' has no attribute {name!r}")
