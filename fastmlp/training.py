"""The Python side of fit: buffers for one run, compiled calls per chunk, epoch metrics."""
import signal
import threading
import time
import warnings

import numba
import numpy as np

from ._threads import ThreadChooser
from .kernels import layout as L
from .kernels import loop
from .kernels.tile_gemm import link_gemm


class DivergenceError(FloatingPointError):
    """Training produced a NaN or infinite loss. `.history` holds what was recorded."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history


class StopFlag:
    """While active, Ctrl-C sets `requested` instead of raising (main thread only);
    a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


class EpochRunner:
    """Everything one fit needs per compiled call: workspace, partial-gradient
    buffers, block/segment tables, optimizer and schedule parameters, step records."""

    def __init__(self, model, data, batch_size, n_threads, seed, augment=None,
                 adaptive_threads=False):
        self.model = model
        self.X, self.y, self.T = data
        X = self.X
        self.seed = seed
        self.n = X.shape[0]
        self.bs = min(batch_size, self.n)
        self.steps_per_epoch = -(-self.n // self.bs)
        self.n_chunks = min(n_threads, self.bs)
        self.threads = ThreadChooser(self.n_chunks, adaptive_threads)
        link_gemm(model.dtype)   # the GEMM's C entry, before kernels that call it load
        plan, opt = model.plan, model.optimizer
        self.ws = model._workspace("train", self.bs, self.n_chunks)
        self.grads = np.zeros((self.n_chunks, plan.n_params), model.dtype)
        # the tiled dense W (folded blocks) are updated in the backward pass itself
        blocks = plan.blocks(self.ws.ops)
        self.blocks = np.ascontiguousarray(blocks[blocks[:, 3] == 0])
        self.seg = plan.segments(model.l2, model.l1, opt.weight_decay)
        self.tables = loop.Tables(self.ws.ops, plan.opf, self.blocks, self.seg)
        self.opt_hyper, self.sched_hyper = opt.hyper(), opt.schedule.hyper()
        self.step_loss = np.zeros(self.steps_per_epoch)
        self.step_metric = np.zeros(self.steps_per_epoch)
        self.metric = model.plan.loss.metric
        self.step_lr = np.zeros(self.steps_per_epoch)
        self.aug = augment.hyper(X) if augment is not None else None
        model._switches = self.switches = plan.switches(opt, self.seg, augment is not None)
        self._no_outputs = np.zeros((0, 0), model.dtype)

    def run_steps(self, order, first_step, k):
        """Run up to k updates starting at step `first_step` of the epoch (fewer when the
        thread chooser tries another count on part of a call); returns (updates run,
        updates tried): fewer run than tried means a NaN or inf loss stopped the call."""
        m, w, s = self.model, self.ws, first_step
        threads, k = self.threads.plan(k)
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        run = loop.Run(L.MODE_TRAIN, s * self.bs, k, self.bs, self.n_chunks, m.opt_step, m.step,
                       self.seed, True, m.optimizer.kind, self.opt_hyper,
                       m.optimizer.schedule.kind, self.sched_hyper, float(m.lr_scale))
        records = loop.Records(self.step_loss[s:], self.step_metric[s:], self.step_lr[s:],
                               self._no_outputs)
        ran = loop.run_batches(self.tables, loop.Data(self.X, self.y, self.T, order),
                               m.kernel_state(self.grads), w.arrays, run, records, self.aug,
                               *self.switches[1:])[0]
        self.threads.record(threads, time.perf_counter() - t0, ran)
        m.step += ran
        m.opt_step += ran
        return ran, k

    def run_epoch(self, order, start, n_steps, chunk, progress, stop, history, epoch):
        """Up to n_steps updates from step `start` of the epoch, in compiled chunks of
        `chunk`; returns the number done.

        Stops early when Ctrl-C was pressed; raises DivergenceError on a NaN/inf loss.
        """
        done = 0
        try:
            while done < n_steps and not stop.requested:
                k = min(chunk, n_steps - done)
                ran, k = self.run_steps(order, start + done, k)
                done += ran
                progress.update(ran, loss=(float(np.mean(self.step_loss[start:start + done]))
                                           if done else None))
                if ran < k:
                    m = self.model
                    raise DivergenceError(
                        f"training diverged: the loss became NaN or inf at update {m.step + 1} "
                        f"(epoch {epoch + 1}, step {start + done + 1}); the weights are kept at "
                        f"their last finite values. Try a smaller learning rate, a smaller l2, "
                        f"or batch normalisation.", history)
        finally:
            part = slice(start, start + done)
            metric = self.step_metric[part]
            if self.metric == "rmse":  # the kernel reports each update's mean squared error
                metric = np.sqrt(metric)
            history.steps.setdefault(self.metric, []).extend(metric.tolist())
            history.steps["loss"].extend(self.step_loss[part].tolist())
            history.steps["lr"].extend(self.step_lr[part].tolist())
        return done

    def resume_point(self, shuffle, seed):
        """Updates already made in epoch model.epochs_done by an interrupted run of the same
        data size, batch size, shuffling and seed (0 when there are none); their per-update
        records are put back so that the epoch's metrics cover all of its updates."""
        m = self.model
        pending = m._partial_epoch
        if not m.steps_into_epoch or pending is None:
            return 0
        same = (pending["n_samples"] == self.n and pending["batch_size"] == self.bs
                and pending["shuffle"] == bool(shuffle) and pending["seed"] == seed
                and m.steps_into_epoch < self.steps_per_epoch)
        if not same:
            warnings.warn(
                f"the model stopped after {m.steps_into_epoch} updates of epoch "
                f"{m.epochs_done + 1} of a run with {pending['n_samples']} samples, batch size "
                f"{pending['batch_size']}, shuffle={pending['shuffle']}, seed={pending['seed']}; "
                f"this fit differs ({self.n}, {self.bs}, {bool(shuffle)}, {seed}), so it "
                f"starts a new epoch instead of finishing that one", stacklevel=4)
            m._clear_partial_epoch()
            return 0
        start = m.steps_into_epoch
        for name, records in (("loss", self.step_loss), ("metric", self.step_metric),
                              ("lr", self.step_lr)):
            records[:start] = pending[name]
        return start

    def keep_partial(self, steps, shuffle, seed):
        """Record on the model that epoch model.epochs_done stopped after `steps` updates
        (position, the run that shuffled it, and the updates' records)."""
        if steps == 0:
            self.model._clear_partial_epoch()
            return
        self.model.steps_into_epoch = steps
        self.model._partial_epoch = {
            "n_samples": self.n, "batch_size": self.bs, "shuffle": bool(shuffle), "seed": seed,
            "loss": self.step_loss[:steps].copy(), "metric": self.step_metric[:steps].copy(),
            "lr": self.step_lr[:steps].copy()}

    def epoch_metrics(self, done):
        """Size-weighted means over the epoch's `done` updates: loss and accuracy (or RMSE,
        from the mean squared error), plus the cost with the current weights and the last lr."""
        sizes = np.full(done, self.bs, np.float64)
        if done == self.steps_per_epoch:
            sizes[-1] = self.n - self.bs * (self.steps_per_epoch - 1)
        seen = sizes.sum()
        loss = float(np.dot(self.step_loss[:done], sizes) / seen)
        metric = float(np.dot(self.step_metric[:done], sizes) / seen)
        if self.metric == "rmse":
            metric = float(np.sqrt(metric))
        return {"loss": loss, self.metric: metric, "cost": loss + self.model.penalty(),
                "lr": float(self.step_lr[done - 1])}


def train(model, data, val, epochs, batch_size, shuffle, seed, verbose, n_threads, history,
          total_updates, callbacks, augment=None, adaptive_threads=False):
    """Run fit's loop: epochs (or exactly total_updates updates), callbacks between epochs.
    data, val: (X, y labels, T targets) as Sequential._prepare returns them (val may be None).
    adaptive_threads: each compiled call runs on n_threads or on 1 thread, whichever is
    faster at the time (_threads.ThreadChooser); the n_threads row chunks, and so the
    results, stay the same."""
    from .progress import CompileNotice, Progress
    with CompileNotice(verbose):   # a cold cache compiles here (one signature for all modes)
        run = EpochRunner(model, data, batch_size, n_threads, seed, augment, adaptive_threads)
        history.initial = model._metrics(data, val, run.n_chunks)
    # an epoch that an earlier fit left unfinished is finished first (counted in `epochs`)
    start = run.resume_point(shuffle, seed)
    remaining = (max(epochs * run.steps_per_epoch - start, 0) if total_updates is None
                 else total_updates)
    # ~20 compiled calls per epoch when verbose (progress updates) or when the thread
    # count follows the load (a choice per call); one per epoch otherwise
    chunk = (max(1, run.steps_per_epoch // 20) if verbose or run.threads.adaptive
             else run.steps_per_epoch)
    progress = Progress(remaining, verbose)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin(model)
    stop = StopFlag()
    try:
        with stop:
            while remaining > 0 and not (stop.requested or model.stop_training):
                epoch = model.epochs_done
                t0 = time.perf_counter()
                order = (np.random.default_rng([seed, epoch]).permutation(run.n) if shuffle
                         else np.arange(run.n))
                todo = min(run.steps_per_epoch - start, remaining)
                step_before = model.step
                try:
                    done = run.run_epoch(order, start, todo, chunk, progress, stop, history,
                                         epoch)
                except DivergenceError:
                    if model.step > step_before:  # the updates before the failing one count
                        run.keep_partial(start + model.step - step_before, shuffle, seed)
                    raise
                remaining -= done
                if done < todo:  # interrupted mid-epoch: a later fit finishes this epoch
                    run.keep_partial(start + done, shuffle, seed)
                    break
                model._clear_partial_epoch()
                metrics = run.epoch_metrics(start + done)
                start = 0
                if val is not None:
                    metrics.update({"val_" + k: v for k, v in
                                    model._evaluate_arrays(*val, 1024, run.n_chunks).items()})
                metrics["time"] = time.perf_counter() - t0
                history.append_epoch(epoch, metrics)
                model.epochs_done += 1
                progress.epoch_end(epoch, metrics)
                for cb in callbacks:
                    cb.on_epoch_end(model, epoch, metrics)
    finally:
        progress.close()
        for cb in callbacks:
            cb.on_train_end(model)
    if stop.requested:
        history.interrupted = True
        print(f"fastmlp: training interrupted after {model.step} updates; "
              f"history and weights kept up to the last completed step")
