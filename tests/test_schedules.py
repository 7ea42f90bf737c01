"""Learning-rate schedules (fastmlp/schedules.py, kernels/schedule.py), their use in
Sequential.fit (schedule=, cycles=, the per-update history.steps["lr"]), optimizer
state across fits, and the callbacks (fastmlp/callbacks.py).

1. Each schedule equals its published closed form, written here: the triangular
   cyclical rate of DD2424 (Smith 2017), step decay, exponential decay, cosine
   annealing without and with warm restarts (SGDR, Loshchilov & Hutter 2017; t_mult
   1, 2 and 3), and linear warm-up (Goyal et al. 2017) on top of any of them; and
   torch.optim.lr_scheduler's values when torch is importable.
2. In training: history.steps["lr"] is the schedule at updates 0..N-1; cycles=k
   runs exactly 2 k step_size updates even when that ends mid-epoch.
3. A second fit with the same optimizer object continues its state (and its
   schedule) exactly; a new optimizer object starts afresh.
4. ReduceLROnPlateau, EarlyStopping (restore_best_weights), LambdaCallback.
5. Bad schedule / callback / cycles arguments raise ValueError naming the argument.
"""
import math

import numpy as np
import pytest

import fastmlp as fm


# ---------------------------------------------------------------- closed forms
def cyclic(t, eta_min, eta_max, n_s):
    """DD2424 (Smith 2017, triangular): for cycle l,
    eta_t = eta_min + (t - 2l n_s) / n_s (eta_max - eta_min)    if 2l n_s <= t <= (2l+1) n_s,
    eta_t = eta_max - (t - (2l+1) n_s) / n_s (eta_max - eta_min)
                                                 if (2l+1) n_s <= t <= 2(l+1) n_s."""
    l = t // (2 * n_s)
    if t <= (2 * l + 1) * n_s:
        return eta_min + (t - 2 * l * n_s) / n_s * (eta_max - eta_min)
    return eta_max - (t - (2 * l + 1) * n_s) / n_s * (eta_max - eta_min)


def cosine(t_cur, t_i, lr_max, lr_min):
    """SGDR: eta = eta_min + (eta_max - eta_min) (1 + cos(pi T_cur / T_i)) / 2."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * t_cur / t_i))


def sgdr_mult2(t, t0, lr_max, lr_min):
    """Warm restarts with T_mult = 2 in closed form (torch's CosineAnnealingWarmRestarts):
    n = floor(log2(t / T_0 + 1)), T_i = T_0 2^n, T_cur = t - T_0 (2^n - 1)."""
    n = int(math.floor(math.log2(t / t0 + 1)))
    return cosine(t - t0 * (2 ** n - 1), t0 * 2 ** n, lr_max, lr_min)


def _values(sched, steps):
    return np.array([sched(t) for t in steps])


def test_cyclic_closed_form():
    eta_min, eta_max, n_s = 1e-5, 1e-1, 8
    s = fm.CyclicLR(eta_min, eta_max, step_size=n_s)
    mid = (eta_min + eta_max) / 2
    points = {0: eta_min, n_s // 2: mid, n_s: eta_max, 3 * n_s // 2: mid, 2 * n_s: eta_min,
              5 * n_s // 2: mid, 3 * n_s: eta_max, 7 * n_s // 2: mid, 4 * n_s: eta_min,
              9 * n_s: eta_max, 10 * n_s: eta_min}
    for t, want in points.items():
        assert s(t) == pytest.approx(want, rel=1e-13, abs=1e-18), t
    steps = range(0, 12 * n_s + 1)
    np.testing.assert_allclose(_values(s, steps), [cyclic(t, eta_min, eta_max, n_s) for t in steps],
                               rtol=1e-13)
    assert s.total_steps(2) == 4 * n_s and s.total_steps() is None
    assert fm.CyclicLR(step_size=5, cycles=3).total_steps() == 30
    # eta_min == eta_max is a constant rate
    assert {fm.CyclicLR(0.01, 0.01, step_size=3)(t) for t in range(20)} == {0.01}


def test_step_and_exponential_decay_closed_form():
    s = fm.StepDecay(0.2, drop=0.3, every=7)
    steps = [0, 1, 6, 7, 8, 13, 14, 20, 21, 70, 71]
    np.testing.assert_allclose(_values(s, steps), [0.2 * 0.3 ** (t // 7) for t in steps],
                               rtol=1e-13)
    e = fm.ExponentialDecay(0.05, rate=0.9, decay_steps=25)
    steps = [0, 1, 12, 25, 26, 50, 100, 1000]
    np.testing.assert_allclose(_values(e, steps), [0.05 * 0.9 ** (t / 25) for t in steps],
                               rtol=1e-13)
    assert e(25) == pytest.approx(0.045, rel=1e-14) and e(50) == pytest.approx(0.0405, rel=1e-14)


def test_cosine_without_restarts():
    s = fm.CosineAnnealing(0.1, lr_min=0.001, period=20)
    steps = range(0, 21)
    np.testing.assert_allclose(_values(s, steps), [cosine(t, 20, 0.1, 0.001) for t in steps],
                               rtol=1e-13)
    assert s(0) == pytest.approx(0.1, rel=1e-14)
    assert s(10) == pytest.approx(0.0505, rel=1e-13)
    # after the period it stays at lr_min
    assert [s(t) for t in (20, 21, 39, 40, 1000)] == [pytest.approx(0.001, rel=1e-14)] * 5
    assert fm.CosineAnnealing(0.1, period=10)(10) == 0.0


def test_cosine_warm_restarts_t_mult_1():
    t0, hi, lo = 10, 0.1, 0.002
    s = fm.CosineAnnealing(hi, lr_min=lo, period=t0, restarts=True, t_mult=1.0)
    for k in range(5):   # restart points, mid-periods and the step before each restart
        assert s(k * t0) == pytest.approx(hi, rel=1e-13)
        assert s(k * t0 + t0 // 2) == pytest.approx((hi + lo) / 2, rel=1e-13)
        assert s(k * t0 + t0 - 1) == pytest.approx(cosine(t0 - 1, t0, hi, lo), rel=1e-13)
    steps = range(0, 6 * t0)
    np.testing.assert_allclose(_values(s, steps), [cosine(t % t0, t0, hi, lo) for t in steps],
                               rtol=1e-13)


def test_cosine_warm_restarts_t_mult_2_and_3():
    t0, hi, lo = 5, 0.1, 0.0
    s = fm.CosineAnnealing(hi, lr_min=lo, period=t0, restarts=True, t_mult=2.0)
    for restart, previous in ((0, None), (5, 5), (15, 10), (35, 20), (75, 40), (155, 80)):
        assert s(restart) == pytest.approx(hi, rel=1e-13), restart      # T_0 (2^n - 1)
        if previous:   # the last update of the previous period, of length `previous`
            assert s(restart - 1) == pytest.approx(cosine(previous - 1, previous, hi, lo),
                                                   rel=1e-12)
    assert s(5 + 5) == pytest.approx(hi / 2, rel=1e-13)     # middle of the 10-update period
    assert s(15 + 10) == pytest.approx(hi / 2, rel=1e-13)   # middle of the 20-update period
    steps = range(0, 160)
    np.testing.assert_allclose(_values(s, steps), [sgdr_mult2(t, t0, hi, lo) for t in steps],
                               rtol=1e-12, atol=1e-16)
    s3 = fm.CosineAnnealing(0.3, lr_min=0.01, period=4, restarts=True, t_mult=3.0)
    # periods 4, 12, 36: restarts at 4, 16, 52
    for start, length in ((0, 4), (4, 12), (16, 36), (52, 108)):
        for t_cur in (0, 1, length // 2, length - 1):
            assert s3(start + t_cur) == pytest.approx(cosine(t_cur, length, 0.3, 0.01),
                                                      rel=1e-12), (start, t_cur)


SCHEDULE_MAKERS = {
    "constant": lambda **w: fm.Constant(0.05, **w),
    "cyclic": lambda **w: fm.CyclicLR(1e-3, 0.1, step_size=6, **w),
    "step": lambda **w: fm.StepDecay(0.1, drop=0.5, every=4, **w),
    "exponential": lambda **w: fm.ExponentialDecay(0.1, rate=0.5, decay_steps=7, **w),
    "cosine": lambda **w: fm.CosineAnnealing(0.1, lr_min=0.01, period=9, restarts=True, **w),
}


@pytest.mark.parametrize("name", sorted(SCHEDULE_MAKERS))
@pytest.mark.parametrize("warmup, start", [(5, 0.0), (10, 0.25), (1, 0.5), (3, 1.0)])
def test_linear_warmup(name, warmup, start):
    """Warm-up multiplies the schedule by start + (1 - start) t / warmup for t < warmup
    (from warmup_start at the first update to 1 at update `warmup`), then leaves it alone."""
    base = SCHEDULE_MAKERS[name]()
    warm = SCHEDULE_MAKERS[name](warmup=warmup, warmup_start=start)
    for t in range(0, 3 * warmup + 20):
        factor = start + (1 - start) * t / warmup if t < warmup else 1.0
        assert warm(t) == pytest.approx(base(t) * factor, rel=1e-13, abs=1e-18), t
    assert warm(0) == pytest.approx(start * base(0), rel=1e-13, abs=1e-18)
    assert warm(warmup) == base(warmup)


def test_default_warmup_start_is_zero():
    s = fm.Constant(0.2, warmup=4)
    assert [s(t) for t in range(6)] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2], rel=1e-14)


def _torch_lrs(torch, make_scheduler, lr, steps):
    """torch's lr after 0..steps-1 scheduler steps (the rate of updates 0..steps-1)."""
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()    # no gradient: a no-op, keeps the scheduler's order check quiet
        sched.step()
    return out


def test_schedules_match_torch_lr_scheduler():
    torch = pytest.importorskip("torch")
    S = torch.optim.lr_scheduler
    cases = [
        (fm.CyclicLR(1e-3, 0.1, step_size=7), 1e-3,
         lambda o: S.CyclicLR(o, base_lr=1e-3, max_lr=0.1, step_size_up=7, mode="triangular",
                              cycle_momentum=False), 60),
        (fm.CosineAnnealing(0.1, lr_min=0.002, period=6, restarts=True, t_mult=2.0), 0.1,
         lambda o: S.CosineAnnealingWarmRestarts(o, T_0=6, T_mult=2, eta_min=0.002), 95),
        (fm.CosineAnnealing(0.1, lr_min=0.002, period=6, restarts=True), 0.1,
         lambda o: S.CosineAnnealingWarmRestarts(o, T_0=6, T_mult=1, eta_min=0.002), 40),
        (fm.CosineAnnealing(0.1, lr_min=0.002, period=25), 0.1,
         lambda o: S.CosineAnnealingLR(o, T_max=25, eta_min=0.002), 26),
        (fm.StepDecay(0.1, drop=0.7, every=5), 0.1,
         lambda o: S.StepLR(o, step_size=5, gamma=0.7), 40),
        (fm.ExponentialDecay(0.1, rate=0.5, decay_steps=1), 0.1,
         lambda o: S.ExponentialLR(o, gamma=0.5), 30),
        (fm.Constant(0.1, warmup=8, warmup_start=0.2), 0.1,
         lambda o: S.LinearLR(o, start_factor=0.2, end_factor=1.0, total_iters=8), 20),
    ]
    for ours, lr0, make, steps in cases:
        want = _torch_lrs(torch, make, lr0, steps)
        np.testing.assert_allclose(_values(ours, range(steps)), want, rtol=1e-9, atol=1e-15,
                                   err_msg=repr(ours))


# ---------------------------------------------------------------- in training
D, K, N_ROWS, BS = 4, 3, 30, 7     # 30 rows in batches of 7: 5 updates per epoch
STEPS_PER_EPOCH = 5


def _data(seed=0, n=N_ROWS):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)), rng.integers(0, K, size=n)


def _model(seed=0, bn=False):
    layers = [fm.Dense(6)] + ([fm.BatchNorm()] if bn else []) + [fm.ReLU(), fm.Dense(K),
                                                                  fm.Softmax()]
    return fm.Sequential(layers, dtype=np.float64, seed=seed)


def _fit(model, X, y, **kw):
    kw.setdefault("batch_size", BS)
    return model.fit(X, y, verbose=0, n_threads=1, shuffle=kw.pop("shuffle", False), **kw)


def test_fit_records_schedule_per_update():
    X, y = _data()
    sched = fm.CyclicLR(1e-3, 0.2, step_size=4)
    h = _fit(_model(), X, y, epochs=4, optimizer=fm.SGD(0.1), schedule=sched)
    n = 4 * STEPS_PER_EPOCH
    assert len(h.steps["lr"]) == n and len(h.steps["loss"]) == n
    assert h.steps["lr"] == [sched(t) for t in range(n)]
    np.testing.assert_allclose(h.steps["lr"], [cyclic(t, 1e-3, 0.2, 4) for t in range(n)],
                               rtol=1e-13)
    # the epoch's lr is that of its last update
    assert h.history["lr"] == [h.steps["lr"][STEPS_PER_EPOCH * (e + 1) - 1] for e in range(4)]
    # a schedule given as the optimizer's lr is the same thing
    h2 = _fit(_model(), X, y, epochs=4, optimizer=fm.SGD(fm.CyclicLR(1e-3, 0.2, step_size=4)))
    assert h2.steps["lr"] == h.steps["lr"] and h2.steps["loss"] == h.steps["loss"]


@pytest.mark.parametrize("k", [3, 5, 1])
def test_fit_cycles_runs_exactly_two_step_sizes_per_cycle(k):
    X, y = _data()
    model = _model()
    h = _fit(model, X, y, optimizer=fm.SGD(0.1), schedule=fm.CyclicLR(1e-3, 0.1, step_size=k),
             cycles=2)
    assert len(h.steps["lr"]) == 4 * k == model.step
    assert len(h.epoch) == -(-4 * k // STEPS_PER_EPOCH)     # the last epoch may be partial
    np.testing.assert_allclose(h.steps["lr"], [cyclic(t, 1e-3, 0.1, k) for t in range(4 * k)],
                               rtol=1e-13)
    # a schedule created with cycles= does the same when epochs is not given
    h2 = _fit(_model(), X, y, optimizer=fm.SGD(fm.CyclicLR(1e-3, 0.1, step_size=k, cycles=2)))
    assert h2.steps["lr"] == h.steps["lr"]
    # half cycles are allowed: 1.5 cycles = 3 k updates
    h3 = _fit(_model(), X, y, optimizer=fm.SGD(0.1), schedule=fm.CyclicLR(1e-3, 0.1, step_size=k),
              cycles=1.5)
    assert len(h3.steps["lr"]) == 3 * k


def test_fit_cycles_with_too_few_epochs_raises():
    X, y = _data()
    with pytest.raises(ValueError, match="epochs"):
        _fit(_model(), X, y, epochs=1, optimizer=fm.SGD(0.1),
             schedule=fm.CyclicLR(step_size=5), cycles=2)


def test_second_fit_continues_the_schedule():
    X, y = _data()
    sched = fm.StepDecay(0.1, drop=0.5, every=3)
    opt = fm.SGD(sched, momentum=0.5)
    model = _model()
    h1 = _fit(model, X, y, epochs=1, optimizer=opt)
    h2 = _fit(model, X, y, epochs=2, optimizer=opt)
    assert h1.steps["lr"] + h2.steps["lr"] == [sched(t) for t in range(15)]


def _same_weights(a, b, rtol):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=1e-15)


@pytest.mark.parametrize("make_opt", [
    lambda: fm.Adam(0.01, b1=0.8, b2=0.95),
    lambda: fm.Nadam(fm.ExponentialDecay(0.02, 0.5, 7)),
    lambda: fm.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: fm.Adamax(0.01),
], ids=["adam", "nadam-scheduled", "rmsprop", "adamax"])
def test_optimizer_state_survives_a_second_fit(make_opt):
    """Two fits of one epoch with the same optimizer object = one fit of two epochs;
    a fresh optimizer object restarts moments, step count and schedule."""
    X, y = _data(1)
    opt = make_opt()
    a = _model(bn=True)
    ha = _fit(a, X, y, epochs=1, optimizer=opt)
    ha2 = _fit(a, X, y, epochs=1, optimizer=opt)
    b = _model(bn=True)
    hb = _fit(b, X, y, epochs=2, optimizer=make_opt())
    _same_weights(a, b, 1e-12)
    np.testing.assert_allclose(ha.steps["loss"] + ha2.steps["loss"], hb.steps["loss"], rtol=1e-12)
    assert ha.steps["lr"] + ha2.steps["lr"] == hb.steps["lr"]
    # optimizer=None also keeps the model's optimizer and its state
    c = _model(bn=True)
    _fit(c, X, y, epochs=1, optimizer=make_opt())
    _fit(c, X, y, epochs=1)
    _same_weights(c, b, 1e-12)
    # a new optimizer object: the second epoch starts from zero moments at t = 1, like a
    # fresh model given the weights after one epoch (no BN here: set_weights is the state)
    d = _model()
    _fit(d, X, y, epochs=1, optimizer=make_opt())
    hd = _fit(d, X, y, epochs=1, optimizer=make_opt())
    e = _model()
    _fit(e, X, y, epochs=1, optimizer=make_opt())
    f = _model(seed=99).build(D)
    f.set_weights(e.get_weights())
    hf = _fit(f, X, y, epochs=1, optimizer=make_opt())
    _same_weights(d, f, 1e-12)
    assert hd.steps["lr"] == hf.steps["lr"] == ha.steps["lr"]
    g = _model()
    _fit(g, X, y, epochs=2, optimizer=make_opt())
    assert not np.allclose(g.get_weights()[0], d.get_weights()[0], rtol=1e-6)


# ---------------------------------------------------------------- callbacks
def test_reduce_lr_on_plateau_lowers_the_lr():
    """An lr so small that val_loss improves by far less than min_delta: with patience=1
    every epoch after the first counts as a plateau, so the scale is 1, 1, f, f^2, ..."""
    X, y = _data(2)
    Xv, yv = _data(3, n=20)
    lr, factor, epochs = 1e-6, 0.5, 5
    cb = fm.ReduceLROnPlateau(monitor="val_loss", factor=factor, patience=1, min_delta=1e-3)
    model = _model()
    h = _fit(model, X, y, epochs=epochs, optimizer=fm.SGD(lr), validation_data=(Xv, yv),
             callbacks=[cb])
    scale = [1.0] + [factor ** e for e in range(epochs - 1)]
    assert np.all(np.abs(np.diff(h.history["val_loss"])) < 1e-3)
    want = np.repeat(np.array(scale) * lr, STEPS_PER_EPOCH)
    np.testing.assert_allclose(h.steps["lr"], want, rtol=1e-14)
    np.testing.assert_allclose(h.history["lr"], np.array(scale) * lr, rtol=1e-14)
    # the reduced rate is the one the updates used: plain SGD epochs at lr, lr, lr f, lr f^2...
    ref = _model()
    w0 = ref.build(D).get_weights()
    for s in scale:
        _fit(ref, X, y, epochs=1, optimizer=fm.SGD(lr * s))
    for w, wr, w_init in zip(model.get_weights(), ref.get_weights(), w0):
        assert np.abs(w - w_init).max() > 0
        np.testing.assert_allclose(w - w_init, wr - w_init, rtol=1e-8, atol=1e-20)


def test_reduce_lr_on_plateau_min_scale_and_schedule():
    """The factor multiplies a schedule too, and never goes below min_scale."""
    X, y = _data(2)
    Xv, yv = _data(3, n=20)
    sched = fm.CyclicLR(1e-7, 1e-6, step_size=3)
    cb = fm.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=1e-3, min_scale=0.05)
    h = _fit(_model(), X, y, epochs=5, optimizer=fm.SGD(sched), validation_data=(Xv, yv),
             callbacks=[cb])
    scale = [1.0, 1.0, 0.1, 0.05, 0.05]
    want = [sched(t) * scale[t // STEPS_PER_EPOCH] for t in range(5 * STEPS_PER_EPOCH)]
    np.testing.assert_allclose(h.steps["lr"], want, rtol=1e-14)


def test_reduce_lr_on_plateau_cooldown_and_reset():
    """Keras's semantics: after a reduction, `cooldown` epochs are not counted towards
    patience; a new fit starts a new watch (the reduced scale itself stays with the
    model and its optimizer, as a reduced lr stays with a Keras optimizer)."""
    X, y = _data(2)
    Xv, yv = _data(3, n=20)
    lr, f = 1e-6, 0.5
    cb = fm.ReduceLROnPlateau(factor=f, patience=2, min_delta=1e-3, cooldown=2)
    model, opt = _model(), fm.SGD(lr)
    h = _fit(model, X, y, epochs=10, optimizer=opt, validation_data=(Xv, yv), callbacks=[cb])
    # best at epoch 0; reductions at the ends of epochs 2, 5, 8 (two counted epochs each,
    # after the two cooldown epochs)
    scale = [1, 1, 1, f, f, f, f ** 2, f ** 2, f ** 2, f ** 3]
    np.testing.assert_allclose(h.steps["lr"], np.repeat(np.array(scale) * lr, STEPS_PER_EPOCH),
                               rtol=1e-14)
    cb1 = fm.ReduceLROnPlateau(factor=f, patience=1, min_delta=1e-3)
    model = _model()
    h1 = _fit(model, X, y, epochs=3, optimizer=opt, validation_data=(Xv, yv), callbacks=[cb1])
    np.testing.assert_allclose(h1.history["lr"], [lr, lr, lr * f], rtol=1e-14)
    assert model.lr_scale == f ** 2
    h2 = _fit(model, X, y, epochs=3, optimizer=opt, validation_data=(Xv, yv), callbacks=[cb1])
    np.testing.assert_allclose(h2.history["lr"], [lr * f ** 2, lr * f ** 2, lr * f ** 3],
                               rtol=1e-14)


def test_reduce_lr_on_plateau_waits_while_improving():
    """With a useful lr and min_delta=0 the training loss keeps improving: no reduction."""
    X, y = _data(2)
    cb = fm.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.0)
    h = _fit(_model(), X, y, epochs=4, optimizer=fm.SGD(0.05), callbacks=[cb])
    assert np.all(np.diff(h.history["loss"]) < 0)
    assert h.steps["lr"] == [0.05] * 20


def _overfit_problem():
    """Few rows with 40% label noise, clean validation rows, a wide net and Adam:
    val_loss falls for a few epochs, then rises while the net learns the noise."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(D, K))

    def data(n, noise):
        X = rng.normal(size=(n, D))
        y = (X @ W).argmax(1)
        flip = rng.random(n) < noise
        y[flip] = rng.integers(0, K, flip.sum())
        return X, y
    X, y = data(30, 0.4)
    return X, y, data(60, 0.0)


def _wide_model():
    return fm.Sequential([fm.Dense(32), fm.BatchNorm(), fm.ReLU(), fm.Dense(K), fm.Softmax()],
                         dtype=np.float64, seed=0)


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_restores_best_weights(restore):
    X, y, (Xv, yv) = _overfit_problem()
    saved = []   # weights and validation predictions (BN running statistics) per epoch
    record = fm.LambdaCallback(lambda m, e, logs: saved.append(
        (logs["val_loss"], m.get_weights(), m.predict(Xv, n_threads=1))))
    stop = fm.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=restore)
    model = _wide_model()
    epochs = 60
    h = _fit(model, X, y, epochs=epochs, batch_size=10, optimizer=fm.Adam(0.02),
             validation_data=(Xv, yv), callbacks=[record, stop])
    val = [s[0] for s in saved]
    assert val == h.history["val_loss"]
    best = int(np.argmin(val))
    assert 0 < best and len(val) == best + 3 + 1 < epochs       # stopped early
    assert stop.best_epoch == best and stop.best == val[best]
    assert all(v >= val[best] for v in val[best:])
    kept = saved[best] if restore else saved[-1]
    for w, wb in zip(model.get_weights(), kept[1]):
        np.testing.assert_array_equal(w, wb)
    np.testing.assert_array_equal(model.predict(Xv, n_threads=1), kept[2])
    assert model.evaluate(Xv, yv, n_threads=1)["loss"] == pytest.approx(kept[0], rel=1e-12)


def test_early_stopping_patience_and_min_delta():
    """min_delta larger than any improvement: only the first epoch counts as best."""
    X, y = _data(2)
    Xv, yv = _data(3, n=20)
    stop = fm.EarlyStopping(patience=2, min_delta=10.0, restore_best_weights=False)
    h = _fit(_model(), X, y, epochs=20, optimizer=fm.SGD(0.05), validation_data=(Xv, yv),
             callbacks=[stop])
    assert h.epoch == [0, 1, 2] and stop.best_epoch == 0
    # accuracy is maximised in mode "auto"
    acc = fm.EarlyStopping(monitor="val_accuracy", patience=1)
    assert acc.mode == "max"


def test_lambda_callback_returning_true_stops():
    X, y = _data()
    seen = []

    def fn(model, epoch, logs):
        seen.append((epoch, set(logs)))
        return epoch == 2
    model = _model()
    h = _fit(model, X, y, epochs=10, optimizer=fm.SGD(0.05), callbacks=[fm.LambdaCallback(fn)])
    assert [e for e, _ in seen] == [0, 1, 2] and h.epoch == [0, 1, 2]
    assert len(h.steps["lr"]) == 3 * STEPS_PER_EPOCH == model.step
    assert {"loss", "accuracy", "lr"} <= seen[0][1]
    # returning None / False does not stop
    h = _fit(_model(), X, y, epochs=4, optimizer=fm.SGD(0.05),
             callbacks=[fm.LambdaCallback(lambda m, e, logs: None)])
    assert h.epoch == [0, 1, 2, 3]


def test_callback_monitoring_a_missing_metric_raises():
    X, y = _data()
    with pytest.raises(ValueError, match="val_loss"):
        _fit(_model(), X, y, epochs=2, optimizer=fm.SGD(0.05), callbacks=[fm.EarlyStopping()])


# ---------------------------------------------------------------- bad arguments
BAD = [
    (lambda: fm.Constant(0), "lr"),
    (lambda: fm.Constant(float("nan")), "lr"),
    (lambda: fm.Constant(-1.0), "lr"),
    (lambda: fm.CyclicLR(step_size=0), "step_size"),
    (lambda: fm.CyclicLR(step_size=2.5), "step_size"),
    (lambda: fm.CyclicLR(step_size=-3), "step_size"),
    (lambda: fm.CyclicLR(eta_min=0.1, eta_max=0.01), "eta_max"),
    (lambda: fm.CyclicLR(eta_min=float("nan")), "eta_min"),
    (lambda: fm.CyclicLR(eta_max=0), "eta_max"),
    (lambda: fm.CyclicLR(cycles=0), "cycles"),
    (lambda: fm.CyclicLR(cycles=-1), "cycles"),
    (lambda: fm.StepDecay(0.1, every=0), "every"),
    (lambda: fm.StepDecay(0.1, drop=0), "drop"),
    (lambda: fm.ExponentialDecay(0.1, rate=0), "rate"),
    (lambda: fm.ExponentialDecay(0.1, decay_steps=0), "decay_steps"),
    (lambda: fm.CosineAnnealing(0.1, lr_min=0.2), "lr_min"),
    (lambda: fm.CosineAnnealing(0.1, period=0), "period"),
    (lambda: fm.CosineAnnealing(0.1, restarts=True, t_mult=0.5), "t_mult"),
    (lambda: fm.Constant(0.1, warmup=-1), "warmup"),
    (lambda: fm.CyclicLR(warmup=-5), "warmup"),
    (lambda: fm.CosineAnnealing(0.1, warmup=2.5), "warmup"),
    (lambda: fm.StepDecay(0.1, warmup=3, warmup_start=1.5), "warmup_start"),
    (lambda: fm.Constant(0.1, warmup=3, warmup_start=-0.1), "warmup_start"),
    (lambda: fm.ReduceLROnPlateau(factor=1.0), "factor"),
    (lambda: fm.ReduceLROnPlateau(factor=0.0), "factor"),
    (lambda: fm.ReduceLROnPlateau(patience=-1), "patience"),
    (lambda: fm.ReduceLROnPlateau(cooldown=-1), "cooldown"),
    (lambda: fm.ReduceLROnPlateau(min_scale=-0.5), "min_scale"),
    (lambda: fm.ReduceLROnPlateau(min_delta=-1.0), "min_delta"),
    (lambda: fm.EarlyStopping(mode="biggest"), "mode"),
    (lambda: fm.EarlyStopping(patience=1.5), "patience"),
]


@pytest.mark.parametrize("make, word", BAD, ids=[f"{w}-{i}" for i, (_, w) in enumerate(BAD)])
def test_bad_arguments_raise(make, word):
    with pytest.raises(ValueError, match=word):
        make()


def test_cycles_needs_a_cyclic_schedule():
    X, y = _data()
    for opt in (fm.SGD(0.1), fm.Adam(fm.CosineAnnealing(0.1, period=10))):
        with pytest.raises(ValueError, match="cyclic schedule"):
            _fit(_model(), X, y, optimizer=opt, cycles=2)


def test_rejected_fit_leaves_the_model_unchanged():
    """Bad fit arguments fail before the optimizer, its state or the penalties change."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    model = fm.Sequential([fm.Dense(4), fm.ReLU(), fm.Dense(3), fm.Softmax()], seed=0)
    sgd = fm.SGD(0.1, momentum=0.9)
    model.fit(X, y, epochs=1, batch_size=10, optimizer=sgd, l2=0.01, verbose=0)
    state, step = model.opt_state.copy(), model.opt_step
    with pytest.raises(ValueError, match="needs a cyclic schedule"):
        model.fit(X, y, optimizer=fm.Adam(), cycles=2, l2=0.5, verbose=0)
    with pytest.raises(ValueError, match="augment must be"):
        model.fit(X, y, optimizer=fm.Adam(), augment="noise", verbose=0)
    assert model.optimizer is sgd and model.opt_step == step and model.l2 == 0.01
    assert np.array_equal(model.opt_state, state)
