"""Detection power: how small an error in one entry each check catches.

The engine's result v (gradient, Hv or GNv) is mutated in one entry,
v_k -> v_k (1 + delta), for delta = 1e-2 ... 1e-14, and each check is asked
whether it sees a problem.  Two entries are mutated in turn: the one of
median magnitude (a typical entry) and the largest one.  Reported per check:
the smallest delta such that every delta at or above it was caught, and
whether the unmutated result raised a false alarm (it must not).

Checks compared:

* ``ae-lab``: the vector against a reference assembled by complex steps
  (h = 1e-30; for GNv, J^T J p / N with J from complex steps), relative
  error of the whole vector <= 1e-14, as in the lab's verdicts;
* ``ae-lab directional``: one random direction u, u.v against the complex
  step of the scalar u.(reference) (the cheap check: one extra evaluation),
  error relative to ||u|| ||v|| <= 1e-14.  Its power on entry k scales with
  |u_k|: an entry where the random direction is nearly zero is nearly
  invisible to it (the weakness of every one-direction check);
* ``gradcheck``: torch.autograd.gradcheck's rule, entry by entry
  |v_k - fd_k| <= atol + rtol |fd_k| with central differences at
  eps = 1e-6, atol = 1e-5, rtol = 1e-3 (its defaults).
"""

import numpy as np

from checks.estimators import central_difference, complex_step
from checks.model_functions import basis_vector, dense_matrix, gradient_at, loss_at, outputs_at

DELTAS = [10.0**-k for k in range(2, 15)]
THRESHOLD = 1e-14
GRADCHECK = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}


def references(model, inputs, w, p, quantity, estimator, h):
    """The quantity as a vector, assembled entry by entry from an estimator."""
    if quantity == "gradient":
        loss = loss_at(model, inputs)
        return dense_matrix(lambda e: np.atleast_1d(estimator(loss, w, e, h)), w)[0]
    if quantity == "Hv":
        return estimator(gradient_at(model, inputs), w, p, h)
    outputs = outputs_at(model, inputs)
    J = np.stack([estimator(outputs, w, basis_vector(k, w), h) for k in range(w.shape[0])], -1)
    return np.einsum("dnk,dn->k", J, J @ p) / inputs.shape[1]


def engine_value(model, inputs, w, p, quantity):
    model.set_weights(w)
    _, grad = model.compute_loss(inputs)
    if quantity == "gradient":
        return grad
    return model.compute_hessvec(p) if quantity == "Hv" else model.compute_gaussnewtonvec(p)


def detection_power(model, inputs, w, p, quantity, seed=0):
    """{check: {entry: {"smallest_caught": delta or None, "false_alarm": bool}}}."""
    exact = engine_value(model, inputs, w, p, quantity)
    reference = references(model, inputs, w, p, quantity, complex_step, 1e-30)
    fd = references(model, inputs, w, p, quantity, central_difference, GRADCHECK["eps"])
    u = np.random.default_rng(seed).standard_normal(exact.shape)
    if quantity == "gradient":  # the cheap check: one complex step along u
        u_reference = complex_step(loss_at(model, inputs), w, u, 1e-30)
    else:
        u_reference = u @ reference
    model.set_weights(w)

    checks = {
        "ae-lab": lambda v: np.linalg.norm(v - reference) > THRESHOLD * np.linalg.norm(reference),
        # scaled like the sweeps: by the largest value u.v can take, ||u|| ||v||
        "ae-lab directional": lambda v: (abs(u @ v - u_reference)
                                         > THRESHOLD * np.linalg.norm(u) * np.linalg.norm(reference)),
        "gradcheck": lambda v: bool(np.any(np.abs(v - fd) > GRADCHECK["atol"]
                                           + GRADCHECK["rtol"] * np.abs(fd))),
    }
    magnitude = np.abs(exact)
    nonzero = np.nonzero(magnitude)[0]
    entries = {
        "median entry": int(nonzero[np.argsort(magnitude[nonzero])[len(nonzero) // 2]]),
        "largest entry": int(np.argmax(magnitude)),
    }
    result = {}
    for name, caught in checks.items():
        result[name] = {}
        for label, k in entries.items():
            hits = []
            for delta in DELTAS:
                mutated = exact.copy()
                mutated[k] *= 1 + delta
                hits.append(bool(caught(mutated)))
            smallest = None
            for delta, hit in zip(DELTAS, hits):  # DELTAS go from large to small
                if not hit:
                    break
                smallest = delta
            result[name][label] = {"entry": k, "relative_size": float(magnitude[k] / np.linalg.norm(exact)),
                                   "caught": hits, "smallest_caught": smallest,
                                   "false_alarm": bool(caught(exact))}
    return result
