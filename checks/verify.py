"""``checks.verify``: the lab's estimators on anyone's derivatives.

    result = verify(fun, x, grad=grad, hvp=hvp)      # fun: R^n -> R, x a float64 vector
    result.passed, result.verdicts, print(result.table())
    assert_verified(fun, x, grad=grad)               # the pytest form: AssertionError with the table

The user's claims: ``grad(x)`` (the gradient), ``hvp(x, p)`` (H p),
``gnvp(x, p)`` with ``residual(x)`` (G p for G = J^T J, J the Jacobian of the
residual vector r; for fun = 1/2 r.r this is fun's Gauss-Newton matrix), and
``jvp(x, v)`` / ``vjp(x, u)`` (J v and J^T u of the residual).  Every
estimator that applies runs; one that cannot says why.  ``fun_many(points)``,
where given, is fun at each of a list of points in one call: the references
from fun alone then ask for their points together (for a fun with a cost per
call, such as one that runs in another process).

Entry by entry, every reference from fun alone (never from a claim; checks/references.py).  The
gradient: the complex step of fun along each e_i (h = 1e-30, no cancellation), or where fun is real-only
Richardson's central differences, and where fun computes in mpmath 50-digit central differences.  Hv:
the complex step of fun along e_i differenced along p, d/dt Im f(x + i h e_i + t p) / h, by Richardson
over three steps (or, real-only, central differences in both), with its uncertainty measured.  The
complex step and central differences of the claimed ``grad`` are a second, labelled opinion ("complex
step of grad"), run only where that gradient passed; where Hv passes against fun's own derivatives but
fails against grad's, the failure is the gradient's ("grad is wrong near x").  GNv: J^T J p with J
column by column.  Every entry up to 2,000 entries (200 for references costing 6 or more evaluations:
the real differences of a gradient, Hv, 50 digits); above that a seeded sample (the smallest, median and
largest entry and 7 random ones, checks/sampling.py) and 2 Rademacher directions u, each one-entry error
moving u.v by all of itself; the probability that a relative error in an entry drawn at random is caught
is measured and printed.  ``dense_limit=k`` makes k the limit of every reference (``dense_limit=x.size``:
every entry, at about 8 n evaluations of fun for a gradient, the complex step at x and at 6 moved copies of x for
its rounding, and 10 n for an Hv; 7 n and 85 n where fun takes no complex input).  Each entry is judged
against its own tolerance, never against the vector's norm, so a wrong small entry fails:

    |claim_i - reference_i| <= 8 (noise_i + eps (|claim_i| + |reference_i|)) + 2 uncertainty_i

where noise_i, the rounding scale, is measured: the claim (and the reference) are evaluated again at 8
copies of x moved in their last bits (x_j (1 + u eps), u uniform in [-2, 2]; Moré and Wild's idea) and
at 4 pairs moved 2^-32 both ways, whose second difference shows rounding that cancellation hides from
last-bit moves; an Hv's p is moved in its last bits too; each entry's noise is at least the median
entry's relative noise.  A claim within eps of the reference is "exact to working precision"; one within
its tolerance is "right up to the rounding of its float evaluation"; beyond it, "wrong".  The measured
value is the worst entry's error over its tolerance (unit "x tolerance", target 1).

Along directions.  fun is evaluated once at each x +- h p of one grid of steps h = 1, 10^-1/2, ..., 1e-12
(with the quarter decades between for Taylor), read by every estimator along p.  Central differences and
Richardson extrapolation over neighbouring steps of the grid, each at the step of least measured
uncertainty (truncation from the neighbouring step, rounding over the step), judged against at least 4
times that uncertainty, so a right derivative cannot fail them; 50-digit directional differences; the
Taylor test (remainders of orders 2 and 3) fitted over 5 steps where the remainder is a straight line
above round-off and below the remainder one term before (never across a cancellation, never beyond the
expansion's radius); symmetry u.(Hv) = v.(Hu), the adjoint identity, p.Gp = |Jp|^2 >= 0.  Their errors
are relative to max(|g| |p|, the variation of f over 1e-3 along p), less the claim's own noise along p,
so a stationary point or a constant function is judged absolutely and no verdict rests on nan.  Each
record carries its unit ("relative error", "slope deficit", "x tolerance").  fun is differenced along
each of the ``directions`` up to 2,000 entries (or ``dense_limit``), along the first above: a gradient at
n = 20,000 then takes under 200 evaluations of fun, an Hv about 210 (about 1,100 where fun takes no complex
input: every Hv reference is then a second difference of Richardson estimates); memory grows linearly with n
(tests/test_verify.py's Chain counts them).

Honesty.  A step that leaves fun's domain (an exception or a non-finite
value at x + h p) is dropped from that estimator's steps; the call aborts
only when fun(x) itself is not finite.  Where a central-difference curve
straddles a kink (|f(x+hp) - 2 f(x) + f(x-hp)| / h flat over a decade, then
falling) the directional checks along p say "cannot judge near a kink at
distance ~d".  The complex step is refused (not failed) where fun is not
complex-analytic: a TypeError, a ComplexWarning, a real result, a float32
evaluation, or a complex step that disagrees with Richardson extrapolation
beyond the finite differences' own spread.  The 50-digit checks are refused
where fun does not compute in mpmath, including a float64 piece inside it
(its 50-digit central differences at h = 1e-15 and 1e-22 then disagree).  A
reference that cannot run is said once, with what ran instead.  An entry whose
reference is too uncertain (a domain edge or a kink within its steps) is left
unjudged and counted (in the detection power line too), never passed on a
tolerance as wide as the doubt; but a real difference within 4 times its own
rounding is as good as fun's precision allows, and at a stationary point,
where it exceeds the entries themselves, it judges them to that absolute
resolution, which the detection power line states.

Detection power is measured, not claimed: the smallest, the median and the
largest nonzero entry of the claim are planted with relative errors 1e-2
... 1e-14 in turn, with either sign, and the entrywise check is asked again;
the smallest error caught (and every larger one) is reported for each, or for
an entry within its rounding of zero (a stationary point) the absolute error
it would catch.  The errors are planted in the claim where it passes (so an
error that would cancel one it already has within its tolerance is not
counted as caught), in the reference where it fails (the checks' own power).
"""

import math
import warnings

import mpmath
import numpy as np

from ae import numeric
from checks import records, references, sampling
from checks.references import H_COMPLEX

H_MP, H_MP_SMALL, MP_DPS = 1e-15, 1e-22, 50
# one grid of steps h along each direction, half a decade apart: fun at x +- h p is evaluated once and
# read by every estimator along p (kinks, central differences, Richardson, Taylor, the complex step's test)
STEPS = np.logspace(0, -12, 25)
SWEEP = STEPS[2:]  # the differences' steps; the two larger ones show a kink out to Taylor's t <= 1/4
# Taylor's steps: the grid and the points between, a quarter decade apart, so that its window of 5 steps
# spans a decade (across two, at t near 1/10, the next term of the expansion still bends the slope)
TAYLOR_STEPS = np.logspace(0, -12, 49)
RATIO_SQUARED = 10.0  # (h / next step)^2: Richardson over neighbouring steps of the grid
# Richardson's rounding in units of f's rounding over h: (10 sqrt(10) + 1) / 9, the finer step's weighing most
RICHARDSON_ROUNDING = (RATIO_SQUARED * RATIO_SQUARED ** 0.5 + 1) / (RATIO_SQUARED - 1)
DELTAS = [10.0**-k for k in range(2, 15)]
ROUNDOFF_FACTOR = 8  # an entry's tolerance in units of its measured rounding scale
JITTERS = 8  # copies of x moved in their last bits, to measure the rounding scale of fun and the claims
WIDE, WIDE_PAIRS = 2.0**-32, 4  # pairs of copies of x moved +-2^-32 relative: they show cancellation
REFERENCE_JITTERS = 2  # the same for a reference (the complex step subtracts nothing: its rounding is small)
# entries whose reference costs 6 evaluations of fun (Hv; the gradient of a real-only fun) are checked
# every one up to this many, a sample above
ENTRY_DIFFERENCES_LIMIT = 200
DENSE_LIMIT = 2000  # every entry of a claim whose reference costs one evaluation up to this many, a sample above
USEFUL = 1e-3  # a reference more uncertain than this relative to the entry judges nothing
FLOOR_MULTIPLE = 4  # unless its uncertainty is within this many times its rounding: truncation adds at most 3
VARIATION_STEP = 1e-3  # the step of the scale of directional checks at stationary points
# entrywise checks are judged in units of each entry's tolerance (target 1); the rest as relative errors
TARGETS = {"complex step": 1.0, "50 digits": 1.0, "central difference": 1e-8, "Richardson": 1e-9,
           "50 digits, p.Hp": 1e-14, "symmetry": 1e-12, "adjoint": 1e-12, "p.Gp = |Jp|^2": 1e-12,
           "Taylor": 0.1, "PSD": 1e-13}
EPS = np.finfo(float).eps
# how each relative target moves with the working precision (float32 functions): central differences
# reach eps^(2/3), Richardson eps^(4/5), the identities eps; entrywise ratios and slopes do not move
PRECISION_POWER = {"central difference": 2 / 3, "Richardson": 4 / 5, "50 digits, p.Hp": 0, "symmetry": 1,
                   "adjoint": 1, "p.Gp = |Jp|^2": 1, "PSD": 1}


def target(check, eps=EPS):
    """The target of ``check`` for a function computed with unit roundoff ``eps``."""
    return TARGETS[check] * (eps / EPS) ** PRECISION_POWER.get(check, 0)
# the Taylor test fits 5 steps whose remainder is a straight line: no step's own slope more than 0.25 off
TAYLOR_WINDOW, STRAIGHT = 5, 0.25


class VerifyError(ValueError):
    """A callable returned something that cannot be a claim about fun's derivatives."""


def _call(name, fn, *args):
    try:
        return fn(*args)
    except Exception as error:
        raise VerifyError(f"{name} raised {type(error).__name__}: {error}") from error


def _scalar(name, value):
    array = np.asarray(value)
    if array.size != 1 or array.ndim > 1:
        raise VerifyError(f"{name} must return a scalar; it returned an array of shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise VerifyError(f"{name} must return a real number; it returned {array.dtype} {array.ravel()[0]!r}")
    result = float(array.ravel()[0])
    if not math.isfinite(result):
        raise VerifyError(f"{name} returned {result} at x")
    return result


def _vector(name, value, length):
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise VerifyError(f"{name} must return real numbers; it returned dtype {array.dtype}")
    array = array.astype(float).ravel() if array.ndim <= 1 else None
    if array is None or (length is not None and array.shape[0] != length):
        shape = np.asarray(value).shape
        raise VerifyError(f"{name} returned shape {shape}; x has {length} entries, so it must return {length}")
    bad = np.nonzero(~np.isfinite(array))[0]
    if bad.size:
        raise VerifyError(f"{name} returned NaN or inf at entries {bad[:5].tolist()}")
    return array


def _off_domain(read, fn, point, outside):
    """read(fn(point)) at a step away from x, or ``outside`` where the step leaves fn's domain (fn raises
    or warns there, or read finds no valid value)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return read(fn(point))
        except Exception:
            return outside


def _at_step(fun, point):
    """fun at a step away from x, or nan where the step leaves fun's domain (raises or is not finite)."""
    def scalar(value):
        value = np.asarray(value)
        return float(value.ravel()[0]) if value.size == 1 and value.dtype.kind in "fiu" else math.nan
    return _off_domain(scalar, fun, point, math.nan)


def _vector_at_step(fn, point, length):
    """fn at a step away from x as ``length`` floats, or None where the step leaves fn's domain."""
    return _off_domain(lambda value: _vector("", value, length), fn, point, None)


def _relative(error, scale):
    """error / scale, with 0 / 0 = 0 (an exact match at a degenerate point) and x / 0 = x (absolute)."""
    return 0.0 if error == 0 else float(error / scale) if scale > 0 else float(error)


def _normwise(claim, reference):
    """|claim - reference| / |reference|: an entrywise check's figure a reader can compare across checks."""
    return _relative(float(np.linalg.norm(claim - reference)), float(np.linalg.norm(reference)))


def entrywise(claim, reference, noise, eps=EPS, uncertainty=0.0):
    """(each entry's error over its tolerance, errors, tolerances); see the module docstring.  The
    reference's measured ``uncertainty`` (zero for the complex step) adds to the tolerance twice over."""
    errors = np.abs(claim - reference)
    tolerances = ROUNDOFF_FACTOR * (noise + eps * (np.abs(claim) + np.abs(reference))) + 2 * uncertainty
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(errors == 0, 0.0, errors / tolerances)
    return ratios, errors, tolerances


class Verification:
    """What ``verify`` found: records, verdicts per quantity, detection power, and the sweep."""

    def __init__(self, records_, detection, curves):
        self.records, self.detection_power, self.curves = records_, detection, curves

    @property
    def verdicts(self):
        out = {}
        for r in self.records:
            if r["verdict"] in ("pass", "fail"):
                out[r["quantity"]] = "fail" if "fail" in (out.get(r["quantity"]), r["verdict"]) else "pass"
            else:
                out.setdefault(r["quantity"], "cannot run")
        return out

    @property
    def passed(self):
        verdicts = self.verdicts
        return bool(verdicts) and "fail" not in verdicts.values() and "pass" in verdicts.values()

    @property
    def worst(self):
        """{quantity: the judged record with the largest measured / threshold}."""
        out = {}
        for r in self.records:
            if r["verdict"] in ("pass", "fail"):
                ratio = r["measured"] / r["threshold"] if math.isfinite(r["measured"]) else math.inf
                if r["quantity"] not in out or ratio > out[r["quantity"]][0]:
                    out[r["quantity"]] = (ratio, r)
        return {q: r for q, (_, r) in out.items()}

    def table(self):
        lines = [f"{'quantity':10} {'check':26} {'measured':>10} {'unit':15} {'target':>9}  verdict"]
        reasons = {}  # a reason given along several directions is one line, naming them
        for r in self.records:
            if r["verdict"] == "cannot run":
                reasons.setdefault((r["quantity"], r["check"], r["reason"]), []).append(r.get("direction"))
        for r in self.records:
            if r["verdict"] == "cannot run":
                directions = reasons.pop((r["quantity"], r["check"], r["reason"]), None)
                if directions is not None:  # else said on the line of its first direction
                    known = [str(d) for d in directions if d is not None]
                    along = f" (direction{'s' if len(known) > 1 else ''} {', '.join(known)})" if known else ""
                    lines.append(f"{r['quantity']:10} {r['check']:26} {'-':>10} {'':15} {'-':>9}  cannot run"
                                 f"{along}: {r['reason']}")
                continue
            where = f" (direction {r['direction']})" if "direction" in r else ""
            if "rademacher" in r:
                where = f" (Rademacher direction {r['rademacher']})"
            if "entry" in r:
                checked = f" of {r['checked']} checked" if r.get("checked", 0) < r.get("entries", 0) else ""
                where = (f" (worst entry {r['entry']}{checked}: off by {r['error']:.1e}, tolerance "
                         f"{r['tolerance']:.1e}; {r['agreement']})")
            if "finding" in r:
                where += f": {r['finding']}"
            lines.append(f"{r['quantity']:10} {r['check']:26} {r['measured']:10.2e} {r.get('unit', ''):15} "
                         f"{r['threshold']:9.1e}  {r['verdict']}{where}")
        for quantity, power in self.detection_power.items():
            lines.append(f"detection power, {quantity} ({power['check']}): " + _power_line(power))
        return "\n".join(lines)

    def figure(self, folder):
        """The error of g.p against the step h for each estimator; returns the PNG and PDF paths."""
        from checks.plots import error_vs_step

        if not self.curves:
            raise ValueError("no gradient sweep ran: verify was given no grad")
        return error_vs_step(self.curves, "gradient", folder)


def _power_line(power):
    """What the detection power says, in words that hold at a stationary point too."""
    if power.get("sampled"):
        fractions = ", ".join(f"{p:.3g} at {delta:.0e}" for delta, p in power["fractions"].items())
        return (f"a relative error in one entry drawn at random is caught with probability {fractions}; "
                f"in every entry once it exceeds {power['absolute']:.1e} absolute")
    if not power["entries"]:
        return "the claim is zero: an absolute error in one entry is caught once it exceeds its tolerance"
    parts = []
    for where, found in power["entries"].items():
        if found["smallest_caught"] is not None:
            parts.append(f"{where} {found['smallest_caught']:.0e}")
        elif "tolerance" in found:  # an entry within its own rounding of zero: only absolute errors count
            parts.append(f"{where} (entry {found['value']:.1e}) only once off by more than {found['tolerance']:.1e} "
                         "absolute")
        else:
            parts.append(f"{where} nothing")
    return "a relative error in one entry is caught down to: " + ", ".join(parts)


def _try(name, fn, *args):
    """(value, None) or (None, reason) for an evaluation in complex arithmetic."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            value = fn(*args)
        except np.exceptions.ComplexWarning as warning:
            return None, f"{name} is not complex-analytic: ComplexWarning: {warning}"
        except Exception as error:
            return None, f"{name} cannot run on complex input: {type(error).__name__}: {error}"
    if not np.iscomplexobj(np.asarray(value)):
        return None, f"{name} is not complex-analytic: it returned a real result for complex input"
    if np.asarray(value).dtype == np.complex64:
        return None, f"{name} computes in float32 (complex64): the complex step needs float64 (for JAX: jax_enable_x64)"
    return value, None


def _mp_try(name, fn, *args):
    """(value, None) or (None, reason) for an evaluation on object arrays of mpf (inside workdps)."""
    try:
        value = fn(*args)
    except Exception as error:
        return None, (f"{name} computes in float64 only (given mpmath numbers it raised {type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}); the float64 references judged instead")
    first = np.asarray(value, dtype=object).ravel()[0]
    if not isinstance(first, mpmath.mpf):
        return None, (f"{name} does not compute in mpmath: given mpf it returned {type(first).__name__}; the "
                      "float64 references judged instead")
    return value, None


def _mp_scalar(fun, x_mp):
    return np.asarray(fun(x_mp), dtype=object).ravel()[0]


def _mp_central(fun, x_mp, p, h):
    h = mpmath.mpf(h)
    p_mp = numeric.to_mp(p)
    return (_mp_scalar(fun, x_mp + h * p_mp) - _mp_scalar(fun, x_mp - h * p_mp)) / (2 * h)


class _Point:
    """fun at x with what every estimator needs: its value, precision, rounding scale and jittered copies.

    Two kinds of copies measure rounding.  Copies moved in their last bits (x_j (1 + u eps)) show rounding
    that follows x's own bits.  They miss cancellation inside fun or a claim (exp(x) - 1 at small x: a 1e-19
    move of x rarely changes the rounding of exp(x) near 1), so pairs moved WIDE both ways, x (1 +- w) with
    w random of size WIDE, are added: their second difference (v(x + d) + v(x - d))/2 - v(x) cancels
    the true change to first order and leaves the rounding of every intermediate value."""

    def __init__(self, fun, x, rng):
        self.fun, self.x = fun, x
        self.evaluated = {}  # (id(p), h): (p, fun(x + h p)), see along
        value = _call("fun", fun, x)
        self.f0 = _scalar("fun", value)
        self.float32 = np.asarray(value).dtype == np.float32
        self.eps = float(np.finfo(np.float32).eps) if self.float32 else EPS
        self.factors = [1 + rng.uniform(-2, 2, x.shape) * self.eps for _ in range(JITTERS)]
        self.jittered = [x * f for f in self.factors]
        wide = [rng.uniform(-1, 1, x.shape) * WIDE for _ in range(WIDE_PAIRS)]
        self.wide = [(x * (1 + w), x * (1 - w)) for w in wide]
        self.noise = float(self.noise_of(lambda y: np.array([_at_step(fun, y)]), np.array([self.f0]))[0])

    def noise_of(self, fn, value, count=JITTERS, p=None, pairs=WIDE_PAIRS):
        """The rounding scale of each entry of ``fn`` (a function of x, or of x and p where ``p`` is given:
        p is then moved in its last bits too, which shows the rounding of a product such as A p): its largest
        change over ``count`` jitters and the second differences over ``pairs`` wide pairs."""
        def at(y, k):  # None where the copy leaves fn's domain (raises, or another shape)
            moved = _vector_at_step(fn if p is None else lambda z: fn(z, p * self.factors[-1 - k]), y, value.size)
            return np.full(value.size, np.nan) if moved is None else moved
        changes = [np.abs(at(y, k) - value) for k, y in enumerate(self.jittered[:count])]
        changes += [np.abs((at(up, k) + at(down, k)) / 2 - value) for k, (up, down) in enumerate(self.wide[:pairs])]
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an entry no copy could evaluate: all NaN
            noise = np.nan_to_num(np.nanmax(changes, axis=0), nan=0.0) if changes else np.zeros_like(value)
            # a rounded value's changes are whole units of its last place, often zero by chance: each entry's
            # noise is at least the median entry's relative noise (the entries come from one computation)
            relative = noise[value != 0] / np.abs(value[value != 0])
        return np.maximum(noise, np.median(relative) * np.abs(value)) if relative.size > 1 else noise

    def along(self, p, h):
        """fun(x + h p) (nan off the domain), evaluated once for every estimator that asks for it."""
        key = (id(p), float(h))
        stored = self.evaluated.get(key)
        if stored is None or stored[0] is not p:  # p's id may be a freed array's
            stored = self.evaluated[key] = (p, _at_step(self.fun, self.x + h * p))
        return stored[1]

    def central(self, p, steps=SWEEP):
        """(f(x + h p) - f(x - h p)) / 2h at each step h of the grid."""
        return np.array([(self.along(p, h) - self.along(p, -h)) / (2 * h) for h in steps])

    def variation(self, p):
        """|f(x + d p) - 2 f(x) + f(x - d p)| / d + |f(x + d p) - f(x - d p)| / 2d at the largest d <= 1e-3
        inside the domain: the size of f's change along p, the scale of a stationary point."""
        d = VARIATION_STEP * max(1.0, float(np.max(np.abs(self.x))))
        for _ in range(12):
            up, down = self.along(p, d), self.along(p, -d)
            if math.isfinite(up) and math.isfinite(down):
                return abs(up - 2 * self.f0 + down) / d + abs(up - down) / (2 * d)
            d /= 10
        return 0.0

    def kink(self, p):
        """The distance to a kink along p seen by the steps of the central differences and Taylor, or None.

        A kink is a run of at least three steps h (1, 10^-1/2, ..., 1e-12) whose second difference
        |f(x + hp) - 2 f(x) + f(x - hp)| / h stands 1000 times above round-off and is flat (each step within a factor 3
        of the one before): a jump of slope, where a smooth f gives h |p.Hp|, which falls 3.2 times a step.
        It is a kink within the steps when the run reaches the smallest step, or when within two steps
        after the run the second difference falls to round-off or more than 10 times below the run's last
        step (a second kink or the curvature may hold it up for a step): the kink lies just below the
        run's last step."""
        values = [(h, self.along(p, h), self.along(p, -h)) for h in STEPS]
        a = np.array([abs(u - 2 * self.f0 + v) / h if math.isfinite(u + v) else math.nan for h, u, v in values])
        above = a > 1e3 * (self.noise + self.eps * abs(self.f0)) / STEPS
        for j in range(len(STEPS) - 2):
            run = a[j:j + 3]
            if above[j:j + 3].all() and run.max() <= 3 * run.min():  # flat: a slope jump, not h |p.Hp|
                end = j + 2
                while end + 1 < len(STEPS) and above[end + 1] and a[end + 1] > a[end] / 3:
                    end += 1
                after = range(end + 1, min(end + 3, len(STEPS)))
                if end + 1 == len(STEPS) or any(not above[i] or a[i] < a[end] / 10 for i in after):
                    return float(STEPS[end])
        return None


class _Judge:
    """Collects the records of one verify call: a verdict, a cannot-run, a directional verdict that a kink
    along its direction turns into "cannot judge", an entrywise verdict with its detection power."""

    def __init__(self, point, context, kinks, dense_limit, costly_limit):
        self.point, self.context, self.kinks, self.dense_limit = point, context, kinks, dense_limit
        self.costly_limit = costly_limit  # the same for references costing 6 or more evaluations of fun
        self.swept = len(kinks)  # fun is differenced along the first this many directions
        self.out, self.detection, self.said = [], {}, set()

    def record(self, check, quantity, measured, threshold=None, **fields):
        threshold = target(check, self.point.eps) if threshold is None else threshold
        self.out.append(records.verdict(check, quantity, measured, threshold, self.context, **fields))

    def cannot(self, check, quantity, reason, **fields):
        self.out.append(records.cannot_run(check, quantity, reason, self.context, **fields))

    def cannot_once(self, check, quantity, reason):
        """A reference that cannot run is said once, not once per quantity."""
        if reason not in self.said:
            self.said.add(reason)
            self.cannot(check, quantity, reason)

    def along(self, check, quantity, k, measured, threshold=None, **fields):
        if self.kinks[k] is not None:
            self.cannot(check, quantity, f"cannot judge near a kink at distance ~{self.kinks[k]:.0e} along "
                        f"direction {k}", direction=k)
        else:
            self.record(check, quantity, measured, threshold, direction=k, **fields)

    def verdict_of(self, quantity):
        verdicts = {r["verdict"] for r in self.out if r["quantity"] == quantity}
        return "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else None

    def entries(self, check, quantity, claim, reference, noise, name, uncertainty=0.0, indices=None,
                full_size=None, detect=True, judged="every entry"):
        eps = self.point.eps
        ratios, errors, tolerances = entrywise(claim, reference, noise, eps, uncertainty)
        i = int(np.argmax(ratios))
        exact = bool(np.all(errors <= ROUNDOFF_FACTOR * eps * (np.abs(claim) + np.abs(reference))))
        agreement = ("exact to working precision" if exact else "right up to the rounding of its float evaluation"
                     if ratios[i] <= 1 else "wrong")
        entry = i if indices is None else int(indices[i])
        self.record(check, quantity, float(ratios[i]), 1.0, entry=entry, error=float(errors[i]),
                    tolerance=float(tolerances[i]), entries=int(claim.size if full_size is None else full_size),
                    checked=int(claim.size), agreement=agreement, estimator=name, unit="x tolerance",
                    relative=_normwise(claim, reference))
        if detect:  # around a claim that passes (its own error within tolerance counts), else the reference
            self.detection[quantity] = _planted_power(
                claim, claim if ratios[i] <= 1 else reference,
                lambda v: bool(np.any(entrywise(v, reference, noise, eps, uncertainty)[0] > 1)),
                f"{check}, {judged}", tolerances)


def verify(fun, x, grad=None, hvp=None, gnvp=None, residual=None, jvp=None, vjp=None, directions=3, seed=0,
           dense_limit=None, name=None, fun_many=None):
    """Check the claimed derivatives of ``fun`` at ``x`` every way that applies; see the module docstring."""
    x = np.asarray(x)
    if x.ndim != 1 or x.dtype.kind not in "fiu" or x.size == 0:
        raise VerifyError(f"x must be a non-empty flat vector of real numbers, got shape {x.shape} dtype {x.dtype}")
    x = x.astype(float)
    if not np.isfinite(x).all():
        raise VerifyError("x contains NaN or inf")
    if (gnvp is None) != (residual is None) and gnvp is not None:
        raise VerifyError("gnvp needs residual: G = J^T J is defined by the residual's Jacobian J")
    n = x.shape[0]
    if dense_limit is not None and (not isinstance(dense_limit, (int, np.integer)) or dense_limit < 1):
        raise VerifyError(f"dense_limit must be a positive whole number of entries (x.size checks every entry), "
                          f"got {dense_limit!r}")
    # every entry up to the limits, a sample above; an explicit dense_limit is the limit for every reference
    costly_limit = ENTRY_DIFFERENCES_LIMIT if dense_limit is None else dense_limit
    dense_limit = DENSE_LIMIT if dense_limit is None else dense_limit
    rng = np.random.default_rng(seed)
    ps = [p / np.linalg.norm(p) for p in rng.standard_normal((directions, n))]
    point = _Point(fun, x, np.random.default_rng([seed, 1]))
    # fun is differenced along every direction up to dense_limit; above it (where a sample of entries and the
    # Rademacher directions judge the claims) along the first, which keeps the evaluations of fun near 200
    swept = ps if n <= dense_limit else ps[:1]
    context = {"function": name or getattr(fun, "__name__", "fun"),
               "dtype": "float32" if point.float32 else "float64", "seed": seed, "n": n}
    kinks = {k: point.kink(p) for k, p in enumerate(swept)}
    judge = _Judge(point, context, kinks, dense_limit, costly_limit)
    sample_rng = np.random.default_rng([seed, 2])  # the sampled entries and the Rademacher directions
    curves = {}
    with mpmath.workdps(MP_DPS):  # does fun compute in mpmath? asked once, for every 50-digit check
        mp_reason = _mp_reason(fun, x, ps[0], point)
    complex_reason = _complex_reason(fun, x, swept, point, kinks)
    inner = references.Inner(fun, x, complex_reason is None, point.eps, point.noise, point.f0, fun_many)
    if complex_reason is not None and (grad is not None or hvp is not None):
        judge.cannot_once("complex step", "gradient" if grad is not None else "Hv",
                          f"{complex_reason}; central differences of fun ran instead")
    if grad is not None:
        g = _vector("grad(x)", _call("grad", grad, x), n)
        curves = _gradient_checks(point, g, grad, ps, judge, inner, mp_reason, sample_rng)
    if hvp is not None:
        _hessian_checks(point, grad, hvp, ps, judge, inner, mp_reason, sample_rng)
    if gnvp is not None:
        _gauss_newton_checks(point, residual, gnvp, ps, judge)
    if jvp is not None and vjp is not None:
        r0 = _vector("residual(x)", _call("residual", residual, x), None) if residual is not None else None
        for k, v in enumerate(ps):
            Jv = _vector("jvp(x, v)", _call("jvp", jvp, x, v), None if r0 is None else r0.size)
            u = rng.standard_normal(Jv.shape[0])
            JTu = _vector("vjp(x, u)", _call("vjp", vjp, x, u), n)
            judge.record("adjoint", "J", _relative(abs(u @ Jv - JTu @ v), np.linalg.norm(u) * np.linalg.norm(Jv)),
                         direction=k, unit="relative error")
    if not judge.out:
        raise VerifyError("nothing to verify: give grad, hvp, gnvp with residual, or jvp with vjp")
    return Verification(judge.out, judge.detection, curves)


def _mp_reason(fun, x, p, point):
    """None if fun computes in mpmath throughout, else why the 50-digit checks cannot run."""
    x_mp = numeric.to_mp(x)
    _, reason = _mp_try("fun", fun, x_mp)
    if reason is not None:
        return reason
    try:
        coarse, fine = (float(_mp_central(fun, x_mp, p, h)) for h in (H_MP, H_MP_SMALL))
    except Exception as error:
        return f"fun fails at 50 digits near x: {type(error).__name__}: {error}"
    # a float64 piece is constant below an ulp: it moves the coarse difference and not the fine one
    scale = max(abs(coarse), abs(fine), point.variation(p))
    if abs(coarse - fine) > 1e-20 * scale:
        return (f"fun computes in float64 somewhere: its 50-digit central differences at h = {H_MP:.0e} and "
                f"{H_MP_SMALL:.0e} differ by {abs(coarse - fine):.1e}")
    return None


def _complex_reason(fun, x, ps, point, kinks):
    """None if the complex step of fun can be trusted, else why not."""
    if point.float32:
        return "fun computes in float32: the complex step needs float64 (for JAX: jax_enable_x64)"
    for k, p in enumerate(ps):
        value, reason = _try("fun", fun, x + 1j * H_COMPLEX * p)
        if reason is not None:
            return reason
        cs = float(np.imag(np.asarray(value)).ravel()[0]) / H_COMPLEX
        # Richardson's estimates at neighbouring steps: their spread is the finite differences' own accuracy
        steps, estimates = SWEEP[4:16], _richardson(point.central(p, SWEEP[4:17]))
        if not np.isfinite(estimates).any() or kinks[k] is not None:
            continue
        # the largest change over three neighbouring steps, and the rounding (noise of f) / h at them
        rounding = 2 * (point.noise + point.eps * abs(point.f0)) / steps
        steps_spread = np.abs(np.diff(estimates))
        spread = np.maximum(steps_spread[:-1], steps_spread[1:]) + rounding[1:-1]
        j = int(np.nanargmin(spread))
        best, uncertainty = estimates[j + 1], spread[j]
        scale = max(abs(best), point.variation(p))
        if abs(cs - best) > 10 * uncertainty + 1e-12 * scale:
            return (f"fun is not complex-analytic: its complex step {cs:.12g} disagrees with finite differences "
                    f"{best:.12g} (Richardson, spread {uncertainty:.0e}) along direction {k}: abs, conj or a "
                    "branch on the imaginary part?")
    return None


def _richardson(central):
    """Richardson's extrapolation of central differences at neighbouring steps of the grid: its h^2 error
    cancelled, one fewer estimate."""
    return (RATIO_SQUARED * central[1:] - central[:-1]) / (RATIO_SQUARED - 1)


def _taylor_slope(t, values, expansion, moved, point, claimed_noise=0.0):
    """The slope of log |f(x + tp) - (the expansion's terms)| against log t, fitted over the
    TAYLOR_WINDOW contiguous steps of smallest t where the remainder is a straight line (no step's own
    slope more than STRAIGHT off the fit) standing 100 times above its own rounding: eps times the terms it
    is computed from (f(x + tp) and ``moved``, the rounding of x + tp, included), fun's measured noise, and
    the claims' measured noise times the power of t they enter with, and below the remainder one term
    before (an expansion whose last term does not help is not converging there).  A window that straddles a
    cancellation (two terms of the expansion crossing, a dip of the remainder) or reaches round-off is not
    straight, so it is never fitted.  NaN if no window is straight."""
    previous = values
    for term in expansion[:-1]:  # one list of terms makes both the remainder and its floor
        previous = previous - term
    remainder, previous = np.abs(previous - expansion[-1]), np.abs(previous)
    floor = 100 * (point.eps * sum(np.abs(term) for term in [values, *expansion, moved]) + point.noise) + claimed_noise
    # steps above 1/4 are kept out: there the next terms of the expansion still bend the slope; and steps
    # where the last term does not shrink the remainder (beyond the expansion's radius of convergence)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(remainder) & (remainder >= floor) & (t <= 0.25) & (remainder <= previous)
    for end in range(len(t) - 1, TAYLOR_WINDOW - 2, -1):
        window = np.arange(end - TAYLOR_WINDOW + 1, end + 1)
        if not usable[window].all():
            continue
        logs, logr = np.log(t[window]), np.log(remainder[window])
        fitted = float(np.polyfit(logs, logr, 1)[0])
        if np.all(np.abs(np.diff(logr) / np.diff(logs) - fitted) <= STRAIGHT):
            return fitted
    return math.nan


def _planted_power(claimed, around, caught, check, tolerances):
    """For the smallest, median and largest nonzero entry of ``claimed``: the smallest relative error that
    ``caught`` flags with either sign (every larger one too) when planted in ``around`` (the claim where it
    passes: an error may then cancel one it already has; the reference where it fails), and the entry's
    tolerance (the absolute error it flags)."""
    magnitude = np.abs(claimed)
    nonzero = np.nonzero(magnitude)[0]
    out = {"check": check, "entries": {}}
    if nonzero.size == 0:
        return out
    order = nonzero[np.argsort(magnitude[nonzero], kind="stable")]
    for where, k in (("smallest", order[0]), ("median", order[len(order) // 2]), ("largest", order[-1])):
        smallest = None
        for delta in DELTAS:  # caught whichever its sign: an error may cancel one the claim already has
            planted = [around.copy(), around.copy()]
            planted[0][k] *= 1 + delta
            planted[1][k] *= 1 - delta
            if not (caught(planted[0]) and caught(planted[1])):
                break
            smallest = delta
        out["entries"][where] = {"entry": int(k), "smallest_caught": smallest, "value": float(claimed[k]),
                                 "tolerance": float(tolerances[k])}
    out["smallest_caught"] = out["entries"]["median"]["smallest_caught"]
    return out


def _entry_indices(point, claim, limit, rng):
    """Every entry up to ``limit`` entries, above it a seeded sample (smallest, median, largest, random)."""
    return sampling.entries(np.abs(claim), point.x.size if point.x.size <= limit else sampling.SAMPLED, rng)


def _gradient_checks(point, g, grad, ps, judge, inner, mp_reason, rng):
    fun, x, n, f0 = point.fun, point.x, point.x.size, point.f0
    claim_noise = point.noise_of(grad, g)
    # the rounding of f at x + hp: fun's own noise, and fl(x + hp) moving f by about eps |x|.|g|
    f_rounding = point.noise + point.eps * (abs(f0) + np.abs(x) @ np.abs(g))

    curves = {}
    for k, p in enumerate(ps[:judge.swept]):  # central differences and Richardson, at the step of least uncertainty
        scale = max(np.linalg.norm(g) * np.linalg.norm(p), point.variation(p))
        allowance = ROUNDOFF_FACTOR * (claim_noise @ np.abs(p))
        estimates = point.central(p)
        finer = np.append(estimates[1:], np.nan)  # each step's neighbour on the grid, sqrt(10) smaller
        extrapolated = _richardson(np.append(estimates, np.nan))
        # each estimate's uncertainty, measured: its truncation (10/9 of its distance to the next step's, or
        # the distance between neighbouring extrapolations) and its rounding (f's rounding over the step)
        ratio = RATIO_SQUARED / (RATIO_SQUARED - 1)
        rounding = f_rounding / SWEEP
        uncertainty = {"central difference": ratio * np.abs(estimates - finer) + rounding,
                       "Richardson": np.abs(np.diff(extrapolated, append=np.nan)) + RICHARDSON_ROUNDING * rounding}
        for check, curve in (("central difference", estimates), ("Richardson", extrapolated)):
            spread = uncertainty[check]
            if np.isnan(spread).all():
                judge.cannot(check, "gradient", "every step leaves fun's domain", direction=k)
                continue
            best = int(np.nanargmin(spread))
            error = _relative(max(0.0, abs(curve[best] - g @ p) - allowance), scale)
            # a right derivative cannot fail: the threshold is at least 4 times the estimate's own uncertainty
            threshold = max(target(check, point.eps), 4 * _relative(spread[best], scale))
            judge.along(check, "gradient", k, error, threshold=threshold, step=float(SWEEP[best]),
                        unit="relative error")
        if k == 0:
            def error(e, p=p, allowance=allowance, scale=scale):
                return _relative(max(0.0, abs(e - g @ p) - allowance), scale) if math.isfinite(e) else math.nan
            forward = [(point.along(p, h) - f0) / h for h in SWEEP]
            curves = {"forward": {"h": SWEEP.tolist(), "error": [error(e) for e in forward]},
                      "central": {"h": SWEEP.tolist(), "error": [error(e) for e in estimates]}}
    # entry by entry from fun alone: the complex step (one evaluation an entry) or Richardson's differences
    limit = judge.dense_limit if inner.complex_ok else judge.costly_limit
    indices = _entry_indices(point, g, limit, rng)
    _entries_and_directions(point, judge, inner, "gradient", g, claim_noise, indices, rng,
                            lambda y, u: references.first(inner, y, u), grad_rows=True, floor=inner.first_floor())
    if inner.complex_ok:
        p = ps[0]
        # the complex step's error against h for the figure (every third step above dense_limit: it only draws)
        curve_h = np.concatenate([SWEEP, np.logspace(-20, -300, 15)])[::1 if n <= judge.dense_limit else 3]
        scale = max(np.linalg.norm(g) * np.linalg.norm(p), point.variation(p))
        curves["complex"] = {"h": curve_h.tolist(), "error": [
            _relative(abs(float(np.imag(np.asarray(fun(x + 1j * h * p))).ravel()[0]) / h - g @ p), scale)
            for h in curve_h]}
    # 50 digits, every entry
    if mp_reason is not None:
        judge.cannot_once("50 digits", "gradient", mp_reason)
    else:  # every entry up to the costly limit (an mpmath evaluation is slow), a sample above
        indices = _entry_indices(point, g, judge.costly_limit, rng)
        with mpmath.workdps(MP_DPS):
            x_mp = numeric.to_mp(x)
            # the float of a 50-digit estimate is far more accurate than any float64 claim
            reference = np.array([float(_mp_central(fun, x_mp, _unit(n, i), H_MP)) for i in indices])
        where = "every entry" if indices.size == n else f"{indices.size} sampled entries of {n}"
        judge.entries("50 digits", "gradient", g[indices], reference, claim_noise[indices],
                      f"50-digit central differences along e_i, {where}", indices=indices, full_size=n,
                      detect=indices.size == n)
    # Taylor: r1(t) = |f(x + tp) - f(x) - t g.p| shrinks as t^2
    for k, p in enumerate(ps[:judge.swept]):
        t = TAYLOR_STEPS
        values = np.array([point.along(p, s) for s in t])
        moved = np.abs(x) @ np.abs(g)  # fl(x + tp) is not x + tp: its rounding moves f by about eps |x|.|g|
        noise_along = ROUNDOFF_FACTOR * (claim_noise @ np.abs(p))
        fitted = _taylor_slope(t, values, [f0, t * (g @ p)], moved, point, t * noise_along)
        if math.isnan(fitted):
            judge.cannot("Taylor", "gradient", "the remainder is nowhere a straight line above round-off at steps "
                         "t <= 1/4 (fun is linear along p, or computed in too low a precision?)", direction=k)
        else:
            judge.along("Taylor", "gradient", k, max(0.0, 2 - fitted), slope=fitted, unit="slope deficit")
    return curves


def _unit(n, i):
    e = np.zeros(n)
    e[i] = 1.0
    return e


def _entries_and_directions(point, judge, inner, quantity, claim, noise, indices, rng, reference_along,
                            grad_rows=False, direction=None, floor=0.0):
    """Judge ``claim`` entry by entry (``indices``) and, where that is a sample, along Rademacher
    directions, against ``reference_along(x, u)`` = (u.v, uncertainty) from fun alone; record the
    detection power."""
    x, n = point.x, point.x.size
    pairs = [reference_along(x, _unit(n, i)) for i in indices]
    reference = np.array([r for r, _ in pairs])
    uncertainty = np.array([u for _, u in pairs])
    label = "" if direction is None else f" along direction {direction}"
    where = "every entry" if indices.size == n else f"{indices.size} sampled entries of {n}"
    name = f"{inner.name}{label}, {where}" + ("" if grad_rows else ", differenced along p (from fun alone)")
    # an entry whose reference is too uncertain to say anything (a domain edge, a kink or a fast change within
    # the steps) is left unjudged, and counted, never passed on a tolerance as wide as the reference's doubt;
    # but a reference within a few times its rounding ``floor`` is as good as fun's precision allows (at a
    # stationary point the entries are smaller than it): judged, its uncertainty in the tolerance, and the
    # detection power says which absolute error it catches
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(reference) & (
            (uncertainty <= USEFUL * (np.abs(reference) + np.abs(claim[indices])) + 1e-8 * np.max(np.abs(claim)))
            | (uncertainty <= FLOOR_MULTIPLE * floor))
    if not usable.any():
        judge.cannot(inner.check, quantity, f"{inner.name}{label} is too uncertain at every entry checked: fun "
                     "leaves its domain, or changes too fast, within the steps")
        return
    every = indices.size == n
    unjudged = int(indices.size - usable.sum())
    indices, reference, uncertainty = indices[usable], reference[usable], uncertainty[usable]
    if unjudged:
        where += f" ({unjudged} left unjudged: their reference was too uncertain)"
        name = f"{inner.name}{label}, {where}" + ("" if grad_rows else ", differenced along p (from fun alone)")
    if grad_rows and inner.complex_ok:  # the complex step's rounding inside fun, measured at jittered copies
        reference_noise = point.noise_of(
            lambda y: np.array([reference_along(y, _unit(n, i))[0] for i in indices]), reference,
            REFERENCE_JITTERS, pairs=2)
        uncertainty = uncertainty + reference_noise
    sub = claim[indices]
    # every entry asked for: the power over those judged, the unjudged counted in its line
    judge.entries(inner.check, quantity, sub, reference, noise[indices], name, uncertainty=uncertainty,
                  indices=indices, full_size=n, detect=every, judged=where)
    if every:
        return
    directional = []
    for j, u in enumerate(sampling.rademacher(n, sampling.RADEMACHER, rng)):
        value, spread = reference_along(x, u)
        if not math.isfinite(value):
            judge.cannot(inner.check, quantity, f"{inner.name} along Rademacher direction {j} is too uncertain: fun "
                         "leaves its domain, or has a kink, within the steps", rademacher=j)
            continue
        if grad_rows and inner.complex_ok:
            spread += point.noise_of(lambda y, u=u: np.array([reference_along(y, u)[0]]), np.array([value]),
                                     REFERENCE_JITTERS, pairs=2)[0]
        error = claim @ u - value
        tolerance = ROUNDOFF_FACTOR * (noise @ np.abs(u) + point.eps * (np.abs(claim) @ np.abs(u) + abs(value))) \
            + 2 * spread
        directional.append((u, error, tolerance))
        judge.record(inner.check, quantity, abs(error) / tolerance if error else 0.0, 1.0, unit="x tolerance",
                     rademacher=j, estimator=f"u.v along a Rademacher direction u, {inner.name}{label}")
    errors = sub - reference
    tolerances = entrywise(sub, reference, noise[indices], point.eps, uncertainty)[2]
    if np.any(np.abs(errors) > tolerances) or any(abs(e) > t for _, e, t in directional):
        # a claim that fails: the power is the checks' own, around the reference
        errors, directional = np.zeros_like(errors), [(u, 0.0, t) for u, _, t in directional]
    fractions = sampling.power(claim, directional, (indices, errors, tolerances))
    judge.detection[quantity] = {"check": f"{inner.check}, {where} and {len(directional)} Rademacher directions",
                                 "sampled": True, "fractions": fractions,
                                 "absolute": sampling.caught_in_every_entry(directional)}


def _second_opinion_reason(grad, judge):
    """None if the references built from the claimed gradient may judge Hv, else why not."""
    if grad is None:
        return "no grad given; the references from fun alone judge Hv"
    if judge.verdict_of("gradient") == "fail":
        return ("it rests on the claimed gradient, which fails its own checks above; the references from fun "
                "alone judge Hv")
    return None


def _hessian_checks(point, grad, hvp, ps, judge, inner, mp_reason, rng):
    fun, x, n, f0 = point.fun, point.x, point.x.size, point.f0
    claims = [_vector("hvp(x, p)", _call("hvp", hvp, x, p), n) for p in ps]
    # the identities compare directions: the last bits of x move them (the wide pairs are left out)
    noises = [point.noise_of(lambda y, p=p: hvp(y, p), claim, pairs=0) for p, claim in zip(ps, claims)]
    # entry by entry the rounding of the product with p shows too: p moved in its last bits as well
    entry_noises = [point.noise_of(hvp, claim, p=p) for p, claim in zip(ps, claims)]
    for k in range(len(ps) - 1):  # symmetry: u.(H v) = v.(H u)
        u, v = ps[k], ps[k + 1]
        allowance = ROUNDOFF_FACTOR * (np.abs(u) @ noises[k + 1] + np.abs(v) @ noises[k])
        judge.record("symmetry", "Hv", _relative(max(0.0, abs(u @ claims[k + 1] - v @ claims[k]) - allowance),
                                                 np.linalg.norm(claims[k]) + np.linalg.norm(claims[k + 1])),
                     pair=[k, k + 1], unit="relative error")
    # from fun alone: along direction 0 entry by entry (a sample above the limit), along the others the
    # Rademacher directions' u.(Hp)
    limit = judge.costly_limit
    indices = _entry_indices(point, claims[0], limit, rng)
    if judge.kinks[0] is not None:
        judge.cannot(inner.check, "Hv", f"cannot judge near a kink at distance ~{judge.kinks[0]:.0e} along "
                     "direction 0", direction=0)
    else:
        jittered = point.jittered[:REFERENCE_JITTERS]
        _entries_and_directions(point, judge, inner, "Hv", claims[0], entry_noises[0], indices, rng,
                                lambda y, u: references.mixed(inner, y, u, ps[0], jittered), direction=0)
    # a second opinion from the claimed gradient, labelled as such
    reason = _second_opinion_reason(grad, judge)
    second_opinion = []
    if reason is not None:
        judge.cannot("from the claimed grad", "Hv", reason)
    else:
        start = len(judge.out)
        _hessian_from_grad(point, grad, ps, claims, entry_noises, judge)
        second_opinion = judge.out[start:]
    # 50 digits: p.Hp from fun alone, a second difference in mpmath
    if mp_reason is not None:
        judge.cannot_once("50 digits, p.Hp", "Hv", mp_reason)
    else:
        with mpmath.workdps(MP_DPS):
            x_mp = numeric.to_mp(x)
            h = mpmath.mpf(10) ** -12
            for k, (p, claim, noise) in enumerate(zip(ps[:judge.swept], claims, noises)):
                p_mp = numeric.to_mp(p)
                pHp = (_mp_scalar(fun, x_mp + h * p_mp) - 2 * _mp_scalar(fun, x_mp)
                       + _mp_scalar(fun, x_mp - h * p_mp)) / (h * h)
                # the second difference's own rounding at 50 digits, and the claim's along p
                allowance = 4 * 10.0 ** -MP_DPS * abs(f0) / 1e-24 + ROUNDOFF_FACTOR * (noise @ np.abs(p))
                error = max(0.0, float(abs(pHp - numeric.to_mp(claim) @ p_mp)) - allowance)
                judge.record("50 digits, p.Hp", "Hv",
                             _relative(error, max(np.linalg.norm(claim), point.variation(p) / 1e-3)),
                             direction=k, estimator="p.Hp", unit="relative error")
    # Taylor to order 3 along each direction, with g.p from fun alone (the claimed gradient is not used)
    for k, (p, claim, noise) in enumerate(zip(ps[:judge.swept], claims, noises)):
        gp, gp_uncertainty = references.first(inner, x, p)
        if not math.isfinite(gp):
            judge.cannot("Taylor", "Hv", "fun leaves its domain at the steps that give g.p", direction=k)
            continue
        t = TAYLOR_STEPS
        values = np.array([point.along(p, s) for s in t])
        # fl(x + tp) is not x + tp: its rounding moves f by about eps |x| |g.p| / |p| + t |x|.|H p|
        moved = np.abs(x).sum() * abs(gp) + t * (np.abs(x) @ np.abs(claim))
        claimed = t * gp_uncertainty + ROUNDOFF_FACTOR * t * t / 2 * (noise @ np.abs(p))
        fitted = _taylor_slope(t, values, [f0, t * gp, t * t / 2 * (p @ claim)], moved, point, claimed)
        if math.isnan(fitted):
            judge.cannot("Taylor", "Hv", "the remainder is nowhere a straight line above round-off at steps "
                         "t <= 1/4 (fun is quadratic along p, or computed in too low a precision?)", direction=k)
        else:
            judge.along("Taylor", "Hv", k, max(0.0, 3 - fitted), slope=fitted, unit="slope deficit")
    if second_opinion:  # once every other check of Hv has spoken
        _blame_the_gradient(judge, inner, second_opinion)


def _blame_the_gradient(judge, inner, second_opinion):
    """Where Hv passes every check built without the claimed gradient (fun's own derivatives entry by
    entry, symmetry, 50 digits, Taylor) but not those built from it, the gradient is what is wrong (near
    x: its derivative is not fun's H p): those records become the gradient's.  A reference from fun too
    uncertain to see a small error in Hv blames nothing while another check of Hv fails.

    Unless only grad's complex step disagrees: where the central differences of the same grad agree, grad
    is right at real points and its complex evaluation is what is off (a library's complex routine that is
    not analytic to working precision, as scipy's jvp at x + 1e-30 i): that reference is refused, not
    failed."""
    by_check = {}
    for r in second_opinion:
        by_check.setdefault(r["check"], []).append(r)
    differences = by_check.get("central difference of grad", [])
    complex_step = [r for r in by_check.get("complex step of grad", []) if r["verdict"] == "fail"]
    if complex_step and differences and all(r["verdict"] == "pass" for r in differences):
        for r in complex_step:
            index = next(i for i, o in enumerate(judge.out) if o is r)
            judge.out[index] = records.cannot_run(
                r["check"], r["quantity"], "grad's complex evaluation disagrees with its own central differences "
                "along p, which agree with the Hv claimed: grad is not complex-analytic as computed; the central "
                "differences of grad judged instead", judge.context, direction=r.get("direction"))
        second_opinion = [r for r in second_opinion if all(r is not c for c in complex_step)]
    others = [r for r in judge.out if r["quantity"] == "Hv" and r["verdict"] != "cannot run"
              and all(r is not s for s in second_opinion)]
    if not any(r["check"] == inner.check for r in others) or any(r["verdict"] != "pass" for r in others):
        return
    for r in second_opinion:
        if r["verdict"] == "fail":
            r["quantity"] = "gradient"
            r["finding"] = (f"the claimed gradient's derivative along p is not the Hv that the {inner.name} "
                            "confirms: grad is wrong near x")


def _hessian_from_grad(point, grad, ps, claims, noises, judge):
    """Hv against the complex step and central differences of the claimed gradient: a second opinion,
    run only where that gradient passed its own checks."""
    x, n = point.x, point.x.size
    framework = getattr(grad, "real_points_only", None)  # a framework's autodiff (checks.frameworks)
    if framework is not None:
        complex_reason = f"{framework} is taken at real points only"
    else:
        complex_reason = _try("grad", grad, x + 1j * H_COMPLEX * ps[0])[1]
    if complex_reason is None and point.float32:
        complex_reason = "grad computes in float32: the complex step needs float64"
    if complex_reason is not None:
        judge.cannot("complex step of grad", "Hv", f"{complex_reason}; the references from fun alone judged Hv instead")
    else:
        def cs_hv(y, p):
            return np.imag(np.asarray(grad(y + 1j * H_COMPLEX * p), dtype=complex)).ravel() / H_COMPLEX
        for k, (p, claim, noise) in enumerate(zip(ps, claims, noises)):
            reference = cs_hv(x, p)
            quantity_noise = noise + point.noise_of(lambda y, p=p: cs_hv(y, p), reference, REFERENCE_JITTERS, pairs=2)
            ratios = entrywise(claim, reference, quantity_noise, point.eps)[0]
            judge.record("complex step of grad", "Hv", float(ratios.max()), 1.0, direction=k, entries=n,
                         unit="x tolerance", estimator="complex step of the claimed gradient along p",
                         relative=_normwise(claim, reference))
    for k, (p, claim) in enumerate(zip(ps[:judge.swept], claims)):
        errors = []
        for h in SWEEP:
            up, down = _vector_at_step(grad, x + h * p, n), _vector_at_step(grad, x - h * p, n)
            if up is None or down is None:  # the step left grad's domain
                continue
            estimate = (up - down) / (2 * h)
            errors.append(_relative(np.linalg.norm(claim - estimate), np.linalg.norm(claim)))
        if errors:
            judge.along("central difference of grad", "Hv", k, min(errors),
                        threshold=target("central difference", point.eps), unit="relative error")
        else:
            judge.cannot("central difference of grad", "Hv", "every step leaves grad's domain", direction=k)


def _gauss_newton_checks(point, residual, gnvp, ps, judge):
    x, n = point.x, point.x.size
    r0 = _vector("residual(x)", _call("residual", residual, x), None)  # a clear error for a bad residual first
    claims = [_vector("gnvp(x, p)", _call("gnvp", gnvp, x, p), n) for p in ps]
    noises = [point.noise_of(lambda y, p=p: gnvp(y, p), claim, pairs=0) for p, claim in zip(ps, claims)]
    for k in range(len(ps) - 1):
        u, v = ps[k], ps[k + 1]
        allowance = ROUNDOFF_FACTOR * (np.abs(u) @ noises[k + 1] + np.abs(v) @ noises[k])
        judge.record("symmetry", "GNv", _relative(max(0.0, abs(u @ claims[k + 1] - v @ claims[k]) - allowance),
                                                  np.linalg.norm(claims[k]) + np.linalg.norm(claims[k + 1])),
                     pair=[k, k + 1], unit="relative error")
    for k, (p, claim, noise) in enumerate(zip(ps, claims, noises)):
        below = max(0.0, -(p @ claim) - ROUNDOFF_FACTOR * (noise @ np.abs(p)))
        judge.record("PSD", "GNv", _relative(below, np.linalg.norm(claim)), direction=k, unit="relative error")
    value, reason = _try("residual", residual, x + 1j * H_COMPLEX * ps[0])
    if reason is None and point.float32:
        reason = "residual computes in float32: the complex step needs float64"
    if reason is not None:
        judge.cannot("complex step", "GNv", reason)
        return

    def jacobian_times(y, p):
        return np.imag(np.asarray(residual(y + 1j * H_COMPLEX * p), dtype=complex)).ravel() / H_COMPLEX

    for k, (p, claim, noise) in enumerate(zip(ps, claims, noises)):
        Jp = jacobian_times(x, p)
        allowance = ROUNDOFF_FACTOR * (noise @ np.abs(p)) + 4 * r0.size * point.eps * (Jp @ Jp)
        judge.record("p.Gp = |Jp|^2", "GNv", _relative(max(0.0, abs(p @ claim - Jp @ Jp) - allowance),
                                                       np.linalg.norm(claim) + Jp @ Jp), direction=k,
                     unit="relative error")
    if n > judge.dense_limit:
        judge.cannot("complex step", "GNv", f"n = {n} > dense_limit = {judge.dense_limit}: no entrywise reference; "
                     "p.Gp = |Jp|^2 judged it along each direction")
        return

    def gauss_newton(y, p):
        J = np.stack([jacobian_times(y, _unit(n, i)) for i in range(n)], axis=1)  # r.size x n
        return J.T @ (J @ p), np.abs(J).T @ (np.abs(J) @ np.abs(p))

    for k, (p, claim, noise) in enumerate(zip(ps, claims, noises)):
        reference, magnitude = gauss_newton(x, p)
        # the reference's own rounding: J^T (J p) sums r.size + n products of each magnitude
        reference_noise = (r0.size + n) * point.eps * magnitude
        if k == 0:
            reference_noise = reference_noise + np.abs(gauss_newton(point.jittered[0], p)[0] - reference)
            judge.entries("complex step", "GNv", claim, reference, noise + reference_noise,
                          "J^T J p, J by complex steps, direction 0")
        else:
            ratios = entrywise(claim, reference, noise + reference_noise, point.eps)[0]
            judge.record("complex step", "GNv", float(ratios.max()), 1.0, direction=k, entries=n, unit="x tolerance",
                         relative=_normwise(claim, reference))


def assert_verified(fun, x, **kwargs):
    """``verify`` for pytest: returns the Verification, or raises AssertionError with its table."""
    result = verify(fun, x, **kwargs)
    if not result.passed:
        raise AssertionError("derivatives not verified:\n" + result.table())
    return result
