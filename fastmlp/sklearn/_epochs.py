"""scikit-learn's end-of-epoch rules for a fastmlp fit, as a fastmlp callback.

After each epoch scikit-learn's MLP records the epoch's loss (loss_curve_), counts the
epochs without improvement (of the training loss by tol, or with early stopping of the
validation score by tol, keeping the best weights), updates an SGD learning-rate
schedule ('invscaling': learning_rate_init / (t + 1)^power_t with t the samples seen;
'adaptive': divided by 5 when n_iter_no_change is exceeded) and stops when
n_iter_no_change is exceeded. `EpochRules` does the same between fastmlp's compiled
epochs: it sets the model's lr_scale (a factor on the optimizer's lr, applied inside the
compiled loop) and stop_training.
"""
import numpy as np

import fastmlp as fm


class EpochRules(fm.Callback):
    """The estimator's per-epoch bookkeeping and stopping rule.

    est: the estimator (its loss_curve_, n_iter_, t_, best_loss_, validation_scores_,
    best_validation_score_ and _no_improvement_count are updated in place); n_train:
    training rows per epoch; batch_size: rows per update (the penalty's divisor);
    factor: scikit-learn's loss / fastmlp's mean loss (see _network.loss_factor);
    validate: None, or a function model -> validation score (early stopping).
    """

    def __init__(self, est, n_train, batch_size, factor, validate=None):
        self.est, self.n_train, self.batch_size = est, n_train, batch_size
        self.factor, self.validate = factor, validate
        self.epochs = 0
        self.converged = False
        self.best_arrays = None

    def on_epoch_end(self, model, epoch, logs):
        est = self.est
        # scikit-learn's epoch loss: the mean batch loss plus each batch's alpha / (2 b)
        # sum ||W||^2 before its update, here the mean of the epoch's first and last
        penalty = self._penalty(model)
        loss = logs["loss"] * self.factor + 0.5 * (self.start_penalty + penalty)
        self.start_penalty = penalty
        self.epochs += 1
        est.n_iter_ = self.epochs
        est.t_ += self.n_train
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        self._count_no_improvement(model, loss)
        sgd = est.solver == "sgd"
        if sgd and est.learning_rate == "invscaling":
            model.lr_scale = 1.0 / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validate is not None else "Training loss"
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            lr = est.learning_rate_init * model.lr_scale
            if sgd and est.learning_rate == "adaptive" and lr > 1e-6:
                model.lr_scale /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{msg} Setting learning rate to {lr / 5.0:f}")
            else:
                if est.verbose:
                    print(msg + " Stopping.")
                self.converged = True
                model.stop_training = True

    def _penalty(self, model):
        """alpha / (2 b) * sum ||W||^2 of the current weights (scikit-learn's penalty)."""
        return model.penalty(l2=self.est.alpha / (2.0 * self.batch_size), l1=0.0)

    def on_train_begin(self, model):
        self.start_penalty = self._penalty(model)

    def _count_no_improvement(self, model, loss):
        est = self.est
        if self.validate is not None:
            score = self.validate(model)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_arrays = (model.params.copy(), model.bn_run.copy())
            return
        if loss > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if loss < est.best_loss_:
            est.best_loss_ = loss

    def on_train_end(self, model):
        """With early stopping, the weights of the best validation score come back."""
        if self.best_arrays is not None:
            np.copyto(model.params, self.best_arrays[0])
            np.copyto(model.bn_run, self.best_arrays[1])
