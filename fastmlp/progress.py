"""What a fit shows while it runs, on stderr: a notice with an elapsed-time indicator
while the kernels compile (CompileNotice), and one line per epoch (Progress):
with verbose=1 a live bar inside the epoch that stays as the epoch's line, as Keras
prints it; with verbose=2 the line alone, printed when the epoch ends."""
import sys
import threading
import time

from numba.core import event

from . import compile_times
from .kernels.split_compile import COMPILE_EVENT

# Numba's compiles, and a first fit's wait for its helper process, which compiles too
COMPILE_EVENTS = ("numba:compile", COMPILE_EVENT)


def _is_tty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


class CompileNotice(event.Listener):
    """Context manager around code that may compile kernels (a fit's first call).

    When a compile starts inside the block and `verbose` is true, it says so on
    `stream` (default sys.stderr) with the expected duration: the last compile of
    this configuration on this machine (compile_times), else the last compile of
    any, else an estimate. On a terminal one line then counts the elapsed seconds
    every `interval` s and ends as "fastmlp: compiled in 27.3 s"; elsewhere (a log, a
    pipe) a start line and that end line are printed, nothing in between. `tty`
    overrides the terminal detection (tests).

    With an empty cache the first fit of a configuration compiles for 13-25 s
    before its first step, which would otherwise look like a hang; later runs load
    the kernels from the on-disk cache in under a second and show nothing.

    `key` (compile_times.compile_key) names the configuration: when given, the
    seconds from the first compile's start to the last one's end are recorded for
    it, whether or not verbose. A listener of Numba's "numba:compile" events
    (numba.core.event), which fire only when a function is compiled (not loaded
    from the cache), and of the event that spans a first fit's wait for the helper
    process compiling beside it (kernels/split_compile.py); the compiles of callees
    nested inside one are one compile.
    """

    def __init__(self, verbose, stream=None, key=None, tty=None, interval=0.5):
        self.verbose = bool(verbose)
        self.stream = stream   # default sys.stderr, looked up when used
        self.key = key
        self.tty = tty
        self.interval = float(interval)
        self.depth = 0
        self.t0 = None         # start of the first compile in the block
        self.t_end = None      # end of the last compile so far
        self.expected = None   # (seconds, source) from compile_times.expected
        self._listening = False
        self._ticker = None
        self._stop = threading.Event()
        self._width = 0

    # ------------------------------------------------------------ context
    def __enter__(self):
        self._listening = self.verbose or self.key is not None
        if self._listening:
            for kind in COMPILE_EVENTS:
                event.register(kind, self)
        return self

    def __exit__(self, exc_type, *exc):
        if self._listening:
            for kind in COMPILE_EVENTS:
                event.unregister(kind, self)
        if self.t0 is None:
            return False
        end = self.t_end if self.t_end is not None and self.depth == 0 else time.perf_counter()
        self._stop_ticker()
        if self.verbose:
            self._line(f"fastmlp: compiled in {end - self.t0:.1f} s", final=True)
        if self.key is not None and exc_type is None:
            compile_times.record(self.key, end - self.t0)
        return False

    @property
    def elapsed(self):
        """Seconds of compiling so far (None before any compile in the block)."""
        if self.t0 is None:
            return None
        end = self.t_end if self.depth == 0 and self.t_end is not None else time.perf_counter()
        return end - self.t0

    # ------------------------------------------------------------ numba events
    def on_start(self, ev):
        self.depth += 1
        if self.depth == 1 and self.t0 is None:
            self.t0 = time.perf_counter()
            if self.verbose:
                self.expected = compile_times.expected(self.key)
                self._begin()

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0:
            self.t_end = time.perf_counter()

    # ------------------------------------------------------------ display
    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def _is_live(self):
        return self.tty if self.tty is not None else _is_tty(self._out())

    def _expectation(self):
        seconds, source = self.expected
        where = {"measured": "the last compile on this machine",
                 "measured for another configuration":
                     "the last compile on this machine, of another configuration",
                 "estimate": "an estimate; nothing was compiled on this machine yet"}[source]
        return f"expected ~{seconds:.0f} s: {where}"

    def _begin(self):
        text = ("fastmlp: compiling kernels for this configuration (first use only, cached "
                f"afterwards; {self._expectation()}) ...")
        if not self._is_live():
            self._line(text, final=True)
            return
        self._line(text)
        self._ticker = threading.Thread(target=self._tick, name="fastmlp-compile-notice",
                                        daemon=True)
        self._ticker.start()

    def _tick(self):
        while not self._stop.wait(self.interval):
            self._line(f"fastmlp: compiling kernels for this configuration: {self.elapsed:.0f} s "
                       f"({self._expectation()})")

    def _stop_ticker(self):
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None

    def _line(self, text, final=False):
        """On a terminal: overwrite the current line (ending it when final); elsewhere:
        print whole lines only."""
        out = self._out()
        if self._is_live():
            pad = " " * max(0, self._width - len(text))   # covers the longer line before
            self._width = 0 if final else len(text) + len(pad)
            out.write("\r" + text + pad + ("\n" if final else ""))
        else:
            out.write(text + "\n")
        out.flush()


def format_metrics(metrics):
    """'loss: 0.3012 - accuracy: 0.9100 - val_loss: ...' (Keras's order and style) from an
    epoch's metrics dict; keys it lacks are left out."""
    keys = ("loss", "accuracy", "rmse", "val_loss", "val_accuracy", "val_rmse")
    return " - ".join(f"{k}: {metrics[k]:.4f}" for k in keys if k in metrics)


class Progress:
    """One line per epoch on `stream` (default sys.stderr), as Keras prints them.

    verbose=1: while an epoch runs, a tqdm bar over its updates with the running mean
    loss; when it ends, the bar stays as the epoch's line with its metrics.
    verbose=2: no bar; the epoch's line is printed when it ends:
    "epoch 3/10 - 0.41 s - loss: 0.3012 - accuracy: 0.9100 - val_loss: ...".
    verbose=0: nothing. `epochs`: how many epochs this fit runs (for "3/10").
    """

    def __init__(self, verbose, epochs, stream=None):
        self.verbose = int(verbose)
        self.epochs = epochs
        self.stream = stream
        self.bar = None
        self.count = 0          # epochs of this fit begun so far

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def epoch_begin(self, steps):
        """A new epoch of `steps` updates starts."""
        self.count += 1
        if self.verbose == 1:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=steps, unit="step", dynamic_ncols=True, leave=True,
                            desc=f"epoch {self.count}/{self.epochs}", file=self._out())

    def update(self, n, loss=None):
        """n more updates done; loss: the running mean loss of the epoch."""
        if self.bar is None:
            return
        if loss is not None:
            self.bar.set_postfix_str(f"loss: {loss:.4f}", refresh=False)
        self.bar.update(n)

    def epoch_end(self, metrics):
        """The epoch's metrics (history keys; "time" in seconds): its line stays."""
        text = format_metrics(metrics)
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2:
            seconds = metrics.get("time", float("nan"))
            print(f"epoch {self.count}/{self.epochs} - {seconds:.2f} s - {text}",
                  file=self._out(), flush=True)

    def close(self):
        """End a bar left open (an interrupted or diverged epoch)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
