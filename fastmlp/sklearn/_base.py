"""The part of the two estimators that is the same: parameters, checks, the fit loop."""
import copy
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _threads
from .._worker import thread_budget
from ..model import DivergenceError
from . import _network as N
from ._epochs import EpochRules

LEARNING_RATES = ("constant", "invscaling", "adaptive")
DTYPES = {"float32": np.float32, "float64": np.float64}


def _number(value, name, low=None, high=None, low_open=False, high_open=False, integer=False):
    """value as float (int when integer); TypeError for a non-number, ValueError outside
    [low, high] (ends open when *_open)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
    bad = (not np.isfinite(value)
           or (low is not None and (value < low or (low_open and value == low)))
           or (high is not None and (value > high or (high_open and value == high))))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open or high is None else "]"
        raise ValueError(f"{name} must be in {lo}{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}{hi}, got {value!r}")
    return int(value) if integer else float(value)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class BaseFastMLP(BaseEstimator):
    """Shared implementation of FastMLPClassifier and FastMLPRegressor (see their docs)."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 batch_norm=False, dropout=0.0, n_threads=None, dtype="float32"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.n_threads = n_threads
        self.dtype = dtype

    # ------------------------------------------------------------------ checks
    def _checked_params(self):
        """The parameters, checked (TypeError / ValueError naming the parameter)."""
        hidden = self.hidden_layer_sizes
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = [hidden]
        try:
            hidden = [_number(h, "hidden_layer_sizes", 1, integer=True) for h in hidden]
        except TypeError:
            raise TypeError(f"hidden_layer_sizes must be an integer or a sequence of integers "
                            f">= 1, got {self.hidden_layer_sizes!r}") from None
        except ValueError:
            raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}") \
                from None
        if self.activation not in N.ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(N.ACTIVATIONS)}, got "
                             f"{self.activation!r}")
        if self.solver not in N.SOLVERS:
            hint = (" (fastmlp trains by minibatches; 'adam' or 'sgd' are scikit-learn's "
                    "other solvers)" if self.solver == "lbfgs" else "")
            raise ValueError(f"solver must be one of {sorted(N.SOLVERS)}, got "
                             f"{self.solver!r}{hint}")
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {LEARNING_RATES}, got "
                             f"{self.learning_rate!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _number(self.batch_size, "batch_size", 1, integer=True)
        if isinstance(self.dtype, str) and self.dtype in DTYPES:
            dtype = DTYPES[self.dtype]
        elif self.dtype in (np.float32, np.float64) or self.dtype in (np.dtype("float32"),
                                                                      np.dtype("float64")):
            dtype = np.dtype(self.dtype).type
        else:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.n_threads is not None:
            _threads.check_thread_count(self.n_threads)
        n_iter_no_change = self.n_iter_no_change
        if not (isinstance(n_iter_no_change, float) and n_iter_no_change == np.inf):
            n_iter_no_change = _number(n_iter_no_change, "n_iter_no_change", 1, integer=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping",
                     "batch_norm"):
            _flag(getattr(self, name), name)
        _number(self.alpha, "alpha", 0)
        _number(self.learning_rate_init, "learning_rate_init", 0, low_open=True)
        _number(self.power_t, "power_t", 0)
        _number(self.max_iter, "max_iter", 1, integer=True)
        _number(self.tol, "tol", 0)
        _number(self.momentum, "momentum", 0, 1, high_open=True)
        _number(self.validation_fraction, "validation_fraction", 0, 1, high_open=True)
        _number(self.beta_1, "beta_1", 0, 1, high_open=True)
        _number(self.beta_2, "beta_2", 0, 1, high_open=True)
        _number(self.epsilon, "epsilon", 0, low_open=True)
        _number(self.dropout, "dropout", 0, 1, high_open=True)
        if self.early_stopping and self.validation_fraction == 0:
            raise ValueError("early_stopping=True needs validation_fraction > 0")
        if self.random_state is not None:
            check_random_state(self.random_state)
        return tuple(hidden), dtype

    def _structure(self, hidden, dtype, n_features, n_outputs, head):
        """What the network's shape depends on; a warm start or partial_fit keeps it."""
        return {"hidden_layer_sizes": hidden, "activation": self.activation,
                "batch_norm": bool(self.batch_norm), "dropout": float(self.dropout),
                "dtype": np.dtype(dtype).name, "n_features": n_features, "n_outputs": n_outputs,
                "output": head}

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, incremental, classes=None):
        hidden, dtype = self._checked_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, Y, head, targets = self._validate_input(X, y, incremental, first, dtype, classes)
        n_outputs = Y.shape[1]
        structure = self._structure(hidden, dtype, X.shape[1], n_outputs, head)
        if not first:
            changed = [k for k, v in structure.items() if self._fitted_structure[k] != v]
            if changed:
                raise ValueError(f"{changed[0]} differs from the fitted network's "
                                 f"({self._fitted_structure[changed[0]]!r} -> "
                                 f"{structure[changed[0]]!r}); a warm start or partial_fit "
                                 f"keeps the network: refit with warm_start=False")
        if self.early_stopping and np.ceil(self.validation_fraction * X.shape[0]) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        self._set_targets(targets)     # everything is checked: from here on self changes
        rng = check_random_state(self.random_state)
        if first:
            self._initialize(hidden, dtype, X.shape[1], n_outputs, head, rng, structure)
        self._records_for(self.early_stopping)
        model = self.model_
        if self.early_stopping:
            stratify = Y if (is_classifier(self) and n_outputs == 1) else None
            X, X_val, Y, Y_val = train_test_split(X, Y, random_state=rng,
                                                  test_size=self.validation_fraction,
                                                  stratify=stratify)
        n_train = X.shape[0]
        batch_size = self._batch_size(n_train)
        scale = N.gradient_scale(head, n_outputs)
        optimizer = None
        if not incremental or model.optimizer is None:
            optimizer = N.make_optimizer(self.solver, self.learning_rate_init, self.momentum,
                                         self.nesterovs_momentum, self.beta_1, self.beta_2,
                                         self.epsilon, scale)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        with thread_budget(self.n_threads) as n_threads:
            validate = None
            if self.early_stopping:
                def validate(m):
                    return self._validation_score(m.predict(X_val, n_threads=n_threads), Y_val)
            rules = EpochRules(self, n_train, batch_size, N.loss_factor(head, n_outputs),
                               validate)
            try:
                history = model.fit(X, self._fit_targets(Y, head, dtype),
                                    epochs=1 if incremental else self.max_iter,
                                    batch_size=batch_size, optimizer=optimizer,
                                    l2=N.l2_for(self.alpha, batch_size, scale),
                                    shuffle=self.shuffle, seed=seed, verbose=0,
                                    n_threads=n_threads, callbacks=[rules],
                                    initial_metrics=False)
            except DivergenceError as e:
                self._store_weights()
                raise ValueError(f"Solver produced non-finite parameter weights: {e}. The "
                                 "input data may contain large values and need to be "
                                 "preprocessed.") from e
        if history.interrupted:
            warnings.warn("Training interrupted by user.")
        elif not incremental and not rules.converged and rules.epochs == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning)
        self._store_weights()
        return self

    def _initialize(self, hidden, dtype, n_features, n_outputs, head, rng, structure):
        """A new network and fresh fit records."""
        self.model_ = N.build_model(hidden, self.activation, head, n_features, n_outputs,
                                    self.batch_norm, self.dropout, dtype, rng, seed=0)
        self._fitted_structure = structure
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = head
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.validation_scores_ = self.best_validation_score_ = self.best_loss_ = None

    def _records_for(self, early_stopping):
        """The records of the stopping rule in use (scikit-learn's: validation scores with
        early stopping, the best loss without); a warm start may switch between them."""
        if early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        elif not early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf
            self.validation_scores_ = self.best_validation_score_ = None

    def _batch_size(self, n_train):
        if self.batch_size == "auto":
            return min(200, n_train)
        if self.batch_size > n_train:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                          "going to be clipped")
        return min(int(self.batch_size), n_train)

    def _store_weights(self):
        """coefs_ and intercepts_: copies of each Dense layer's W and b."""
        entries = self.model_.plan.entries
        weights = self.model_.get_weights()
        self.coefs_ = [w for w, e in zip(weights, entries) if e.name == "W"]
        self.intercepts_ = [w for w, e in zip(weights, entries) if e.name == "b"]

    # ------------------------------------------------------------------ predicting
    def _outputs(self, X):
        """The network's outputs for X: probabilities (softmax / logistic) or values."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=self.model_.dtype, order="C", reset=False)
        with thread_budget(self.n_threads) as n_threads:
            return self.model_.predict(X, n_threads=n_threads)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        """The estimator's state without the model's scratch buffers (rebuilt on use)."""
        state = super().__getstate__()
        if "model_" in state:
            model = copy.copy(state["model_"])
            model._workspaces = {}
            state["model_"] = model
        return state

    def __setstate__(self, state):
        """Unpickled: the model's arrays made writeable (joblib may unpickle them as
        read-only memory maps, which the kernels cannot take)."""
        super().__setstate__(state)
        model = getattr(self, "model_", None)
        if model is not None:
            for obj in (model, getattr(model, "plan", None)):
                for name, value in list(vars(obj).items() if obj is not None else ()):
                    if isinstance(value, np.ndarray) and not value.flags.writeable:
                        setattr(obj, name, np.array(value))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
