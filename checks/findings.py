"""What the lab says of a candidate (``python -m checks --engine``), from its records: root causes first,
a failure listed under the earlier one that explains it, one line for one cause however many layers and
nets show it (and, where no cause is named, one line per net for a computation of the model wrong in every
call order), each figure relative with its target; the notes and what could not run after them."""

import re

from checks import candidate_optim

ACTIVATIONS = {"t": "Tanh", "s": "Sigmoid", "l": "Linear", "r": "Relu", "k": "LeakyRelu"}  # letter -> class name
MP_DPS = 50  # the digits of the lab's reference
# checks.verify refusing these checks for these reasons (the number type, not a bug): what rules them out
NUMBER_TYPE_CHECKS = {
    "complex step": ("not complex-analytic", "its complex-step checks (the implementation computes in real "
                     "floats: complex numbers lose their imaginary part)"),
    "complex step of grad": ("not complex-analytic", None),  # said with the complex step
    "50 digits": ("float64 only", "its 50-digit checks (mpmath numbers are not carried to the candidate's worker)"),
}
LAYER_STAGES = ("forward", "backward", "Rp_forward", "Rp_backward")
STAGES = ("activation", "layout", "forward", "backward", "Rp_forward", "Rp_backward", "model", "verify",
          "optimizers")


def lines(records):
    """Lines, root causes first; a failure an earlier one explains is listed under it."""
    failed = [r for r in records if r["verdict"] in ("fail", "not implemented")]
    order = sorted(failed, key=lambda r: (STAGES.index(r["stage"]), r.get("layer") or 0))
    roots, under = [], {}
    for r in order:
        cause = next((root for root in roots if _explains(root, r)), None)
        if cause is None:
            roots.append(r)
            under[id(r)] = []
        else:
            under[id(cause)].append(r)
    grouped = {}  # one root per place and diagnosis: the quantities it explains are named together
    for root in roots:
        if root.get("diagnosis"):
            key = (root["net"], root["where"], root["diagnosis"])
        elif root["stage"] == "model" and root.get("measured") is not None and not root.get("reason"):
            key = (root["net"], root["where"], _computation(root["quantity"]))  # wrong in every call order
        else:
            key = id(root)
        grouped.setdefault(key, []).append(root)
    # the same finding in several layers or nets is one root cause (the layer's code): one line
    merged = {}
    for group in grouped.values():
        root = group[0]
        text = _line(root, [r["quantity"] for r in group]).split("] ", 1)[-1]
        general, key = text, text
        if root.get("diagnosis") or root.get("reason"):  # by what it is, not where, how far or how large
            general = re.sub(r" \(off by [^)]*\)$", "", re.sub(r"^layer \d+(?=[ :])", "layer K", text))
            # ... nor which of a pass's quantities show it
            key = re.sub(r"\d+", "#", f"{re.sub(r'^layer [0-9]+', 'layer K', root['where'])}: "
                                      f"{root.get('diagnosis') or root.get('reason')}")
        merged.setdefault(key, []).append((general, group))
    lines = []
    for variants in merged.values():
        groups = [group for _, group in variants]
        quantities = list(dict.fromkeys(r["quantity"] for group in groups for r in group))
        # each place's text naming every quantity any place showed the finding in
        texts = [re.sub(r"^layer \d+(?=[ :])", "layer K", re.sub(r" \(off by [^)]*\)$", "", _line(
            group[0], quantities if len(groups) > 1 else [r["quantity"] for r in group]).split("] ", 1)[-1]))
            for group in groups]
        general = texts[0]
        if len(set(texts)) > 1:  # the same finding with each layer's own sizes
            first = groups[0][0]
            layer = f"layer {first['layer']} of " if first.get("layer") is not None else ""
            general += f" (the figures of {layer}net {first.get('net')})"
        roots_here = [g[0] for g in groups]
        layers = sorted({r["layer"] for r in roots_here if r.get("layer") is not None})
        nets = sorted({r["net"] for r in roots_here if r.get("net")})
        if len(groups) == 1:
            line = _line(roots_here[0], [r["quantity"] for r in groups[0]])
            if len(groups[0]) > 1 and not roots_here[0].get("diagnosis"):  # undiagnosed: the largest figure
                line = re.sub(r" off by .*$", "", line) + _merged_figure(groups[0])
        else:
            if layers:
                where = f"layers {', '.join(map(str, layers))}" if len(layers) > 1 else f"layer {layers[0]}"
                general = general.replace("layer K", where, 1)
            prefix = (f"[nets {'; '.join(nets)}] " if len(nets) > 1 else f"[net {nets[0]}] " if nets else "")
            line = prefix + general + _merged_figure(roots_here)
        lines.append(line)
        following = {}
        for r in (r for g in groups for root in g for r in under[id(root)]):  # one line per place and quantity
            following.setdefault((r["where"], r["quantity"]), []).append(r)
        for group in following.values():
            more = f" (and {len(group) - 1} more like it)" if len(group) > 1 else ""
            unshown = (f" [by the order of the passes; not shown on ae's layers, where the model "
                       f"{group[0]['unshown']}]"
                       if group[0].get("unshown") and "layers" not in group[0].get("follows", ()) else "")
            lines.append(f"    follows from it: {_line(group[0])}{more}{unshown}")
    skipped = sorted({f"{r['where']}: {r['quantity']} cannot run: {r['reason']}" for r in records
                      if r["verdict"] == "cannot run" and not _refused_number_type(r)})
    lines += [f"cannot run: {s}" for s in skipped]
    lines += _number_type_note(records)
    notes = {}  # one line per reason, naming every place it applies to
    for r in records:
        if r["verdict"] == "note" or r.get("note"):
            places = notes.setdefault(r.get("note") or r.get("reason"), [])
            place = f"{r['where']} {r['quantity']}".replace(" use_bias", "")
            if place not in places:
                places.append(place)
    return lines + [f"note: {reason}: {', '.join(places)}" for reason, places in sorted(notes.items())]


def _computation(quantity):
    """The model's computation a quantity comes from: compute_loss for loss and gradient, Hv or GNv in any
    call order, get_activations of any layer."""
    first = re.split(r"[ (]", quantity)[0]
    return "compute_loss" if first in ("loss", "gradient") else first


def _explains(root, record):
    """Whether a failure follows from an earlier one: an activation's or the layers' where substitution
    showed it (``follows``; without a substitution, what calls the activation's failed method; the model
    of a net where ae's layers could not stand in, by the order of the passes); a layer's pass under the
    same layer's later passes; the layout under everything of its net."""
    if root["stage"] == record["stage"] == "optimizers":
        return candidate_optim.explains(root, record)
    if root["quantity"] == "use_bias" and root["verdict"] == "fail":  # probed with a bias it should not have
        return root["net"] == record["net"]
    if root["stage"] == record["stage"] == "model":  # the loss's backward state is every product's too
        return root["quantity"] in ("loss", "gradient") and record["quantity"] not in ("loss", "gradient")
    if STAGES.index(root["stage"]) >= STAGES.index(record["stage"]):
        return False
    if root["stage"] == "activation":
        if root.get("substituted"):  # shown: with ae's activation in its place, the record passed
            return root["letter"] in record.get("follows", ())
        return _uses(record, root)
    if root["net"] != record["net"]:
        return False
    if root.get("substituted_layers") and record["stage"] in ("model", "verify", "optimizers"):
        # shown: on ae's layers, the record passed; or not shown, because the candidate's model reads what
        # only its own layer has (then the dependency order stands, and the line says so)
        return "layers" in record.get("follows", ()) or bool(record.get("unshown"))
    if record["stage"] in ("model", "verify", "optimizers") or root["stage"] == "layout":
        return True
    return root.get("layer") == record.get("layer")


# which computations call an activation's method: (stages, model quantities) that read it
CALLED_BY = {
    "val": None,  # everything downstream
    "deriv": ({"backward", "Rp_forward", "Rp_backward", "verify", "optimizers"},
              lambda quantity: quantity not in ("loss",) and not quantity.startswith("get_activations")),
    "second_deriv": ({"Rp_backward"}, lambda quantity: quantity.startswith("Hv")),  # GNv never reads it
}


def _uses(record, root):
    """Whether the computation of ``record`` calls the activation method that failed in ``root``: a net or
    layer without that activation, or a pass that never calls the method, cannot follow from it."""
    parts = root.get("where", "").split()  # "activation <class name> <method>"
    if len(parts) < 3 or parts[2] not in CALLED_BY:
        return True  # the class itself could not be built: everything with it
    letter = next((g for g, name in ACTIVATIONS.items() if name.lower() in parts[1].lower()
                   and ("leaky" in parts[1].lower()) == (g == "k")), None)
    letters = record.get("letters")
    if letter and letters:
        used = letters[record["layer"]] if record["stage"] in LAYER_STAGES and record.get("layer") is not None \
            else letters
        if letter not in used:
            return False
    if CALLED_BY[parts[2]] is None:
        return True
    stages, model_quantity = CALLED_BY[parts[2]]
    if record["stage"] == "model":
        return model_quantity(record["quantity"])
    if record["stage"] == "verify":
        return parts[2] != "second_deriv" or record["quantity"] == "Hv"
    return record["stage"] in stages


def _refused_number_type(r):
    """Whether a record is checks.verify refusing a check for the number type the candidate computes in."""
    return (r["verdict"] == "cannot run" and r["stage"] == "verify" and r["check"] in NUMBER_TYPE_CHECKS
            and NUMBER_TYPE_CHECKS[r["check"]][0] in r["reason"])


def _number_type_note(found):
    """One note, in place of a "cannot run" line per net and product, for the checks of checks.verify
    refused for the number type: why, and what judged instead."""
    refused = sorted({r["check"] for r in found if _refused_number_type(r) and NUMBER_TYPE_CHECKS[r["check"]][1]})
    if not refused:
        return []
    without = " and ".join(NUMBER_TYPE_CHECKS[check][1] for check in refused)
    return [f"note: checks.verify judged the model's loss, gradient and Hv without {without}: finite differences, "
            "Richardson extrapolation, references from the loss alone, the Taylor test and symmetry judged them "
            f"instead; every other stage's reference is ae's engine at {MP_DPS} digits, unaffected"]


def _merged_figure(found):
    """The figure of one finding in several places: the largest distance; once a diagnosis or a
    convention is accounted for, the largest that remains, with its target."""
    measured = [r["residual"] if r.get("convention") else r["measured"] for r in found
                if r.get("measured") is not None]
    if not measured:
        return ""
    left = [r["residual"] for r in found if r.get("diagnosis") and r.get("residual") is not None]
    target = f"target {found[0]['threshold']:.0e})"
    return f" (off by up to {max(measured):.1e}" + (
        f"; once that is accounted for, up to {max(left):.1e}, {target}" if left else f", {target}")


def _figure(r):
    """How far off an undiagnosed result is, relative, with its target: normwise where a check judged
    entry by entry (``relative``), and near what (``nearest``)."""
    if r.get("relative") is not None:
        return (f"off by {r['relative']:.1e} relative, normwise (its worst entry is {r['measured']:.1e} times "
                f"its rounding tolerance, target {r['threshold']:.0e})")
    text = f"off by {r['measured']:.1e} (target {r['threshold']:.0e})"
    return text + (f" from the nearest reference, {r['nearest']}" if r.get("nearest") else "")


def _line(r, quantities=None):
    net = f"[net {r['net']}] " if r.get("net") else ""
    if r["quantity"] in ("raised", "not implemented", "crashed", "timed out", "malformed answer"):
        return f"{net}{r['where']}: {r['reason']}"
    what = r.get("diagnosis") or r.get("reason") or _figure(r)
    if r.get("diagnosis") and r.get("measured") is None:  # a result of another shape that a hypothesis explains
        what += f" ({r['reason']})"
    elif r.get("convention"):
        what += f" (off by {r['residual']:.1e}, target {r['threshold']:.0e})"
    elif r.get("diagnosis"):
        what += f" (off by {r['measured']:.1e}" + (
            f"; once that is accounted for, off by {r['residual']:.1e}, target {r['threshold']:.0e})"
            if r.get("residual") is not None else f", target {r['threshold']:.0e})")
    names = ", ".join(quantities) if quantities and len(quantities) > 1 else r["quantity"]
    return f"{net}{r['where']}: {names} {what}"
