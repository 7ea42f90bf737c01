"""Save and load a whole model (layers, weights, BN statistics, optimizer and its state,
step counters and history) as ONE .npz file with no pickled objects.

The file holds plain arrays (`params`, `bn_run`, `opt_state`, `opt_scalars`, the
history's per-update lists as `history.steps.<key>`) and `config`: a JSON string
with everything else. `np.load(path, allow_pickle=False)` reads it. Files are
written atomically (temporary file in the same folder, then os.replace), so a
failed save never leaves a half-written file in place of a good one.
"""
import json
import os
import tempfile

import numpy as np

FORMAT = "fastmlp-model"
VERSION = 1
_STEPS = "history.steps."


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
        "optimizer": None if opt is None else {"class": type(opt).__name__,
                                               "config": opt.config()},
        "history": None,
    }
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
    if model.history is not None:
        for key, values in model.history.steps.items():
            arrays[_STEPS + key] = np.asarray(values, dtype=np.float64)
    text = json.dumps(model_config(model), default=_encode)
    arrays["config"] = np.array(text)
    _atomic_savez(path, arrays)
    return path


def _atomic_savez(path, arrays):
    """np.savez into a temporary file beside `path`, then os.replace (never half a file)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
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


def _restore(model, name, saved, path):
    """Copy array `saved` into model.<name> after checking shape and dtype."""
    current = getattr(model, name)
    if current is None or saved.shape != current.shape or saved.dtype != current.dtype:
        have = None if current is None else (current.shape, current.dtype.name)
        raise ValueError(f"{path}: array {name!r} is {saved.shape} {saved.dtype.name}, the "
                         f"model described by the file needs {have}")
    current[...] = saved


def load_model(path):
    """Rebuild the model saved by save_model(model, path).

    Returns a built Sequential with the saved weights, BN running statistics,
    optimizer (model.optimizer, with its schedule) and optimizer state
    (model.opt_state), step counters, l2, seed and history: a further fit
    continues exactly as the saved model would have. ValueError (naming the
    file) for a corrupted, foreign or inconsistent file.
    """
    from .history import History
    from .model import Sequential
    path = os.fspath(path)
    config, arrays = _read(path)
    try:
        from .layers import Layer
        registry = _registry()
        layers = []
        for name, cfg in config["layers"]:
            cls = registry.get(name)
            if not (isinstance(cls, type) and issubclass(cls, Layer)):
                raise ValueError(f"unknown layer class {name!r}")
            layers.append(cls(**cfg))
        loss = config.get("loss")
        if loss is not None:
            from .losses import get_loss
            margin = loss["margin"] if loss["name"] in ("hinge", "perceptron",
                                                        "multiclass_hinge") else None
            loss = get_loss(loss["name"], margin)
        model = Sequential(layers, dtype=np.dtype(config["dtype"]), seed=config["seed"], loss=loss)
        model.build(config["n_features"])
        for key in ("l2", "step", "opt_step", "epochs_done"):
            setattr(model, key, config[key])
        model.l1 = config.get("l1", 0.0)
        if hasattr(model, "lr_scale"):
            model.lr_scale = config.get("lr_scale", 1.0)
        for name in ("params", "bn_run"):
            _restore(model, name, arrays[name], path)
        if config["optimizer"] is not None:
            from .optimizers import optimizer_from_config
            spec = config["optimizer"]
            model.optimizer = optimizer_from_config(spec["class"], spec["config"])
            model.opt_state = arrays["opt_state"].copy()
            if "opt_scalars" in arrays:
                model.opt_scalars = arrays["opt_scalars"].copy()
            elif hasattr(model.optimizer, "init_state"):
                model.opt_scalars = model.optimizer.init_state(0, model.dtype)[1]
            expect = (model.optimizer.n_slots, model.plan.n_params)
            if model.opt_state.shape != expect or model.opt_state.dtype != model.dtype:
                raise ValueError(f"{path}: optimizer state is {model.opt_state.shape}, "
                                 f"{model.optimizer!r} needs {expect}")
        if config["history"] is not None:
            fields = dict(config["history"])
            keys = fields.pop("steps_keys")
            history = History()
            vars(history).update(fields)
            history.steps = {k: arrays[_STEPS + k].tolist() for k in keys}
            model.history = history
    except ValueError as exc:
        raise exc if str(exc).startswith(path) else ValueError(f"{path}: {exc}") from exc
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: incomplete or inconsistent fastmlp model file "
                         f"(missing or bad entry {exc})") from exc
    return model
