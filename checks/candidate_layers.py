"""The lab's layer stages on a candidate (``python -m checks --engine``): its weight layout probed, then
every layer's four passes, each against ae's layer at 50 digits with the same weights.

The layout is found by probing ``set_weights`` with unit vectors (any order of W, W^T and a bias column or
vector), never assumed.  Each pass runs on a fresh layer object that ran only the passes it needs
(forward; backward: dL/dinputs, dW, db; Rp_forward; Rp_backward: R{dL/dinputs}, R{dW}, R{db}), so state
left by another pass can neither cause nor hide a finding; a pass that changes the state an earlier pass
stored (an Rp_forward overwriting the stored input) is named.  A wrong result is tried against the
pass's formula with one term left out (``formula_terms``).
"""

import mpmath
import numpy as np

import ae
from ae import numeric
from checks import candidate, findings, records, remote
from checks.loader import EngineError


def probe_layout(lab, index, shape, use_bias=True):
    """(where each entry of the candidate's flat block sits in ours, whether the layer has a bias).

    Probed with unit vectors, so W, W^T, a bias column or a bias vector in any order is found; a
    layer whose get_params_number() ignores use_bias=True is probed without a bias (a note); one that
    counts a bias with use_bias=False is a failure, probed with the bias it keeps.
    """
    n_in, n_out = shape
    linear = lab.activations.get("l") or lab.modules["stand_ins"].LinearActivationFunction
    layer = lab.modules["layers"].FCLayer(shape, linear(), use_bias=use_bias)
    size = layer.get_params_number()
    if size == n_out * (n_in + 1):
        bias = True
        if not use_bias:
            lab.failure("layout", f"layer {index}", "use_bias",
                        "the layer keeps a bias with use_bias=False (get_params_number() counts one)", index)
    elif size == n_out * n_in:
        bias = False
        if use_bias:
            lab.failure("layout", f"layer {index}", "use_bias", "the layer ignores use_bias=True "
                        "(get_params_number() counts no bias); examined without one", index, verdict="note")
    else:
        raise EngineError(f"get_params_number() is {size}; a {n_in}->{n_out} layer has "
                          f"{n_out * (n_in + 1)} with a bias, {n_out * n_in} without")
    probe = np.hstack([np.eye(n_in), np.zeros((n_in, 1))])  # unit inputs, then zero input
    ours = np.empty(size, dtype=int)
    for k in range(size):
        unit = np.zeros(size)
        unit[k] = 1
        layer.set_weights(unit)
        U = np.asarray(layer.forward(probe.copy()), dtype=float)
        b = U[:, n_in]
        W = U[:, :n_in] - b[:, None]
        if bias and np.count_nonzero(b) == 1 and not W.any():
            ours[k] = n_in * n_out + int(np.flatnonzero(b)[0])
        elif np.count_nonzero(W) == 1 and not b.any():
            o, i = np.argwhere(W)[0]
            ours[k] = o * n_in + i
        else:
            raise EngineError(f"set_weights with unit vector {k} does not set one weight or bias")
    if sorted(ours) != list(range(size)):
        raise EngineError("two entries of the weight vector set the same weight")
    return ours, bias


def check(lab, widths, letters, layouts):
    for k, (shape, letter, found) in enumerate(zip(zip(widths, widths[1:]), letters, layouts)):
        if found is not None:
            check_layer(lab, k, shape, letter, *found)


def check_layer(lab, k, shape, letter, perm, bias):
    n_in, n_out = shape
    where = f"layer {k}"
    size = len(perm)
    w_ours, p_ours = lab.rng.standard_normal((2, size)) * 0.7
    columns = lab.config.layer_batch
    Z, RZ = lab.rng.standard_normal((2, n_in, columns))
    D, RD = lab.rng.standard_normal((2, n_out, columns))
    with mpmath.workdps(findings.MP_DPS):
        mp = numeric.to_mp
        ours = ae.FCLayer(shape, candidate.reference_activation(letter), use_bias=bias)
        ours.set_weights(mp(w_ours))
        ours.set_direction(mp(p_ours))
        out = ours.forward(mp(Z))
        dZ, dW = ours.backward(mp(D))
        Rout = ours.Rp_forward(mp(RZ))
        RdZ, RdW = ours.Rp_backward(mp(RD))
        terms = formula_terms(ours, mp(Z), mp(RZ), mp(D), mp(RD))
    # each pass on a fresh object that ran only what it needs: no state of another pass leaks in
    prerequisites = {"forward": [], "backward": [("forward", Z)], "Rp_forward": [("forward", Z)],
                     "Rp_backward": [("forward", Z), ("backward", D), ("Rp_forward", RZ)]}
    expected = {"forward": [("outputs", out)], "backward": [("dL/dinputs", dZ), ("weights", dW)],
                "Rp_forward": [("R{outputs}", Rout)], "Rp_backward": [("R{dL/dinputs}", RdZ), ("weights", RdW)]}
    arguments = {"forward": Z, "backward": D, "Rp_forward": RZ, "Rp_backward": RD}
    for name in ("forward", "backward", "Rp_forward", "Rp_backward"):
        layer = lab.new_layer(name, where, shape, letter, k, bias)
        # `is`, never `in`: a setter may return an array, and `candidate.FAILED in (array,)` compares with ==
        if layer is candidate.FAILED or any(result is candidate.FAILED for result in (
                lab.call(name, f"{where} set_weights", layer.set_weights, w_ours[perm], layer=k),
                lab.call(name, f"{where} set_direction", layer.set_direction, p_ours[perm], layer=k))):
            return
        ready, changed = True, []
        for before, argument in prerequisites[name]:
            state = remote.held_arrays(layer)
            if lab.call(name, f"{where} {before}", getattr(layer, before), argument.copy(), layer=k,
                        record=False) is candidate.FAILED:
                lab.records.append(records.cannot_run("engine", name, f"{before} raised first",
                                                      lab.context(name, f"{where} {name}", k)))
                ready = False
                break
            if before == "Rp_forward":  # R-forward must leave what forward and backward stored
                after = remote.held_arrays(layer)
                changed = [a for a, v in state.items() if a in after and not _same_array(after[a], v)]
        if not ready:
            continue
        result = lab.call(name, f"{where} {name}", getattr(layer, name), arguments[name].copy(), layer=k)
        if result is candidate.FAILED:
            if changed:
                state_finding(lab, k, where, changed)
            continue
        values = [result] if len(expected[name]) == 1 else list(result)
        before = len(lab.records)
        for (label, exact), value in zip(expected[name], values):
            compare_pass(lab, name, where, k, label, value, exact, perm, n_in, n_out, terms)
        if changed and any(r["verdict"] == "fail" for r in lab.records[before:]):
            state_finding(lab, k, where, changed)


def state_finding(lab, k, where, changed):
    lab.failure("Rp_forward", f"{where} Rp_forward", "state",
                f"Rp_forward changes the stored {', '.join(changed)} that Rp_backward reads", k)


def compare_pass(lab, name, where, k, label, value, exact, perm, n_in, n_out, terms):
    prefix, close = ("R{d", "}") if name.startswith("Rp") else ("d", "")
    if label != "weights":
        lab.compare(name, f"{where} {name}", label, value, exact, k, hypotheses=terms.get(label, ()),
                    n=lab.config.layer_batch)
        return
    block = np.empty(len(perm))  # the candidate's block, put in our layout, split into W and b
    flat = np.asarray(value, dtype=float).ravel()
    if flat.size != len(perm):
        lab.failure(name, f"{where} {name}", "weights", f"{flat.size} entries, the layer has {len(perm)}", k)
        return
    block[perm] = flat
    exact = numeric.to_float64(np.asarray(exact))
    m = n_in * n_out
    lab.compare(name, f"{where} {name}", f"{prefix}W{close}", block[:m], exact[:m], k, matrix=(n_out, n_in),
                hypotheses=terms.get(f"{prefix}W{close}", ()), n=lab.config.layer_batch)
    if len(perm) > m:
        lab.compare(name, f"{where} {name}", f"{prefix}b{close}", block[m:], exact[m:], k,
                    n=lab.config.layer_batch,
                    hypotheses=terms.get(f"{prefix}b{close}", ()))


def formula_terms(ours, Z, RZ, D, RD):
    """{part: [(sentence, the pass's formula with one term left out)]}: the missing-term hypotheses."""
    U, RU = ours.get_preactivations()
    g1, g2 = ours.afun.deriv(U), ours.afun.second_deriv(U)
    W, PW = ours.W, ours.P_W
    bias = ours.P_b if ours.use_bias else 0
    dU = D * g1
    RdU = RD * g1 + D * g2 * RU
    RdU_first = RD * g1  # R{dU} without its second-order term g''(u) (dL/dz) R{u}
    second = "lacks the second-order term g''(u) dL/dz R{u} of R{dU} = g'(u) R{dL/dz} + g''(u) dL/dz R{u}"
    terms = {
        "outputs": [("applies the activation twice: g(g(u))", ours.afun.val(ours.afun.val(U)))],
        "R{dW}": [("lacks the term dU (R z)^T of R{dW} = R{dU} z^T + dU (R z)^T", (RdU @ Z.T).ravel()),
                  ("lacks the term R{dU} z^T of R{dW} = R{dU} z^T + dU (R z)^T", (dU @ RZ.T).ravel()),
                  (second, (RdU_first @ Z.T + dU @ RZ.T).ravel())],
        "R{db}": [(second, RdU_first.sum(axis=1))],
        "R{dL/dinputs}": [("lacks the term P_W^T dU of R{dL/dinputs} = W^T R{dU} + P_W^T dU", W.T @ RdU),
                          ("lacks the term W^T R{dU} of R{dL/dinputs} = W^T R{dU} + P_W^T dU", PW.T @ dU),
                          (second, W.T @ RdU_first + PW.T @ dU)],
        "R{outputs}": [("lacks the bias direction P_b in R{u} = P_W z + W R{z} + P_b", g1 * (PW @ Z + W @ RZ)),
                       ("lacks the term P_W z of R{u} = P_W z + W R{z} + P_b",
                        g1 * (W @ RZ + bias))],
    }
    if W.shape[0] == W.shape[1]:  # a square layer takes W for W^T without a shape error
        terms["dL/dinputs"] = [("uses W where W^T belongs in dL/dinputs = W^T dU", W @ dU)]
        terms["R{outputs}"].append(("uses P_W^T where P_W belongs in R{u} = P_W z + W R{z} + P_b",
                                    g1 * (PW.T @ Z + W @ RZ + bias)))
    return terms


def _same_array(a, b):
    return a.shape == b.shape and np.array_equal(a, b)
