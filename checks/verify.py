"""``checks.verify``: the lab's estimators on anyone's derivatives.

    result = verify(fun, x, grad=grad, hvp=hvp)      # fun: R^n -> R, x a float64 vector
    result.passed, result.verdicts, print(result.table())
    assert_verified(fun, x, grad=grad)               # the pytest form: AssertionError with the table

The user's claims: ``grad(x)`` (the gradient), ``hvp(x, p)`` (H p),
``gnvp(x, p)`` with ``residual(x)`` (G p for G = J^T J, J the Jacobian of the
residual vector r; for fun = 1/2 r.r this is fun's Gauss-Newton matrix), and
``jvp(x, v)`` / ``vjp(x, u)`` (J v and J^T u of the residual).  Every
estimator that applies runs; one that cannot says why:

* complex step (h = 1e-30): the reference gradient entry by entry (n
  evaluations, up to ``dense_limit`` entries), H p from the complex step of
  ``grad``, J p and J column by column from the residual.  Needs a
  complex-analytic function: a TypeError, a ComplexWarning, a real result, or
  disagreement with central differences is "cannot run" with the message;
* 50 digits: central differences in mpmath at h = 1e-15 when the callables
  take object arrays of mpf;
* central differences over a sweep of h, and Richardson extrapolation
  (4 D(h/2) - D(h)) / 3, each at the best h read off its own curve, for any
  float64 function;
* the Taylor test (remainders of orders 2 and 3 along each direction, fitted
  over the window above round-off; measured is how far the fitted slope falls
  short of 2 or 3: a wrong gradient leaves slope 1, a wrong Hv slope 2, and a
  steeper slope means a vanishing next term, not an error), symmetry u.(Hv) = v.(Hu), the adjoint
  identity u.(Jv) = (J^T u).v, and p.Gp = |Jp|^2 >= 0.

Errors are normwise: a vector against the reference's norm, a directional
derivative g.p against |g| |p|.  Detection power is measured, not claimed:
the claimed vector's median-size entry is planted with relative errors 1e-2
... 1e-14 and the strongest check that ran is asked again; the smallest error
caught (and every larger one) is reported.
"""

import math
import warnings

import mpmath
import numpy as np

from ae import numeric
from checks import records
from checks.taylor import fitted_window, slope

H_COMPLEX = 1e-30
H_MP, MP_DPS = 1e-15, 50
SWEEP = np.logspace(-1, -12, 23)
DELTAS = [10.0**-k for k in range(2, 15)]
TARGETS = {"complex step": 1e-13, "50 digits": 1e-14, "central difference": 1e-8, "Richardson": 1e-9,
           "symmetry": 1e-12, "adjoint": 1e-12, "p.Gp = |Jp|^2": 1e-12, "Taylor": 0.1, "PSD": 1e-13}
EPS = np.finfo(float).eps
# the 5 smallest steps above round-off: a longer window reaches steps where the next terms of the
# expansion can cancel the one measured (a remainder crossing zero bends the fitted line)
TAYLOR_WINDOW = 5


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


def _error(approx, exact, scale):
    return float(np.linalg.norm(np.asarray(approx) - np.asarray(exact)) / scale) if scale > 0 else float(
        np.linalg.norm(np.asarray(approx) - np.asarray(exact)))


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
        lines = [f"{'quantity':10} {'check':24} {'measured':>10} {'target':>9}  verdict"]
        for r in self.records:
            if r["verdict"] == "cannot run":
                lines.append(f"{r['quantity']:10} {r['check']:24} {'-':>10} {'-':>9}  cannot run: {r['reason']}")
            else:
                lines.append(f"{r['quantity']:10} {r['check']:24} {r['measured']:10.2e} {r['threshold']:9.1e}  "
                             f"{r['verdict']}" + (f" (direction {r['direction']})" if "direction" in r else ""))
        for quantity, power in self.detection_power.items():
            caught = "nothing" if power["smallest_caught"] is None else f"{power['smallest_caught']:.0e}"
            lines.append(f"detection power, {quantity}: a relative error in one entry is caught down to "
                         f"{caught} ({power['check']})")
        return "\n".join(lines)

    def figure(self, folder):
        """The error of g.p against the step h for each estimator; returns the PNG and PDF paths."""
        from checks.plots import error_vs_step

        if not self.curves:
            raise ValueError("no gradient sweep ran: verify was given no grad")
        return error_vs_step(self.curves, "gradient", folder)


def _complex_reason(values, name):
    """None if ``values`` came back complex, else why the complex step cannot run."""
    if not np.iscomplexobj(np.asarray(values)):
        return f"{name} is not complex-analytic: it returned a real result for complex input"
    return None


def _try(name, fn, *args):
    """(value, None) or (None, reason) for an evaluation in complex or mpmath arithmetic."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        try:
            return fn(*args), None
        except (Exception, np.exceptions.ComplexWarning) as error:  # noqa: B014 - the warning is raised
            return None, f"{name} is not complex-analytic: {type(error).__name__}: {error}"


def _mp_try(name, fn, *args):
    """(value, None) or (None, reason) for an evaluation on object arrays of mpf (inside workdps)."""
    try:
        value = fn(*args)
    except Exception as error:
        return None, f"{name} does not take object arrays of mpmath mpf: {type(error).__name__}: {error}"
    first = np.asarray(value, dtype=object).ravel()[0]
    if not isinstance(first, mpmath.mpf):
        return None, f"{name} does not compute in mpmath: given mpf it returned {type(first).__name__}"
    return value, None


def _mp_scalar(fun, x_mp):
    return np.asarray(fun(x_mp), dtype=object).ravel()[0]


def verify(fun, x, grad=None, hvp=None, gnvp=None, residual=None, jvp=None, vjp=None, directions=3, seed=0,
           dense_limit=2000, name=None):
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
    f0 = _scalar("fun", _call("fun", fun, x))
    rng = np.random.default_rng(seed)
    ps = [p / np.linalg.norm(p) for p in rng.standard_normal((directions, n))]
    context = {"function": name or getattr(fun, "__name__", "fun"), "dtype": "float64", "seed": seed, "n": n}
    out, detection, curves = [], {}, {}

    def judge(check, quantity, measured, **fields):
        out.append(records.verdict(check, quantity, measured, TARGETS[check], context, **fields))

    def cannot(check, quantity, reason):
        out.append(records.cannot_run(check, quantity, reason, context))

    with mpmath.workdps(MP_DPS):  # does fun compute in mpmath? asked once, for every 50-digit check
        mp_reason = _mp_try("fun", fun, numeric.to_mp(x))[1]
    if grad is not None:
        g = _vector("grad(x)", _call("grad", grad, x), n)
        curves = _gradient_checks(fun, x, f0, g, ps, dense_limit, judge, cannot, detection, mp_reason)
    if hvp is not None:
        _hessian_checks(fun, grad, hvp, x, ps, n, judge, cannot, detection, mp_reason)
    if gnvp is not None:
        _gauss_newton_checks(residual, gnvp, x, ps, n, dense_limit, judge, cannot, detection)
    if jvp is not None and vjp is not None:
        r0 = _vector("residual(x)", _call("residual", residual, x), None) if residual is not None else None
        for k, v in enumerate(ps):
            Jv = _vector("jvp(x, v)", _call("jvp", jvp, x, v), None if r0 is None else r0.size)
            u = rng.standard_normal(Jv.shape[0])
            JTu = _vector("vjp(x, u)", _call("vjp", vjp, x, u), n)
            judge("adjoint", "J", abs(u @ Jv - JTu @ v) / (np.linalg.norm(u) * np.linalg.norm(Jv) + 1e-300),
                  direction=k)
    if not out:
        raise VerifyError("nothing to verify: give grad, hvp, gnvp with residual, or jvp with vjp")
    return Verification(out, detection, curves)


def _planted_power(claimed, caught, check):
    """The smallest relative error in the median-size entry that ``caught`` flags (all larger too)."""
    magnitude = np.abs(claimed)
    nonzero = np.nonzero(magnitude)[0]
    if nonzero.size == 0:
        return {"smallest_caught": None, "check": check, "entry": None, "false_alarm": bool(caught(claimed))}
    k = int(nonzero[np.argsort(magnitude[nonzero])[len(nonzero) // 2]])
    smallest = None
    for delta in DELTAS:
        planted = claimed.copy()
        planted[k] *= 1 + delta
        if not caught(planted):
            break
        smallest = delta
    return {"smallest_caught": smallest, "check": check, "entry": k, "false_alarm": bool(caught(claimed))}


def _gradient_checks(fun, x, f0, g, ps, dense_limit, judge, cannot, detection, mp_reason):
    n = x.shape[0]
    central = lambda p, h: (_scalar("fun", fun(x + h * p)) - _scalar("fun", fun(x - h * p))) / (2 * h)  # noqa: E731
    curves = {}
    # central differences along each direction: the best h from the curve, then Richardson there
    for k, p in enumerate(ps):
        scale = np.linalg.norm(g) * np.linalg.norm(p)
        estimates = [central(p, h) for h in SWEEP]
        errors = [abs(e - g @ p) / scale for e in estimates]
        best = int(np.argmin(errors))
        judge("central difference", "gradient", errors[best], direction=k, step=float(SWEEP[best]))
        # Richardson: (4 D(h/2) - D(h)) / 3 cancels the h^2 term; again the best h of its own curve
        halves = [central(p, h / 2) for h in SWEEP]
        extrapolated = [abs((4 * e2 - e) / 3 - g @ p) / scale for e, e2 in zip(estimates, halves)]
        best = int(np.argmin(extrapolated))
        judge("Richardson", "gradient", extrapolated[best], direction=k, step=float(SWEEP[best]))
        if k == 0:
            forward = [(_scalar("fun", fun(x + h * p)) - f0) / h for h in SWEEP]
            curves = {"forward": {"h": SWEEP.tolist(), "error": [abs(e - g @ p) / scale for e in forward]},
                      "central": {"h": SWEEP.tolist(), "error": errors}}
    # complex step: the whole gradient entry by entry (or along the directions when n is large)
    value, reason = _try("fun", fun, x + 1j * H_COMPLEX * ps[0])
    reason = reason or _complex_reason(value, "fun")
    if reason is None:  # a complex result can still be non-analytic (abs, conj): compare with central differences
        cs = float(np.imag(np.asarray(value)).ravel()[0]) / H_COMPLEX
        cd = central(ps[0], 1e-5)
        if abs(cs - cd) > 1e-5 * (np.linalg.norm(g) + abs(cd)) + 1e-8:
            reason = (f"fun is not complex-analytic: its complex step {cs:.6g} disagrees with central "
                      f"differences {cd:.6g} (abs, conj or a branch on the imaginary part?)")
    if reason is not None:
        cannot("complex step", "gradient", reason)
    else:
        def cs_along(p):
            return float(np.imag(np.asarray(fun(x + 1j * H_COMPLEX * p))).ravel()[0]) / H_COMPLEX
        if n <= dense_limit:
            reference = np.array([cs_along(e) for e in np.eye(n)])
            scale = np.linalg.norm(reference)
            judge("complex step", "gradient", _error(g, reference, scale), entries=n)
            detection["gradient"] = _planted_power(
                g, lambda v: _error(v, reference, scale) > TARGETS["complex step"], "complex step, every entry")
        for k, p in enumerate(ps):
            curve_h = np.concatenate([SWEEP, np.logspace(-20, -300, 15)])
            if k == 0:
                curves["complex"] = {"h": curve_h.tolist(), "error": [
                    abs(float(np.imag(np.asarray(fun(x + 1j * h * p))).ravel()[0]) / h - g @ p)
                    / (np.linalg.norm(g) * np.linalg.norm(p)) for h in curve_h]}
            judge("complex step", "gradient", abs(cs_along(p) - g @ p) / (np.linalg.norm(g) * np.linalg.norm(p)),
                  direction=k)
    # 50 digits
    with mpmath.workdps(MP_DPS):
        x_mp = numeric.to_mp(x)
        if mp_reason is not None:
            cannot("50 digits", "gradient", mp_reason)
        else:
            h = mpmath.mpf(H_MP)
            estimates = [float((_mp_scalar(fun, x_mp + h * numeric.to_mp(p))
                                - _mp_scalar(fun, x_mp - h * numeric.to_mp(p))) / (2 * h)) for p in ps]
            # the float of a 50-digit estimate is still far more accurate than any float64 claim
            for k, (p, estimate) in enumerate(zip(ps, estimates)):
                judge("50 digits", "gradient", abs(estimate - g @ p) / (np.linalg.norm(g) * np.linalg.norm(p)),
                      direction=k)
            if "gradient" not in detection:
                detection["gradient"] = _planted_power(g, lambda v: any(
                    abs(m - v @ p) / (np.linalg.norm(v) * np.linalg.norm(p)) > TARGETS["50 digits"]
                    for m, p in zip(estimates, ps)), "50 digits, along the directions")
    if "gradient" not in detection:
        detection["gradient"] = _planted_power(g, lambda v: any(
            min(abs(central(p, h) - v @ p) for h in SWEEP[8:16]) / (np.linalg.norm(v) * np.linalg.norm(p))
            > TARGETS["central difference"] for p in ps), "central difference, along the directions")
    # Taylor: r1(t) = |f(x + tp) - f(x) - t g.p| shrinks as t^2
    for k, p in enumerate(ps):
        t = 2.0 ** -np.arange(0, 40)
        r1 = np.array([abs(_scalar("fun", fun(x + s * p)) - f0 - s * (g @ p)) for s in t])
        window = fitted_window(t, r1, f0, EPS, size=TAYLOR_WINDOW)
        fitted = slope(t, r1, window)
        if math.isnan(fitted):
            cannot("Taylor", "gradient", "the remainder never rises above round-off (fun is linear along p?)")
        else:
            judge("Taylor", "gradient", max(0.0, 2 - fitted), direction=k, slope=fitted)
    return curves


def _hessian_checks(fun, grad, hvp, x, ps, n, judge, cannot, detection, mp_reason):
    claims = [_vector("hvp(x, p)", _call("hvp", hvp, x, p), n) for p in ps]
    for k in range(len(ps) - 1):  # symmetry: u.(H v) = v.(H u)
        u, v = ps[k], ps[k + 1]
        judge("symmetry", "Hv", abs(u @ claims[k + 1] - v @ claims[k])
              / (np.linalg.norm(claims[k]) + np.linalg.norm(claims[k + 1])), pair=[k, k + 1])
    if grad is None:
        cannot("complex step", "Hv", "no grad given: H p is the derivative of the gradient along p")
    else:
        value, reason = _try("grad", grad, x + 1j * H_COMPLEX * ps[0])
        reason = reason or _complex_reason(value, "grad")
        if reason is not None:
            cannot("complex step", "Hv", reason)
        else:
            references = [np.imag(np.asarray(grad(x + 1j * H_COMPLEX * p), dtype=complex)).ravel() / H_COMPLEX
                          for p in ps]
            for k, (claim, reference) in enumerate(zip(claims, references)):
                judge("complex step", "Hv", _error(claim, reference, np.linalg.norm(reference)), direction=k)
            detection["Hv"] = _planted_power(claims[0], lambda v: _error(v, references[0], np.linalg.norm(
                references[0])) > TARGETS["complex step"], "complex step of grad, direction 0")
        for k, (p, claim) in enumerate(zip(ps, claims)):
            errors = []
            for h in SWEEP:
                estimate = (_vector("grad", grad(x + h * p), n) - _vector("grad", grad(x - h * p), n)) / (2 * h)
                errors.append(_error(claim, estimate, np.linalg.norm(claim)))
            judge("central difference", "Hv", min(errors), direction=k, step=float(SWEEP[int(np.argmin(errors))]))
    # 50 digits: p.Hp from fun alone, a second difference in mpmath
    with mpmath.workdps(MP_DPS):
        x_mp = numeric.to_mp(x)
        if mp_reason is not None:
            cannot("50 digits", "Hv", mp_reason)
        else:
            for k, (p, claim) in enumerate(zip(ps, claims)):
                p_mp, h = numeric.to_mp(p), mpmath.mpf(10) ** -12
                pHp = (_mp_scalar(fun, x_mp + h * p_mp) - 2 * _mp_scalar(fun, x_mp)
                       + _mp_scalar(fun, x_mp - h * p_mp)) / (h * h)
                judge("50 digits", "Hv", float(abs(pHp - numeric.to_mp(claim) @ p_mp))
                      / (np.linalg.norm(claim) * np.linalg.norm(p) + 1e-300), direction=k, estimator="p.Hp")
    if grad is not None:  # Taylor to order 3 along each direction
        g = _vector("grad(x)", grad(x), n)
        f0 = _scalar("fun", fun(x))
        for k, (p, claim) in enumerate(zip(ps, claims)):
            t = 2.0 ** -np.arange(0, 40)
            r2 = np.array([abs(_scalar("fun", fun(x + s * p)) - f0 - s * (g @ p) - s * s / 2 * (p @ claim)) for s in t])
            fitted = slope(t, r2, fitted_window(t, r2, f0, EPS, size=TAYLOR_WINDOW))
            if math.isnan(fitted):
                cannot("Taylor", "Hv", "the remainder never rises above round-off (fun is quadratic along p?)")
            else:
                judge("Taylor", "Hv", max(0.0, 3 - fitted), direction=k, slope=fitted)


def _gauss_newton_checks(residual, gnvp, x, ps, n, dense_limit, judge, cannot, detection):
    _vector("residual(x)", _call("residual", residual, x), None)  # a clear error for a bad residual first
    claims = [_vector("gnvp(x, p)", _call("gnvp", gnvp, x, p), n) for p in ps]
    for k in range(len(ps) - 1):
        u, v = ps[k], ps[k + 1]
        judge("symmetry", "GNv", abs(u @ claims[k + 1] - v @ claims[k])
              / (np.linalg.norm(claims[k]) + np.linalg.norm(claims[k + 1])), pair=[k, k + 1])
    for k, (p, claim) in enumerate(zip(ps, claims)):
        judge("PSD", "GNv", max(0.0, -(p @ claim)) / (np.linalg.norm(claim) + 1e-300), direction=k)
    value, reason = _try("residual", residual, x + 1j * H_COMPLEX * ps[0])
    reason = reason or _complex_reason(value, "residual")
    if reason is not None:
        cannot("complex step", "GNv", reason)
        return

    def jacobian_times(p):
        return np.imag(np.asarray(residual(x + 1j * H_COMPLEX * p), dtype=complex)).ravel() / H_COMPLEX

    for k, (p, claim) in enumerate(zip(ps, claims)):
        Jp = jacobian_times(p)
        judge("p.Gp = |Jp|^2", "GNv", abs(p @ claim - Jp @ Jp) / (np.linalg.norm(claim) + Jp @ Jp + 1e-300),
              direction=k)
    if n <= dense_limit:
        J = np.stack([jacobian_times(e) for e in np.eye(n)], axis=1)  # r.size x n
        references = [J.T @ (J @ p) for p in ps]
        for k, (claim, reference) in enumerate(zip(claims, references)):
            judge("complex step", "GNv", _error(claim, reference, np.linalg.norm(reference)), direction=k,
                  estimator="J^T J p, J by complex steps")
        detection["GNv"] = _planted_power(claims[0], lambda v: _error(v, references[0], np.linalg.norm(
            references[0])) > TARGETS["complex step"], "complex step, J^T J p")


def assert_verified(fun, x, **kwargs):
    """``verify`` for pytest: returns the Verification, or raises AssertionError with its table."""
    result = verify(fun, x, **kwargs)
    if not result.passed:
        raise AssertionError("derivatives not verified:\n" + result.table())
    return result
