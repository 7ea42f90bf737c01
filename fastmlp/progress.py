"""tqdm progress bar over all updates of a fit, or nothing when verbose=0."""


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
