"""The lab's stage "optimizers": a candidate's run_sgd, run_momentum, run_rmsprop and run_adam.

Each method the candidate's Autoencoder has is started from the same weights (set through the
candidate's own ``set_weights`` in the layout the lab probed), full batch (``minibatch_size`` = N, so
no shuffling matters), for a few epochs on the smallest net, and its final weights are compared with
reference step rules run here on ae's engine in float64 from the same weights.  The figure is the
distance to the nearest reference relative to how far the reference moved (target ``TARGET``).

Legitimate variants are searched, and the one that matches is named as a convention (a note, not a
failure): epsilon inside or outside the square root (and Adam's epsilon on the uncorrected sqrt(v)),
its size, the decay constants, L2 on the biases or not, the averaged and Nesterov forms of momentum.
The forms v = mu v - lr g; w += v and v = mu v + g; w -= lr v make the same iterates for a constant
step size, so nothing tells them apart and both pass.  L2 inside the reported loss or not, and the
gradient norm of the objective or of F alone, are conventions of the history.

Checked as the assignment demands, each a finding at its place ("run_adam: ..."): Adam's bias
correction; the history's keys (train_loss, train_grad, test_loss, test_grad) with one entry per
epoch and test lists when test_inputs are given; train_loss equal to the objective at the weights
after each epoch; step_size, num_epoch and l2_coef honoured (a run with half the step size and one
without L2 each match their own reference); no state carried between calls (a second call from the
same weights on the same model ends where the first did).  A wrong run is diagnosed against the
classic bugs (no bias correction, an epoch too many or too few, L2 of the wrong sign, missing or taken of
the gradient instead of the weights, a moving average with its two weights exchanged).
"""

import itertools
import re

import numpy as np

import ae
from ae.activations import from_letter
from checks import candidate, candidate_model, records

TARGET = 1e-8  # float64 iterates of the same rule agree to ~1e-14 after a few steps; variants differ by >1e-6
EPOCHS = 3
COLUMNS, TEST_COLUMNS = 8, 4
L2 = 0.05  # large enough that L2 on the biases, its sign and its place in the loss all show
STEP_SIZES = {"run_sgd": 0.5, "momentum": 0.2, "run_rmsprop": 0.01, "run_adam": 0.01}
EPSILONS = (1e-8, 1e-7, 1e-6, 1e-10, 1e-5, 1e-4, 1e-9, 1e-12)
DECAYS = {"rho": (0.9, 0.99, 0.95, 0.999), "beta2": (0.999, 0.99, 0.9999), "mu": (0.9, 0.5, 0.95, 0.99)}
MOMENTUM = 0.9  # passed as momentum= where the candidate takes it
HISTORY = ("train_loss", "train_grad", "test_loss", "test_grad")
# what a behavioural failure explains among the same method's later records
ROOTS = ("history keys", "num_epoch", "state between calls", "step_size", "l2_coef")


def variants(rule, mu_given):
    """Every legitimate variant of a rule: dicts of its choices; the first is the reference default."""
    masks = ("all", "weights")
    if rule == "sgd":
        return [{"l2_on": m} for m in masks]
    if rule == "momentum":
        mus = (MOMENTUM,) if mu_given else DECAYS["mu"]
        return [{"form": f, "mu": mu, "l2_on": m} for mu, f, m in itertools.product(mus, ("heavy", "average",
                                                                                      "nesterov"), masks)]
    if rule == "rmsprop":
        return [{"eps_at": at, "eps": e, "rho": r, "l2_on": m} for r, e, at, m in
                itertools.product(DECAYS["rho"], EPSILONS, ("outside", "inside"), masks)]
    return [{"eps_at": at, "eps": e, "beta2": b, "l2_on": m, "correction": True} for b, e, at, m in
            itertools.product(DECAYS["beta2"], EPSILONS, ("outside", "inside", "uncorrected"), masks)]


def convention_sentences(rule, variant):
    """The choices of a variant that differ from the reference default, as sentences."""
    default = variants(rule, True)[0]
    said = []
    if variant.get("l2_on") == "weights":
        said.append("L2 on the weights only, not on the biases")
    if variant.get("form") == "average":
        said.append("momentum as an average: v = mu v + (1 - mu) g")
    if variant.get("form") == "nesterov":
        said.append("Nesterov momentum: w -= lr (g + mu v)")
    if variant.get("eps_at") == "inside":
        said.append("epsilon inside the square root: sqrt(s + eps)")
    if variant.get("eps_at") == "uncorrected":
        said.append("epsilon added to the uncorrected sqrt(v) (Kingma and Ba's eps-hat form)")
    for key, name in (("eps", "eps"), ("rho", "rho"), ("beta2", "beta2"), ("mu", "momentum mu")):
        if key in variant and key in default and variant[key] != default[key]:
            said.append(f"{name} = {variant[key]:g} (the reference's is {default[key]:g})")
    return said


class Reference:
    """The reference step rules on ae's engine, float64, full batch, from the lab's start weights."""

    def __init__(self, model, X, w0, bias_mask):
        self.model, self.X, self.w0 = model, X, w0
        self.weights_only = (~bias_mask).astype(float)

    def loss_grad(self, w, data=None):
        self.model.set_weights(w)
        return self.model.compute_loss(self.X if data is None else data)

    def l2_mask(self, variant):
        return 1.0 if variant.get("l2_on", "all") == "all" else self.weights_only

    def objective(self, w, l2, variant, data=None, with_l2=True):
        """(objective, norm of its gradient) at w: F + l2/2 |w|^2 (masked), or F alone."""
        loss, grad = self.loss_grad(w, data)
        if not with_l2:
            return float(loss), float(np.linalg.norm(grad))
        mask = self.l2_mask(variant)
        return float(loss + l2 / 2 * np.sum(mask * w * w)), float(np.linalg.norm(grad + l2 * mask * w))

    def run(self, rule, variant, lr, epochs, l2):
        """The weights after each epoch (one full-batch step each), the start first."""
        w, mask = self.w0.copy(), self.l2_mask(variant)
        # a bug's sign or omission of the L2 term in the rule, an epoch too many or too few
        l2, epochs = l2 * variant.get("l2_scale", 1.0), epochs + variant.get("extra_epochs", 0)
        m, v = np.zeros_like(w), np.zeros_like(w)
        path = [w]
        for t in range(1, epochs + 1):
            gradient = self.loss_grad(w)[1]
            g = gradient + l2 * (gradient if variant.get("l2_of") == "gradient" else mask * w)
            if rule == "sgd":
                step = -lr * g
            elif rule == "momentum":
                mu = variant["mu"]
                v = mu * v + ((1 - mu) * g if variant["form"] == "average" else g)
                step = -lr * (g + mu * v if variant["form"] == "nesterov" else v)
            elif rule == "rmsprop":
                v = _average(v, g * g, variant["rho"], variant.get("swapped") == "v")
                root = np.sqrt(v + variant["eps"]) if variant["eps_at"] == "inside" else np.sqrt(v) + variant["eps"]
                step = -lr * g / root
            else:
                b1, b2, eps = 0.9, variant["beta2"], variant["eps"]
                m = _average(m, g, b1, variant.get("swapped") == "m")
                v = _average(v, g * g, b2, variant.get("swapped") == "v")
                c1, c2 = (1 - b1**t, 1 - b2**t) if variant["correction"] else (1.0, 1.0)
                if variant["eps_at"] == "uncorrected":
                    step = -lr * np.sqrt(c2) / c1 * m / (np.sqrt(v) + eps)
                else:
                    root = np.sqrt(v / c2 + eps) if variant["eps_at"] == "inside" else np.sqrt(v / c2) + eps
                    step = -lr * (m / c1) / root
            w = w + step
            path.append(w)
        return path


def _average(history, new, decay, swapped):
    """The moving average decay history + (1 - decay) new; ``swapped``: the classic slip with the two
    weights exchanged."""
    return (1 - decay) * history + decay * new if swapped else decay * history + (1 - decay) * new


def distance(w, reference_path):
    """|w - reference end| relative to how far the reference moved from the start."""
    moved = np.linalg.norm(reference_path[-1] - reference_path[0])
    return float(np.linalg.norm(w - reference_path[-1]) / max(moved, np.finfo(float).tiny))


def bug_hypotheses(rule, epochs, l2):
    """(sentence, change to the variant's choices) of the classic bugs, searched when no variant matches."""
    found = [(f"are those of {epochs + 1} epochs for num_epoch={epochs}: one too many", {"extra_epochs": 1}),
             (f"are those of {epochs - 1} epochs for num_epoch={epochs}: one too few", {"extra_epochs": -1}),
             ("have the L2 term with the wrong sign: they are those of l2_coef = -l2_coef", {"l2_scale": -1.0}),
             ("lack the L2 term: they are those of l2_coef = 0", {"l2_scale": 0.0}),
             ("add L2 to the gradient as l2_coef times the gradient: g + l2_coef g where g + l2_coef w belongs",
              {"l2_of": "gradient"})]
    if rule == "adam":
        found.insert(0, ("have no bias correction: they are Adam's without the factors 1/(1 - beta^t)",
                         {"correction": False}))
        found.append(("have the first moment's weights exchanged: m = (1 - beta1) m + beta1 g where "
                      "m = beta1 m + (1 - beta1) g belongs", {"swapped": "m"}))
    if rule in ("rmsprop", "adam"):
        name = "rho" if rule == "rmsprop" else "beta2"
        found.append((f"have the squares' average with its weights exchanged: s = (1 - {name}) s + {name} g^2 "
                      f"where s = {name} s + (1 - {name}) g^2 belongs", {"swapped": "v"}))
    return found


def _takes(fn, name):
    """Whether fn (a method in the candidate's worker) takes the keyword ``name``; None where its signature
    cannot be read."""
    parameters = fn.parameters()
    return None if parameters is None else name in parameters or "**" in parameters


class OptimizerCheck:
    """The stage on one net: ``run()`` adds its records to the lab's."""

    def __init__(self, lab, widths, letters, layouts):
        self.lab, self.widths, self.letters = lab, widths, letters
        self.perm = candidate_model.FlatLayout(layouts).perm  # candidate entry -> ours
        biases = [bias for _, bias in layouts]
        ours = ae.Autoencoder([ae.FCLayer(shape, from_letter(g), use_bias=b)
                               for shape, g, b in zip(zip(widths, widths[1:]), letters, biases)])
        bias_mask = np.concatenate([np.arange(layer.get_params_number()) >= layer.shape[0] * layer.shape[1]
                                    for layer in ours.layers])
        rng = np.random.default_rng(lab.seed + 34)
        w0 = ours.init_weights(lab.seed) + 0.1 * rng.standard_normal(ours.params_number)
        self.X, self.T = rng.random((widths[0], COLUMNS)), rng.random((widths[0], TEST_COLUMNS))
        self.reference = Reference(ours, self.X, w0, bias_mask)

    # --- the candidate ---------------------------------------------------------------------------

    def new_model(self, where):
        """(model, setter, getter): a fresh candidate Autoencoder at the start weights; None if it failed."""
        lab = self.lab
        layers = [lab.new_layer("optimizers", where, shape, g, k)
                  for k, (shape, g) in enumerate(zip(zip(self.widths, self.widths[1:]), self.letters))]
        if any(layer is candidate.FAILED for layer in layers):
            return None
        model = lab.call("optimizers", where, lab.modules["autoencoder"].Autoencoder, layers)
        if model is candidate.FAILED:
            return None
        net = getattr(model, "net", None)
        setter = getattr(model, "set_weights", None) or getattr(net, "set_weights", None)
        getter = getattr(model, "get_weights", None) or getattr(net, "get_weights", None)
        if setter is None or getter is None:
            lab.failure("optimizers", where, "get_weights", "neither the model nor model.net has set_weights and "
                        "get_weights")
            return None
        if lab.call("optimizers", f"{where} set_weights", setter, self.reference.w0[self.perm]) is candidate.FAILED:
            return None
        return model, setter, getter

    def train(self, model, setter, getter, where, method, lr, epochs, l2, extra):
        """(final weights in our layout, history) of one call, or None if it failed."""
        fn = getattr(model, method)
        history = self.lab.call("optimizers", where, fn, self.X.copy(), step_size=lr, num_epoch=epochs,
                                minibatch_size=COLUMNS, l2_coef=l2, test_inputs=self.T.copy(), display=False,
                                **extra)
        if history is candidate.FAILED:
            return None
        weights = self.lab.call("optimizers", f"{where} get_weights", getter)
        if weights is candidate.FAILED:
            return None
        try:
            flat = np.asarray(weights, dtype=float).ravel()
        except (TypeError, ValueError):
            flat = np.empty(0)
        if flat.size != len(self.perm):
            self.lab.failure("optimizers", where, "weights", f"get_weights after training gave {flat.size} "
                             f"entries, the net has {len(self.perm)}")
            return None
        w = np.empty(len(self.perm))
        w[self.perm] = flat
        return w, history

    # --- records ---------------------------------------------------------------------------------

    def judge(self, where, quantity, measured, diagnosis=None, **fields):
        record = records.verdict("engine", quantity, measured, TARGET, self.lab.context("optimizers", where),
                                 **fields)
        if record["verdict"] == "fail" and diagnosis:
            record["diagnosis"] = diagnosis
        self.lab.records.append(record)
        return record["verdict"] == "pass"

    def note(self, where, quantity, sentence):
        self.lab.failure("optimizers", where, quantity, f"{sentence} (a convention)", verdict="note")

    # --- the checks ------------------------------------------------------------------------------

    def run(self):
        made = self.new_model("optimizers")
        if made is None:
            return
        model = made[0]
        plans = []
        if callable(getattr(model, "run_sgd", None)):
            plans.append(("run_sgd", "run_sgd", "sgd", {}))
            takes = _takes(model.run_sgd, "momentum")
            if takes:
                plans.append((f"run_sgd momentum={MOMENTUM}", "run_sgd", "momentum", {"momentum": MOMENTUM}))
            elif takes is None:
                self.lab.records.append(records.cannot_run(
                    "engine", "momentum", "run_sgd's signature cannot be read: momentum= is not tried",
                    self.lab.context("optimizers", "run_sgd")))
        if callable(getattr(model, "run_momentum", None)):
            given = {"momentum": MOMENTUM} if _takes(model.run_momentum, "momentum") else {}
            plans.append(("run_momentum", "run_momentum", "momentum", given))
        for name, rule in (("run_rmsprop", "rmsprop"), ("run_adam", "adam")):
            if callable(getattr(model, name, None)):
                plans.append((name, name, rule, {}))
        if not plans:
            self.lab.records.append(records.cannot_run(
                "engine", "optimizers", "the Autoencoder has none of run_sgd, run_momentum, run_rmsprop, run_adam",
                self.lab.context("optimizers", "optimizers")))
        for where, method, rule, extra in plans:
            before = len(self.lab.records)
            self.check_method(where, method, rule, extra)
            # root causes first within the method, so the findings can put the rest under them
            self.lab.records[before:] = sorted(self.lab.records[before:], key=rank)

    def check_method(self, where, method, rule, extra):
        lr = STEP_SIZES["momentum" if rule == "momentum" else method]
        made = self.new_model(where)
        first = made and self.train(*made, where, method, lr, EPOCHS, L2, extra)
        if not first:
            return
        w, history = first
        lists = self.check_history(where, history)
        variant, matched = self.check_steps(where, rule, extra, w, lr)
        # a second call on the same model from the same weights: nothing may carry over
        setter = made[1]
        if self.lab.call("optimizers", f"{where} set_weights", setter, self.reference.w0[self.perm]) is not \
                candidate.FAILED:
            again = self.train(*made, where, method, lr, EPOCHS, L2, extra)
            if again is not None:  # the figure: relative to how far the first call moved
                self.judge(where, "state between calls", distance(again[0], [self.reference.w0, w]),
                           "is carried: a second call from the same weights ends elsewhere")
        for quantity, args in (("step_size", (lr / 2, EPOCHS, L2)), ("l2_coef", (lr, EPOCHS, 0.0))):
            fresh = self.new_model(where)
            other = fresh and self.train(*fresh, where, method, *args, extra)
            if other:
                self.check_argument(where, quantity, rule, variant, other[0], w, args)
        if lists is not None:
            self.check_losses(where, rule, variant, lists, lr)
        for sentence in convention_sentences(rule, variant) if matched else ():
            self.note(where, "steps", sentence)

    def check_history(self, where, history):
        """{key: list of floats}, or None; records the keys and the count of entries."""
        if not isinstance(history, dict):
            self.lab.failure("optimizers", where, "history keys", f"returned {type(history).__name__}, not the "
                             "history dict (train_loss, train_grad, test_loss, test_grad)")
            return None
        missing = [key for key in HISTORY if key not in history]
        if missing:
            self.lab.failure("optimizers", where, "history keys",
                             f"lack {', '.join(missing)} (test_inputs were given)")
        lists = {}
        for key in HISTORY:
            if key in history:
                try:
                    lists[key] = np.asarray(history[key], dtype=float).ravel()
                except (TypeError, ValueError):
                    self.lab.failure("optimizers", where, "history keys", f"{key} is not a list of numbers")
        lengths = {key: len(values) for key, values in lists.items() if len(values) != EPOCHS}
        if lengths:
            counts = {}
            for key, n in lengths.items():
                counts.setdefault(n, []).append(key)
            self.lab.failure("optimizers", where, "num_epoch", f"is not honoured: num_epoch={EPOCHS} gave " + "; ".join(
                f"{n} entries in {', '.join(keys)}" for n, keys in counts.items()) + " (one per epoch is the spec)")
        return lists

    def nearest(self, rule, candidates, w, lr, epochs, l2, with_bugs):
        """(distance, variant, bug sentence or None, the variant with the bug's change to the rule) of the
        reference nearest to w: the first within TARGET, else the nearest of all."""
        best = None
        bugs = bug_hypotheses(rule, epochs, l2) if with_bugs else [(None, {})]
        for (sentence, change), variant in itertools.product(bugs, candidates):
            changed = {**variant, **change}
            found = (distance(w, self.reference.run(rule, changed, lr, epochs, l2)), variant, sentence, changed)
            if best is None or found[0] < best[0]:
                best = found
            if best[0] <= TARGET:
                break
        return best

    def check_steps(self, where, rule, extra, w, lr):
        """The variant that matches, with the bug found in the rule if one is (the default one if none
        does: the method's other checks are judged against it), and whether one matched without a bug."""
        candidates = variants(rule, "momentum" in extra)
        measured, variant, _, _ = self.nearest(rule, candidates, w, lr, EPOCHS, L2, with_bugs=False)
        if measured <= TARGET:
            self.judge(where, "steps", measured)
            return variant, True
        residual, right, bug, buggy = self.nearest(rule, candidates, w, lr, EPOCHS, L2, with_bugs=True)
        if residual <= TARGET:  # the figure: the distance to the right steps; and what remains with the bug put in
            self.judge(where, "steps", distance(w, self.reference.run(rule, right, lr, EPOCHS, L2)), bug,
                       residual=residual)
            return buggy, False
        nearest = "; ".join(convention_sentences(rule, variant)) or "its defaults"
        self.judge(where, "steps", measured, nearest=f"the {rule} reference with {nearest}")
        return candidates[0], False

    def check_argument(self, where, quantity, rule, variant, w, w_first, args):
        """A run with another step_size or l2_coef against its own reference; ignoring it is named."""
        lr, epochs, l2 = args
        path = self.reference.run(rule, variant, lr, epochs, l2)
        measured = distance(w, path)
        ignored = float(np.linalg.norm(w - w_first)) <= TARGET * float(np.linalg.norm(path[-1] - path[0]))
        given = f"step_size={lr:g}" if quantity == "step_size" else f"l2_coef={l2:g}"
        self.judge(where, quantity, measured, f"is ignored: {given} ends at the weights of the first call"
                   if ignored else None)

    def check_losses(self, where, rule, variant, lists, lr):
        """train_loss, train_grad, test_loss, test_grad against the objective at the weights after each epoch."""
        path = self.reference.run(rule, variant, lr, EPOCHS, L2)
        for key in HISTORY:
            values = lists.get(key)
            if values is None or len(values) != EPOCHS:
                continue
            data = self.T if key.startswith("test") else None
            pick = 1 if key.endswith("grad") else 0
            at = {with_l2: [self.reference.objective(w, L2, variant, data, with_l2)[pick] for w in path]
                  for with_l2 in (True, False)}
            after, before = np.array(at[True][1:]), np.array(at[True][:-1])
            without = np.array(at[False][1:])
            measured = float(np.linalg.norm(values - after) / np.linalg.norm(after))
            if measured > TARGET and np.linalg.norm(values - without) <= TARGET * np.linalg.norm(without):
                part = "F's gradient" if pick else "F"
                self.note(where, key, f"{key} is {part} without the L2 term")
                continue
            hypotheses = [("is the value at the weights before each epoch's step, not after it", before),
                          ("is the value at the weights before each epoch's step, without L2",
                           np.array(at[False][:-1]))]
            diagnosis = next((s for s, h in hypotheses if np.linalg.norm(values - h) <= TARGET * np.linalg.norm(h)),
                             None)
            self.judge(where, key, measured, diagnosis)


def rank(r):
    """0: a behaviour the spec names (an argument ignored, state carried, the history's form); 1: the
    steps; 2: what is measured on them (the history's values, a run with other arguments)."""
    if r["quantity"] in ROOTS and r["verdict"] in ("fail", "not implemented") and (r.get("diagnosis")
                                                                                   or r.get("reason")):
        return 0
    return 1 if r["quantity"] in ("steps", "raised", "not implemented") else 2


def explains(root, record):
    """Within one method: a failure of a lower rank explains the method's later ones."""
    def method(r):
        return re.sub(r" (set|get)_weights$", "", r["where"])

    return method(root) == method(record) and rank(root) < rank(record)


def check(lab, widths, letters, layouts):
    OptimizerCheck(lab, widths, letters, layouts).run()
