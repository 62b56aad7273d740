"""The lab's stage "model" on a candidate (``python -m checks --engine``): its Autoencoder on its own
layers (or the stand-ins the lab gives it), against ae's at 50 digits with the same weights.

Checked: loss and gradient; Hv and GNv in every call order the API allows (GNv before any Hv, GNv with a
direction other than the last Hv's, Hv twice, Hv after GNv, products after ``compute_loss`` on other data
of another batch size); ``compute_loss`` on one array refilled in place (a result kept by ``id()``);
``get_activations`` of every layer; and ``checks.verify`` on the candidate's own loss, gradient and Hv
where the net asks for it.  A wrong product is tried against the classic state bugs (another direction's
value, the other product, the previous data, a batch size kept from an earlier call) and the layers'
blocks of the flat vector in another order.
"""

import itertools

import mpmath
import numpy as np

import ae
from ae import numeric
from checks import candidate, diagnosis, findings, remote
from checks.verify import VerifyError, verify


class FlatLayout:
    """The candidate's flat weight vector against ae's: ``layouts`` the probed (perm, bias) of each layer."""

    def __init__(self, layouts):
        offsets = np.cumsum([0] + [len(p) for p, _ in layouts])
        self.perm = np.concatenate([offset + p for offset, (p, _) in zip(offsets, layouts)])  # theirs -> ours
        self.sizes = [len(p) for p, _ in layouts]

    def to_theirs(self, v):
        return np.asarray(v, dtype=float)[self.perm]

    def to_ours(self, v):
        try:
            v = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            return v  # compare() says what it is
        if v.size != len(self.perm):
            return v  # compare() names the wrong length
        out = np.empty(len(self.perm))
        out[self.perm] = v
        return out

    def block_orders(self, value):
        """(sentence, ``value`` with the layers' blocks in another order) for every other order; lazily,
        since only a wrong result is tried against them."""
        blocks = np.split(self.to_theirs(value), np.cumsum(self.sizes)[:-1])
        for order in itertools.permutations(range(len(blocks))):
            if order != tuple(range(len(blocks))):
                yield (f"holds the layers' blocks in the order {', '.join(map(str, order))}",
                       self.to_ours(np.concatenate([blocks[k] for k in order])))


def check(lab, widths, letters, layouts):
    biases = [bias for _, bias in layouts]
    layers = [lab.new_layer("model", f"layer {k}", shape, g, k, bias)
              for k, (shape, g, bias) in enumerate(zip(zip(widths, widths[1:]), letters, biases))]
    if any(layer is candidate.FAILED for layer in layers):
        return
    model = lab.call("model", "model", lab.modules["autoencoder"].Autoencoder, layers)
    if model is candidate.FAILED:
        return
    setter = getattr(model, "set_weights", None) or getattr(getattr(model, "net", None), "set_weights", None)
    if setter is None:
        lab.failure("model", "model", "set_weights", "neither the model nor model.net has set_weights")
        return
    layout = FlatLayout(layouts)

    ours = ae.Autoencoder([ae.FCLayer(shape, candidate.reference_activation(g), use_bias=b)
                           for shape, g, b in zip(zip(widths, widths[1:]), letters, biases)])
    w = ours.init_weights(lab.seed) + 0.1 * lab.rng.standard_normal(ours.params_number)
    p, q = lab.rng.standard_normal((2, ours.params_number))
    # the other data has three more columns (never twice as many): a batch size kept from an earlier
    # compute_loss shows, and is not taken for a factor 2
    X, X2 = lab.rng.random((widths[0], lab.config.batch)), lab.rng.random((widths[0], lab.config.batch + 3))
    exact = {}
    with mpmath.workdps(findings.MP_DPS):
        mp = numeric.to_mp
        ours.set_weights(mp(w))
        for data_name, data in (("X", X), ("X2", X2)):
            exact[data_name, "loss"], exact[data_name, "gradient"] = ours.compute_loss(mp(data))
            for d_name, d in (("p", p), ("q", q)):
                exact[data_name, "Hv", d_name] = ours.compute_hessvec(mp(d))
                exact[data_name, "GNv", d_name] = ours.compute_gaussnewtonvec(mp(d))
            exact[data_name, "activations"] = [(ours.net.get_activations(k), layer.get_preactivations()[0])
                                               for k, layer in enumerate(ours.layers)]
    if lab.call("model", "model set_weights", setter, layout.to_theirs(w)) is candidate.FAILED:
        return
    result = lab.call("model", "model compute_loss", model.compute_loss, X.copy())
    if result is candidate.FAILED:
        return
    n = X.shape[1]

    lab.compare("model", "model", "loss", np.float64(result[0]), exact["X", "loss"], n=n)
    lab.compare("model", "model", "gradient", layout.to_ours(result[1]), exact["X", "gradient"], n=n,
                hypotheses=layout.block_orders(exact["X", "gradient"]))
    name_loss_factor(lab, *lab.records[-2:])
    # every call order the API allows (GNv first, before any Hv), each product against its own
    # reference: state left by an earlier call (a GNv reusing the last Hv's R-forward pass, a Hessian
    # state overwritten by GNv, a product at the data before the last compute_loss) shows.  The first
    # Hv follows a fresh compute_loss, so state GNv leaves shows in "Hv after GNv" alone
    directions = {"p": p, "q": q}
    call_in_order(lab, model, "X", [("GNv", "GNv", "p")], directions, exact, layout, n)
    if lab.call("model", "model compute_loss", model.compute_loss, X.copy()) is candidate.FAILED:
        return
    calls = [("Hv", "Hv", "p"), ("Hv with another direction", "Hv", "q"),
             ("GNv with a direction other than the last Hv's", "GNv", "p"), ("Hv after GNv", "Hv", "p")]
    call_in_order(lab, model, "X", calls, directions, exact, layout, n)
    if lab.call("model", "model compute_loss", model.compute_loss, X2.copy()) is not candidate.FAILED:
        call_in_order(lab, model, "X2", [("Hv after compute_loss on other data", "Hv", "q"),
                                         ("GNv after compute_loss on other data", "GNv", "p")],
                      directions, exact, layout, X2.shape[1])
        check_activations_of(lab, model, exact["X2", "activations"])
        check_refilled_batch(lab, model, X2, exact, layout)
    if lab.config.verify and lab.call("model", "model set_weights", setter,
                                      layout.to_theirs(w)) is not candidate.FAILED:
        verify_model(lab, model, setter, X)


def call_in_order(lab, model, data, calls, directions, exact, layout, n):
    """The products in the order of ``calls``; a product wrong after a call and right before it (the
    same product, direction and data) is diagnosed as state that call leaves."""
    passed, previous = {}, None
    for label, quantity, direction in calls:
        method = model.compute_gaussnewtonvec if quantity == "GNv" else model.compute_hessvec
        value = lab.call("model", f"model {method.__name__}", method, layout.to_theirs(directions[direction]))
        if value is candidate.FAILED:
            continue
        # the classic state bugs, as hypotheses: another direction's values, the other product
        other = "q" if direction == "p" else "p"
        hypotheses = [(f"equals the {quantity} of the direction of an earlier call", exact[data, quantity, other]),
                      (f"equals the {'Hv' if quantity == 'GNv' else 'GNv'} of this direction",
                       exact[data, "Hv" if quantity == "GNv" else "GNv", direction])]
        if data == "X2":
            hypotheses += [("equals the value at the data of the previous compute_loss",
                            exact["X", quantity, direction]),
                           *stale_batch(lab, exact[data, quantity, direction], n)]
        lab.compare("model", "model", label, layout.to_ours(value), exact[data, quantity, direction],
                    hypotheses=itertools.chain(hypotheses, layout.block_orders(exact[data, quantity, direction])), n=n)
        record = lab.records[-1]
        if record["verdict"] == "pass":
            passed.setdefault((quantity, direction), label)
        elif (quantity, direction) in passed and not record.get("diagnosis"):
            record["diagnosis"] = (f"is wrong only after the call before it ({previous}); right as "
                                   f"{passed[quantity, direction]!r}: that call leaves state {quantity} reads")
        previous = label


def name_loss_factor(lab, loss, gradient):
    """A wrong loss is c times the reference where its gradient is: one number alone is a multiple of any
    other, so only the gradient can say that c is a factor."""
    c = gradient.get("factor")
    if loss["verdict"] != "fail" or loss.get("diagnosis") or not c or id(loss) not in lab.judged:
        return
    theirs, exact = (np.ravel(a) for a in lab.judged[id(loss)][:2])
    if diagnosis.close(theirs, c * exact):
        loss["diagnosis"], loss["factor"], loss["residual"] = (gradient["diagnosis"], c,
                                                               diagnosis.distance(theirs, c * exact))


def stale_batch(lab, value, n):
    """[The hypothesis that a result at a batch of ``n`` columns divides by the N of the first
    compute_loss (the net's batch) instead]; none after a batch of one, where it is N times the value
    (the 1/N missing) whatever the cause."""
    first = lab.config.batch
    return [(f"divides by the batch size N of an earlier compute_loss ({first}), not this one's ({n})",
             numeric.to_float64(np.asarray(value)) * n / first)] if first > 1 else []


def check_refilled_batch(lab, model, X2, exact, layout):
    """compute_loss on one array object, refilled in place with other data between two calls: the
    second loss and gradient are those of the new contents."""
    n2 = X2.shape[1]
    held = lab.call("model", "model compute_loss", lab.modules["stand_ins"].HeldBatch, X2[:, ::-1].copy(),
                    record=False)  # its columns in another order: other data of the same shape
    if held is candidate.FAILED or lab.call("model", "model compute_loss", held.compute_loss,
                                            model) is candidate.FAILED:
        return
    if lab.call("model", "model compute_loss", held.refill, X2, record=False) is candidate.FAILED:
        return
    result = lab.call("model", "model compute_loss", held.compute_loss, model)
    if result is candidate.FAILED:
        return
    fresh = lab.call("model", "model compute_loss", model.compute_loss, X2.copy(), record=False)
    for k, quantity in enumerate(("loss", "gradient")):
        value = np.float64(result[0]) if k == 0 else layout.to_ours(result[1])
        lab.compare("model", "model", f"{quantity} on the same array refilled in place", value,
                    exact["X2", quantity], hypotheses=stale_batch(lab, exact["X2", quantity], n2), n=n2)
        record = lab.records[-1]
        again = (np.ravel(np.float64(fresh[0]) if k == 0 else layout.to_ours(fresh[1]))
                 if fresh is not candidate.FAILED else None)
        right = np.ravel(numeric.to_float64(np.asarray(exact["X2", quantity])))
        if (record["verdict"] == "fail" and not record.get("diagnosis") and again is not None
                and again.shape == right.shape and diagnosis.close(again, right)):
            record["diagnosis"] = ("is wrong on an array refilled in place with new data, right on a fresh "
                                   "array of the same values: a result kept by the array's identity (id()), "
                                   "not its values")


def check_activations_of(lab, model, activations):
    """FFNet.get_activations(k) after the last forward pass: the outputs z of layer k."""
    net = getattr(model, "net", model)
    if not hasattr(net, "get_activations"):
        lab.failure("model", "model", "get_activations", "neither the model nor model.net has get_activations")
        return
    for k, (exact, preactivations) in enumerate(activations):
        value = lab.call("model", "model get_activations", net.get_activations, k)
        if value is not candidate.FAILED:
            hypotheses = [("returns the pre-activations u, not the outputs z = g(u)", preactivations)]
            if k + 1 < len(activations):
                hypotheses.append(("returns the outputs of layer k + 1, not of layer k", activations[k + 1][0]))
            lab.compare("model", "model", f"get_activations({k})", value, exact, hypotheses=hypotheses)


def verify_model(lab, model, setter, X):
    """checks.verify on the candidate's own loss, gradient and Hv, in its own layout."""
    # set the weights and ask in one round trip; an object array of mpmath numbers raises ChannelError:
    # it is not carried to the worker
    def fun(v):
        return remote.sequence((setter, [v]), (model.compute_loss, [X]))[0]

    def grad(v):
        return remote.sequence((setter, [v]), (model.compute_loss, [X]))[1]

    def hvp(v, p):
        return remote.sequence((setter, [v]), (model.compute_loss, [X]), (model.compute_hessvec, [p]))

    def fun_many(points):  # one round trip for the points of one reference
        calls = [call for v in points for call in ((setter, [v]), (model.compute_loss, [X]))]
        return [loss for loss, _ in remote.sequence(*calls, every=True)[1::2]]

    getter = getattr(model, "get_weights", None) or getattr(model, "net", None).get_weights
    x = np.array(getter(), dtype=float)
    try:
        result = verify(fun, x, grad=grad, hvp=hvp, seed=lab.seed, name="model", fun_many=fun_many)
    except VerifyError as error:
        lab.failure("verify", "model", "verify", str(error))
        return
    finally:
        lab.call("verify", "model set_weights", setter, x, record=False)
    for record in result.records:
        lab.records.append({**record, "stage": "verify", "where": f"model ({record['check']})",
                            "layer": None, "engine": lab.name, "net": lab.net})

