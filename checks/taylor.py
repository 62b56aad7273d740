"""Taylor test: remainders of the loss's expansion shrink at orders 1, 2, 3.

    r0(h) = |F(w + hp) - F(w)|                                 ~ h
    r1(h) = |F(w + hp) - F(w) - h g.p|                         ~ h^2
    r2(h) = |F(w + hp) - F(w) - h g.p - h^2/2 p.Hp|            ~ h^3

with g and Hp from the engine.  A wrong gradient leaves r1 at order 1, a
wrong Hv leaves r2 at order 2.  The steps halve from 1 down to 2^-45; the
window is found per remainder, not fixed: the ``WINDOW`` smallest steps
whose remainder is at least 100 times the round-off level eps |F(w)| (so
round-off moves each point by at most ~1% relative, and the smallest
steps above it are the most asymptotic ones), and below the nearest ReLU
kink along p (a larger step straddles it and the expansion does not hold).
"""

import numpy as np

from ae import numeric
from checks.model_functions import kink_distance

STEPS = 2.0 ** -np.arange(0, 46)
WINDOW = 8
ABOVE_ROUNDOFF = 1e2


def remainders(model, inputs, w, p):
    """(h, [r0, r1, r2], F(w)) along direction p, in w's number type."""
    model.set_weights(w)
    F0, grad = model.compute_loss(inputs)
    gp = (grad * p).sum()
    pHp = (p * model.compute_hessvec(p)).sum()
    rows = []
    for h in STEPS:
        model.set_weights(w + h * p)
        dF = model.compute_loss(inputs)[0] - F0
        rows.append([dF, dF - h * gp, dF - h * gp - h * h / 2 * pHp])
    model.set_weights(w)
    r = np.abs(numeric.to_float64(np.array(rows, dtype=object if numeric.is_mp(w) else float)))
    return STEPS.copy(), r.T, float(F0)


def fitted_window(h, r, F0, eps, limit=np.inf, size=WINDOW):
    """Indices of the fitting window for one remainder (may be shorter than ``size``)."""
    floor = ABOVE_ROUNDOFF * eps * max(abs(F0), np.finfo(float).tiny)
    return last_run(np.nonzero((r >= floor) & (h < limit))[0], size)


def last_run(above, size):
    """The contiguous run of at most ``size`` indices of ``above`` (sorted) that ends at its last one."""
    if above.size == 0:
        return above
    run = [above[-1]]
    while run[-1] - 1 in above and len(run) < size:
        run.append(run[-1] - 1)
    return np.array(sorted(run))


def slope(h, r, window):
    if window.size < 4:
        return np.nan
    return float(np.polyfit(np.log(h[window]), np.log(r[window]), 1)[0])


def taylor_test(model, inputs, w, p):
    """{"h", "remainders", "windows", "slopes", "F"} of the Taylor test at w along p."""
    h, r, F0 = remainders(model, inputs, w, p)
    eps = numeric.machine_epsilon(np.asarray(w).dtype)
    limit = kink_distance(model, inputs, w, p)
    windows = [fitted_window(h, rk, F0, eps, limit) for rk in r]
    return {"h": h, "remainders": r, "windows": windows, "kink_limit": limit,
            "slopes": [slope(h, rk, win) for rk, win in zip(r, windows)], "F": F0}
