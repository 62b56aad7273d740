"""Independent estimators of directional derivatives.

Each estimator takes a function ``f`` of the flat weight vector (the loss, the
gradient, or the network outputs: anything that returns a scalar or an
array), a point ``w``, a direction ``p`` and a step ``h``, and estimates
D f(w)[p], the derivative of f along p.  Applied to the loss it checks
g.p; to the gradient, H p; to the outputs, J p.
"""

import mpmath
import numpy as np

from ae import numeric


def forward_difference(f, w, p, h):
    """(f(w + h p) - f(w)) / h: formula (6), error O(h) + O(eps / h)."""
    return (f(w + h * p) - f(w)) / h


def central_difference(f, w, p, h):
    """(f(w + h p) - f(w - h p)) / (2h): error O(h^2) + O(eps / h)."""
    return (f(w + h * p) - f(w - h * p)) / (2 * h)


def complex_step(f, w, p, h):
    """Im f(w + i h p) / h: formula (7), no subtraction so h can be 1e-30.

    ``f`` must be analytic in the weights (no abs, no conjugate).
    """
    return numeric.imag(f(w + 1j * h * p)) / h


def mp_central_difference(f, w, p, h, dps=50):
    """Central difference in ``dps``-digit mpmath arithmetic.

    ``w`` and ``p`` are converted exactly to mpf; the result stays in mpf
    (an object array or an mpf scalar) so its accuracy is not rounded away.
    """
    with mpmath.workdps(dps):
        w_mp, p_mp = numeric.to_mp(w), numeric.to_mp(p)
        return central_difference(f, w_mp, p_mp, mpmath.mpf(h))


def relative_error(approx, exact, scale=None):
    """||approx - exact|| / scale in float64, scale = ||exact|| by default.

    Absolute when the scale is 0.  The difference is taken in the working
    type first, so mpmath results keep their accuracy down to float64's
    range (1e-308), not its epsilon.
    """
    diff = numeric.to_float64(np.asarray(approx - exact))
    if scale is None:
        scale = np.linalg.norm(numeric.to_float64(np.asarray(exact)))
    err = np.linalg.norm(diff)
    return float(err / scale) if scale > 0 else float(err)
