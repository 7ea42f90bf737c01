"""Loss specifications: which loss the output head computes and what targets it takes."""
from dataclasses import dataclass

from .kernels import layout as L


@dataclass(frozen=True)
class LossSpec:
    name: str
    code: int          # kernel code (kernels.loop.LOSS_*)
    targets: str       # "labels" (int classes), "values" (float), "signs" (-1/+1, one output)
    metric: str        # "accuracy" or "rmse"
    margin: float = 0.0


_LOSSES = {
    "cross_entropy": LossSpec("cross_entropy", L.LOSS_SOFTMAX_CE, "labels", "accuracy"),
    "mse": LossSpec("mse", L.LOSS_MSE, "values", "rmse"),
    "binary_cross_entropy": LossSpec("binary_cross_entropy", L.LOSS_SIGMOID_BCE, "values",
                                     "accuracy"),
    "multiclass_hinge": LossSpec("multiclass_hinge", L.LOSS_MC_HINGE, "labels", "accuracy", 1.0),
    "hinge": LossSpec("hinge", L.LOSS_MARGIN, "signs", "accuracy", 1.0),
    "perceptron": LossSpec("perceptron", L.LOSS_MARGIN, "signs", "accuracy", 0.0),
}
ALIASES = {"categorical_crossentropy": "cross_entropy",
           "sparse_categorical_crossentropy": "cross_entropy", "ce": "cross_entropy",
           "mean_squared_error": "mse", "bce": "binary_cross_entropy",
           "binary_crossentropy": "binary_cross_entropy", "svm": "multiclass_hinge"}


def get_loss(name, margin=None):
    """LossSpec for a name:
    "cross_entropy" (Softmax output, integer or one-hot labels),
    "mse" (any output, float targets; RMSE is reported),
    "binary_cross_entropy" (Sigmoid output, targets in [0, 1], from the logits),
    "multiclass_hinge" (linear scores, labels; sum_j!=y max(0, z_j - z_y + margin)),
    "hinge" / "perceptron" (one linear output, labels in {-1, +1};
    max(0, margin - y z) with margin 1 / 0, or pass margin=a).
    Keras's names work too (ALIASES): "categorical_crossentropy" and
    "sparse_categorical_crossentropy" (both take integer or one-hot labels here),
    "mean_squared_error", "binary_crossentropy".
    """
    key = ALIASES.get(name, name) if isinstance(name, str) else None
    if key not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(_LOSSES)} or the Keras "
                         f"names {sorted(ALIASES)}")
    spec = _LOSSES[key]
    if margin is not None:
        if key not in ("hinge", "perceptron", "multiclass_hinge"):
            raise ValueError(f"loss {key!r} takes no margin")
        spec = LossSpec(spec.name, spec.code, spec.targets, spec.metric, float(margin))
    return spec


# Keras metric names for what each loss reports (fastmlp computes that one metric always)
METRIC_NAMES = {
    "accuracy": ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy",
                 "binary_accuracy"),
    "rmse": ("rmse", "root_mean_squared_error", "RootMeanSquaredError"),
}


def check_metrics(spec, metrics):
    """The metric names a model with loss `spec` reports, from compile(metrics=...):
    None or a list of Keras names of the loss's metric (accuracy for classification
    losses, RMSE for "mse"). fastmlp computes that metric in every fit and evaluate,
    so the list only checks what is asked; ValueError naming the choices otherwise."""
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    known = METRIC_NAMES[spec.metric]
    out = []
    for m in metrics:
        if not isinstance(m, str) or m not in known:
            raise ValueError(f"metrics: {m!r} is not reported with loss {spec.name!r}; it "
                             f"reports {spec.metric!r} (names {list(known)}) and the loss")
        out.append(spec.metric)
    return out
