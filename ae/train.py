"""The one minibatch training loop behind every ``Autoencoder.run_*``.

The loop owns epochs, shuffling, the L2 term, evaluation, the history, the
divergence guard and the progress bar.  What happens on one minibatch is a
*stepper*: ``init(model, w) -> state`` and
``step(model, batch, w, l2_coef, state) -> (new_w, batch_objective, state, info)``.
``GradientStepper`` applies a first-order rule of ``ae.optim``;
``ae.hf.HessianFree`` is the second-order one.

The objective is F(w) + l2_coef/2 w.w with F of formula (1).  The history has
one entry per epoch, measured on the whole set at the end of the epoch:

* ``train_loss``, ``test_loss``: F on the train / test set (without L2, so
  runs with different l2_coef compare, and so does the PCA yardstick);
* ``train_grad``, ``test_grad``: norm of the gradient of the objective
  F + l2/2 w.w on that set (zero at a stationary point of what is optimised);
* ``train_objective``: F + l2/2 w.w on the train set;
* ``seconds``: cumulative wall-clock time of the training steps (evaluation
  excluded); ``passes``: cumulative forward-backward passes over the train
  set spent by the steps (GN products count as one pass of their batch).

``initial`` holds the same measures at the starting weights.

Divergence guard.  The bound is ``divergence_factor`` times the larger of the
initial objective and the loss of predicting zeros.  A step's minibatch
objective is measured at the weights the step starts from; when it is NaN/inf
or above the bound, or a step makes the weights NaN/inf, or an epoch ends with
the full-set objective above the bound, training stops.  The model then keeps
the last weights whose objective was finite and inside the bound: the
weights before the offending step if their full-set objective is, else the
weights of the last epoch end (or the initial ones) whose full-set objective
was.  ``diverged`` says where, why, which weights were kept and their
full-set objective, and a RuntimeWarning (and the progress bar) says it.
"""

import os
import sys
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from ae import numeric

HISTORY_KEYS = ("train_loss", "train_grad", "test_loss", "test_grad",
                "train_objective", "seconds", "passes")


def l2_objective(loss, w, l2_coef):
    """F + l2_coef/2 w.w: a sum of products (no temporary), and F itself when l2_coef is 0."""
    return loss + l2_coef / 2 * np.einsum("i,i->", w, w) if l2_coef else loss


class GradientStepper:
    """One step of a first-order rule on the minibatch gradient."""

    def __init__(self, rule):
        self.rule = rule

    def init(self, model, w):
        return self.rule.init(w)

    def step(self, model, batch, w, l2_coef, state):
        loss, grad = model.compute_loss(batch)
        objective = l2_objective(loss, w, l2_coef)
        if l2_coef:
            grad += l2_coef * w  # grad is ours
        step, state = self.rule.update(grad, state)
        step += w  # step is ours: the new weights, without another array
        return step, objective, state, {}


def evaluate(model, inputs, w, l2_coef, chunk_size=1000):
    """(F, objective, ||grad objective||) on all columns, ``chunk_size`` at a time.

    Chunks keep the working memory at O(chunk x widest layer) for any N.
    """
    model.set_weights(w)
    N = inputs.shape[1]
    loss, grad = 0, 0
    for start in range(0, N, chunk_size):
        chunk_loss, chunk_grad = model.compute_loss(inputs[:, start:start + chunk_size])
        weight = min(chunk_size, N - start) / N
        loss, grad = loss + weight * chunk_loss, grad + weight * chunk_grad
    grad = grad + l2_coef * w
    objective = l2_objective(loss, w, l2_coef)
    return float(loss), float(objective), float(np.sqrt(float((grad * grad).sum())))


def _check_data(inputs, test_inputs, num_features):
    inputs = numeric.check_array(inputs, "inputs", ndim=2)
    if inputs.shape[0] != num_features:
        raise ValueError(f"inputs have {inputs.shape[0]} rows, the autoencoder takes {num_features}")
    if inputs.shape[1] < 1:
        raise ValueError("inputs have no columns (objects)")
    if np.iscomplexobj(inputs):
        raise TypeError("training needs real inputs (complex numbers are for complex-step checks)")
    if test_inputs is not None:
        test_inputs = numeric.check_array(test_inputs, "test_inputs", ndim=2)
        if test_inputs.shape[0] != num_features:
            raise ValueError(
                f"test_inputs have {test_inputs.shape[0]} rows (features) but inputs have {num_features}"
            )
        if test_inputs.shape[1] < 1:
            raise ValueError("test_inputs have no columns (objects): pass None for no test set")
    return inputs, test_inputs


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return int(value)


def train(model, stepper, inputs, num_epoch, minibatch_size, l2_coef=0.0, test_inputs=None,
          seed=0, display=False, divergence_factor=1e3, name="training"):
    """Train ``model`` from its current weights; returns the history dict."""
    inputs, test_inputs = _check_data(inputs, test_inputs, model.layers[0].shape[0])
    N = inputs.shape[1]
    num_epoch = _check_int("num_epoch", num_epoch, 0)
    minibatch_size = _check_int("minibatch_size", minibatch_size, 1, N)
    l2_coef = float(l2_coef)
    if not (np.isfinite(l2_coef) and l2_coef >= 0):
        raise ValueError(f"l2_coef must be finite and >= 0, got {l2_coef}")
    w = model.get_weights()
    if np.iscomplexobj(w):
        raise TypeError("training needs real weights (complex numbers are for complex-step checks)")

    rng = np.random.default_rng(seed)
    state = stepper.init(model, w)
    history = {key: [] for key in HISTORY_KEYS}
    history["epoch"] = []

    def measure(record):
        record["train_loss"], record["train_objective"], record["train_grad"] = (
            evaluate(model, inputs, w, l2_coef))
        if test_inputs is not None:
            record["test_loss"], _, record["test_grad"] = evaluate(model, test_inputs, w, l2_coef)
        return record

    history["initial"] = measure({})
    zero_output_loss = float((inputs * inputs).sum()) / (2 * N)
    bound = divergence_factor * max(history["initial"]["train_objective"], zero_output_loss)
    # the weights of the last full-set measurement inside the bound: the fallback of the guard
    checkpoint, checkpoint_name = w, "the initial weights"
    checkpoint_objective = history["initial"]["train_objective"]

    def stop(epoch, batch_number, problem, candidate, candidate_name):
        """Keep ``candidate`` if its full-set objective is finite and in bounds, else the checkpoint."""
        kept, kept_name, kept_objective = checkpoint, checkpoint_name, checkpoint_objective
        if candidate is not None:
            objective = evaluate(model, inputs, candidate, l2_coef)[1]
            if np.isfinite(objective) and objective <= bound:
                kept, kept_name, kept_objective = candidate, candidate_name, objective
        model.set_weights(kept)
        history["diverged"] = {"epoch": epoch, "minibatch": batch_number, "reason": problem,
                               "kept": kept_name, "kept_objective": kept_objective, "bound": bound}
        message = (f"{name} diverged at epoch {epoch}, minibatch {batch_number}: {problem}; stopped "
                   f"and kept {kept_name} (objective {kept_objective:.4g})")
        if display:
            bar.write(message, file=sys.stderr)
        bar.close()
        warnings.warn(message, RuntimeWarning, stacklevel=_outside_the_engine())
        return history

    seconds, examples = 0.0, 0
    previous = None  # the weights before the last step
    bar = tqdm(range(1, num_epoch + 1), desc=name, disable=not display, leave=True)
    for epoch in bar:
        # a full batch is not shuffled: reordering its columns would only change round-off
        order = rng.permutation(N) if minibatch_size < N else np.arange(N)
        for batch_number, start in enumerate(range(0, N, minibatch_size)):
            batch = inputs[:, order[start:start + minibatch_size]]
            model.set_weights(w)
            seen, tic = model.examples_processed, time.perf_counter()
            new_w, objective, state, info = stepper.step(model, batch, w, l2_coef, state)
            seconds += time.perf_counter() - tic
            examples += model.examples_processed - seen
            problem = _divergence(objective, bound)
            if problem:  # w itself is out: its objective broke the bound
                return stop(epoch, batch_number, problem, previous, "the weights before the last step")
            if not _finite(new_w):  # w was fine, the step was not
                return stop(epoch, batch_number, "the step made the weights NaN or inf", w,
                            "the weights before the step")
            previous, w = w, new_w
            for key, value in info.items():
                history.setdefault(key, []).append(value)
        record = measure({"seconds": seconds, "passes": examples / N})
        if not (np.isfinite(record["train_objective"]) and record["train_objective"] <= bound):
            return stop(epoch, None, f"the objective on the whole training set is {record['train_objective']:.4g}, "
                        f"above the bound {bound:.4g}", None, None)
        checkpoint, checkpoint_name = w, f"the weights at the end of epoch {epoch}"
        checkpoint_objective = record["train_objective"]
        for key, value in record.items():
            history[key].append(value)
        history["epoch"].append(epoch)
        bar.set_postfix({k: f"{record[k]:.4g}" for k in ("train_loss", "test_loss") if k in record})
    bar.close()
    model.set_weights(w)
    return history


def _outside_the_engine():
    """The warnings stacklevel of the first frame outside this package, seen from its caller: the
    user's line that started training (through ``train`` or any ``run_*``)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _finite(w):
    try:
        numeric.check_array(w, "weights")
    except ValueError:
        return False
    return True


def _divergence(objective, bound):
    """A sentence saying why training must stop, or '' if it may go on."""
    value = complex(objective).real
    if not np.isfinite(value):
        return f"the minibatch objective is {value}"
    if value > bound:
        return f"the minibatch objective {value:.4g} exceeds the bound {bound:.4g}"
    return ""
