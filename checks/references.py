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
large T shrinks (T/8, T/64, ...) while that makes it smaller; a real inner difference is repeated at the
chosen T with a step 4 times smaller and the two estimates' distance added (its truncation changes along
p, which the outer spread misses).

The points one estimate needs are evaluated together, by ``Inner.many`` (one call: one round trip where
fun lives in another process, as a candidate's loss does).
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


def one_by_one(fun):
    """``many`` for a fun that takes one point at a time."""
    return lambda points: [fun(y) for y in points]


class Inner:
    """The derivative of fun along u at a point, by the complex step or (real-only fun) a central difference.

    ``many(points)``: fun at each point, in one call.  ``rounding(values)`` is the size of one estimate's
    rounding, given the estimates made."""

    def __init__(self, fun, x, complex_ok, eps, noise, f0, many=None):
        self.fun, self.complex_ok, self.eps = fun, complex_ok, eps
        self.many = many or one_by_one(fun)
        self.scale = max(1.0, float(np.max(np.abs(x))))
        self.step = INNER_STEP * self.scale
        self.f_rounding, self.f0 = noise + eps * abs(f0), f0
        self.check = "complex step" if complex_ok else "differences"
        self.name = "complex step of fun" if complex_ok else "central differences of fun (Richardson)"

    def points(self, y, u):
        if self.complex_ok:
            return [y + 1j * H_COMPLEX * u]
        s = self.step
        return [y + s * u, y - s * u, y + s / 2 * u, y - s / 2 * u]

    def combine(self, values):
        if self.complex_ok:
            return _scalar(values[0], imaginary=True) / H_COMPLEX
        # Richardson over s and s/2: a plain central difference's error s^2 f'''/6 changes with y, and the
        # outer difference along p would carry it over
        up, down, half_up, half_down = (_scalar(v) for v in values)
        coarse, fine = (up - down) / (2 * self.step), (half_up - half_down) / self.step
        return (4 * fine - coarse) / 3

    def at(self, ys, u):
        """The estimates at each point of ``ys``, from one call of ``many``."""
        width = 1 if self.complex_ok else 4
        values = list(self.many([point for y in ys for point in self.points(y, u)]))
        return [self.combine(values[k * width:(k + 1) * width]) for k in range(len(ys))]

    def __call__(self, y, u):
        return self.at([y], u)[0]

    def first_floor(self):
        """The part of ``first``'s uncertainty that is rounding, which no step removes: an estimate this
        uncertain is as good as fun's precision allows (at a stationary point, larger than the entry itself)."""
        if self.complex_ok:
            return 0.0
        T = 2 * self.step
        return (4 / 3 * 4 / T + 1 / 3 * 2 / T) * 2 * self.f_rounding

    def rounding(self, values):
        if self.complex_ok:
            return 4 * self.eps * max(abs(v) for v in values)
        return 3 * self.f_rounding / self.step  # 4/3 of f's rounding over s/2 and 1/3 of it over s


def _scalar(value, imaginary=False):
    value = np.asarray(value).ravel()[0]
    return float(np.imag(value)) if imaginary else float(np.real(value))


def _richardson(differences, T, rounding):
    """(estimate, uncertainty) from ``differences``: central differences of error O(t^2) at t = T, T/2, T/4."""
    D = differences
    coarse, fine = (4 * D[1] - D[0]) / 3, (4 * D[2] - D[1]) / 3
    # the fine extrapolation's rounding: its differences at T/4 and T/2 weighted 4/3 and 1/3
    return fine, abs(fine - coarse) + (4 / 3 * 4 / T + 1 / 3 * 2 / T) * rounding


def _steps(T):
    return [T, T / 2, T / 4]


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
    """(g.u, uncertainty) from fun alone.  A real difference starts at T = 2 s and, where that is uncertain
    (a fast change within T), shrinks T by 8 while the uncertainty falls, as ``mixed`` does."""
    if inner.complex_ok:
        return _quiet(lambda: (lambda value: (value, inner.rounding([value])))(inner(x, u)))
    best = (math.nan, math.inf)
    for k in range(SHRINKS):
        estimate, uncertainty = _quiet(functools.partial(_real_first, inner, x, u, inner.step * 2 / 8**k))
        if uncertainty >= best[1]:
            break  # rounding now outgrows truncation
        best = estimate, uncertainty
        if uncertainty <= GOOD_ENOUGH * abs(estimate) or uncertainty <= 4 * inner.first_floor():
            break  # good enough, or as good as fun's precision allows
    return best


def _real_first(inner, x, u, T):
    """Richardson's central differences of fun along u at T, T/2, T/4, or (nan, inf) across a kink."""
    ts = _steps(T)
    values = [_scalar(v) for v in inner.many([x + sign * t * u for t in ts for sign in (1, -1)])]
    ups, downs = values[0::2], values[1::2]
    # forward less backward difference: t f'' for a smooth f, a constant jump at a kink
    jumps = [abs(up - 2 * inner.f0 + down) / t for up, down, t in zip(ups, downs, ts)]
    differences = [(up - down) / (2 * t) for up, down, t in zip(ups, downs, ts)]
    estimate, uncertainty = _richardson(differences, T, 2 * inner.f_rounding)
    above = jumps[-1] > 1e3 * inner.f_rounding / (T / 4)
    if above and jumps[1] > 0.7 * jumps[0] and jumps[2] > 0.7 * jumps[1]:
        return math.nan, math.inf  # a kink within the steps: not halving with t
    return estimate, uncertainty




def mixed(inner, x, u, p, jittered=()):
    """(u.(H p), uncertainty) from fun alone: the inner derivative along u, differenced along p.

    fl(x + tp) is not x + tp: its rounding moves the inner derivative by about eps |x| |H|, which the
    difference divides by t.  That is measured: the inner derivative at ``jittered`` copies of x (moved in
    their last bits) against its value at x, twice the largest change counted as each value's rounding."""
    T = OUTER_STEP * inner.scale
    moved = 0.0
    if jittered:
        moved = _quiet(lambda: (_largest_change(inner.at([x, *jittered], u)), 0.0))[0]
        if not math.isfinite(moved):
            return math.nan, math.inf

    def compute(T):
        ts = _steps(T)
        values = inner.at([x + sign * t * p for t in ts for sign in (1, -1)], u)
        differences = [(up - down) / (2 * t) for up, down, t in zip(values[0::2], values[1::2], ts)]
        estimate, spread = _richardson(differences, T, 0.0)
        return estimate, spread + (4 / 3 * 4 / T + 1 / 3 * 2 / T) * (inner.rounding(values) + moved)

    # a smaller T where the first is uncertain (a domain edge or a fast change within T): the least uncertain
    best, best_T = (math.nan, math.inf), T
    for k in range(SHRINKS):
        estimate, uncertainty = _quiet(functools.partial(compute, T / 8**k))
        if uncertainty < best[1]:
            best, best_T = (estimate, uncertainty), T / 8**k
        if uncertainty <= GOOD_ENOUGH * abs(estimate) or uncertainty > best[1]:
            break  # good enough, or worse than a larger T: rounding now outgrows truncation
    if inner.complex_ok or not math.isfinite(best[0]):
        return best
    # a real inner difference's truncation changes along p and is not in the outer spread: measured by the
    # same estimate at the same T with an inner step 4 times smaller (the finer one kept, their distance
    # its uncertainty)
    coarse = best[0]
    inner.step /= 4
    try:
        fine = _quiet(functools.partial(compute, best_T))
    finally:
        inner.step *= 4
    return fine[0], fine[1] + abs(fine[0] - coarse)


def _largest_change(estimates):
    """Twice the largest distance of the jittered copies' estimates from the first (at x itself)."""
    return 2 * max(abs(estimate - estimates[0]) for estimate in estimates[1:])
