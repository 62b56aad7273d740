"""checks.verify must not fail a right derivative: the kinds of right derivative that are hard to judge, built
here (a right Hv beside a wrong gradient, a Taylor window straddling a cancellation, central differences
at a minimum where |g| ~ 1e-10, a claim whose rounding only cancellation shows), with the wrong claim
beside it still failing."""

import types

import numpy as np
import pytest
from test_verify import planted

from checks import verify
from checks.verify import _taylor_slope


class Cubic:
    """f = 1/2 |s|^2 + 0.1 sum s^3, s = A x + b: gradient and Hv by hand."""

    def __init__(self, seed, n=8):
        rng = np.random.default_rng(seed)
        self.A, self.b = rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n)
        self.x = rng.standard_normal(n)

    def fun(self, x):
        s = self.A @ x + self.b
        return 0.5 * s @ s + 0.1 * np.sum(s**3)

    def grad(self, x):
        s = self.A @ x + self.b
        return self.A.T @ (s + 0.3 * s**2)

    def hvp(self, x, p):
        s = self.A @ x + self.b
        return self.A.T @ ((1 + 0.6 * s) * (self.A @ p))


@pytest.mark.parametrize("seed", range(5))
def test_a_right_hv_passes_beside_a_wrong_gradient_and_the_table_says_which_claim_is_wrong(seed):
    problem = Cubic(seed)
    result = verify(problem.fun, problem.x, grad=planted(problem.grad, 1e-6, 3), hvp=problem.hvp, seed=seed)
    assert result.verdicts == {"gradient": "fail", "Hv": "pass"}, result.table()
    assert "rests on the claimed gradient, which fails its own checks above" in result.table()
    wrong_hv = verify(problem.fun, problem.x, grad=planted(problem.grad, 1e-6, 3),
                      hvp=planted(problem.hvp, 1e-6, 3), seed=seed)
    assert wrong_hv.verdicts == {"gradient": "fail", "Hv": "fail"}, wrong_hv.table()


def test_the_taylor_window_never_straddles_a_cancellation():
    # f(x + tp) = 1 + t^2 + b t^3 - c t^4 with the two last terms crossing at t = 0.2: the remainder of
    # order 3 dips there; a window fitted across the dip gave slope 2.39 (a "fail" of a right Hv)
    t = 2.0 ** -np.arange(0, 40)
    point = types.SimpleNamespace(eps=np.finfo(float).eps, noise=0.0)
    b = 3.16e-9
    right = [np.ones_like(t), 0 * t, t * t]
    values = 1 + t**2 + b * t**3 - b / 0.2 * t**4
    assert np.isnan(_taylor_slope(t, values, right, 0.0, point))  # no straight window: cannot judge
    clear = 1 + t**2 + 1e-3 * t**3 - 1e-3 / 0.2 * t**4  # the cubic term stands above round-off below the dip
    assert _taylor_slope(t, clear, right, 0.0, point) == pytest.approx(3, abs=0.05)
    wrong = [np.ones_like(t), 0 * t, t * t * (1 - 1e-4)]  # p.Hp off by 1e-4: the remainder goes as t^2
    assert _taylor_slope(t, clear, wrong, 0.0, point) == pytest.approx(2, abs=0.05)


@pytest.mark.parametrize("seed", range(10))
def test_central_differences_at_a_minimum_with_gradient_1e_10_do_not_fail(seed):
    rng = np.random.default_rng(seed)
    n = 5
    a, m = rng.uniform(0.5, 2, n), rng.standard_normal(n)
    x = m + 1e-10 * rng.standard_normal(n) / a

    def fun(y):
        return 1e3 + 0.5 * np.sum(a * (y - m) ** 2) + 0.1 * np.sum((y - m) ** 3)

    def grad(y):
        return a * (y - m) + 0.3 * (y - m) ** 2

    result = verify(fun, x, grad=grad, seed=seed)
    assert result.passed, result.table()
    assert "fail" in verify(fun, x, grad=lambda y: grad(y) + 1e-6, seed=seed).verdicts.values()


@pytest.mark.parametrize("seed", range(10))
def test_an_hv_whose_rounding_is_a_product_with_p_is_judged_on_that_rounding(seed):
    # H p = A p + a small term: A p's rounding does not move with x, only with p's last bits
    rng = np.random.default_rng(seed)
    n = 6
    S = rng.standard_normal((n, n))
    A, x, c = S @ S.T + n * np.eye(n), 3 * rng.standard_normal(n), 1e-8
    result = verify(lambda y: 0.5 * y @ A @ y + c * np.sum(y**4), x, grad=lambda y: A @ y + 4 * c * y**3,
                    hvp=lambda y, p: A @ p + 12 * c * y**2 * p, seed=seed)
    assert result.passed, result.table()


@pytest.mark.parametrize("seed", range(20))
def test_a_gradient_computed_with_cancellation_is_judged_on_its_rounding(seed):
    # grad = exp(x) - 1 at x ~ 1e-3 loses 3 digits to cancellation; 3 last-bit jitters never showed it
    # (every seed failed the complex step); the wide pairs and the median entry's relative noise do
    rng = np.random.default_rng(seed)
    x = rng.uniform(1e-3, 2e-3, 8)
    result = verify(lambda y: np.sum(np.exp(y) - y), x, grad=lambda y: np.exp(y) - 1.0, seed=seed)
    assert result.passed, result.table()
    wrong = verify(lambda y: np.sum(np.exp(y) - y), x, grad=planted(lambda y: np.exp(y) - 1.0, 1e-10, 2), seed=seed)
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


def test_a_gradient_wrong_only_near_x_is_blamed_and_the_right_hv_still_passes():
    # at rosen's minimum the gradient is exactly 0, so a relative error in it vanishes at x itself; its
    # derivative (central differences of grad) shows it, and those records are the gradient's, not Hv's
    optimize = pytest.importorskip("scipy.optimize")
    x = np.ones(6)
    result = verify(optimize.rosen, x, grad=planted(optimize.rosen_der, 1e-6, 2), hvp=optimize.rosen_hess_prod)
    assert result.verdicts == {"gradient": "fail", "Hv": "pass"}, result.table()
    blamed = [r for r in result.records if "finding" in r]
    assert blamed and {r["quantity"] for r in blamed} == {"gradient"}
    assert "grad is wrong near x" in result.table()


def test_a_grad_right_at_real_points_but_not_complex_analytic_is_not_blamed():
    # a grad right at real points whose complex evaluation is off (as scipy.special.jvp's at x + 1e-30 i):
    # the central differences of the same grad agree with the claimed Hv, so its complex step is refused,
    # never a failure of the gradient
    x = np.random.default_rng(0).uniform(0.5, 20.0, 50)

    def grad(y):  # right on real points; a wrong derivative in its imaginary part
        return np.cos(y.real) + 2j * y.imag if np.iscomplexobj(y) else np.cos(y)

    def hvp(y, p):
        return -np.sin(y) * p

    result = verify(lambda y: np.sum(np.sin(y)), x, grad=grad, hvp=hvp)
    assert result.verdicts == {"gradient": "pass", "Hv": "pass"}, result.table()
    refused = [r for r in result.records if r["check"] == "complex step of grad"]
    assert refused and all(r["verdict"] == "cannot run" and "not complex-analytic as computed" in r["reason"]
                           for r in refused)
    # a grad wrong at real points too is still blamed
    wrong = verify(lambda y: np.sum(np.sin(y)), x, grad=planted(np.cos, 1e-6, 3), hvp=hvp)
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


@pytest.mark.parametrize("seed", range(3))
def test_a_real_only_fun_judges_hv_entry_by_entry_from_its_richardson_differences(seed):
    # fun refuses complex input: Hv's reference is Richardson's central differences of fun in both
    # directions; a right Hv passes, and a 1e-6 error in one entry fails Hv, never the right gradient (the
    # reference from fun may be too uncertain to see it, but symmetry is not)
    rng = np.random.default_rng(seed)
    A, x = rng.standard_normal((8, 8)) / 2, rng.standard_normal(8)

    def fun(y):
        if np.iscomplexobj(y):
            raise TypeError("real input only")
        return float(np.sum(np.tanh(A @ y) ** 2))

    def grad(y):
        t = np.tanh(A @ y)
        return A.T @ (2 * t * (1 - t**2))

    def hvp(y, p):
        t = np.tanh(A @ y)
        return A.T @ ((2 - 8 * t**2 + 6 * t**4) * (A @ p))

    result = verify(fun, x, grad=grad, hvp=hvp, seed=seed)
    assert result.passed, result.table()
    wrong = verify(fun, x, grad=grad, hvp=planted(hvp, 1e-6, 3), seed=seed)
    assert wrong.verdicts == {"gradient": "pass", "Hv": "fail"}, wrong.table()


def test_richardson_references_from_a_real_only_fun_are_within_their_uncertainty_and_it_is_small():
    # the entrywise Hv reference of a real-only fun: its error never exceeds its stated uncertainty, and
    # that uncertainty is small enough (measured below 2.5e-8 of the largest entry here) to judge Hv to 1e-7
    from checks import references
    rng = np.random.default_rng(0)
    A, x = rng.standard_normal((8, 8)) / 2, rng.standard_normal(8)

    def fun(y):
        return float(np.sum(np.tanh(A @ y) ** 2))

    t = np.tanh(A @ x)
    p = rng.standard_normal(8) / np.sqrt(8)
    exact = A.T @ ((2 - 8 * t**2 + 6 * t**4) * (A @ p))
    inner = references.Inner(fun, x, False, np.finfo(float).eps, 0.0, fun(x))
    for i in range(8):
        estimate, uncertainty = references.mixed(inner, x, np.eye(8)[i], p)
        assert abs(estimate - exact[i]) <= uncertainty <= 1e-7 * np.max(np.abs(exact)), (i, estimate, exact[i])
