"""The study's tuning protocol: its architectures, step-size grids and modes, a run's config, and the
rules that grow a grid past an edge, fit minibatches to the data and list the seeds (see
``studies.runner`` for the whole rule)."""

import math

import ae

ARCHITECTURES = {
    # widths, activation letter per layer (linear middle, sigmoid output for pixels), tied
    "linear 784-2-784": ([784, 2, 784], "ll", False),
    "tanh 784-64-2-64-784": ([784, 64, 2, 64, 784], "tlts", False),
    "tanh 784-64-2-64-784 tied": ([784, 64, 2, 64, 784], "tlts", True),
    "tanh 784-256-2-256-784": ([784, 256, 2, 256, 784], "tlts", False),
    "relu 784-512-128-2-128-512-784": ([784, 512, 128, 2, 128, 512, 784], "rrlrrs", False),
    "tanh 784-256-2-256-784 tied": ([784, 256, 2, 256, 784], "tlts", True),
}
STEP_GRID = {
    "sgd": [0.003, 0.01, 0.03, 0.1, 0.3],
    "momentum": [0.001, 0.003, 0.01, 0.03, 0.1],
    "rmsprop": [0.0003, 0.001, 0.003, 0.01, 0.03],
    "adam": [0.0003, 0.001, 0.003, 0.01, 0.03],
}
MODES = {
    "quick": {"architectures": ["linear 784-2-784", "tanh 784-64-2-64-784", "tanh 784-64-2-64-784 tied"],
              "epochs": 10, "steps": slice(1, 4), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 3000],
              "seeds": 3, "max_seeds": 6, "max_extensions": 2},
    # full mode's budget is in training examples: the exhaustive 40 epochs of the embedded 3,000
    # digits, and as many examples (2 epochs) of MNIST's 55,000, where 40 would take two days of 2 cores
    "full": {"architectures": ["linear 784-2-784", "tanh 784-256-2-256-784", "relu 784-512-128-2-128-512-784",
                               "tanh 784-256-2-256-784 tied"],
             "examples": 120_000, "exhaustive_epochs": 40,
             "steps": slice(0, 5), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 4000],
             "seeds": 5, "max_seeds": 10, "max_extensions": 2},
}
TARGET_FACTOR = 1.05  # time-to-target: within 5% of the architecture's best final validation loss
OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam", "hf"]
# Hessian-free's own knobs (Martens 2010 tuned these where our diagnostics point: CG stopped early,
# damping climbing): the defaults, then one change at a time at HF's best gradient minibatch
HF_DEFAULT = {"curvature_fraction": 0.1, "max_cg_iterations": 100, "damping": 1.0}
HF_GRID = [{"curvature_fraction": 0.3}, {"max_cg_iterations": 250}, {"damping": 0.1}]
HF_SHORT = {"curvature_fraction": "curvature", "max_cg_iterations": "CG", "damping": "damping"}  # in tables
L2_COEF = 1e-5
RECONSTRUCTED = 8  # validation digits whose reconstructions are kept


def build_architecture(architecture):
    """(model, index of the 2-unit code layer) of an architecture of ``ARCHITECTURES``."""
    widths, acts, tied = ARCHITECTURES[architecture]
    return ae.build(widths, acts, tied=tied), widths.index(2) - 1


def make_config(architecture, optimizer, step_size, minibatch_size, epochs, seed, dtype="float64", hf=None):
    """A run's config; HF has no step size but its own options (``HF_DEFAULT`` changed by ``hf``)."""
    return {"architecture": architecture, "optimizer": optimizer,
            "step_size": None if optimizer == "hf" else step_size, "minibatch_size": minibatch_size,
            "epochs": epochs, "seed": seed, "l2_coef": L2_COEF, "dtype": dtype,
            "hf": {**HF_DEFAULT, **(hf or {})} if optimizer == "hf" else None}


def describe_config(config):
    step = "" if config["step_size"] is None else f" step {config['step_size']}"
    changed = {k: v for k, v in (config.get("hf") or {}).items() if HF_DEFAULT[k] != v}
    options = "".join(f" {k} {v}" for k, v in changed.items())
    return (f"{config['architecture']} {config['optimizer']}{step}{options} batch {config['minibatch_size']} "
            f"seed {config['seed']}")


def hf_options_changed(config):
    """HF's options that differ from ``HF_DEFAULT``, by their short names ("CG 250"), or "-"."""
    return ", ".join(f"{HF_SHORT[k]} {v}" for k, v in config["hf"].items() if HF_DEFAULT[k] != v) or "-"


def _score(record):
    """Validation loss for tuning: the test set never chooses anything."""
    loss = record["final_validation_loss"]
    return math.inf if record.get("diverged") or loss is None or not math.isfinite(loss) else loss


def beyond(step, direction):
    """The next step size of the 1-3-10 log grid above (direction +1) or below (-1) ``step``."""
    exponent = math.floor(math.log10(step) + 1e-9)
    mantissa = step / 10**exponent
    if direction > 0:
        value = (3 if mantissa < 2 else 10) * 10**exponent
    else:
        value = (1 if mantissa > 2 else 0.3) * 10**exponent
    return float(f"{value:.3g}")


def fit_to_data(sizes, n_train):
    """The minibatch sizes of a grid that the training set can hold: larger ones become the whole
    set (once).  Returns (sizes, {asked: used} for each one changed)."""
    used = sorted({min(b, n_train) for b in sizes})
    return used, {b: n_train for b in sizes if b > n_train}


def epochs_for(spec, n_train):
    """A mode's epochs per run on ``n_train`` training digits: its ``epochs``, or its budget of
    ``examples`` in whole epochs (the nearest, at least one)."""
    if "epochs" in spec:
        return spec["epochs"]
    return max(1, round(spec["examples"] / n_train))


def budget_rule(spec, n_train):
    """What a mode's budget is on ``n_train`` training digits, and whether it is the exhaustive
    protocol's (then it chooses what that protocol chooses, run for run) or a shorter question."""
    epochs = epochs_for(spec, n_train)
    rule = f"{epochs} epochs of the {n_train} training digits a run"
    if "epochs" in spec:
        return rule
    rule += f" (the mode's budget of {spec['examples']} examples, in whole epochs"
    if epochs == spec["exhaustive_epochs"]:
        return rule + (f"; here that is the exhaustive protocol's {epochs} epochs, run for run, so it "
                       "chooses the same configurations)")
    return rule + (f"; the exhaustive protocol's {spec['exhaustive_epochs']} epochs would be "
                   f"{spec['exhaustive_epochs'] * n_train} examples, so here the question is which method "
                   f"is best after {epochs * n_train} examples)")


def figure_slug(arch):
    """An architecture's part of its figures' file names (written by ``studies.plots``, read by the report)."""
    return arch.replace(" ", "_").replace("-", "_")


def seed_list(spec, seed=0):
    return list(range(seed, seed + spec["seeds"]))
