"""How long compiling the kernels took on this machine: a small JSON file next to the
kernel caches, read to tell a user how long the next compile should take.

The file is ``compile-times.json`` in ``_config.cache_root()`` (the folder that holds
every build's cache folder, so the record outlives a new build of the kernels, which
is exactly when a compile comes back). It maps a configuration key (`compile_key`:
the dtype and the compile-time switches of a fit) to the seconds its last compile
took; ``"last"`` holds the most recent compile of any configuration. Writes are
atomic (a temporary file renamed over the old one) and failures to read or write are
ignored: the record is a convenience, never a reason for a fit to fail.
"""
import json
import os
import tempfile
import time

from . import _config

FILE_NAME = "compile-times.json"

# With no compile timed on this machine: a first fit with an empty cache compiled in
# 13-15 s on a 2-core host (a helper process compiles half: kernels/split_compile.py)
# and 22-25 s with one core (README, Compile time).
DEFAULT_ESTIMATE_S = 20.0


def compile_key(dtype, switches):
    """A readable key for one compiled signature of the training loop, e.g.
    "float32 sgd" or "float32 adaptive+dropout": the dtype name, then which of the
    compile-time switches (plan.Switches) are on ("sgd" when only the plain SGD
    update and softmax cross-entropy are compiled)."""
    import numpy as np
    on = []
    if switches is not None:
        on = [name for name in ("adaptive", "extras", "dropout", "general_loss")
              if getattr(switches, name)]
        if switches.augmented:
            on.append("augment")
    return f"{np.dtype(dtype).name} {'+'.join(on) or 'sgd'}"


def record_path():
    """Path of the JSON record (it may not exist yet)."""
    return _config.cache_root() / FILE_NAME


def load():
    """The record as a dict ({} when missing or unreadable)."""
    try:
        with open(record_path()) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record(key, seconds):
    """Store that compiling configuration `key` took `seconds` (wall clock) just now;
    nothing is written while the kernel cache is disabled (FASTMLP_NO_CACHE)."""
    if not _config.CACHE:
        return
    data = load()
    entry = {"seconds": round(float(seconds), 2), "key": key,
             "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
    configs[key] = entry
    data = {"configs": configs, "last": entry}
    path = record_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".compile-times-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass


def expected(key=None):
    """(seconds, source): how long a compile of `key` should take and where that comes
    from: "measured" (the last compile of this configuration on this machine),
    "measured for another configuration" (the last compile of any), or "estimate"
    (DEFAULT_ESTIMATE_S, nothing timed here yet)."""
    data = load()
    configs = data.get("configs") if isinstance(data.get("configs"), dict) else {}
    for entry, source in ((configs.get(key), "measured"),
                          (data.get("last"), "measured for another configuration")):
        try:
            seconds = float(entry["seconds"])
        except (TypeError, KeyError, ValueError):
            continue
        if seconds > 0:
            return seconds, source
    return DEFAULT_ESTIMATE_S, "estimate"
