"""Save and load a whole model (layers, weights, BN statistics, optimizer and its state,
step counters and history) as ONE .npz file with no pickled objects.

The file holds plain arrays (`params`, `bn_run`, `opt_state`, `opt_scalars`, the
history's per-update lists as `history.steps.<key>`, an unfinished epoch's
per-update records as `epoch_in_progress.<loss|metric|lr>`) and `config`: a JSON
string with everything else. `np.load(path, allow_pickle=False)` reads it. Files
are written atomically (temporary file in the same folder, then os.replace), so a
failed save never leaves a half-written file in place of a good one; a save also
removes the temporary files that killed earlier saves of the same path left.
"""
import json
import os
import tempfile

import numpy as np

FORMAT = "fastmlp-model"
VERSION = 1
_STEPS = "history.steps."
_EPOCH = "epoch_in_progress."   # the records of an unfinished epoch's updates
_EPOCH_RECORDS = ("loss", "metric", "lr")
_HISTORY_FIELDS = ("history", "initial", "epoch", "params", "interrupted")


# ---------------------------------------------------------------- JSON encoding
def _encode(obj):
    """json default: numpy scalars/arrays as Python values, fastmlp objects with
    config() (schedules, activations, noise specs) as {"__class__", "config"}."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if callable(getattr(obj, "config", None)):
        return {"__class__": type(obj).__name__, "config": obj.config()}
    raise TypeError(f"cannot save {obj!r} ({type(obj).__name__}) in a fastmlp model file")


def _encode_loose(obj):
    """History values are records: numpy values as Python values, anything else as its repr."""
    if isinstance(obj, (np.generic, np.ndarray)):
        return _encode(obj)
    return repr(obj)


def _registry():
    """{class name: class} of fastmlp's own classes that a config may name."""
    import fastmlp
    from . import layers, optimizers, schedules
    out = {}
    for module in (fastmlp, layers, optimizers, schedules):
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__.startswith("fastmlp"):
                out.setdefault(obj.__name__, obj)
    return out


def _decoder(registry):
    def hook(d):
        if set(d) == {"__class__", "config"}:
            try:
                return registry[d["__class__"]](**d["config"])
            except KeyError:
                raise ValueError(f"unknown fastmlp class {d['__class__']!r}") from None
        return d
    return hook


# ---------------------------------------------------------------- saving
def model_config(model):
    """JSON-able dict describing `model` (built): everything except the arrays."""
    layers = [[type(layer).__name__, layer.config()] for layer in model.layers]
    opt = model.optimizer
    config = {
        "format": FORMAT, "version": VERSION,
        "layers": layers, "dtype": model.dtype.name, "seed": model.seed,
        "n_features": model.n_features, "l2": model.l2, "l1": model.l1, "step": model.step,
        "loss": {"name": model.plan.loss.name, "margin": model.plan.loss.margin},
        "opt_step": model.opt_step, "epochs_done": model.epochs_done,
        "lr_scale": getattr(model, "lr_scale", 1.0),
        "steps_into_epoch": model.steps_into_epoch, "epoch_in_progress": None,
        "optimizer": None if opt is None else {"class": type(opt).__name__,
                                               "config": opt.config()},
        "history": None,
    }
    pending = model._partial_epoch
    if model.steps_into_epoch and pending is not None:
        config["epoch_in_progress"] = {k: pending[k] for k in
                                       ("n_samples", "batch_size", "shuffle", "seed")}
    hist = model.history
    if hist is not None:
        fields = {k: v for k, v in vars(hist).items() if k != "steps"}
        fields["steps_keys"] = list(hist.steps)
        config["history"] = json.loads(json.dumps(fields, default=_encode_loose))
    return config


def save_model(model, path):
    """Write `model` (built) to `path` as one .npz file, atomically.

    Arrays: params (n_params,), bn_run (n_bn_run,), opt_state (n_slots, n_params)
    and opt_scalars when the model has an optimizer, history.steps.<key> (n_updates,)
    float64; plus `config`, a JSON string (layers, dtype, seed, counters, optimizer
    and schedule configs, history). The path is used as given (no suffix added).
    Returns the path.
    """
    model._require_built()
    arrays = {"params": model.params, "bn_run": model.bn_run}
    if model.optimizer is not None and model.opt_state is not None:
        arrays["opt_state"] = model.opt_state
        if getattr(model, "opt_scalars", None) is not None:
            arrays["opt_scalars"] = model.opt_scalars
    if model.steps_into_epoch and model._partial_epoch is not None:
        for key in _EPOCH_RECORDS:
            arrays[_EPOCH + key] = np.asarray(model._partial_epoch[key], dtype=np.float64)
    if model.history is not None:
        for key, values in model.history.steps.items():
            arrays[_STEPS + key] = np.asarray(values, dtype=np.float64)
    text = json.dumps(model_config(model), default=_encode)
    arrays["config"] = np.array(text)
    _atomic_savez(path, arrays)
    return path


def _temp_prefix(path):
    return f".{os.path.basename(path)}."


def _remove_stale_temps(path):
    """Delete temporary files of earlier saves of `path` whose process is gone (a save
    killed before its rename); a live process's file (its pid is in the name) stays."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit():
            continue
        if int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue          # still running: maybe saving right now
            except ProcessLookupError:
                pass
            except OSError:       # exists but belongs to someone else
                continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _atomic_savez(path, arrays):
    """np.savez into a temporary file beside `path` (named after it and this process's
    id), then os.replace (never half a file). Temporary files left by earlier saves of
    the same path that were killed are removed first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# ---------------------------------------------------------------- loading
def _read(path):
    """(config dict, {name: array}) from a fastmlp file; ValueError naming the file otherwise."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "config" not in data.files:
                raise ValueError("it has no fastmlp 'config' entry")
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except AttributeError:  # np.load returned a plain array (.npy file): no context manager
        raise ValueError(f"{path}: not a fastmlp model file (a single .npy array)") from None
    except Exception as exc:
        raise ValueError(f"{path}: not a readable fastmlp model file ({exc})") from exc
    try:
        config = json.loads(str(arrays.pop("config")[()]), object_hook=_decoder(_registry()))
    except Exception as exc:
        raise ValueError(f"{path}: its config entry is not valid fastmlp JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastmlp model file (format {config.get('format')!r})"
                         if isinstance(config, dict) else f"{path}: not a fastmlp model file")
    if int(config.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: written by a newer fastmlp (file format version "
                         f"{config['version']} > {VERSION})")
    return config, arrays


def _restore(model, name, saved):
    """Copy array `saved` into model.<name> after checking shape, dtype and finiteness."""
    current = getattr(model, name)
    if current is None or saved.shape != current.shape or saved.dtype != current.dtype:
        have = None if current is None else (current.shape, current.dtype.name)
        raise ValueError(f"array {name!r} is {saved.shape} {saved.dtype.name}, the "
                         f"model described by the file needs {have}")
    _check_finite(saved, name)
    current[...] = saved


def _check_finite(array, name):
    if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
        raise ValueError(f"array {name!r} must hold finite floats (it has NaN, inf or "
                         f"dtype {array.dtype.name})")


def _counter(config, key):
    """config[key] as an int >= 0 (a JSON integer, not a bool or a float)."""
    value = config.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"field {key!r} must be an integer >= 0, got {value!r}")
    return value


def _number(config, key, default):
    from ._validation import check_number
    try:
        return check_number(config.get(key, default), f"field {key!r}", 0.0)
    except ValueError as exc:
        raise ValueError(f"{exc}") from None


def _build_checked(config, arrays):
    """The model the config describes, built, after checking that its parameter count
    matches the file's `params` (so a forged config cannot make it allocate more)."""
    from .layers import Layer
    from .model import Sequential
    from .plan import compile_layers
    registry = _registry()
    layers = []
    if not isinstance(config["layers"], list):
        raise ValueError("field 'layers' must be a list of [class name, config] pairs")
    for item in config["layers"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict)):
            raise ValueError(f"field 'layers' holds {item!r}, not a [class name, config] pair")
        name, cfg = item
        cls = registry.get(name) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ValueError(f"unknown layer class {name!r}")
        layers.append(cls(**cfg))
    loss = config.get("loss")
    if loss is not None:
        from .losses import get_loss
        margin = loss["margin"] if loss["name"] in ("hinge", "perceptron",
                                                    "multiclass_hinge") else None
        loss = get_loss(loss["name"], margin)
    n_features = config["n_features"]
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"field 'n_features' must be an integer >= 1, got {n_features!r}")
    if "params" not in arrays or "bn_run" not in arrays:
        raise ValueError("it has no 'params' or 'bn_run' array")
    plan = compile_layers(layers, n_features, loss)
    if arrays["params"].shape != (plan.n_params,):
        raise ValueError(f"array 'params' is {arrays['params'].shape}, the layers of the "
                         f"file need ({plan.n_params},)")
    model = Sequential(layers, dtype=np.dtype(config["dtype"]), seed=config["seed"], loss=loss)
    return model.build(n_features)


def _restore_partial_epoch(model, config, arrays):
    """The unfinished epoch's position, run and records, checked."""
    steps = _counter(config, "steps_into_epoch")
    spec = config.get("epoch_in_progress")
    if not steps:
        return
    if not isinstance(spec, dict):
        raise ValueError("field 'steps_into_epoch' > 0 needs an 'epoch_in_progress' entry")
    from ._validation import check_seed
    n, bs = _counter(spec, "n_samples"), _counter(spec, "batch_size")
    if not (n >= 1 and bs >= 1 and steps < -(-n // min(bs, n))):
        raise ValueError(f"field 'steps_into_epoch' = {steps} does not fit an epoch of {n} "
                         f"samples in batches of {bs}")
    if not isinstance(spec.get("shuffle"), bool):
        raise ValueError(f"field 'epoch_in_progress.shuffle' must be true or false")
    pending = {"n_samples": n, "batch_size": bs, "shuffle": spec["shuffle"],
               "seed": check_seed(spec.get("seed"), "field 'epoch_in_progress.seed'")}
    for key in _EPOCH_RECORDS:
        records = arrays.get(_EPOCH + key)
        if records is None or records.shape != (steps,):
            raise ValueError(f"array {_EPOCH + key!r} must have shape ({steps},)")
        _check_finite(records, _EPOCH + key)
        pending[key] = records.astype(np.float64)
    model.steps_into_epoch, model._partial_epoch = steps, pending


def _restore_optimizer(model, config, arrays):
    from .optimizers import optimizer_from_config
    spec = config["optimizer"]
    model.optimizer = optimizer_from_config(spec["class"], spec["config"])
    if "opt_state" not in arrays:
        raise ValueError("it has an optimizer but no 'opt_state' array")
    model.opt_state = arrays["opt_state"].copy()
    expect = (model.optimizer.n_slots, model.plan.n_params)
    if model.opt_state.shape != expect or model.opt_state.dtype != model.dtype:
        raise ValueError(f"array 'opt_state' is {model.opt_state.shape} "
                         f"{model.opt_state.dtype.name}, {model.optimizer!r} needs {expect} "
                         f"{model.dtype.name}")
    _check_finite(model.opt_state, "opt_state")
    if "opt_scalars" in arrays:
        scalars = arrays["opt_scalars"]
        if scalars.shape != (4,) or scalars.dtype != np.float64:
            raise ValueError(f"array 'opt_scalars' must be (4,) float64, got {scalars.shape} "
                             f"{scalars.dtype.name}")
        _check_finite(scalars, "opt_scalars")
        model.opt_scalars = scalars.copy()
    else:
        model.opt_scalars = model.optimizer.init_state(0, model.dtype)[1]


def load_model(path):
    """Rebuild the model saved by save_model(model, path).

    Returns a built Sequential with the saved weights, BN running statistics,
    optimizer (model.optimizer, with its schedule) and optimizer state
    (model.opt_state), step counters (and the position inside an unfinished
    epoch), l2, seed and history: a further fit continues exactly as the saved
    model would have. ValueError naming the file and the field for a corrupted,
    foreign or inconsistent file, including non-finite arrays, negative BN running
    variances and counters or penalties out of range.
    """
    from .history import History
    path = os.fspath(path)
    config, arrays = _read(path)
    try:
        model = _build_checked(config, arrays)
        for key in ("step", "opt_step", "epochs_done"):
            setattr(model, key, _counter(config, key))
        model.l2 = _number(config, "l2", 0.0)
        model.l1 = _number(config, "l1", 0.0)
        model.lr_scale = _number(config, "lr_scale", 1.0)
        for name in ("params", "bn_run"):
            _restore(model, name, arrays[name])
        for _, offset, width in model.plan.bn_layers:
            if np.any(model.bn_run[offset + width: offset + 2 * width] < 0):
                raise ValueError("array 'bn_run' holds a negative running variance")
        if config["optimizer"] is not None:
            _restore_optimizer(model, config, arrays)
        _restore_partial_epoch(model, config, arrays)
        if config["history"] is not None:
            fields = dict(config["history"])
            keys = fields.pop("steps_keys")
            history = History()
            vars(history).update({k: v for k, v in fields.items() if k in _HISTORY_FIELDS})
            history.steps = {k: arrays[_STEPS + k].tolist() for k in keys}
            model.history = history
    except ValueError as exc:
        raise exc if str(exc).startswith(path) else ValueError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ValueError(f"{path}: incomplete or inconsistent fastmlp model file "
                         f"(missing or bad entry {exc})") from exc
    return model
