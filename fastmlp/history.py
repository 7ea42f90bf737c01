"""Training record, Keras-style."""


class History:
    """What `fit` did.

    history: dict of per-epoch lists, Keras-style: "loss" (mean minibatch
        cross-entropy over the epoch, training mode), "accuracy", "cost"
        (loss + l2 * sum ||W||^2 with the epoch-end weights), "lr" (at the
        epoch's last update), "time" (seconds), and "val_loss", "val_cost",
        "val_accuracy" when there is validation data (evaluation mode).
    initial: the same metrics before the first update of this fit, computed in
        evaluation mode on the full training (and validation) data; kept apart
        so that every list in `history` has one entry per epoch.
    steps: per-update lists "loss", "accuracy", "lr".
    epoch: 0-based indices of the completed epochs (counting earlier fits).
    interrupted: True when Ctrl-C ended training early.
    """

    def __init__(self, params=None):
        self.history = {}
        self.initial = {}
        self.steps = {"loss": [], "lr": []}  # + "accuracy" or "rmse" once training runs
        self.epoch = []
        self.params = dict(params or {})
        self.interrupted = False

    def append_epoch(self, epoch, metrics):
        self.epoch.append(epoch)
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(float(value))

    def __repr__(self):
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"
