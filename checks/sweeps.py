"""Error-vs-step sweeps: each estimator's relative error against the engine.

For a quantity (``gradient``: g.p, ``Hv``, ``GNv``) and a step h, an
estimator gives an approximation from values of the loss, the gradient or
the outputs; its relative error against the engine's own value is recorded
for every h.  Float estimators are compared with the engine in the same
dtype (float64, or float32 for the precision ladder, where the reference is
the float64 engine); the 50-digit estimators with the engine run in 50-digit
mpmath.  A step too small for the dtype to represent (h |p| below its
smallest normal number) is not run, and neither is a finite difference whose
step would straddle a ReLU kink (``kink_distance``): their errors are NaN,
and the records say so.
"""

import mpmath
import numpy as np

from ae import numeric
from checks import estimators
from checks.model_functions import basis_vector, gradient_at, kink_distance, loss_at, outputs_at

STEPS = {
    "forward": np.logspace(-1, -16, 31),
    "central": np.logspace(-1, -16, 31),
    # dense where the truncation error is visible, sparse down to 1e-300 after
    "complex": np.concatenate([np.logspace(-1, -16, 31), np.logspace(-20, -300, 15)]),
    # 50-digit arithmetic is slow: coarser grids, still wide enough for the V
    "mp-central": np.logspace(-1, -40, 14),
    "mp-complex": np.concatenate([np.logspace(-1, -31, 11), np.logspace(-50, -300, 6)]),
}
ESTIMATORS = {
    "forward": estimators.forward_difference,
    "central": estimators.central_difference,
    "complex": estimators.complex_step,
    "mp-central": estimators.central_difference,
    "mp-complex": estimators.complex_step,
}
QUANTITIES = ("gradient", "Hv", "GNv")
MP_DPS = 50


def exact_value(model, inputs, w, p, quantity):
    """(value, scale): the engine's value at w along p, in w's type, and the
    float scale its errors are measured against.

    For vectors (Hv, GNv) the scale is the vector's norm.  For the scalar g.p
    it is ||g|| ||p||, the largest value g.p can take for this p: a relative
    error of g.p itself would blow up whenever p happens to be nearly
    orthogonal to g, and say nothing about the gradient.
    """
    model.set_weights(w)
    _, grad = model.compute_loss(inputs)
    if quantity == "gradient":
        norms = [np.linalg.norm(numeric.to_float64(v)) for v in (grad, p)]
        return (grad * p).sum(), float(norms[0] * norms[1])
    value = model.compute_hessvec(p) if quantity == "Hv" else model.compute_gaussnewtonvec(p)
    return value, float(np.linalg.norm(numeric.to_float64(value)))


def estimate(model, inputs, w, p, quantity, estimator, h):
    """An estimator's approximation of a quantity, from values only."""
    if quantity == "gradient":
        return estimator(loss_at(model, inputs), w, p, h)
    if quantity == "Hv":
        return estimator(gradient_at(model, inputs), w, p, h)
    # GNv_k = (1/N) sum (J e_k) . (J p): both Jacobian products estimated
    outputs = outputs_at(model, inputs)
    Jp = estimator(outputs, w, p, h)
    columns = [estimator(outputs, w, basis_vector(k, w), h) for k in range(w.shape[0])]
    return np.array([(c * Jp).sum() for c in columns], dtype=Jp.dtype) / inputs.shape[1]


def _representable(h, p, dtype):
    """False if h |p| would underflow in dtype (the step is below its resolution)."""
    if np.dtype(dtype) == numeric.MP_DTYPE:
        return True
    tiny = np.finfo(dtype).tiny
    return h * float(np.max(np.abs(p))) >= tiny


def step_limit(model, inputs, w, p, quantity):
    """Largest safe finite-difference step: below the nearest kink of every direction used."""
    directions = [p] + ([basis_vector(k, w) for k in range(w.shape[0])] if quantity == "GNv" else [])
    return min(kink_distance(model, inputs, w, d) for d in directions)


def sweep(model, inputs, w, p, quantity, dtype=np.float64, names=None):
    """{estimator: {"h": [...], "error": [...]}} for one quantity.

    ``dtype`` float64 or float32 sets the arithmetic of the float estimators;
    the mp-* estimators (if named) always run at 50 digits.
    """
    names = names or ["forward", "central", "complex", "mp-central", "mp-complex"]
    w_d, p_d, x_d = (np.asarray(a).astype(dtype) for a in (w, p, inputs))
    # float64 engine: exact to ~1e-16, far below any float32 estimator's error
    reference, scale = exact_value(model, *(np.asarray(a, np.float64) for a in (inputs, w, p)),
                                   quantity)
    limit = step_limit(model, inputs, w, p, quantity)
    out = {}
    for name in names:
        errors = []
        straddles = name != "complex" and name != "mp-complex"
        if name.startswith("mp-"):
            with mpmath.workdps(MP_DPS):
                w_m, p_m, x_m = (numeric.to_mp(a) for a in (w_d, p_d, x_d))
                exact, scale_mp = exact_value(model, x_m, w_m, p_m, quantity)
                for h in STEPS[name]:
                    if straddles and h >= limit:
                        errors.append(np.nan)
                        continue
                    approx = estimate(model, x_m, w_m, p_m, quantity, ESTIMATORS[name], mpmath.mpf(h))
                    errors.append(estimators.relative_error(approx, exact, scale_mp))
        else:
            for h in STEPS[name]:
                if not _representable(h, p_d, dtype) or (straddles and h >= limit):
                    errors.append(np.nan)
                    continue
                approx = estimate(model, x_d, w_d, p_d, quantity, ESTIMATORS[name], dtype(h).item())
                errors.append(estimators.relative_error(approx, reference, scale))
        out[name] = {"h": STEPS[name].tolist(), "error": errors, "kink_limit": limit}
    model.set_weights(w)
    return out


def truncation_slope(curve, eps):
    """Fitted slope of log(error) vs log(h) where truncation error dominates.

    That is the branch right of the best step, with errors at least 100 times
    the round-off floor (the smallest error, but at least the unit roundoff
    ``eps``) and at most 1e-1 (clear of the large-h region where higher-order
    terms bend the line).  NaN if fewer than 3 points qualify.
    """
    h, error = np.asarray(curve["h"], float), np.asarray(curve["error"], float)
    h_best, e_best = best_step(curve)
    floor = max(e_best, eps)
    keep = np.isfinite(error) & (h > h_best) & (error >= 100 * floor) & (error <= 1e-1)
    if keep.sum() < 3:
        return np.nan
    return float(np.polyfit(np.log10(h[keep]), np.log10(error[keep]), 1)[0])


def error_at(curve, h_target):
    """Error at the grid step nearest to h_target (on a log scale)."""
    h = np.asarray(curve["h"])
    k = int(np.argmin(np.abs(np.log10(h) - np.log10(h_target))))
    return float(h[k]), curve["error"][k]


def best_step(curve):
    """(h, error) at the smallest error of a curve."""
    errors = np.asarray(curve["error"], float)
    k = int(np.nanargmin(errors))
    return float(curve["h"][k]), float(errors[k])
