"""FastMLPClassifier and FastMLPRegressor: scikit-learn's MLP estimators on fastmlp."""
import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._base import BaseFastMLP

_PARAMETERS_HEAD = """
    Parameters
    ----------"""

_PARAMETERS = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Widths of the hidden layers; () for none.
    activation : {'relu', 'tanh', 'logistic', 'identity', 'leaky_relu'}, default='relu'
        Hidden activation; 'leaky_relu' is max(x, 0.01 x).
    solver : {'adam', 'sgd', 'adamax', 'nadam', 'amsgrad', 'rmsprop', 'adagrad', \
'adadelta', 'lion'}, default='adam'
        'adam' and 'sgd' as in scikit-learn; the others are fastmlp's optimizers (lr =
        learning_rate_init; beta_1 / beta_2 for the Adam family and Lion; epsilon where
        the optimizer has an eps). scikit-learn's 'lbfgs' is not available.
    alpha : float, default=1e-4
        L2 strength, scikit-learn's definition: each update follows the gradient of the
        batch's mean loss + alpha / (2 * b) * sum ||W||^2 over the weight matrices (b the
        batch size; biases and BatchNorm parameters are not penalised). It becomes
        fastmlp's ``l2`` (cost = mean loss + l2 * sum ||W||^2) as
        ``l2 = scale * alpha / (2 * batch_size)``, scale being fastmlp's gradient over
        scikit-learn's for the output (1 for softmax, 1/k for k logistic outputs, 2/k
        for k regression outputs; see fastmlp/sklearn/_network.py), with the learning
        rate (sgd) or epsilon (adaptive solvers) converted by the same scale. On an
        epoch's last, smaller batch scikit-learn's penalty is larger by batch_size /
        its size.
    batch_size : int or 'auto', default='auto'
        Rows per update; 'auto' is min(200, n_samples).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        scikit-learn's schedules, for solver='sgd' only: 'invscaling' sets
        learning_rate_init / (t + 1) ** power_t after each epoch (t: samples seen);
        'adaptive' divides it by 5 when the loss (or validation score) has not improved
        by tol for n_iter_no_change epochs.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Epochs (passes over the data).
    shuffle : bool, default=True
        Shuffle the rows every epoch.
    random_state : int, RandomState instance or None, default=None
        Initial weights (scikit-learn's draws: the same random_state gives both the
        same starting weights), the early-stopping split, and the seed of the
        shuffling and dropout.
    tol : float, default=1e-4
    verbose : bool, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        fit continues from the current weights (with a fresh optimizer).
    momentum : float, default=0.9
        SGD momentum, in [0, 1).
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out validation_fraction of the rows (stratified for binary targets),
        score them after each epoch (accuracy or R^2), stop after n_iter_no_change
        epochs without a gain of tol, and keep the best epoch's weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
    batch_norm : bool, default=False
        fastmlp: a BatchNorm after each hidden Dense (before the activation).
    dropout : float, default=0.0
        fastmlp: dropout rate after each hidden activation.
    n_threads : int or None, default=None
        fastmlp: threads of each fit and prediction. None: fastmlp's default
        (fm.get_num_threads(), each compiled call on all of them or on one, whichever
        is faster at the time). In a Dask worker task, at most the worker's threads,
        and the worker's fastmlp runs take turns (fastmlp/_worker.py).
    dtype : {'float32', 'float64'}, default='float32'
        fastmlp: the arithmetic of the network (and of its outputs).
"""

_ATTRIBUTES = """
    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when X had string column names
    loss_ : float
        The last epoch's loss (scikit-learn's: mean loss + alpha / (2 b) sum ||W||^2,
        the penalty taken with the epoch-end weights).
    loss_curve_ : list of float
        loss_ after every epoch of every fit and partial_fit.
    best_loss_ : float or None
        Lowest loss_ (None with early stopping).
    validation_scores_ : list of float or None
        Validation score after each epoch (early stopping only).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs run by the last fit (1 for partial_fit).
    t_ : int
        Training rows seen, all fits together.
    coefs_, intercepts_ : list of ndarray
        W (n_in, n_out) and b of each Dense layer (copies; BatchNorm parameters are
        in model_).
    n_layers_, n_outputs_ : int
    out_activation_ : str
        'softmax', 'logistic' or 'identity'.
    model_ : fastmlp.Sequential
        The fitted network (model_.history: fastmlp's record of the last fit).
"""

_DIFFERENCES = """
    Differences from scikit-learn's MLP: no 'lbfgs' solver (and no max_fun), no
    sample_weight, no sparse input (convert with X.toarray()), and the two points of
    the alpha mapping above. Inputs are read in place when they are C-contiguous in
    `dtype` (a float32 ``np.memmap`` is not copied, except the rows that early
    stopping splits off).
"""


class FastMLPClassifier(ClassifierMixin, BaseFastMLP):
    __doc__ = ("""Multi-layer perceptron classifier trained by fastmlp: a drop-in for
    sklearn.neural_network.MLPClassifier.

    Multiclass targets train a softmax output with cross-entropy; binary and multilabel
    targets (an indicator matrix) one logistic output per label with binary
    cross-entropy, as scikit-learn does. Labels may be of any type (strings too).
    """ + _PARAMETERS_HEAD + _PARAMETERS + _ATTRIBUTES + """    classes_ : ndarray
        The class labels.
""" + _DIFFERENCES)

    def _validate_input(self, X, y, incremental, first, dtype, classes):
        """(X in dtype, Y binarized (n, k), output head, the label binarizer to keep)."""
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, order="C",
                             reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        binarizer = getattr(self, "_label_binarizer", None)
        if incremental and not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            binarizer = LabelBinarizer()
            binarizer.fit(y if type_of_target(y).startswith("multilabel") else classes)
        elif not incremental and (first or not hasattr(self, "classes_")):
            binarizer = LabelBinarizer()
            binarizer.fit(y)
        else:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(f"classes={classes!r} is not the same as on the first call "
                                 f"to partial_fit, was: {self.classes_!r}")
            seen = unique_labels(y)
            if self.warm_start and not incremental and set(seen) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {seen}")
            if len(np.setdiff1d(seen, self.classes_)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {seen}.")
        Y = binarizer.transform(y)
        head = "softmax" if binarizer.y_type_ == "multiclass" else "logistic"
        return X, Y, head, binarizer

    def _set_targets(self, binarizer):
        self._label_binarizer = binarizer
        self.classes_ = binarizer.classes_

    @staticmethod
    def _fit_targets(Y, head, dtype):
        """What fastmlp trains on: class indices (softmax), else 0/1 floats (n, k)."""
        if head == "softmax":
            return np.argmax(Y, axis=1)
        return np.asarray(Y, dtype=dtype)

    def _labels(self, outputs):
        if self.n_outputs_ == 1:
            outputs = outputs.ravel()
        return self._label_binarizer.inverse_transform(outputs)

    def _validation_score(self, outputs, Y_val):
        if not np.all(np.isfinite(outputs)):
            return np.nan
        return accuracy_score(self._label_binarizer.inverse_transform(Y_val),
                              self._labels(outputs))

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and labels y (n_samples,) or an indicator
        matrix (n_samples, n_labels); returns self. A new network unless warm_start."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing the network and optimizer; `classes` (all
        labels) is required on the first call. Returns self."""
        return self._fit(X, y, incremental=True, classes=classes)

    def predict(self, X):
        """Predicted labels (n_samples,), or an indicator matrix for multilabel targets."""
        return self._labels(self._outputs(X))

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes) in classes_ order (for multilabel
        targets, each label's probability)."""
        outputs = self._outputs(X)
        if self.n_outputs_ == 1:
            p = outputs.ravel()
            return np.vstack([1 - p, p]).T
        return outputs

    def predict_log_proba(self, X):
        """log(predict_proba(X))."""
        p = self.predict_proba(X)
        return np.log(p, out=p)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class FastMLPRegressor(RegressorMixin, BaseFastMLP):
    __doc__ = ("""Multi-layer perceptron regressor trained by fastmlp: a drop-in for
    sklearn.neural_network.MLPRegressor (half squared error, identity output; one or
    several targets).
    """ + _PARAMETERS_HEAD + """
    loss : {'squared_error'}, default='squared_error'
        scikit-learn's 'poisson' is not available.""" + _PARAMETERS + _ATTRIBUTES
               + _DIFFERENCES)

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 batch_norm=False, dropout=0.0, n_threads=None, dtype="float32"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            batch_norm=batch_norm, dropout=dropout, n_threads=n_threads, dtype=dtype)
        self.loss = loss

    def _validate_input(self, X, y, incremental, first, dtype, classes):
        if self.loss != "squared_error":
            raise ValueError(f"loss must be 'squared_error', got {self.loss!r}")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             order="C", reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y.reshape(len(y), -1), "identity", None

    def _set_targets(self, binarizer):
        pass

    @staticmethod
    def _fit_targets(Y, head, dtype):
        return np.asarray(Y, dtype=dtype)

    def _validation_score(self, outputs, Y_val):
        if not np.all(np.isfinite(outputs)):
            return np.nan
        return r2_score(Y_val, outputs)

    def fit(self, X, y):
        """Train on X (n_samples, n_features) and targets y (n_samples,) or (n_samples,
        n_targets); returns self. A new network unless warm_start."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y):
        """One epoch over (X, y), continuing the network and optimizer; returns self."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predictions (n_samples,) for one target, else (n_samples, n_targets)."""
        check_is_fitted(self)
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out
