"""Sequential model: the thin Python layer that validates, allocates and calls the kernels."""
import warnings

import numpy as np

from . import _validation as V
from ._threads import check_thread_count, compute_threads
from .augment import Augment
from .history import History
from .initializers import get_initializer
from .kernels import layout as L
from .kernels import loop
from .kernels.optim import Hyper, reduce_gradients
from .layers import Layer, output_head
from .losses import LossSpec, check_metrics, get_loss
from .optimizers import SGD, get_optimizer
from .schedules import as_schedule
from .plan import _resolve_loss, compile_layers
from .training import DivergenceError, train  # noqa: F401  (DivergenceError re-exported)


class _Workspace:
    """Activation/gradient buffers and scratch for a batch size and chunk count."""

    def __init__(self, plan, batch_size, n_chunks, dtype):
        self.batch_size, self.n_chunks = batch_size, n_chunks
        self.ops = plan.ops_for_batch(batch_size, n_chunks)
        size = plan.workspace_size(batch_size)
        self.ws = np.zeros(size, dtype)
        self.gws = np.zeros(size, dtype)
        self.yb = np.zeros(batch_size, np.int64)
        k = plan.n_outputs if plan.loss.targets != "labels" else 0
        self.Tb = np.zeros((batch_size, k), dtype)
        n_stats = max(plan.n_bn_stats, 1)
        self.bn_stats = np.zeros(n_stats, dtype)
        self.bn_parts = np.zeros((n_chunks, n_stats), np.float64)
        self.loss_parts = np.zeros((n_chunks, 2), np.float64)
        # a slot per chunk (backward) or per update block (optim.update_blocks)
        self.flags = np.zeros(max(n_chunks, plan.blocks().shape[0]), np.uint8)

    @property
    def arrays(self):
        """The buffers as run_batches takes them (kernels/loop.Work)."""
        return loop.Work(self.bn_stats, self.bn_parts, self.ws, self.gws, self.yb, self.Tb,
                         self.loss_parts, self.flags)


class Sequential:
    """A stack of layers trained by minibatch gradient descent in compiled code.

    Parameters
    ----------
    layers : list of Layer, optional
        e.g. [Dense(50), BatchNorm(), ReLU(), Dense(10), Softmax()].
    dtype : np.float32 (training default) or np.float64 (gradient checks).
    seed : int, optional
        Seeds weight initialisation (and fit's shuffling and dropout masks when fit
        gets no seed).
    loss : str, optional
        None (cross-entropy, with a Softmax output), "mse", "binary_cross_entropy"
        (Sigmoid output), "multiclass_hinge", "hinge" or "perceptron" (one output,
        labels -1/+1), or a Keras name; see fastmlp.losses.get_loss.

    Keras style works too: Dense(10, activation="softmax") as the last layer is the
    Softmax output, input_shape=(n_features,) on the first layer declares the input
    width, and compile(optimizer="adam", loss=..., metrics=["accuracy"]) sets what
    fit uses.
    """

    def __init__(self, layers=None, dtype=np.float32, seed=None, loss=None):
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.built = False
        self.layers = []
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of fastmlp layers, got {layers!r}")
        for layer in layers or []:
            self.add(layer)
        self.seed = V.check_seed(seed)
        if loss is not None and not isinstance(loss, (str, LossSpec)):
            raise TypeError(f"loss must be None, a loss name such as 'mse' or a LossSpec, "
                            f"got {loss!r}")
        if isinstance(loss, str):
            get_loss(loss)   # an unknown name fails here, not at the first fit
        self.loss = loss
        self.optimizer = None
        self.opt_state = None
        self.opt_scalars = None
        self.lr_scale = 1.0   # factor on the schedule (reduce-on-plateau)
        self.stop_training = False
        self.opt_step = 0     # updates made by the current optimizer (schedule, bias correction)
        self.step = 0         # all updates made to this model
        self.epochs_done = 0  # whole epochs
        # updates made in epoch epochs_done + 1 by a fit stopped inside it (Ctrl-C, a
        # divergence); the next fit on the same data finishes that epoch first
        self.steps_into_epoch = 0
        self._partial_epoch = None  # that run's n_samples, batch_size, shuffle, seed, records
        self.l2 = 0.0
        self.l1 = 0.0
        self.history = None
        self.metrics = []     # compile(metrics=...): the Keras names asked for
        self._workspaces = {}
        self._switches = None   # the last fit's compile-time switches (Plan.switches)

    # ---------------------------------------------------------------- building
    def add(self, layer):
        """Append a layer (before the model is built). A Dense(..., activation="softmax")
        is appended as Dense(...) then Softmax(), the output (Keras's way of writing it).
        Only the first layer may declare input_shape / input_dim."""
        if self.built:
            raise ValueError("cannot add layers to a built model")
        if not isinstance(layer, Layer):
            raise ValueError(f"{layer!r} is not a fastmlp layer")
        if layer.input_dim is not None and self.layers:
            raise ValueError(f"input_shape / input_dim go on the first layer only; layer "
                             f"{len(self.layers)} ({layer!r}) declares one")
        self.layers.extend(output_head(layer))
        return self

    @property
    def input_dim(self):
        """The input width the first layer declares (input_shape / input_dim), else the
        built model's n_features, else None."""
        if self.built:
            return self.n_features
        return self.layers[0].input_dim if self.layers else None

    def build(self, n_features=None, seed=None):
        """Compile the plan for inputs of width n_features and initialise the weights.

        n_features defaults to the width the first layer declares (input_shape).
        W from each Dense's initialiser (He normal by default), b = 0, gamma = 1,
        beta = 0; BN running mean 0 and variance 1. `seed` (else the model's seed,
        else fresh entropy, recorded in `self.seed`) makes this reproducible. An
        optimizer set by compile starts with fresh state.
        """
        declared = self.layers[0].input_dim if self.layers else None
        if n_features is None and declared is None:
            raise ValueError("build needs n_features (the input width), or declare it on the "
                             "first layer: Dense(units, input_shape=(n_features,))")
        n_features = V.check_int(declared if n_features is None else n_features,
                                 "n_features", 1)
        if n_features > V.MAX_WIDTH:
            raise ValueError(f"n_features must be <= {V.MAX_WIDTH}, got {n_features}")
        if declared is not None and n_features != declared:
            raise ValueError(f"the input has {n_features} features but the first layer declares "
                             f"input_shape=({declared},)")
        seed = V.check_seed(seed)
        plan = compile_layers(self.layers, n_features, self.loss)
        try:
            params = np.zeros(plan.n_params, self.dtype)
        except MemoryError:
            raise ValueError(f"the model needs {plan.n_params:,} parameters "
                             f"({plan.n_params * self.dtype.itemsize / 2 ** 30:.3g} GiB), more "
                             f"than this machine can allocate: fewer Dense units or "
                             f"n_features") from None
        self.plan = plan
        self.n_features = n_features
        if seed is None:
            seed = self.seed
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.params = params
        for e in self.plan.entries:
            view = self._view(e)
            if e.name == "W":
                layer = e.owner
                view[...] = get_initializer(layer.init)(rng, e.shape[0], e.shape[1], layer.sigma)
            elif e.name == "b":
                view[...] = getattr(e.owner, "bias", 0.0)
            elif e.name == "gamma":
                view[...] = 1
        self.bn_run = np.zeros(max(self.plan.n_bn_run, 1), self.dtype)
        for _, offset, width in self.plan.bn_layers:
            self.bn_run[offset + width: offset + 2 * width] = 1
        self.built = True
        self._workspaces = {}
        self._switches = None
        if self.optimizer is not None:
            self.opt_state = None
            self._set_optimizer(self.optimizer)
        return self

    def _view(self, entry, flat=None):
        flat = self.params if flat is None else flat
        return flat[entry.offset: entry.offset + entry.size].reshape(entry.shape)

    def _require_built(self):
        """Build the model now when its first layer declares the input width, as Keras
        does; ValueError when it cannot be built yet."""
        if not self.built:
            if self.input_dim is not None:
                self.build()
                return
            raise ValueError("the model is not built yet: call fit(X, y) or build(n_features) "
                             "first, or declare the input width on the first layer "
                             "(input_shape=(n_features,))")

    @property
    def n_classes(self):
        self._require_built()
        return self.plan.n_classes

    # ---------------------------------------------------------------- weights
    def get_weights(self):
        """Copies of [W1 (n_in, n_out), b1, gamma, beta, ..., W_L, b_L] in layer order."""
        self._require_built()
        return [self._view(e).copy() for e in self.plan.entries]

    def set_weights(self, weights):
        """Set all trainable arrays from a list in get_weights order (shapes must match)."""
        self._require_built()
        weights = list(weights)
        entries = self.plan.entries
        if len(weights) != len(entries):
            raise ValueError(f"set_weights expects {len(entries)} arrays, got {len(weights)}")
        arrays = []
        for k, (w, e) in enumerate(zip(weights, entries)):
            w = np.asarray(w)
            if w.shape != e.shape:
                raise ValueError(f"weights[{k}] ({e.name} of layer {e.layer}) must have shape "
                                 f"{e.shape}, got {w.shape}")
            V.check_array_values(w, f"weights[{k}] ({e.name} of layer {e.layer})", self.dtype)
            arrays.append(w)
        for w, e in zip(arrays, entries):
            self._view(e)[...] = w

    def count_params(self):
        """Number of trainable parameters."""
        self._require_built()
        return self.plan.n_params

    def penalty(self, l2=None, l1=None):
        """sum over weight matrices of l2 ||W||^2 + l1 sum |W| (float64); l2 and l1 default
        to the last fit's, and a Dense layer's own l2 / l1 override them."""
        l2 = self.l2 if l2 is None else l2
        l1 = self.l1 if l1 is None else l1
        total = 0.0
        for e in self.plan.entries:
            if e.name != "W":
                continue
            e_l2, e_l1 = self.plan.penalties(e, l2, l1)
            if e_l2 or e_l1:
                w = self._view(e).astype(np.float64)
                total += e_l2 * float(np.sum(w * w)) + e_l1 * float(np.sum(np.abs(w)))
        return total

    def kernel_state(self, grads):
        """What training changes, as run_batches takes it (kernels/loop.State); grads
        (n_chunks, n_params): the per-chunk gradient buffers of this run."""
        return loop.State(self.params, grads, self.opt_state, self.opt_scalars, self.bn_run)

    def _clear_partial_epoch(self):
        """Forget an unfinished epoch (the next fit starts a new one)."""
        self.steps_into_epoch = 0
        self._partial_epoch = None

    # ---------------------------------------------------------------- workspaces
    def _workspace(self, purpose, batch_size, n_chunks):
        key = (purpose, batch_size, n_chunks)
        ws = self._workspaces.get(key)
        if ws is None:
            self._workspaces = {k: v for k, v in self._workspaces.items() if k[0] != purpose}
            ws = self._workspaces[key] = _Workspace(self.plan, batch_size, n_chunks, self.dtype)
        return ws

    # ---------------------------------------------------------------- inference
    def _kernel(self, mode, w, X, y, T, batch_size, n_chunks, grads=None, outputs=None,
                training=False):
        """run_batches in MODE_EVAL / MODE_GRAD over all rows of X (placeholders of the
        training call's types elsewhere, and the last fit's switches, so one compiled
        signature serves every mode)."""
        f64, dt = np.zeros(0), np.zeros((0, 0), self.dtype)
        n = X.shape[0]
        sw = self._switches or self.plan.switches()
        tables = loop.Tables(w.ops, self.plan.opf, np.zeros((0, 4), np.int64), np.zeros((0, 3)))
        state = loop.State(self.params, dt if grads is None else grads, dt, f64, self.bn_run)
        run = loop.Run(mode, 0, -(-n // batch_size), batch_size, n_chunks, 0, self.step,
                       self.seed, training, 0, Hyper(), 0, f64, 1.0)
        records = loop.Records(f64, f64, f64, dt if outputs is None else outputs)
        args = (tables, loop.Data(X, y, T, np.arange(n)), state, w.arrays, run, records,
                f64 if sw.augmented else None, *sw[1:])
        loop.link_entries(*args)
        return loop.run_batches(*args)

    def _run_eval(self, X, y, T, batch_size, n_chunks, write_outputs, training=False):
        w = self._workspace("train-batch" if training else "eval", batch_size, n_chunks)
        shape = (X.shape[0], self.plan.n_outputs) if write_outputs else (0, 0)
        outputs = np.empty(shape, self.dtype)
        _, loss, metric, _, _ = self._kernel(L.MODE_EVAL, w, X, y, T, batch_size, n_chunks,
                                          outputs=outputs, training=training)
        return loss, metric, outputs

    def _prepare(self, X, y=None, targets=True):
        """Checked (X, y int labels or (0,), T float targets or (n, 0)) for the model's loss."""
        self._require_built()
        X = V.check_features(X, self.dtype, self.n_features)
        n, k, kind = X.shape[0], self.plan.n_outputs, self.plan.loss.targets
        no_labels, no_values = np.zeros(0, np.int64), np.zeros((n, 0), self.dtype)
        if y is None:
            if kind == "labels":
                return X, np.zeros(n, np.int64), no_values
            return X, no_labels, np.zeros((n, k), self.dtype)
        if kind == "labels":
            return X, V.check_labels(y, n, k), no_values
        if kind == "signs":
            return X, no_labels, V.check_signs(y, n, self.dtype)
        return X, no_labels, V.check_values(y, n, k, self.dtype)

    def _scores(self, n, loss, metric):
        """Mean loss and the loss's metric from sums over n rows."""
        spec = self.plan.loss
        per_output = spec.name in ("mse", "binary_cross_entropy")
        terms = n * (self.plan.n_outputs if per_output else 1)
        loss /= terms
        if spec.metric == "rmse":
            return loss, float(np.sqrt(metric / terms))
        return loss, metric / terms

    def evaluate(self, X, y, batch_size=1024, n_threads=None, l2=None):
        """{"loss": mean loss, "cost": loss + l2 penalty, and "accuracy" (or "rmse" for
        regression)} in evaluation mode. X (n, n_features); y as the loss expects:
        integer labels or one-hot rows (cross-entropy, multiclass hinge), float
        targets (n, n_outputs) (mse, binary cross-entropy), labels in {-1, +1}
        (hinge, perceptron). l2 defaults to the value of the last fit.
        """
        batch_size = V.check_int(batch_size, "batch_size", 1)
        if l2 is not None:
            l2 = V.check_number(l2, "l2", 0.0)
        X, y, T = self._prepare(X, y)
        with compute_threads(n_threads) as n:
            scores = self._evaluate_arrays(X, y, T, batch_size, n, l2)
        if not np.isfinite(scores["loss"]):
            _overflow(X, "the loss")
        return scores

    def _evaluate_arrays(self, X, y, T, batch_size, n_chunks, l2=None):
        bs = min(batch_size, X.shape[0])
        loss, metric, _ = self._run_eval(X, y, T, bs, n_chunks, False)
        loss, metric = self._scores(X.shape[0], loss, metric)
        return {"loss": loss, "cost": loss + self.penalty(l2), self.plan.loss.metric: metric}

    def predict(self, X, batch_size=1024, n_threads=None):
        """Outputs (n, n_outputs) in the model dtype, evaluation mode: class probabilities
        for cross-entropy, sigmoid probabilities for binary cross-entropy, the output
        values otherwise."""
        batch_size = V.check_int(batch_size, "batch_size", 1)
        X, y, T = self._prepare(X)
        with compute_threads(n_threads) as n:
            out = self._run_eval(X, y, T, min(batch_size, X.shape[0]), n, True)[2]
        if not np.all(np.isfinite(out)):
            _overflow(X, "the outputs")
        return out

    def layer_outputs(self, X, training=False, n_threads=None):
        """Outputs of the layers for X (n, n_features) run as one batch.

        Returns {layer index: (n, width) array} for every layer whose output the
        compiled plan stores: an activation fused into the Dense/BatchNorm before
        it gives the post-activation output under the activation's index (the
        pre-activation values are not kept). The Softmax output is predict(X).
        training=True uses batch statistics in BN (running ones are not updated).
        """
        X, y, T = self._prepare(X)
        n = X.shape[0]
        with compute_threads(n_threads) as n_chunks:
            self._run_eval(X, y, T, n, n_chunks, False, training)
            w = self._workspace("train-batch" if training else "eval", n, n_chunks)
            out = {}
            for k, layer_index in enumerate(self.plan.op_layers[:-1]):
                base, width = w.ops[k, L.F_OUT], w.ops[k, L.F_NOUT]
                out[layer_index] = w.ws[base: base + n * width].reshape(n, width).copy()
        return out

    def predict_classes(self, X, **kwargs):
        """Predicted labels (n,): argmax for multiclass losses, 0/1 (probability > 0.5)
        for binary cross-entropy (one output), -1/+1 for hinge/perceptron."""
        out = self.predict(X, **kwargs)
        name = self.plan.loss.name
        if name == "binary_cross_entropy":
            labels = (out > 0.5).astype(np.int64)
            return labels[:, 0] if labels.shape[1] == 1 else labels
        if self.plan.loss.targets == "signs":
            return np.where(out[:, 0] > 0, 1, -1)
        return out.argmax(axis=1)

    def compute_loss(self, X, y, l2=0.0, training=True, n_threads=None, l1=0.0):
        """Cost (mean loss + l2 penalty) of X as ONE batch, as float.

        training=True uses the batch's own BN statistics and the dropout masks of
        (seed, step) (what compute_gradients differentiates); running statistics
        are not updated.
        """
        l2, l1 = V.check_number(l2, "l2", 0.0), V.check_number(l1, "l1", 0.0)
        X, y, T = self._prepare(X, y)
        with compute_threads(n_threads) as n:
            loss, metric, _ = self._run_eval(X, y, T, X.shape[0], n, False, training)
        return self._scores(X.shape[0], loss, metric)[0] + self.penalty(l2, l1)

    def compute_gradients(self, X, y, l2=0.0, n_threads=None, l1=0.0):
        """Gradients of compute_loss(X, y, l2, l1=l1) wrt every array of get_weights (same
        order); the L1 term contributes l1 * sign(W) (sign(0) = 0)."""
        l2, l1 = V.check_number(l2, "l2", 0.0), V.check_number(l1, "l1", 0.0)
        X, y, T = self._prepare(X, y)
        with compute_threads(n_threads) as n:
            n = min(n, X.shape[0])
            w = self._workspace("train-batch", X.shape[0], n)
            grads = np.zeros((n, self.plan.n_params), self.dtype)
            _, _, _, n_parts, _ = self._kernel(L.MODE_GRAD, w, X, y, T, X.shape[0], n, grads=grads)
            reduce_gradients(self.params, grads, self.plan.blocks(w.ops), self.plan.segments(l2, l1),
                             n_parts, Hyper(), 1)
        return [self._view(e, grads[0]).copy() for e in self.plan.entries]

    # ---------------------------------------------------------------- training
    def compile(self, optimizer=None, loss=None, metrics=None):
        """Keras-style: set the optimizer and loss that later fits use.

        optimizer: an Optimizer or a Keras name ("sgd", "adam", "rmsprop", "adagrad",
        "adadelta", "adamax", "nadam", "lion": the class with fastmlp's defaults, see
        optimizers.get_optimizer); None keeps the current one (SGD() at the first fit).
        A new optimizer starts with fresh state; the weights are kept.
        loss: a name, fastmlp's or Keras's ("sparse_categorical_crossentropy",
        "categorical_crossentropy", "mse", "mean_squared_error",
        "binary_crossentropy", ...; losses.get_loss); None keeps the model's.
        metrics: None or Keras names of the metric the loss reports, e.g.
        ["accuracy"]; it is in every History and evaluate whatever is asked, so the
        names are only checked (losses.check_metrics).
        Everything is checked before anything changes (ValueError naming the choices).
        """
        opt = None if optimizer is None else get_optimizer(optimizer)
        spec = self.plan.loss if self.built else self.loss
        if loss is not None:
            spec = get_loss(loss)
        if not self.layers:
            raise ValueError("the model has no layers; add them before compile")
        spec = _resolve_loss(self.layers, spec)   # ValueError if the output does not fit
        names = check_metrics(spec, metrics)
        plan = None
        if self.built and spec != self.plan.loss:
            plan = compile_layers(self.layers, self.n_features, spec)
        # checked: from here on the model changes
        self.loss, self.metrics = spec, names
        if plan is not None:
            self.plan, self._workspaces, self._switches = plan, {}, None
        if opt is not None:
            self.optimizer, self.opt_state = opt, None
            if self.built:
                self._set_optimizer(opt)

    def _optimizer_for(self, optimizer):
        """The optimizer a fit uses: the given one (an instance or a name), else the
        previous one (or compile's), else SGD()."""
        if optimizer is None:
            return self.optimizer or SGD()
        return get_optimizer(optimizer)

    def _set_optimizer(self, optimizer):
        """Make `optimizer` the model's; a new one starts with fresh state."""
        if optimizer is not self.optimizer or self.opt_state is None:
            self.optimizer = optimizer
            self.opt_state, self.opt_scalars = optimizer.init_state(self.plan.n_params, self.dtype)
            self.opt_step = 0
            self.lr_scale = 1.0

    def fit(self, X, y, epochs=None, batch_size=None, optimizer=None, l2=None, l1=None,
            validation_data=None, validation_split=0.0, shuffle=True, seed=None,
            verbose=1, n_threads=None, schedule=None, cycles=None, callbacks=None,
            checkpoint=None, checkpoint_every=1, augment=None, initial_metrics=True):
        """Train on (X, y); continues from the current weights and optimizer state.

        X (n, n_features) numeric; y (n,) integer labels (or an (n, 1) column of them)
        or (n, n_classes) one-hot. X that looks unscaled (integers such as uint8
        pixels spanning more than 1, or a feature with a standard deviation above 50)
        gets an InputScaleWarning suggesting fastmlp.preprocess.standardize.
        optimizer: an Optimizer or a name ("adam", ...); None: compile's or the
        previous fit's, else SGD().
        l2: DD2424 penalty, cost = loss + l2 * sum ||W||^2 (gradient 2 l2 W; b,
        gamma, beta are not penalised); None keeps the previous value (0 at first).
        l1: adds l1 * sum |W| (subgradient l1 sign(W)), same rules. A Dense layer's
        own l2 / l1 override these for its W.
        validation_data=(X_val, y_val), or validation_split: the last fraction of
        the rows (before shuffling) held out. seed: shuffling (and the initial
        weights when the model is unbuilt and was created without a seed).
        batch_size: rows per update (None: 32, or all rows when there are fewer); a
        batch_size larger than the training rows warns and uses all rows;
        history.params["batch_size"] records the size used.
        verbose=1: one line per epoch on stderr, a live progress bar while the epoch
        runs (Keras's verbose=1); verbose=2: the line alone, when the epoch ends;
        0: silent. A first fit that compiles kernels says so, with the time it
        expects and an elapsed-time count (progress.CompileNotice).
        schedule: a learning-rate schedule replacing the optimizer's lr (it is set
        on the optimizer object, which keeps it for later fits, as Keras does).
        cycles: with a cyclic schedule, train exactly 2 * step_size * cycles updates
        (the last epoch may be partial); epochs then defaults to what that needs
        (a schedule created with cycles=k does the same when epochs is None).
        epochs defaults to 1 otherwise. callbacks: list of fastmlp.callbacks objects.
        checkpoint: a path; the model (weights, optimizer state, counters, history)
        is saved there atomically every `checkpoint_every` epochs and at the end, so
        fm.load(path).fit(...) continues exactly as the uninterrupted run would. A fit
        stopped inside an epoch (Ctrl-C) leaves model.steps_into_epoch > 0; the next fit
        with the same data and batch size finishes that epoch first (it counts as one of
        `epochs`), with the interrupted run's seed when seed is None.
        Every argument is checked before the model changes: a call that raises leaves
        the model as it was.
        augment: a fastmlp.Augment applied to each training batch in compiled code.
        n_threads: the row chunks of each step, run on that many of Numba's threads;
        None: fm.get_num_threads() chunks, each compiled call run on all threads or
        on one, whichever is faster at the time (a busy host); the results depend
        only on the chunks.
        initial_metrics: evaluate the model before the first update, on all the
        training (and validation) rows, into history.initial (fm.plots draws it at
        epoch 0); False skips that pass, a forward pass over the data (about a third
        of an epoch's time). The scikit-learn estimators skip it.
        Returns a History (also kept as self.history).
        """
        snapshot = dict(vars(self))
        try:
            initial_metrics = V.check_flag(initial_metrics, "initial_metrics")
            (data, val, optimizer, sched, epochs, total_updates, batch_size, shuffle, seed,
             callbacks, verbose) = self._check_fit(
                X, y, epochs, batch_size, optimizer, l2, l1, validation_data,
                validation_split, shuffle, seed, verbose, n_threads, schedule, cycles, callbacks,
                checkpoint, checkpoint_every, augment)
        except BaseException:
            # a failed check leaves the model as it was (an unbuilt model stays unbuilt)
            vars(self).clear()
            vars(self).update(snapshot)
            raise
        # everything is checked: from here on the model changes
        self._set_optimizer(optimizer)
        optimizer.schedule = sched
        self.l2 = self.l2 if l2 is None else float(l2)
        self.l1 = self.l1 if l1 is None else float(l1)
        shuffle_seed = seed
        history = History({"epochs": epochs, "batch_size": batch_size, "l2": self.l2, "l1": self.l1,
                           "shuffle": bool(shuffle), "augment": repr(augment) if augment else None,
                           "optimizer": repr(self.optimizer), "n_samples": data[0].shape[0],
                           "seed": shuffle_seed})
        self.history = history
        # the default thread count follows the host's load, call by call, with the same
        # results (_threads.ThreadChooser); an explicit n_threads is used as given
        adaptive = n_threads is None
        with compute_threads(n_threads) as n_threads:
            train(self, data, val, epochs, batch_size, shuffle, shuffle_seed, verbose,
                  n_threads, history, total_updates, callbacks, augment, adaptive,
                  initial_metrics)
        return history

    def _check_fit(self, X, y, epochs, batch_size, optimizer, l2, l1, validation_data,
                   validation_split, shuffle, seed, verbose, n_threads, schedule, cycles,
                   callbacks, checkpoint, checkpoint_every, augment):
        """fit's arguments, all checked (ValueError / TypeError naming the argument);
        builds an unbuilt model (fit restores it when a check fails). Returns (data, val,
        optimizer, schedule, epochs, total updates or None, batch_size (at most the
        training rows), shuffle, the seed of shuffling and dropout, callbacks, verbose as
        0/1/2). Warns (InputScaleWarning) when X looks unscaled, and when an explicit
        batch_size exceeds the training rows."""
        from .callbacks import Callback, ModelCheckpoint
        if n_threads is not None:
            check_thread_count(n_threads)
        verbose = _check_verbose(verbose)
        raw_dtype = getattr(X, "dtype", None)   # before conversion: were these integers?
        if epochs is not None:
            epochs = V.check_int(epochs, "epochs", 0)
        explicit_batch = batch_size is not None
        batch_size = V.check_int(32 if batch_size is None else batch_size, "batch_size", 1)
        for name, value in (("l2", l2), ("l1", l1)):
            if value is not None:
                V.check_number(value, name, 0.0)
        if augment is not None and not isinstance(augment, Augment):
            raise ValueError(f"augment must be a fastmlp.Augment, got {augment!r}")
        shuffle = V.check_flag(shuffle, "shuffle")
        V.check_seed(seed)
        if cycles is not None:
            V.check_number(cycles, "cycles", 0.0, 1e9, above=True)
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of fastmlp callbacks, got {callbacks!r}")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must hold fastmlp.callbacks.Callback objects, "
                                f"got {cb!r}")
        if checkpoint is not None:
            _check_checkpoint_path(checkpoint)
            callbacks.append(ModelCheckpoint(checkpoint, every=V.check_count(
                checkpoint_every, "checkpoint_every", 1)))
        if not self.built:
            X = V.check_features(X, self.dtype)
            declared = self.input_dim
            if declared is not None and X.shape[1] != declared:
                raise ValueError(f"X has {X.shape[1]} features but the first layer declares "
                                 f"input_shape=({declared},)")
            self.build(X.shape[1], seed if self.seed is None else None)
        data, val = self._fit_data(X, y, validation_data, validation_split)
        optimizer = self._optimizer_for(optimizer)
        sched = optimizer.schedule if schedule is None else as_schedule(schedule)
        text = V.scale_warning(data[0], raw_dtype)
        if text is not None:
            warnings.warn(text, V.InputScaleWarning, stacklevel=3)
        n_rows = data[0].shape[0]
        if batch_size > n_rows and explicit_batch:
            warnings.warn(f"batch_size={batch_size} is larger than the {n_rows} training rows; "
                          f"each update uses all {n_rows} (batch_size={n_rows})",
                          UserWarning, stacklevel=3)
        batch_size = min(batch_size, n_rows)
        epochs, total_updates = _training_length(epochs, cycles, sched, n_rows, batch_size)
        if seed is None:
            # finishing an epoch that an interrupted fit left: that fit's seed
            pending = self._partial_epoch if self.steps_into_epoch else None
            seed = self.seed if pending is None else pending["seed"]
        return (data, val, optimizer, sched, epochs, total_updates, batch_size, shuffle, seed,
                callbacks, verbose)

    def _fit_data(self, X, y, validation_data, validation_split):
        """Checked training arrays (X, y, T) and validation arrays (or None)."""
        V.check_number(validation_split, "validation_split", 0.0)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        X, y, T = self._prepare(X, y)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            return (X, y, T), self._prepare(*validation_data)
        if validation_split > 0:
            n_val = int(round(X.shape[0] * validation_split))
            if not 0 < n_val < X.shape[0]:
                raise ValueError(f"validation_split={validation_split} leaves no rows on one side")
            return (X[:-n_val], y[:-n_val], T[:-n_val]), (X[-n_val:], y[-n_val:], T[-n_val:])
        return (X, y, T), None

    def _metrics(self, data, val, n_chunks):
        out = self._evaluate_arrays(*data, 1024, n_chunks)
        if val is not None:
            out.update({"val_" + k: v for k, v in self._evaluate_arrays(*val, 1024, n_chunks).items()})
        return out

    # ---------------------------------------------------------------- display
    def summary(self, print_fn=print):
        """Keras-style table of layers, output shapes and parameter counts; returns the text."""
        self._require_built()
        counts = {}
        for e in self.plan.entries:
            counts[e.layer] = counts.get(e.layer, 0) + e.size
        non_trainable = {}  # BN running mean and var; a Residual may hold several BN layers
        for i, _, w in self.plan.bn_layers:
            non_trainable[i] = non_trainable.get(i, 0) + 2 * w
        lines = [f"{'Layer (type)':<28}{'Output Shape':<18}{'Param #':>10}", "=" * 56]
        for i, layer in enumerate(self.layers):
            out = f"(None, {self.plan.output_dims[i]})"
            count = counts.get(i, 0) + non_trainable.get(i, 0)
            lines.append(f"{f'{type(layer).__name__.lower()}_{i}':<28}{out:<18}{count:>10,}")
        n_non = sum(non_trainable.values())
        lines += ["=" * 56, f"Total params: {self.plan.n_params + n_non:,}",
                  f"Trainable params: {self.plan.n_params:,}", f"Non-trainable params: {n_non:,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self):
        return f"Sequential({self.layers!r}, dtype={self.dtype.name})"

    def save(self, path):
        """Save the whole model as one .npz file (see fastmlp.persistence); fm.load(path) reads it."""
        from .persistence import save_model
        return save_model(self, path)


def _check_verbose(verbose):
    """verbose as 0, 1 or 2 (True/False and Keras's "auto" = 1 accepted)."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, int, np.integer)) and 0 <= verbose <= 2:
        return int(verbose)
    raise ValueError(f"verbose must be 0 (silent), 1 (a progress bar per epoch) or 2 (one line "
                     f"per epoch), got {verbose!r}")


def _overflow(X, what):
    """ValueError for finite inputs whose forward pass overflows the model's dtype."""
    raise ValueError(f"X: {what} of the model are NaN or inf for these inputs (max |X| = "
                     f"{float(np.max(np.abs(X))):.3g}): values this large overflow the "
                     f"{X.dtype.name} arithmetic; scale the inputs (fastmlp.preprocess)")


def _check_checkpoint_path(path):
    """A checkpoint path: a str or os.PathLike in an existing folder, not a folder itself."""
    import os
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (str or os.PathLike), got {path!r}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"checkpoint must be a text path, got {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not path or os.path.isdir(path) or not os.path.isdir(folder):
        raise ValueError(f"checkpoint={path!r}: not a file path in an existing folder")


def _training_length(epochs, cycles, schedule, n_samples, batch_size):
    """(epochs, total updates or None) of a fit: exactly 2 * step_size * cycles updates
    with a cyclic schedule given `cycles` (or created with them when epochs is None)."""
    steps_per_epoch = -(-n_samples // min(batch_size, n_samples))
    if cycles is None and not (epochs is None and schedule.total_steps() is not None):
        return (1 if epochs is None else epochs), None
    total = schedule.total_steps(cycles)
    if total is None:
        raise ValueError(f"cycles={cycles!r} needs a cyclic schedule such as CyclicLR, "
                         f"got {schedule!r}")
    needed = -(-total // steps_per_epoch)
    if epochs is not None and epochs < needed:
        raise ValueError(f"{cycles} cycles take {total} updates = {needed} epochs of "
                         f"{steps_per_epoch} updates; epochs={epochs} is too few")
    return needed, total
