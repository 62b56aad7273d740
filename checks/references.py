"""References built from ``fun`` alone, never from a claim: derivatives along a direction, with their
own uncertainty.

    first(inner, x, u)        g.u      complex step Im f(x + i h u) / h (h = 1e-30), or where fun is
                                       real-only Richardson's extrapolation of central differences
    mixed(inner, x, u, p, J)  u.(H p)  d/dt of the inner estimate of u.g at x + t p: Richardson's
                                       extrapolation of central differences in t, over steps T, T/2, T/4

Each returns (estimate, uncertainty), or (nan, inf) where a step leaves fun's domain or crosses a kink.
The uncertainty is measured: the distance between Richardson's two extrapolations (from T, T/2 and from
T/2, T/4: the first is 16 times less accurate, so it bounds the second's truncation), plus the rounding
of the differences: the inner estimate's rounding (eps times the complex step, which subtracts nothing;
fun's noise over the step of a real difference), and the rounding of x + tp itself, which moves the inner
estimate by about eps |x| |H| and is measured at the jittered copies J of x.  Where the uncertainty is
large T shrinks (T/8, T/64, ...); a real inner difference is repeated with a step 4 times smaller and
the two estimates' distance added (its truncation changes along p, which the outer spread misses).
"""

import functools
import math
import warnings

import numpy as np

H_COMPLEX = 1e-30
OUTER_STEP = 2e-3  # T for the difference along p, times max(1, |x|_inf); Richardson's error is O(T^4)
SHRINKS, GOOD_ENOUGH = 4, 1e-8  # T, T/8, ... until the uncertainty is this small relative to the estimate
# the real central differences along u where fun takes no complex input: Richardson over s and s/2,
# s = INNER_STEP max(1, |x|_inf)
INNER_STEP = 1e-3


class Inner:
    """The derivative of fun along u at a point, by the complex step or (real-only fun) a central difference.

    ``rounding(values)`` is the size of one estimate's rounding, given the estimates made."""

    def __init__(self, fun, x, complex_ok, eps, noise, f0):
        self.fun, self.complex_ok, self.eps = fun, complex_ok, eps
        self.scale = max(1.0, float(np.max(np.abs(x))))
        self.step = INNER_STEP * self.scale
        self.f_rounding, self.f0 = noise + eps * abs(f0), f0
        self.check = "complex step" if complex_ok else "differences"
        self.name = "complex step of fun" if complex_ok else "central differences of fun (Richardson)"

    def __call__(self, y, u):
        if self.complex_ok:
            return _scalar(self.fun(y + 1j * H_COMPLEX * u), imaginary=True) / H_COMPLEX
        # Richardson over s and s/2: a plain central difference's error s^2 f'''/6 changes with y, and the
        # outer difference along p would carry it over
        s = self.step
        coarse, fine = ((_scalar(self.fun(y + h * u)) - _scalar(self.fun(y - h * u))) / (2 * h) for h in (s, s / 2))
        return (4 * fine - coarse) / 3

    def rounding(self, values):
        if self.complex_ok:
            return 4 * self.eps * max(abs(v) for v in values)
        return 3 * self.f_rounding / self.step  # 4/3 of f's rounding over s/2 and 1/3 of it over s


def _scalar(value, imaginary=False):
    value = np.asarray(value).ravel()[0]
    return float(np.imag(value)) if imaginary else float(np.real(value))


def _richardson(difference, T, rounding):
    """(estimate, uncertainty) from difference(t), a central difference of error O(t^2), at T, T/2, T/4."""
    D = [difference(T / 2**k) for k in range(3)]
    coarse, fine = (4 * D[1] - D[0]) / 3, (4 * D[2] - D[1]) / 3
    # the fine extrapolation's rounding: its differences at T/4 and T/2 weighted 4/3 and 1/3
    return fine, abs(fine - coarse) + (4 / 3 * 4 / T + 1 / 3 * 2 / T) * rounding


def _quiet(compute):
    """compute() or (nan, inf) where a step leaves fun's domain (an exception or a non-finite value)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            estimate, uncertainty = compute()
        except Exception:
            return math.nan, math.inf
    if not math.isfinite(estimate + uncertainty):
        return math.nan, math.inf
    return estimate, uncertainty


def first(inner, x, u):
    """(g.u, uncertainty) from fun alone."""
    def compute():
        if inner.complex_ok:
            value = inner(x, u)
            return value, inner.rounding([value])
        T = inner.step * 2
        jumps = []  # forward less backward difference: t f'' for a smooth f, a constant jump at a kink

        def difference(t):
            up, down = _scalar(inner.fun(x + t * u)), _scalar(inner.fun(x - t * u))
            jumps.append(abs(up - 2 * inner.f0 + down) / t)
            return (up - down) / (2 * t)
        estimate, uncertainty = _richardson(difference, T, 2 * inner.f_rounding)
        above = jumps[-1] > 1e3 * inner.f_rounding / (T / 4)
        if above and jumps[1] > 0.7 * jumps[0] and jumps[2] > 0.7 * jumps[1]:
            return math.nan, math.inf  # a kink within the steps: not halving with t
        return estimate, uncertainty
    return _quiet(compute)


def mixed(inner, x, u, p, jittered=()):
    """(u.(H p), uncertainty) from fun alone: the inner derivative along u, differenced along p.

    fl(x + tp) is not x + tp: its rounding moves the inner derivative by about eps |x| |H|, which the
    difference divides by t.  That is measured: the inner derivative at ``jittered`` copies of x (moved in
    their last bits) against its value at x, twice the largest change counted as each value's rounding."""
    T = OUTER_STEP * inner.scale
    values = []
    moved = 0.0
    if jittered:
        at_x = _quiet(lambda: (inner(x, u), 0.0))[0]
        moved = 2 * max(abs(_quiet(lambda y=y: (inner(y, u), 0.0))[0] - at_x) for y in jittered)
        if not math.isfinite(moved):
            return math.nan, math.inf

    def inner_at(y):
        values.append(inner(y, u))
        return values[-1]

    def difference(t):
        return (inner_at(x + t * p) - inner_at(x - t * p)) / (2 * t)

    def compute(T):
        values.clear()
        estimate, spread = _richardson(difference, T, 0.0)
        return estimate, spread + (4 / 3 * 4 / T + 1 / 3 * 2 / T) * (inner.rounding(values) + moved)

    # a smaller T where the first is uncertain (a domain edge or a fast change within T): the least uncertain
    best = (math.nan, math.inf)
    for k in range(SHRINKS):
        estimate, uncertainty = _quiet(functools.partial(compute, T / 8**k))
        if uncertainty < best[1]:
            best = (estimate, uncertainty)
        if uncertainty <= GOOD_ENOUGH * abs(estimate):
            break
    if inner.complex_ok or not math.isfinite(best[0]):
        return best
    # a real inner difference's truncation changes along p and is not in the outer spread: measured by the
    # same estimate with an inner step 4 times smaller (the finer one kept, their distance its uncertainty)
    coarse = best[0]
    inner.step /= 4
    try:
        best = min((_quiet(functools.partial(compute, T / 8**k)) for k in range(SHRINKS)), key=lambda r: r[1])
    finally:
        inner.step *= 4
    return best[0], best[1] + abs(best[0] - coarse)
