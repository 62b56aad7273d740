"""The stage "optimizers" of python -m checks --engine (checks.candidate_optim) on the course fixture's
run_sgd (with and without momentum), run_rmsprop and run_adam: the clean one passes, each planted bug is
named at its method, each legitimate variant is a note and never a failure."""

import re
import shutil

import numpy as np
import pytest
from test_candidate import FIXTURE, run

from checks import candidate_optim

METHODS = ("run_sgd", "run_sgd momentum=0.9", "run_rmsprop", "run_adam")




def optimizer_lines(saved):
    return [line for line in saved["findings"] if "run_" in line]


def roots(saved):
    return [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]


def test_the_clean_methods_pass_every_check(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch)
    assert code == 0 and optimizer_lines(saved) == [], "\n".join(saved["findings"])
    mine = [r for r in saved["records"] if r["stage"] == "optimizers"]
    assert {r["verdict"] for r in mine} == {"pass"}
    judged = {(r["where"], r["quantity"]) for r in mine}
    for method in METHODS:
        for quantity in ("steps", "state between calls", "step_size", "l2_coef", "train_loss", "train_grad",
                         "test_loss", "test_grad"):
            assert (method, quantity) in judged, (method, quantity)
    assert max(r["measured"] for r in mine) < 1e-12  # float64 iterates of the same rule: round-off apart
    assert saved["summary"]["stages"]["optimizers"] == "pass"


@pytest.mark.parametrize("bug, method, expected", [
    ("adam_no_bias_correction", "run_adam", r"steps have no bias correction: they are Adam's without the factors "
                                            r"1/\(1 - beta\^t\) \(off by [\d.e+-]+; once that is accounted for, "
                                            r"off by \d\.\de-1\d, target 1e-08\)$"),
    ("momentum_state_carried", "run_sgd momentum=0.9", r"state between calls is carried: a second call from the "
                                                       r"same weights ends elsewhere"),
    ("momentum_state_carried", "run_adam", r"state between calls is carried"),
    ("step_size_ignored", "run_rmsprop", r"step_size is ignored: step_size=0.005 ends at the weights of the first"),
    ("l2_sign_wrong", "run_sgd", r"steps have the L2 term with the wrong sign"),
    ("l2_on_loss_missing", "run_adam", r"steps lack the L2 term: they are those of l2_coef = 0"),
    ("train_loss_before_step", "run_rmsprop", r"train_loss, train_grad, test_loss, test_grad is the value at the "
                                              r"weights before each epoch's step, not after it"),
    ("history_without_test_lists", "run_adam", r"history keys lack test_loss, test_grad \(test_inputs "
                                               r"were given\)$"),
    ("epochs_off_by_one", "run_sgd", r"num_epoch is not honoured: num_epoch=3 gave 4 entries in train_loss, "
                                     r"train_grad, test_loss, test_grad"),
])
@pytest.mark.slow
def test_each_bug_is_named_at_its_method(tmp_path, monkeypatch, bug, method, expected):
    code, saved = run(tmp_path, monkeypatch, bug)
    assert code == 1
    assert any(re.fullmatch(rf"\[net 5-3-5 st\] {re.escape(method)}: {expected}.*", line) for line in roots(saved)), (
        "\n".join(saved["findings"]))
    # only the optimizers failed: the rest of the fixture is clean
    assert {r["stage"] for r in saved["records"] if r["verdict"] == "fail"} == {"optimizers"}
    if bug == "adam_no_bias_correction":  # the method's other checks judged with the bug put in: they pass
        others = [r for r in saved["records"] if r["where"] == method and r["quantity"] != "steps"]
        assert others and all(r["verdict"] in ("pass", "note") for r in others), others


@pytest.mark.slow
def test_what_a_bug_explains_is_listed_under_it(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch, "epochs_off_by_one")
    lines = saved["findings"]
    root = next(k for k, line in enumerate(lines) if line.startswith("[net 5-3-5 st] run_adam: num_epoch"))
    assert lines[root + 1].startswith("    follows from it: [net 5-3-5 st] run_adam: steps are those of 4 epochs "
                                      "for num_epoch=3: one too many")
    assert len(roots(saved)) == len(METHODS)  # one root cause per method


@pytest.mark.slow
@pytest.mark.parametrize("convention, note", [
    ("rmsprop_eps_inside", "note: epsilon inside the square root: sqrt(s + eps) (a convention): run_rmsprop steps"),
    ("rmsprop_rho_0.99", "note: rho = 0.99 (the reference's is 0.9) (a convention): run_rmsprop steps"),
    ("l2_not_on_biases", "note: L2 on the weights only, not on the biases (a convention): run_sgd steps, run_sgd "
                         "momentum=0.9 steps, run_rmsprop steps, run_adam steps"),
    ("loss_without_l2", "note: train_loss is F without the L2 term (a convention): run_sgd train_loss, run_sgd "
                        "momentum=0.9 train_loss, run_rmsprop train_loss, run_adam train_loss"),
    ("momentum_lr_inside", None),  # v = mu v - lr g; w += v: the same iterates, nothing to tell apart
])
def test_each_convention_is_a_note_only(tmp_path, monkeypatch, convention, note):
    code, saved = run(tmp_path, monkeypatch, convention)
    assert code == 0 and roots(saved) == [], "\n".join(saved["findings"])
    notes = [line for line in optimizer_lines(saved) if line.startswith("note")]
    assert (note in notes) if note else notes == [], notes
    assert not [r for r in saved["records"] if r["verdict"] == "fail"]


def test_this_projects_own_optimizers_match_the_reference_rules(tmp_path, monkeypatch):
    # ae's run_* (the torch arrangements of ae.optim, through ae.train) against the stage's own rules
    code, saved = run(tmp_path, monkeypatch, engine="ae")
    assert code == 0, "\n".join(saved["findings"])
    mine = [r for r in saved["records"] if r["stage"] == "optimizers"]
    steps = {r["where"] for r in mine if r["quantity"] == "steps" and r["verdict"] == "pass"}
    assert steps == {*METHODS, "run_momentum"}
    notes = {line.split(" (a convention)")[0] for line in optimizer_lines(saved) if line.startswith("note")}
    assert notes == {"note: train_loss is F without the L2 term", "note: test_loss is F without the L2 term"}


def test_the_variants_searched_start_with_the_reference_default_and_name_only_departures():
    for rule in ("sgd", "momentum", "rmsprop", "adam"):
        found = candidate_optim.variants(rule, False)
        assert candidate_optim.convention_sentences(rule, found[0]) == [], rule
        assert all(candidate_optim.convention_sentences(rule, v) for v in found[1:]), rule
        assert len({tuple(sorted(v.items())) for v in found}) == len(found), rule


def test_the_reference_rules_are_ae_optims(tmp_path):
    import ae
    from ae import optim
    from ae.activations import from_letter

    model = ae.Autoencoder([ae.FCLayer((5, 3), from_letter("s"), use_bias=True),
                            ae.FCLayer((3, 5), from_letter("t"), use_bias=True)])
    rng = np.random.default_rng(1)
    w0, X = model.init_weights(0), rng.random((5, 8))
    reference = candidate_optim.Reference(model, X, w0, np.zeros(model.params_number, dtype=bool))
    rules = {"sgd": optim.SGD(0.5), "momentum": optim.Momentum(0.2, 0.9), "rmsprop": optim.RMSprop(0.01),
             "adam": optim.Adam(0.01)}
    for name, rule in rules.items():
        w, state = w0.copy(), rule.init(w0)
        for _ in range(3):
            model.set_weights(w)
            step, state = rule.update(model.compute_loss(X)[1] + 0.05 * w, state)
            w = w + step
        path = reference.run(name, candidate_optim.variants(name, True)[0], rule.step_size, 3, 0.05)
        assert candidate_optim.distance(w, path) < 1e-13, name


def test_a_candidate_without_optimizers_is_said_to_lack_them(tmp_path, monkeypatch):
    bare = tmp_path / "bare"
    shutil.copytree(FIXTURE, bare, ignore=shutil.ignore_patterns("__pycache__"))
    with open(bare / "autoencoder.py", "a") as source:
        source.write("\ndel Autoencoder.run_sgd, Autoencoder.run_rmsprop, Autoencoder.run_adam\n")
    code, saved = run(tmp_path, monkeypatch, engine=bare)
    lacking = [r for r in saved["records"] if r["stage"] == "optimizers"]
    assert code == 0 and [(r["verdict"], r["reason"]) for r in lacking] == [
        ("cannot run", "the Autoencoder has none of run_sgd, run_momentum, run_rmsprop, run_adam")]
