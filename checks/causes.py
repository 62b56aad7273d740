"""How the lab finds causes on a candidate (``python -m checks --engine``): shown by substitution, not
inferred, and conventions told apart from errors.

* An activation that failed: every net that uses it is examined again with ae's activation in its place
  (in the candidate's worker).  A later failure that then passes follows from that activation (its record
  lists the letter in ``follows``); one that still fails is a root of its own.
* A layer pass that failed: the net's model (products in every call order, checks.verify, optimizers) is
  examined again under the candidate's own FFNet and Autoencoder on ae's layers, in the candidate's probed
  layout and with its per-layer convention.  What then passes follows from the layers ("layers" in
  ``follows``); what still fails is a root of its own.  Where the candidate's model reads an attribute
  only its own layer has, nothing is shown (``unshown`` says why) and the order of the passes stands.
* Per-layer scaling that the model undoes (dividing by N inside each layer) is the candidate's
  convention, judged per component: accepted where the model makes the right gradient of such layers,
  whatever else fails; every other layer record is then judged again with the factor taken out.
* A factor 2 at a batch of two is named N where a larger batch shows it is N.
"""

import re

import numpy as np

from checks import configurations, diagnosis, findings

SCALED = ("dW", "db", "R{dW}", "R{db}")  # the layer quantities a per-layer 1/N scales


def confirm_activation_causes(lab):
    """Each failed activation substituted by ae's in every net that uses it; the records marked."""
    failed = {lab.letter_of(r) for r in lab.records if r["verdict"] in ("fail", "not implemented")}
    for letter in sorted(g for g in failed if g):
        shadow = lab.shadow(substituted={letter})
        shadow.examine_nets([c for c in configurations.for_candidate(lab.activations) if letter in c.letters])
        mark(lab.records, shadow.records, letter, lambda r, letter=letter: lab.letter_of(r) == letter,
             {"substituted": True, "letter": letter})


def confirm_layer_causes(lab):
    """Each net with a failed layer pass examined again on ae's layers; the records marked.  Where the
    candidate's model could not run on ae's layers at all (its loss not computed), nothing is shown and
    the dependency order stands."""
    failed = {r["net"] for r in lab.records
              if r["stage"] in findings.LAYER_STAGES and r["verdict"] in ("fail", "not implemented")}
    seen = {name for _, name in lab.layer_factor.values()}
    for net in sorted(failed):
        name = lab.layer_factor.get(net, (None, None))[1]
        if name is None and lab.configs[net].layer_batch == 1 and len(seen) == 1:
            name = next(iter(seen))  # at one column a per-layer 1/N is 1: the other nets show the layer's
        power = {None: 0, "1/N": -1, "N": 1}.get(name)
        if power is None:  # a factor ae's layer cannot take
            continue
        shadow = on_reference_layers(lab, net, power)
        if power and net in lab.layer_factor and net not in lab.layer_convention:
            if _gradient_passes(shadow.records):  # the model makes the right gradient of ae's layers given
                take_out_convention(lab, net)  # the factor: a convention, beside another bug
            else:  # the factor is an error of the layers: their model is examined on ae's own layers
                shadow = on_reference_layers(lab, net, 0)
        if any(r["where"] == "model" and r["quantity"] == "loss" for r in shadow.records):
            mark([r for r in lab.records if r["net"] == net], shadow.records, "layers",
                 lambda r: r["stage"] in findings.LAYER_STAGES, {"substituted_layers": True}, unshown=True)


def on_reference_layers(lab, net, power):
    """A lab that examined the model of a net on ae's layers (``batch_power``: ``power``)."""
    shadow = lab.shadow(reference_layers=power, layouts=lab.layouts)
    shadow.examine_model(lab.configs[net], lab.layouts[net])
    return shadow


def mark(found, again, cause, is_root, root_marks, unshown=False):
    """Mark the records ``found`` by what the examination with ``cause`` substituted gave (``again``):
    the roots get ``root_marks``; a failure whose check passes there follows from ``cause``; with
    ``unshown``, one the stand-ins could not show says why; a failure of its own that the cause blurred
    takes the diagnosis it has there (its figures stay its own)."""
    outcome = {}
    for a in again:
        outcome.setdefault(_key(a), []).append(a)
    by_stage = {}
    for a in again:
        by_stage.setdefault((a["net"], a["stage"]), []).append(a)
    for r in found:
        if is_root(r):
            r.update(root_marks)
            continue
        if r["verdict"] not in ("fail", "not implemented"):
            continue
        same, stage = outcome.get(_key(r), []), by_stage.get((r["net"], r["stage"]), [])
        lacking = _stand_in_lacking(same or stage) if unshown else None
        if _passes_again(r, same, stage):
            r.setdefault("follows", []).append(cause)
        elif lacking:
            r["unshown"] = lacking
        elif r["verdict"] == "fail" and same and same[-1].get("diagnosis") and not r.get("diagnosis"):
            r["diagnosis"], r["residual"], r["factor"] = same[-1]["diagnosis"], None, None


def _key(r):
    """What identifies a check across two examinations of one candidate."""
    return r["net"], r["stage"], r["where"], r["quantity"], r.get("check")


def _passes_again(r, same, stage):
    """Whether the check of record ``r`` passed in another examination, whose records of the same check
    are ``same`` and of the same net and stage ``stage``: its own records passed there, or ``r`` is a call
    that failed (raised, gave nothing to measure) and, there, the same call failed in nothing and its
    stage passed checks in the net."""
    if same:
        return all(a["verdict"] == "pass" for a in same)
    if r.get("measured") is not None:  # a check that ran there too, under its own key
        return False
    return (any(a["verdict"] == "pass" for a in stage)
            and not any(a["where"] == r["where"] and a["verdict"] in ("fail", "not implemented") for a in stage))


def _stand_in_lacking(candidates):
    """Why another examination cannot show whether a record follows: among ``candidates`` (the records of
    its check there, or of its stage where it did not run), one failed because the candidate's code read
    something of its own layer that ae's stand-in does not have (that reason), or None."""
    return next((re.sub(r" \(.*$", "", a["reason"]) for a in candidates if "'Reference" in str(a.get("reason"))),
                None)


def _gradient_passes(found):
    return any(r["where"] == "model" and r["quantity"] == "gradient" and r["verdict"] == "pass" for r in found)


def accept_conventions(lab):
    """Per-layer scaling that the model undoes is the candidate's convention, not an error, judged per
    component: when the failing dW, db, R{dW}, R{db} that carry a factor all carry one and the same and
    the model's gradient is right (its net turns the factor into the right gradient; where another bug
    breaks that gradient, ``confirm_layer_causes`` shows it on ae's layers given the same factor), those
    records become notes (``take_out_convention``)."""
    for net in {r["net"] for r in lab.records}:
        mine = [r for r in lab.records if r["net"] == net]
        factors = {round(r["factor"], 12) for r in _scaled(mine) if r.get("factor")}
        if len(factors) != 1:
            continue
        factor, columns = factors.pop(), lab.configs[net].layer_batch
        # a factor 1/columns (or columns) is the layer's own 1/N (N), whatever N is
        name = ("1/N" if abs(factor * columns - 1) <= diagnosis.NAMED_FACTOR else
                "N" if abs(factor / columns - 1) <= diagnosis.NAMED_FACTOR else
                diagnosis.factor_name(factor, columns)[0] or f"{factor:.6g}")
        lab.layer_factor[net] = (factor, name)
        if _gradient_passes(mine):
            take_out_convention(lab, net)


def _scaled(found):
    return [r for r in found if r["stage"] in ("backward", "Rp_backward") and r["verdict"] == "fail"
            and r["quantity"] in SCALED]


def take_out_convention(lab, net):
    """The records of a net's layers judged with its per-layer factor taken out: those that carry it become
    notes; every other one is judged again without it, so a bug of its own is named at its place, with
    the figure it has without the convention.  Where rounding remains once the factor is removed (a
    float32 pass), a record stays a failure whose figure is that remainder."""
    factor, name = lab.layer_factor[net]
    columns = lab.configs[net].layer_batch
    lab.layer_convention[net] = name
    convention = (f"{name} times the reference inside each layer (batch of {columns} columns), "
                  "undone by the model (it makes the right gradient of them): the implementation's "
                  "convention, not an error")
    for r in _scaled([r for r in lab.records if r["net"] == net]):
        if not r.get("factor"):  # wrong for a reason of its own: judged without the convention
            if id(r) not in lab.judged:  # of another shape: said as it is
                continue
            theirs, exact, n, matrix, hypotheses = lab.judged[id(r)]
            theirs = theirs / factor
            r["measured"] = float(np.linalg.norm(theirs - exact) / (np.linalg.norm(exact) or 1))
            r["diagnosis"], _, r["residual"] = diagnosis.diagnose_with_residual(theirs, exact, n, matrix, hypotheses)
            if r["residual"] is None:
                r["residual"] = r["measured"]
        elif round(r["factor"], 12) != factor:
            continue
        if (r["measured"] if r.get("factor") is None else r["residual"]) <= r["threshold"]:
            r["verdict"], r["reason"] = "note", convention
            r["diagnosis"] = None
        else:  # what remains is float32 rounding, or a finding of its own
            if r.get("factor"):
                r["diagnosis"] = diagnosis.SINGLE_SENTENCE if r["residual"] <= diagnosis.SINGLE else None
            r["note"] = convention
            r["convention"] = f"{name} times the reference inside each layer"
            if not r["diagnosis"]:
                r["reason"] = f"differs from the reference once the convention ({r['convention']}) is taken out"


def name_batch_factors(lab):
    """A factor 2 (1/2) at a batch of two is named as the same place's factor in a larger batch is: N
    (1/N) when there it is N (1/N), so one cause is one line."""
    named = {(r["where"], r["quantity"]): r["diagnosis"] for r in lab.records
             if r["verdict"] == "fail" and str(r.get("diagnosis")).startswith(("is N times", "is 1/N times"))}
    for r in lab.records:
        if (r["verdict"] == "fail" and r.get("batch") == 2 and (r["where"], r["quantity"]) in named
                and str(r.get("diagnosis")).startswith(("is 2 times", "is 1/2 times"))
                and named[r["where"], r["quantity"]].startswith("is N" if r["factor"] == 2 else "is 1/N")):
            r["diagnosis"] = named[r["where"], r["quantity"]]
