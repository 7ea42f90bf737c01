"""A compile-cache folder of its own for each of several processes that run side by side.

Numba keeps one index file per cached function, listing its compiled signatures and
the data file of each, named by its position in the index. Two processes that compile
different signatures of one function at the same time (two Dask workers fitting
different configurations) both read the index, both take the next free data-file name
and both write: the index ends up naming one signature's file with the other's code.
Concurrent processes therefore need folders of their own.

A process that claims a *slot* uses ``<cache root>/slots/<k>`` as its cache root
(``<cache root>`` as in fastmlp/_config.py: $FASTMLP_CACHE_DIR, else $NUMBA_CACHE_DIR,
else ~/.cache/fastmlp), k the lowest number whose lock file it can lock exclusively.
The lock lasts as long as the process, so no two live processes share a slot, and a
process started later (a restarted worker, the next run of a script) takes a slot
already compiled. A new slot folder starts as a copy of the files of the shared
folder, which the parent process (a sweep, a test) has usually filled already.

Slots are claimed when FASTMLP_CACHE_SLOTS=1, never when it is 0, and when it is
unset, in Dask worker processes started by a Nanny (the process name distributed
gives them). Here that name is set before the worker's own code runs, even when the
spawned worker first re-imports the main script. POSIX only (file locks).
"""
import importlib
import multiprocessing
import os
import shutil
from pathlib import Path

DASK_WORKER_PROCESS = "Dask Worker process (from Nanny)"
MAX_SLOTS = 256
_held = None     # the open, locked file of this process's slot (kept open: the lock lives)


def wanted():
    """Whether this process should claim a slot (see the module docstring)."""
    flag = os.environ.get("FASTMLP_CACHE_SLOTS", "").strip().lower()
    if flag in ("1", "true", "yes"):
        return True
    if flag in ("0", "false", "no"):
        return False
    return multiprocessing.current_process().name == DASK_WORKER_PROCESS


def claim(root):
    """Lock and return the first free slot folder under root/slots, or None (no fcntl,
    an unwritable root, or every slot taken)."""
    global _held
    try:
        import fcntl
        folder = Path(root) / "slots"
        folder.mkdir(parents=True, exist_ok=True)
    except (ImportError, OSError):
        return None
    for k in range(MAX_SLOTS):
        try:
            f = open(folder / f"{k}.lock", "a")
        except OSError:
            return None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _held = f
        return folder / str(k)
    return None


def seed(source, target):
    """Copy the cache files of folder `source` that `target` lacks (Numba's temporary
    files excepted). Numba writes each file whole (a rename), so every copied file is
    complete; an index naming a data file not copied yet only means a recompile."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        return 0
    copied = 0
    for path in source.rglob("*"):
        dest = target / path.relative_to(source)
        if path.is_file() and ".tmp." not in path.name and not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(path, dest)
                copied += 1
            except OSError:
                pass
    return copied


def configure(config):
    """Point the module `config` (fastmlp._config, imported but with no kernel compiled
    yet) at a slot of this process when wanted(): reload it with FASTMLP_CACHE_DIR set
    to the slot (the environment is restored after), then seed the slot from the shared
    folder. Returns the slot folder, or None when none is used."""
    if not config.CACHE or not wanted():
        return None
    shared = Path(config.CACHE_FOLDER)
    slot = claim(config.cache_root())
    if slot is None:
        return None
    saved = os.environ.get("FASTMLP_CACHE_DIR")
    os.environ["FASTMLP_CACHE_DIR"] = str(slot)
    try:
        importlib.reload(config)
    finally:
        if saved is None:
            os.environ.pop("FASTMLP_CACHE_DIR", None)
        else:
            os.environ["FASTMLP_CACHE_DIR"] = saved
    seed(shared, config.CACHE_FOLDER)
    return slot
