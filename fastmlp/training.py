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


class DivergenceError(FloatingPointError):
    """Training produced a NaN or inf: in a step's loss, the BN running statistics, the
    parameters or the optimizer state. The model is left as it was after the last
    update whose values were finite and whose weights gave a finite loss
    (EpochRunner.diverged); `.history` holds what was recorded up to it."""

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


# a fit's compiled calls run 1/20 of an epoch each at first, and grow up to about this
# long (EpochRunner.call_steps): short enough for the progress bar, Ctrl-C and a change
# of load, long enough that the cost of a call stays under 1%
MIN_CALL_S = 0.05

# what DivergenceError says for each of run_batches' stop reasons
STOP_MESSAGES = {
    L.STOP_LOSS: "the loss became NaN or inf",
    L.STOP_BN: "a batch-norm running mean or variance became NaN or inf",
    L.STOP_PARAMS: "an update made a weight or the optimizer's state NaN or inf",
}


class Snapshot:
    """A copy of what training steps change (parameters, optimizer state and scalars, BN
    running statistics, the update counts) at step `epoch_step` of an epoch, to go back
    to when a later step diverges."""

    def __init__(self, model, epoch_step):
        self.arrays = [a.copy() for a in self._live(model)]
        self.step, self.opt_step, self.epoch_step = model.step, model.opt_step, epoch_step

    @staticmethod
    def _live(model):
        return model.params, model.opt_state, model.opt_scalars, model.bn_run

    def restore(self, model):
        """Write the copy back into the model's own arrays (the layers view them)."""
        for live, saved in zip(self._live(model), self.arrays):
            np.copyto(live, saved)
        model.step, model.opt_step = self.step, self.opt_step


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
        self.chunk = max(1, self.steps_per_epoch // 20)   # a compiled call's first length
        self.merged_for = None    # the thread count whose calls call_steps lengthens ...
        self.merge = 1            # ... and by how many chunks the next one runs

    def call_steps(self):
        """Updates for the next compiled call: self.chunk (1/20 of an epoch) times a
        growing factor, capped at what takes about MIN_CALL_S at the seconds per
        update measured on the thread count in use, and never under self.chunk. A
        call costs about 0.2 ms besides its updates (Python, dispatch, the thread
        choice, the progress bar): measured on W2 with 10,000 rows, 20 calls per
        epoch took 0.0643 s/epoch against 0.0585 for one call (fits in turn, 3
        rounds).

        The factor starts at 1 and doubles with each call while the count in use
        stays the faster one, so that a choice made on one lucky update costs a
        short call: with one core busy, a W2 update on 2 threads measured 0.33 ms,
        and the 96-update call that followed ran at 1.94 ms per update."""
        per_step = self.threads.seconds_per_step()
        chunk = self.chunk
        if per_step is None or per_step <= 0:
            return chunk
        best = self.threads.best()
        if best != self.merged_for:
            self.merged_for, self.merge = best, 1
        k = max(chunk, min(self.merge * chunk, int(MIN_CALL_S / per_step)))
        self.merge = min(2 * self.merge, self.steps_per_epoch)
        return k

    def run_steps(self, order, first_step, k):
        """Run up to k updates starting at step `first_step` of the epoch (fewer when the
        thread chooser tries another count on part of a call); returns (updates run,
        updates tried, stop reason: a layout.STOP_* code). Fewer run than tried means a
        NaN or inf stopped the call at the update after the last one run; that update
        may have changed the model (see rewind)."""
        m, w, s = self.model, self.ws, first_step
        threads, k = self.threads.plan(k)
        numba.set_num_threads(threads)
        t0 = time.perf_counter()
        run = loop.Run(L.MODE_TRAIN, s * self.bs, k, self.bs, self.n_chunks, m.opt_step, m.step,
                       self.seed, True, m.optimizer.kind, self.opt_hyper,
                       m.optimizer.schedule.kind, self.sched_hyper, float(m.lr_scale))
        records = loop.Records(self.step_loss[s:], self.step_metric[s:], self.step_lr[s:],
                               self._no_outputs)
        args = (self.tables, loop.Data(self.X, self.y, self.T, order), m.kernel_state(self.grads),
                w.arrays, run, records, self.aug, *self.switches[1:])
        loop.link_entries(*args)
        ran, _, _, _, reason = loop.run_batches(*args)
        self.threads.record(threads, time.perf_counter() - t0, ran)
        m.step += ran
        m.opt_step += ran
        return ran, k, reason

    def rewind(self, snapshot, order, bad_step):
        """Go back to the state after the last finite update, before step `bad_step` of the
        epoch: restore the snapshot, then replay the steps from it up to bad_step (they
        were all finite, and a replay gives the same bits: same seed, same row chunks)."""
        snapshot.restore(self.model)
        s = snapshot.epoch_step
        while s < bad_step:
            ran, _, reason = self.run_steps(order, s, bad_step - s)
            if reason != L.STOP_NONE:   # cannot happen unless the kernels lost determinism
                raise RuntimeError("fastmlp: replaying finite updates diverged")
            s += ran

    def run_epoch(self, order, start, n_steps, progress, stop, history, epoch):
        """Up to n_steps updates from step `start` of the epoch, in compiled calls of
        call_steps() updates (the progress bar, Ctrl-C and the thread choice act
        between them); returns the number done.

        Stops early when Ctrl-C was pressed. Raises DivergenceError when a step meets a
        NaN or inf (see diverged), with the model rewound to the last state that gave
        finite values: from a copy taken here, at step `start`, and a replay. When all
        n_steps ran, the new weights are checked once more (outputs_finite) before the
        run counts, so that no epoch ends on weights whose outputs overflow.
        """
        done = 0
        snapshot = Snapshot(self.model, start)
        failure = None   # (bad step, stop reason, after) for diverged
        try:
            while done < n_steps and not stop.requested:
                k = min(self.call_steps(), n_steps - done)
                ran, k, reason = self.run_steps(order, start + done, k)
                done += ran
                progress.update(ran, loss=(float(np.mean(self.step_loss[start:start + done]))
                                           if done else None))
                if ran < k:
                    failure = (start + done, reason, False)
                    break
            if (failure is None and done == n_steps > 0
                    and not self.outputs_finite(order, start + done - 1)):
                failure = (start + done - 1, L.STOP_LOSS, True)
            if failure is not None:
                kept, error = self.diverged(snapshot, order, *failure, epoch, history)
                done = kept - start
                raise error
        finally:
            part = slice(start, start + done)
            metric = self.step_metric[part]
            if self.metric == "rmse":  # the kernel reports each update's mean squared error
                metric = np.sqrt(metric)
            history.steps.setdefault(self.metric, []).extend(metric.tolist())
            history.steps["loss"].extend(self.step_loss[part].tolist())
            history.steps["lr"].extend(self.step_lr[part].tolist())
        return done

    def outputs_finite(self, order, step):
        """Whether the model's loss (evaluation mode, as predict runs it) on the rows of
        step `step` of the epoch is finite: one forward pass over one batch."""
        rows = order[step * self.bs: (step + 1) * self.bs]
        m = self.model
        w = m._workspace("probe", rows.shape[0], self.n_chunks)
        y = self.y[rows] if self.y.shape[0] else self.y
        loss = m._kernel(L.MODE_EVAL, w, self.X[rows], y, self.T[rows], rows.shape[0],
                         self.n_chunks)[1]
        return bool(np.isfinite(loss))

    def diverged(self, snapshot, order, bad_step, reason, after, epoch, history):
        """Rewind after step `bad_step` of the epoch met a NaN or inf; returns (the steps of
        the epoch the model now holds, the DivergenceError to raise).

        reason: a layout.STOP_* code. A BN statistic or an update that came out
        non-finite is undone: the state before step bad_step is kept. A non-finite loss
        also undoes the update before it, whose weights gave that loss, unless that update
        lies before the snapshot (it counted already; the snapshot is kept). after: step
        bad_step ran, and the weights it left fail outputs_finite: it is undone."""
        undo_previous = not after and reason == L.STOP_LOSS and bad_step > snapshot.epoch_step
        target = bad_step - 1 if undo_previous else bad_step
        self.rewind(snapshot, order, target)
        m = self.model
        failed = m.step + (bad_step - target) + 1    # the failing update, counted from 1
        what = (f"the weights made by update {failed} give NaN or inf outputs" if after
                else f"{STOP_MESSAGES[reason]} at update {failed}")
        return target, DivergenceError(
            f"training diverged: {what} (epoch {epoch + 1}, step {bad_step + 1}); the model "
            f"is kept as it was after update {m.step}, the last "
            f"whose values and loss were finite. Try a smaller learning rate, a smaller l2, "
            f"or batch normalisation.", history)

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


def compile_key_of_fit(model, augment=None):
    """compile_times.compile_key of the signature a fit of `model` with its current
    optimizer, penalties and `augment` compiles (what EpochRunner sets as switches)."""
    from .compile_times import compile_key
    opt = model.optimizer
    seg = model.plan.segments(model.l2, model.l1, opt.weight_decay)
    return compile_key(model.dtype, model.plan.switches(opt, seg, augment is not None))


def train(model, data, val, epochs, batch_size, shuffle, seed, verbose, n_threads, history,
          total_updates, callbacks, augment=None, adaptive_threads=False, initial_metrics=True):
    """Run fit's loop: epochs (or exactly total_updates updates), callbacks between epochs.
    data, val: (X, y labels, T targets) as Sequential._prepare returns them (val may be None).
    adaptive_threads: each compiled call runs on n_threads or on 1 thread, whichever is
    faster at the time (_threads.ThreadChooser); the n_threads row chunks, and so the
    results, stay the same. initial_metrics: fill history.initial (a forward pass over
    the data before the first update)."""
    from .progress import CompileNotice, Progress
    # a cold cache compiles here (one signature for all modes); the notice shows it
    # when verbose and records how long it took for this configuration either way
    with CompileNotice(verbose, key=compile_key_of_fit(model, augment)):
        run = EpochRunner(model, data, batch_size, n_threads, seed, augment, adaptive_threads)
        if initial_metrics:
            history.initial = model._metrics(data, val, run.n_chunks)
    # an epoch that an earlier fit left unfinished is finished first (counted in `epochs`)
    start = run.resume_point(shuffle, seed)
    remaining = (max(epochs * run.steps_per_epoch - start, 0) if total_updates is None
                 else total_updates)
    progress = Progress(verbose, -(-remaining // run.steps_per_epoch))
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
                progress.epoch_begin(todo)
                step_before = model.step
                try:
                    done = run.run_epoch(order, start, todo, progress, stop, history, epoch)
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
                progress.epoch_end(metrics)
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
