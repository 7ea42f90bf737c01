"""A cold first fit compiles its kernels in two processes at once.

On a cold cache a first fit spends nearly all its time in Numba and LLVM, and Numba
compiles on one core. The C entries (kernels/c_entry.py) make the work divisible:
kernels call each other's entries by symbol name, and the cache keeps that name, so a
kernel can be compiled in one process and loaded in another that links the entry.

`compiling(loop_args, requests)` (loop.link_entries) starts a helper process (a Python
running `helper_main`) when these run_batches argument types were never compiled into
this cache folder (a marker file per argument types says so). The helper compiles the
entries named in HELPER_ENTRIES and run_batches itself into the cache, while this
process compiles the other entries; then this process loads the helper's work from the
cache. In the helper, the entries it does not compile (and the GEMM) are stand-ins: a
symbol at an address it never calls (c_entry.stand_in), enough to compile code that
calls them.

Safety. Numba's cache keeps one index file per function; two processes that write
one function's index at once can corrupt it (fastmlp/_cache_slot.py). The helper
therefore writes into this process's cache folder only the two things this process
does not compile meanwhile: its entries and run_batches (compiled from a dispatcher
of its own, `run_batches.py_func` decorated with that folder). Everything else it
compiles on the way (the passes, the entries' callees) goes to a temporary folder,
deleted when it ends. If the helper fails, nothing is lost: this process compiles
what it finds missing, as without a helper.

Measured on a 2-core host, import + first fit with an empty cache (the bench's
script): 12.9-15.3 s with the helper, 22.4-24.7 s without (README, Compile time).
The helper's peak memory is about that of the fit's process at that point (229 against
227 MB, measured on that first fit). FASTMLP_SPLIT_COMPILE=0 turns the helper off; it
is also off with one usable CPU, with the kernel cache disabled (FASTMLP_NO_CACHE), in
a frozen (bundled) application and where C's abort() is not found.
"""
import contextlib
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import llvmlite.binding as llvm
import numba
from numba.core import event

from .. import _config

# The entries the helper compiles: forward_part and run_batches (with its passes)
# balance the rest (the GEMM and the backward, BN, loss and update entries) within
# about 10% on a first fit.
HELPER_ENTRIES = ("forward_part",)
# How long a first fit waits for its helper before compiling the rest itself (s).
HELPER_TIMEOUT_S = 900
MARKER_FOLDER = "compiled-loops"
# The event (numba.core.event) that spans a first fit's wait for its helper: compile
# time too, which progress.CompileNotice counts with Numba's own compiles.
COMPILE_EVENT = "fastmlp:compile"
# `python -c` puts the working folder first on sys.path: drop it, so that the helper
# imports the fastmlp this process runs (start_helper puts it first on PYTHONPATH)
HELPER_COMMAND = ("import sys; del sys.path[0]; import pickle; "
                  "from fastmlp.kernels import split_compile; "
                  "split_compile.helper_main(pickle.load(sys.stdin.buffer))")


def enabled():
    """Whether a cold first fit may start a helper (see the module docstring)."""
    flag = os.environ.get("FASTMLP_SPLIT_COMPILE", "1").strip().lower()
    if flag in ("0", "false", "no") or not _config.CACHE or numba.config.DISABLE_JIT:
        return False
    if getattr(sys, "frozen", False):   # a bundled app: sys.executable is the app itself
        return False
    return usable_cpus() >= 2 and stand_in_address() is not None


def usable_cpus():
    """CPUs this process may run on (its affinity on Linux, else all of the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not Linux
        return os.cpu_count() or 1


def stand_in_address():
    """The address stand-ins are registered at: C's abort(), so that a call that should
    never happen ends the helper at once (None where the symbol is not found)."""
    return llvm.address_of_symbol("abort")


def marker_path(loop_types):
    """The file that says these run_batches argument types were compiled into this
    cache folder (a first fit made it)."""
    digest = hashlib.sha256(str(loop_types).encode()).hexdigest()[:24]
    return Path(_config.CACHE_FOLDER) / MARKER_FOLDER / f"run_batches-{digest}"


@contextlib.contextmanager
def compiling(loop_args, requests):
    """Around the linking of run_batches' entries (loop.link_entries): yields the names
    of the entries a helper process compiles (empty when none was started); the caller
    links the others inside the block and every entry after it (the helper's then load
    from the cache). On leaving, waits for the helper (killed on an exception) and
    records the argument types as compiled.

    loop_args: run_batches' arguments; requests: list of (name, entry, returns, sample)
    as for c_entry.link."""
    if not enabled():
        yield ()
        return
    loop_types = tuple(numba.typeof(a) for a in loop_args)
    marker = marker_path(loop_types)
    if marker.exists():
        yield ()
        return
    helper = start_helper(loop_types, loop_args[2].params.dtype, requests)
    try:
        yield HELPER_ENTRIES if helper is not None else ()
    except BaseException:
        if helper is not None:
            helper.kill()
            finish(helper)
        raise
    if helper is not None:
        with event.trigger_event(COMPILE_EVENT, data={"helper": helper.pid}):
            finish(helper)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass   # only costs a helper next time


def start_helper(loop_types, dtype, requests):
    """Start the helper process for these run_batches argument types, parameter dtype
    and entry requests; the Popen (its .scratch: the temporary cache folder), or None
    when it cannot start."""
    from .c_entry import canonical
    entries, stand_ins = [], []
    for name, entry, returns, sample in requests:
        arg_type = canonical(numba.typeof(sample))
        if name in HELPER_ENTRIES:
            entries.append((name, entry, returns, arg_type))
        else:
            stand_ins.append((name, arg_type))
    try:
        payload = pickle.dumps({"folder": _config.CACHE_FOLDER, "gemm_dtype": dtype,
                                "stand_ins": stand_ins, "entries": entries,
                                "loop_types": loop_types})
    except Exception:   # a type that does not pickle: compile here, as without a helper
        return None
    scratch = tempfile.mkdtemp(prefix="fastmlp-compile-")
    # the helper imports this copy of fastmlp; an empty PYTHONPATH entry would add the cwd
    paths = [str(Path(_config.PACKAGE).parent)]
    paths += os.environ.get("PYTHONPATH", "").split(os.pathsep)
    env = dict(os.environ, FASTMLP_CACHE_DIR=scratch, FASTMLP_CACHE_SLOTS="0",
               FASTMLP_SPLIT_COMPILE="0", PYTHONPATH=os.pathsep.join(p for p in paths if p))
    try:
        helper = subprocess.Popen([sys.executable, "-c", HELPER_COMMAND],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env)
        helper.stdin.write(payload)
        helper.stdin.close()
    except (OSError, ValueError):   # no interpreter to start, or it died at once
        shutil.rmtree(scratch, ignore_errors=True)
        return None
    helper.scratch = scratch
    return helper


def finish(helper):
    """Wait for the helper (at most HELPER_TIMEOUT_S) and delete its temporary folder;
    its exit status (None when it had to be killed)."""
    try:
        status = helper.wait(timeout=HELPER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()
        status = None
    shutil.rmtree(helper.scratch, ignore_errors=True)
    return status


def helper_main(payload):
    """The helper's work (see the module docstring), from start_helper's payload."""
    from . import c_entry, loop, tile_gemm
    folder = Path(payload["folder"])
    if folder.name != Path(_config.CACHE_FOLDER).name:
        raise SystemExit(f"not the same build of the kernels: {folder.name}")
    address = stand_in_address()
    tile_gemm.stand_in_gemm(payload["gemm_dtype"], address)
    for name, arg_type in payload["stand_ins"]:
        c_entry.stand_in(name, arg_type, address)
    # from here on, what compiles is cached in the first fit's folder
    _config.CACHE_FOLDER = str(folder)
    for name, entry, returns, arg_type in payload["entries"]:
        c_entry.link_type(name, entry, returns, arg_type)
    run_batches = _config.kernel(**_config.ENTRY)(loop.run_batches.py_func)
    run_batches.compile(payload["loop_types"])
    # what it compiled on the way, in its own cache root, is not needed (the fit that
    # started it deletes the folder too, unless it was stopped meanwhile)
    shutil.rmtree(_config.cache_root(), ignore_errors=True)
