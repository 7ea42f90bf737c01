"""tqdm progress bar over all updates of a fit, or nothing when verbose=0, and a notice
while the kernels compile."""
import sys
import time

from numba.core import event


class Progress:
    def __init__(self, total, verbose):
        self.bar = None
        self.last = {}
        if verbose:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=True)

    def update(self, n, loss=None):
        if self.bar is None:
            return
        if loss is not None:
            self.bar.set_postfix(dict(self.last, loss=f"{loss:.4f}"), refresh=False)
        self.bar.update(n)

    def epoch_end(self, epoch, metrics):
        if self.bar is None:
            return
        keys = ("loss", "accuracy", "val_loss", "val_accuracy")
        self.last = {k.replace("accuracy", "acc"): f"{metrics[k]:.4f}" for k in keys if k in metrics}
        self.bar.set_description(f"epoch {epoch + 1}")
        self.bar.set_postfix(self.last, refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class CompileNotice(event.Listener):
    """Context manager: while active and verbose, a line on stderr when Numba starts
    compiling and one when that compile is done. With an empty cache the first fit of a
    configuration spends about 25 s compiling before its first step, which would
    otherwise look like a hang; later runs load the kernels from the on-disk cache.

    A listener of Numba's "numba:compile" events (numba.core.event); nested compiles (a
    kernel typing its callees) are one compile, and only the first is reported.
    """

    def __init__(self, verbose, stream=None):
        self.verbose = verbose
        self.stream = stream   # default sys.stderr
        self.depth = 0
        self.t0 = None
        self.reported = False

    def __enter__(self):
        if self.verbose:
            event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        if self.verbose:
            event.unregister("numba:compile", self)
        return False

    def on_start(self, ev):
        self.depth += 1
        if self.depth == 1 and not self.reported:
            self.t0 = time.perf_counter()
            self._say("fastmlp: compiling kernels for this configuration (first use only; "
                      "later runs load them from Numba's on-disk cache) ...")

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0 and not self.reported:
            self.reported = True
            self._say(f"fastmlp: compiled in {time.perf_counter() - self.t0:.1f} s")

    def _say(self, text):
        print(text, file=self.stream or sys.stderr, flush=True)
