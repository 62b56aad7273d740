"""checks.verify on functions nobody here wrote: scipy.optimize's Rosenbrock family (with scipy's own
rosen_der and rosen_hess_prod) and the test problems of the PyPI package ``landscapes`` (Rooy et al.,
pure Python), at random points, at stationary points and near minima, plus badly scaled, kinked,
mixed-precision and domain-limited functions.  Correct claims must pass (no false alarm); a claim
with one entry off by a relative 1e-8, in its smallest, median or largest entry, must fail (no miss).

Where the collection gives no derivatives, the claims are mpmath's own numerical derivatives
(``mpmath.diff`` at 40 digits), rounded to float64: correct to the last bit, and independent of
every estimator of the lab."""

import math

import mpmath
import numpy as np
import pytest

from checks import verify

landscapes = pytest.importorskip("landscapes.single_objective")
optimize = pytest.importorskip("scipy.optimize")

LANDSCAPES = {  # name: (dimension, a stationary point or minimum, where the collection states one)
    "beale": (2, [3.0, 0.5]), "booth": (2, [1.0, 3.0]), "matyas": (2, [0.0, 0.0]),
    "himmelblau": (2, [3.0, 2.0]), "styblinski_tang": (4, None), "dixon_price": (3, None),
    "sphere": (5, [0.0] * 5), "camel_hump_3": (2, [0.0, 0.0]), "goldstein_price": (2, [0.0, -1.0]),
    "zakharov": (4, [0.0] * 4), "qing": (3, None), "trid": (4, None),
}


def mp_derivatives(fn, x, p):
    """(gradient, H p) of fn at x by mpmath.diff at 40 digits, rounded to float64."""
    n = len(x)
    with mpmath.workdps(40):
        f = lambda *a: fn(list(a))  # noqa: E731
        point = [mpmath.mpf(v) for v in x]
        grad = [mpmath.diff(f, point, tuple(int(j == i) for j in range(n))) for i in range(n)]
        H = [[mpmath.diff(f, point, tuple(int(j == i) + int(j == k) for j in range(n))) for k in range(n)]
             for i in range(n)]
        Hp = [sum(H[i][k] * mpmath.mpf(p[k]) for k in range(n)) for i in range(n)]
    return np.array([float(v) for v in grad]), np.array([float(v) for v in Hp])


class Claims:
    """A function given as the collection writes it, and derivatives claimed for it."""

    def __init__(self, fn, exact_grad=None, exact_hvp=None):
        self.fn = fn
        # mpmath's derivatives are real: complex input gets a real answer, so the complex step of grad
        # says it cannot run (scipy's rosen_der does take complex input)
        self.exact_grad = exact_grad or (lambda x: mp_derivatives(fn, np.real(x), np.zeros(len(x)))[0])
        self.exact_hvp = exact_hvp or (lambda x, p: mp_derivatives(fn, x, p)[1])

    def fun(self, x):
        return self.fn(list(x)) if isinstance(x, np.ndarray) and x.dtype == object else self.fn(x)

    def claims(self, grad_error=None, hvp_error=None):
        def grad(x):
            g = np.asarray(self.exact_grad(x))
            return g if grad_error is None else grad_error(g)

        def hvp(x, p):
            h = np.array(self.exact_hvp(x, p), dtype=float)
            return h if hvp_error is None else hvp_error(h)
        return grad, hvp


def corpus_points():
    rng = np.random.default_rng(7)
    for name, (n, minimum) in LANDSCAPES.items():
        fn = getattr(landscapes, name)
        yield f"landscapes.{name} random", Claims(fn), rng.uniform(-1.5, 1.5, n)
        if minimum is not None:
            yield f"landscapes.{name} at its minimum", Claims(fn), np.array(minimum)
    rosen = Claims(optimize.rosen, optimize.rosen_der, lambda x, p: optimize.rosen_hess_prod(x, p))
    for n in (5, 10):
        yield f"scipy rosen n={n} random", rosen, rng.uniform(-1, 1, n)
        yield f"scipy rosen n={n} at ones", rosen, np.ones(n)
        yield f"scipy rosen n={n} near the minimum", rosen, np.ones(n) + 1e-3


POINTS = list(corpus_points())


def only_exact_gradient(claims):
    """The claimed gradient only (the Hessian entries of mpmath.diff cost n^2 derivatives)."""
    return claims.claims()[0]


@pytest.mark.slow
@pytest.mark.parametrize("label, claims, x", POINTS, ids=[p[0] for p in POINTS])
def test_correct_derivatives_of_outside_functions_pass(label, claims, x):
    grad, hvp = claims.claims()
    result = verify(claims.fun, x, grad=grad, hvp=hvp, seed=1, name=label)
    assert result.passed, result.table()
    assert result.verdicts == {"gradient": "pass", "Hv": "pass"}, result.table()
    checks = {r["check"] for r in result.records if r["verdict"] == "pass" and r["quantity"] == "gradient"}
    assert {"complex step", "50 digits"} <= checks, result.table()  # the entrywise judges ran


@pytest.mark.slow
@pytest.mark.parametrize("where", ["smallest", "median", "largest"])
@pytest.mark.parametrize("label, claims, x", POINTS, ids=[p[0] for p in POINTS])
def test_a_one_entry_error_of_1e_8_fails_wherever_it_is(label, claims, x, where):
    g = claims.claims()[0](x)
    # at a minimum an entry of 1e-87 is the rounding of an exact 0: no relative error of it is an error
    nonzero = np.nonzero(np.abs(g) > 1e-30)[0]
    if nonzero.size == 0:
        pytest.skip("the gradient is zero here: no entry to perturb relatively")
    order = nonzero[np.argsort(np.abs(g[nonzero]), kind="stable")]
    entry = {"smallest": order[0], "median": order[len(order) // 2], "largest": order[-1]}[where]

    def off(v):
        v = v.copy()
        v[entry] *= 1 + 1e-8
        return v

    grad, _ = claims.claims(grad_error=off)
    assert verify(claims.fun, x, grad=grad, seed=1).verdicts["gradient"] == "fail"
    _, hvp = claims.claims(hvp_error=off)
    Hp = claims.claims()[1](x, np.ones(len(x)))
    if abs(Hp[entry]) > 1e-30:
        assert verify(claims.fun, x, grad=claims.claims()[0], hvp=hvp, seed=1).verdicts["Hv"] == "fail"


def badly_scaled(x):
    return 1e8 * x[0] * x[0] + 1e-8 * x[1] * x[1]


def test_badly_scaled_small_entries_are_judged_on_their_own_scale():
    x = np.array([0.7, 1.3])
    grad = lambda x: np.array([2e8 * x[0], 2e-8 * x[1]])  # noqa: E731
    hvp = lambda x, p: np.array([2e8 * p[0], 2e-8 * p[1]])  # noqa: E731
    assert verify(badly_scaled, x, grad=grad, hvp=hvp).passed
    for wrong in (lambda g: g * [1, 2], lambda g: g * [1, 0]):
        assert verify(badly_scaled, x, grad=lambda x, w=wrong: w(grad(x))).verdicts["gradient"] == "fail"
    assert verify(badly_scaled, x, grad=grad, hvp=lambda x, p: hvp(x, p) * [1, 2]).verdicts["Hv"] == "fail"
    residual = lambda x: np.array([1e8 * x[0], 1e-8 * x[1] * x[1]])  # noqa: E731

    def gnvp(x, p, factor=1.0):
        J = np.diag([1e8, 2e-8 * x[1]])
        return J.T @ (J @ p) * [1, factor]

    assert verify(badly_scaled, x, residual=residual, gnvp=gnvp).passed
    assert verify(badly_scaled, x, residual=residual,
                  gnvp=lambda x, p: gnvp(x, p, 10.0)).verdicts["GNv"] == "fail"


def test_degenerate_points_are_judged_absolutely_never_on_nan():
    for fun, grad, hvp, x in (
        (lambda x: 0.5 * x @ x, lambda x: x, lambda x, p: p, np.zeros(4)),
        (lambda x: 3.0 + 0 * x.sum(), lambda x: np.zeros(3), lambda x, p: np.zeros(3), np.ones(3)),
    ):
        result = verify(fun, x, grad=grad, hvp=hvp)
        assert result.passed, result.table()
        assert all(r["measured"] is None or math.isfinite(r["measured"]) for r in result.records)


def test_a_float_piece_inside_an_mpmath_function_is_refused_not_failed():
    def mixed(x):
        return 0.5 * x @ x + (math.exp(x[0]) if x.dtype == object else np.exp(x[0]))

    grad = lambda x: x + np.array([np.exp(x[0])] + [0] * (len(x) - 1))  # noqa: E731
    result = verify(mixed, np.array([0.3, -0.2, 0.5]), grad=grad)
    assert result.passed, result.table()
    reason = next(r["reason"] for r in result.records if r["check"] == "50 digits")
    assert "fun computes in float64 somewhere" in reason


def test_a_small_non_analytic_term_refuses_the_complex_step():
    def fun(x):
        return 0.5 * x @ x + 1e-7 * x[0] * np.abs(x[0])

    grad = lambda x: x + np.array([2e-7 * abs(x[0]), 0, 0])  # noqa: E731
    result = verify(fun, np.array([0.8, -0.2, 0.5]), grad=grad)
    assert result.passed, result.table()
    reason = next(r["reason"] for r in result.records if r["check"] == "complex step")
    assert "not complex-analytic" in reason


def test_a_kink_within_the_steps_is_named_not_failed():
    x = np.array([1e-9, 0.5, -0.7])
    result = verify(lambda x: np.abs(x).sum(), x, grad=np.sign)
    assert "fail" not in result.verdicts.values(), result.table()
    reasons = {r.get("reason", "") for r in result.records if r["verdict"] == "cannot run"}
    assert any("cannot judge near a kink at distance ~" in r for r in reasons), result.table()


def kink_distances(result):
    return {r["reason"].split("~")[1].split(" ")[0] for r in result.records
            if "near a kink" in r.get("reason", "")}


def test_a_kink_at_x_itself_is_seen_down_to_the_smallest_step():
    result = verify(lambda x: np.abs(x).sum(), np.array([0.0, 0.5]), grad=np.sign)
    assert kink_distances(result) == {"1e-12"}, result.table()


def kinked(*kinks):
    """fun and grad of sum s |t - d| over the (s, d) of ``kinks``, t the first entry of x."""
    return {"fun": lambda x: sum(s * abs(x[0] - d) for s, d in kinks),
            "grad": lambda x: np.array([sum(s * np.sign(x[0] - d) for s, d in kinks)])}


def test_a_kink_seen_by_just_three_steps_is_a_kink():
    # the second difference is flat (1.9 to 1.0) at h = 1, 0.3 and 0.1 > d, then 0 below d
    result = verify(x=np.array([0.0]), **kinked((1.0, 0.05)))
    assert kink_distances(result) == {"1e-01"}, result.table()


@pytest.mark.parametrize("d", [3e-6, 7e-4, 7e-3, 2e-2, 0.2])
def test_a_kink_anywhere_within_the_steps_is_named_and_never_fails_a_right_gradient(d):
    result = verify(x=np.array([0.0]), **kinked((1.0, d)))
    assert result.passed, result.table()
    assert kink_distances(result) or d > 0.1, result.table()  # beyond 0.1 two steps see it: no run of three


def test_a_kink_ends_where_the_second_difference_falls_more_than_ten_times():
    # |t - d| + s |t| at t = 0: the second difference is flat (about 2) down to h = 1e-7 > d, then 10.5
    # times smaller for good (the kink at t = 0 alone): the kink at d lies below 1e-7
    d, s = 1e-7 / 2, 1 / 19  # (2 (1 - d / 1e-7) + 2 s) / (2 s) = 10.5
    result = verify(x=np.array([0.0]), **kinked((1.0, d), (s, 0.0)))
    assert kink_distances(result) == {"1e-07"}, result.table()


def test_of_two_kinks_the_nearer_is_named():
    # |t - d| + |t| / 8 at t = 0: flat (about 2.25) down to 1e-7 > d, then 0.25 (5 times less, the kink
    # at t = 0) for every smaller step: that one is named
    result = verify(x=np.array([0.0]), **kinked((1.0, 1e-7 / 2), (1 / 8, 0.0)))
    assert kink_distances(result) == {"1e-12"}, result.table()


def test_a_kink_held_up_for_one_step_by_a_second_kink_is_still_a_kink():
    # flat (about 3.5) down to h = 1e-6 > d1, then 3.5 times smaller at 3.2e-7 (between the kinks: the
    # second alone), then round-off below d2: without the kink the Taylor check would fail a right gradient
    d1, d2, s2 = 1e-6 / 2, 1e-6 / 5, 1.0
    s1 = 3.5 * 2 * s2 * (1 - d2 / 10 ** -6.5) - 2 * s2 * (1 - d2 / 1e-6)
    result = verify(x=np.array([0.0]), **kinked((s1, d1), (s2, d2)))
    assert kink_distances(result) == {"1e-06"} and result.passed, result.table()


@pytest.mark.parametrize("fun, grad, x", [
    (lambda x: np.exp(1000 * x[0]) + x[1] ** 2, lambda x: np.array([1000 * np.exp(1000 * x[0]), 2 * x[1]]),
     np.array([0.3, 0.2])),
    (lambda x: -np.log(x).sum(), lambda x: -1 / x, np.array([0.5, 0.7, 0.2])),
], ids=["exp(1000 x)", "-sum(log x)"])
def test_steps_that_leave_the_domain_shrink_and_the_call_never_aborts(fun, grad, x):
    result = verify(fun, x, grad=grad)
    assert result.passed, result.table()
