"""checks.verify on plain numpy functions: correct derivatives pass, planted errors far below
gradcheck's reach fail, what cannot run says why, and bad claims get clear errors."""

import functools
import math

import numpy as np
import pytest

import checks
from checks import VerifyError, assert_verified, verify


class Problem:
    """fun = 1/2 r.r with r = s + 0.3 s^3, s = A x + b: only +, *, @, so it runs in float64,
    complex128 and mpmath alike.  Every derivative written by hand."""

    def __init__(self, seed=0, m=8, n=10):
        rng = np.random.default_rng(seed)
        self.A, self.b = rng.standard_normal((m, n)) / np.sqrt(n), rng.standard_normal(m)
        self.x = rng.standard_normal(n)

    def residual(self, x):
        s = self.A @ x + self.b
        return s + 0.3 * s * s * s

    def fun(self, x):
        r = self.residual(x)
        return 0.5 * (r @ r)

    def jvp(self, x, v):
        s = self.A @ x + self.b
        return (1 + 0.9 * s * s) * (self.A @ v)

    def vjp(self, x, u):
        s = self.A @ x + self.b
        return self.A.T @ ((1 + 0.9 * s * s) * u)

    def grad(self, x):
        return self.vjp(x, self.residual(x))

    def gnvp(self, x, p):
        return self.vjp(x, self.jvp(x, p))

    def hvp(self, x, p):
        s = self.A @ x + self.b
        return self.gnvp(x, p) + self.A.T @ (self.residual(x) * 1.8 * s * (self.A @ p))

    def claims(self):
        return dict(grad=self.grad, hvp=self.hvp, gnvp=self.gnvp, residual=self.residual, jvp=self.jvp,
                    vjp=self.vjp)


def planted(fn, delta, entry):
    def wrong(*args):
        value = np.array(fn(*args), dtype=float)
        value[entry] *= 1 + delta
        return value
    return wrong


def median_entry(vector):
    return int(np.argsort(np.abs(vector))[len(vector) // 2])


@pytest.mark.parametrize("seed", range(20))
def test_correct_derivatives_pass_with_no_false_alarm(seed):
    problem = Problem(seed)
    result = verify(problem.fun, problem.x, seed=seed, **problem.claims())
    assert result.passed, result.table()
    assert result.verdicts == {"gradient": "pass", "Hv": "pass", "GNv": "pass", "J": "pass"}
    ran = {(r["quantity"], r["check"]) for r in result.records if r["verdict"] == "pass"}
    for check in ("complex step", "50 digits", "central difference", "Richardson", "Taylor"):
        assert ("gradient", check) in ran, check
    for check in ("complex step", "complex step of grad", "central difference of grad", "50 digits, p.Hp", "symmetry",
                  "Taylor"):
        assert ("Hv", check) in ran, check
    for check in ("complex step", "p.Gp = |Jp|^2", "PSD", "symmetry"):
        assert ("GNv", check) in ran, check


@pytest.mark.parametrize("seed", range(5))
def test_a_gradient_entry_off_by_1e_8_fails(seed):
    problem = Problem(seed)
    entry = median_entry(problem.grad(problem.x))
    result = verify(problem.fun, problem.x, grad=planted(problem.grad, 1e-8, entry), seed=seed)
    assert result.verdicts["gradient"] == "fail"
    failed = {r["check"] for r in result.records if r["verdict"] == "fail"}
    assert "complex step" in failed
    assert result.detection_power["gradient"]["smallest_caught"] <= 1e-10


@pytest.mark.parametrize("seed", range(5))
def test_an_hv_entry_off_by_1e_7_fails(seed):
    problem = Problem(seed)
    p0 = np.random.default_rng(seed).standard_normal((3, 10))[0]
    entry = median_entry(problem.hvp(problem.x, p0 / np.linalg.norm(p0)))
    result = verify(problem.fun, problem.x, grad=problem.grad, hvp=planted(problem.hvp, 1e-7, entry), seed=seed)
    assert result.verdicts == {"gradient": "pass", "Hv": "fail"}
    assert result.detection_power["Hv"]["smallest_caught"] <= 1e-9


def test_a_gauss_newton_entry_off_by_1e_7_fails_and_an_hv_passed_as_gnv_fails():
    problem = Problem(3)
    wrong = verify(problem.fun, problem.x, residual=problem.residual, gnvp=planted(problem.gnvp, 1e-7, 4))
    assert wrong.verdicts == {"GNv": "fail"}
    confused = verify(problem.fun, problem.x, residual=problem.residual, gnvp=problem.hvp)  # H is not G
    assert confused.verdicts == {"GNv": "fail"}


def test_a_wrong_transpose_fails_the_adjoint_identity():
    problem = Problem(1)
    result = verify(problem.fun, problem.x, residual=problem.residual, jvp=problem.jvp,
                    vjp=lambda x, u: problem.vjp(x, u) * 1.001)
    assert result.verdicts["J"] == "fail"


def test_what_cannot_run_says_why_and_the_rest_still_runs():
    problem = Problem(2)

    def with_abs(x):  # complex input, real output: abs destroys the complex step
        return problem.fun(np.abs(x) * np.sign(np.real(x)))

    def with_float(x):
        return float(problem.fun(np.asarray(x, dtype=float)))

    for fun in (with_abs, with_float):
        result = verify(fun, problem.x, grad=problem.grad)
        reasons = {r["check"]: r.get("reason", "") for r in result.records if r["verdict"] == "cannot run"}
        assert "fun is not complex-analytic" in reasons["complex step"], reasons
        assert result.passed, result.table()  # central differences, Richardson and Taylor still judge it
    assert "fun does not compute in mpmath: given mpf it returned float" in reasons["50 digits"]
    assert "central differences of fun ran instead" in reasons["complex step"]

    def conjugating(x):  # complex in, complex out, but not analytic
        r = problem.residual(x)
        return 0.5 * (r @ np.conj(r))

    result = verify(conjugating, problem.x, grad=problem.grad)
    reason = next(r["reason"] for r in result.records if r["check"] == "complex step")
    assert "disagrees with finite differences" in reason


def test_fifty_digits_run_when_fun_takes_mpf_and_catch_a_1e_12_error():
    problem = Problem(4)
    result = verify(problem.fun, problem.x, grad=problem.grad)
    mp_rows = [r for r in result.records if r["check"] == "50 digits"]
    # each entry within its own rounding tolerance (the measured value is in units of it)
    assert mp_rows and all(r["verdict"] == "pass" and r["measured"] < 1 for r in mp_rows)
    p = np.random.default_rng(0).standard_normal((3, 10))[0]
    entry = int(np.argmax(np.abs(p)))  # an entry the first direction sees well
    wrong = verify(problem.fun, problem.x, grad=planted(problem.grad, 1e-12, entry))
    assert any(r["check"] == "50 digits" and r["verdict"] == "fail" for r in wrong.records), wrong.table()


def test_assert_verified_raises_with_a_readable_table():
    problem = Problem(5)
    assert_verified(problem.fun, problem.x, grad=problem.grad)
    with pytest.raises(AssertionError) as error:
        assert_verified(problem.fun, problem.x, grad=planted(problem.grad, 1e-6, 2))
    message = str(error.value)
    assert "derivatives not verified" in message and "complex step" in message and " fail" in message
    assert "detection power, gradient" in message


def test_the_error_against_step_figure(tmp_path):
    problem = Problem(6)
    paths = verify(problem.fun, problem.x, grad=problem.grad).figure(tmp_path)
    assert all(path.exists() and path.stat().st_size > 1000 for path in paths)
    assert sorted(path.name for path in paths) == ["error_vs_step_gradient.pdf", "error_vs_step_gradient.png"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(fun=lambda x: x * 2), r"fun must return a scalar; it returned an array of shape \(10,\)"),
    (dict(fun=lambda x: np.nan), "fun returned nan"),
    (dict(grad=lambda x: np.ones(9)), r"grad\(x\) returned shape \(9,\); x has 10 entries"),
    (dict(grad=lambda x: np.full(10, np.nan)), r"grad\(x\) returned NaN or inf at entries \[0, 1, 2, 3, 4\]"),
    (dict(grad=lambda x: 1 / 0), r"grad raised ZeroDivisionError"),
    (dict(hvp=lambda x, p: np.ones((2, 5))), r"hvp\(x, p\) returned shape \(2, 5\)"),
    (dict(hvp=lambda x, p: np.ones(9)), r"hvp\(x, p\) returned shape \(9,\)"),
    (dict(gnvp=lambda x, p: p), "gnvp needs residual"),
    (dict(gnvp=lambda x, p: np.ones(9), residual=Problem(0).residual), r"gnvp\(x, p\) returned shape \(9,\)"),
    (dict(gnvp=lambda x, p: 1 / 0, residual=Problem(0).residual), r"gnvp raised ZeroDivisionError"),
    (dict(grad=None), "nothing to verify"),
    (dict(x=np.ones((2, 5))), "x must be a non-empty flat vector"),
    (dict(x=np.full(10, np.nan)), "x contains NaN or inf"),
    (dict(jvp=lambda x, v: 1 / 0, vjp=Problem(0).vjp, residual=Problem(0).residual), r"jvp raised ZeroDivisionError"),
    (dict(jvp=Problem(0).jvp, vjp=lambda x, u: 1 / 0, residual=Problem(0).residual), r"vjp raised ZeroDivisionError"),
    (dict(jvp=Problem(0).jvp, vjp=lambda x, u: np.ones(9), residual=Problem(0).residual),
     r"vjp\(x, u\) returned shape \(9,\)"),
])
def test_bad_claims_get_errors_that_name_the_callable(kwargs, match):
    problem = Problem(0)
    args = {"fun": problem.fun, "x": problem.x, "grad": problem.grad, **kwargs}
    with pytest.raises(VerifyError, match=match):
        verify(**args)


def test_records_are_the_labs_json_records():
    import json

    problem = Problem(7)
    result = checks.verify(problem.fun, problem.x, grad=problem.grad)
    for record in result.records:
        assert {"check", "quantity", "verdict"} <= set(record)
        json.dumps(record)
    worst = result.worst["gradient"]
    assert worst["measured"] <= worst["threshold"]


def test_jax_check_grads_misses_what_verify_catches():
    """A comparison kept as a fact of the README: JAX's check_grads with its defaults passes a
    gradient with one entry off by 1e-4 or 1e-8; verify fails both (run by the tox env "jax")."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    problem = Problem(0)
    entry = median_entry(problem.grad(problem.x))
    A, b = jnp.asarray(problem.A), jnp.asarray(problem.b)
    for delta in (1e-4, 1e-8):
        wrong_grad = planted(problem.grad, delta, entry)

        @jax.custom_vjp
        def f(x):
            s = A @ x + b
            r = s + 0.3 * s ** 3
            return 0.5 * r @ r

        f.defvjp(lambda x: (f(x), x), lambda x, ct, g=wrong_grad: (ct * jnp.asarray(g(np.asarray(x))),))
        check_grads(f, (jnp.asarray(problem.x),), order=1, modes=["rev"])  # passes: the error is missed
        assert verify(problem.fun, problem.x, grad=wrong_grad).verdicts["gradient"] == "fail"


def test_the_table_says_what_each_record_and_the_detection_power_say():
    from checks.verify import Verification

    records = [
        {"quantity": "gradient", "check": "entrywise vs central", "measured": 0.25, "threshold": 1.0,
         "verdict": "pass", "entry": 3, "error": 2.5e-17, "tolerance": 1e-16,
         "agreement": "exact to working precision", "unit": "x tolerance"},
        {"quantity": "Hv", "check": "symmetry", "measured": 3e-15, "threshold": 1e-12, "verdict": "pass",
         "direction": 1, "unit": "relative error"},
        {"quantity": "GNv", "check": "complex step", "verdict": "cannot run", "reason": "residual is not analytic"},
        {"quantity": "loss", "check": "taylor", "measured": 2.0, "threshold": 1.5, "verdict": "fail",
         "unit": "slope deficit"},
    ]
    # at a stationary point an entry within its rounding of zero is caught by an absolute error only
    power = {"gradient": {"check": "complex step", "entries": {
        "smallest": {"smallest_caught": 1e-10},
        "largest": {"smallest_caught": None, "value": 1e-15, "tolerance": 3e-15}}}}
    assert Verification(records, power, {}).table().splitlines() == [
        "quantity   check                        measured unit               target  verdict",
        "gradient   entrywise vs central         2.50e-01 x tolerance       1.0e+00  pass (worst entry 3: off by "
        "2.5e-17, tolerance 1.0e-16; exact to working precision)",
        "Hv         symmetry                     3.00e-15 relative error    1.0e-12  pass (direction 1)",
        "GNv        complex step                        -                         -  cannot run: residual is not "
        "analytic",
        "loss       taylor                       2.00e+00 slope deficit     1.5e+00  fail",
        "detection power, gradient (complex step): a relative error in one entry is caught down to: smallest 1e-10, "
        "largest (entry 1.0e-15) only once off by more than 3.0e-15 absolute",
    ]


@pytest.mark.parametrize("quantity", ["Hv", "GNv"])
def test_an_asymmetry_between_two_quiet_directions_is_judged_by_those_two_alone(quantity):
    # verify's directions are the seeded unit vectors below; q is orthogonal to the first two, and
    # along q the claim is both huge and noisy: neither may excuse the pair (0, 1)'s asymmetry
    problem, n = Problem(3), 10
    ps = [p / np.linalg.norm(p) for p in np.random.default_rng(0).standard_normal((3, n))]
    q = np.linalg.qr(np.stack(ps, axis=1))[0][:, 2]
    rng = np.random.default_rng(1)
    S, K = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    M = S @ S.T + 1e-6 * (K - K.T)

    def gnvp(y, p):
        return M @ p + (1e12 + 1e9 * np.sin(1e12 * y.sum())) * (p @ q) * q

    claims = {"gnvp": gnvp, "residual": problem.residual} if quantity == "GNv" else {"hvp": gnvp}
    result = verify(problem.fun, problem.x, grad=problem.grad, **claims)
    pair = next(r for r in result.records if r["check"] == "symmetry" and r["quantity"] == quantity
                and r["pair"] == [0, 1])
    u, v = ps[0], ps[1]
    asymmetry = abs(u @ gnvp(problem.x, v) - v @ gnvp(problem.x, u))
    assert pair["verdict"] == "fail"
    assert pair["measured"] == pytest.approx(
        asymmetry / (np.linalg.norm(gnvp(problem.x, u)) + np.linalg.norm(gnvp(problem.x, v))), rel=1e-3)


def test_a_residual_the_complex_step_cannot_take_is_named_in_the_gnv_record():
    problem = Problem(0)

    def gnvp(x, p):
        return problem.vjp(x, problem.jvp(x, p))

    def complex_step_gnv(result):
        return [(r["verdict"], r.get("reason")) for r in result.records
                if r["quantity"] == "GNv" and r["check"] == "complex step"]

    real_only = verify(problem.fun, problem.x, gnvp=gnvp, residual=lambda x: np.abs(problem.residual(x)))
    assert complex_step_gnv(real_only) == [
        ("cannot run", "residual is not complex-analytic: it returned a real result for complex input")]
    in_float32 = verify(lambda x: np.float32(problem.fun(x)), problem.x, gnvp=gnvp, residual=problem.residual)
    assert complex_step_gnv(in_float32) == [
        ("cannot run", "residual computes in float32: the complex step needs float64")]


def test_detection_power_is_measured_at_the_smallest_median_and_largest_entry():
    problem = Problem(2)
    power = verify(problem.fun, problem.x, grad=problem.grad).detection_power["gradient"]
    assert list(power["entries"]) == ["smallest", "median", "largest"]
    order = np.argsort(np.abs(problem.grad(problem.x)), kind="stable")  # 10 entries: the median is the 6th
    assert [power["entries"][w]["entry"] for w in ("smallest", "median", "largest")] == [order[0], order[5],
                                                                                        order[-1]]


def test_hv_symmetry_is_judged_for_every_consecutive_pair_of_directions():
    problem = Problem(4)
    result = verify(problem.fun, problem.x, grad=problem.grad, hvp=problem.hvp, directions=4)
    pairs = [r["pair"] for r in result.records if r["check"] == "symmetry" and r["quantity"] == "Hv"]
    assert pairs == [[0, 1], [1, 2], [2, 3]]


def test_hv_without_grad_is_judged_from_fun_alone_and_says_the_second_opinion_needs_grad():
    # the old behaviour (no entrywise check of Hv without grad) was the defect: a reference needs fun only
    problem = Problem(4)
    result = verify(problem.fun, problem.x, hvp=problem.hvp)
    assert [(r["check"], r["verdict"], r["reason"]) for r in result.records
            if r["quantity"] == "Hv" and r["verdict"] == "cannot run"] == [
        ("from the claimed grad", "cannot run", "no grad given; the references from fun alone judge Hv")]
    assert any(r["check"] == "complex step" and r["verdict"] == "pass" and r["entries"] == 10
               for r in result.records), result.table()


def test_a_function_computed_through_python_floats_says_which_references_cannot_run():
    x = np.random.default_rng(0).standard_normal(6)

    def fun(x):
        return 0.25 * float(np.sum(np.asarray(x, float) ** 4))

    def grad(x):
        return np.array([float(v) ** 3 for v in x])

    def hvp(x, p):
        return 3 * np.array([float(v) ** 2 for v in x]) * p

    result = verify(fun, x, grad=grad, hvp=hvp)
    refused = {(r["check"], r["quantity"]): r["reason"] for r in result.records if r["verdict"] == "cannot run"}
    analytic = "is not complex-analytic: ComplexWarning: Casting complex values to real discards the imaginary part"
    # each reference that cannot run is said once, with what ran instead (the 50-digit line was said once
    # per quantity before)
    assert refused == {
        ("complex step", "gradient"): f"fun {analytic}; central differences of fun ran instead",
        ("complex step of grad", "Hv"): f"grad {analytic}; the references from fun alone judged Hv instead",
        ("50 digits", "gradient"): "fun does not compute in mpmath: given mpf it returned float; the float64 "
                                   "references judged instead"}
    assert result.passed  # finite differences, Richardson and the identities still judge it
    judged = {(r["check"], r["quantity"]) for r in result.records if r["verdict"] == "pass" and "entry" in r}
    assert judged == {("differences", "gradient"), ("differences", "Hv")}  # entry by entry, from fun alone


def test_a_quadratic_says_why_the_taylor_test_of_hv_cannot_run():
    A = np.diag(np.arange(1.0, 7.0))
    x = np.random.default_rng(5).standard_normal(6)
    result = verify(lambda x: 0.5 * x @ A @ x, x, grad=lambda x: A @ x, hvp=lambda x, p: A @ p)
    reasons = {r["reason"] for r in result.records if r["check"] == "Taylor" and r["quantity"] == "Hv"}
    assert reasons == {"the remainder is nowhere a straight line above round-off at steps t <= 1/4 (fun is "
                       "quadratic along p, or computed in too low a precision?)"}
    # said once, naming the directions
    lines = [line for line in result.table().splitlines() if line.startswith("Hv         Taylor")]
    assert lines == ["Hv         Taylor                              -                         -  cannot run "
                     "(directions 0, 1, 2): the remainder is nowhere a straight line above round-off at steps t <= "
                     "1/4 (fun is quadratic along p, or computed in too low a precision?)"]


def test_above_the_dense_limit_a_sample_of_entries_and_rademacher_directions_are_judged_with_their_power():
    # the old behaviour (above the limit no entry checked, no power stated) was the defect
    from checks import sampling

    problem = Problem(1, m=30, n=80)
    result = verify(problem.fun, problem.x, grad=problem.grad, hvp=problem.hvp, dense_limit=40)
    assert result.passed, result.table()
    sampled = [r for r in result.records if r["check"] == "complex step" and "entry" in r]
    assert [(r["quantity"], r["checked"], r["entries"]) for r in sampled] == [
        ("gradient", sampling.SAMPLED, 80), ("Hv", sampling.SAMPLED, 80)]
    rademacher = [r for r in result.records if "rademacher" in r]
    assert len(rademacher) == 2 * sampling.RADEMACHER and all(r["verdict"] == "pass" for r in rademacher)
    power = result.detection_power["gradient"]
    assert power["sampled"] and power["fractions"][1e-6] == 1.0  # every entry: |u_k| = 1 for a Rademacher u
    assert "caught with probability 1 at 1e-04, 1 at 1e-06" in result.table()
    entry = median_entry(problem.grad(problem.x))
    wrong = verify(problem.fun, problem.x, grad=planted(problem.grad, 1e-6, entry), dense_limit=40)
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


def test_the_taylor_test_of_the_gradient_gives_its_slope_or_says_why_not():
    problem = Problem(1)
    slopes = [r["slope"] for r in verify(problem.fun, problem.x, grad=problem.grad).records
              if r["check"] == "Taylor" and r["quantity"] == "gradient"]
    assert len(slopes) == 3 and all(abs(s - 2) < 0.1 for s in slopes)
    c = np.arange(1.0, 7.0)
    linear = verify(lambda x: c @ x, np.ones(6), grad=lambda x: c)
    assert {r["reason"] for r in linear.records if r["check"] == "Taylor"} == {
        "the remainder is nowhere a straight line above round-off at steps t <= 1/4 (fun is linear along p, or "
        "computed in too low a precision?)"}


def test_the_variation_along_p_is_the_docstring_s_two_differences():
    from checks.verify import VARIATION_STEP, _Point

    c, x, p = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, 0.3]), np.array([0.6, 0.0, -0.8])
    d = VARIATION_STEP  # |x| <= 1
    linear = _Point(lambda y: c @ y, x, np.random.default_rng(0))
    assert linear.variation(p) == pytest.approx(abs(c @ p), rel=1e-9)  # no second difference, the slope once
    square = _Point(lambda y: (y - x) @ (y - x), x, np.random.default_rng(0))
    assert square.variation(p) == pytest.approx(2 * d * (p @ p), rel=1e-9)  # at its minimum: the curvature


def test_records_name_the_function_and_how_close_the_claim_came():
    problem = Problem(1)

    def reconstruction_loss(x):
        return problem.fun(x)

    result = verify(reconstruction_loss, problem.x, grad=problem.grad)
    assert {r["function"] for r in result.records} == {"reconstruction_loss"}
    assert {r["function"] for r in verify(problem.fun, problem.x, grad=problem.grad, name="mine").records} == {"mine"}
    agreements = {r["agreement"] for r in result.records if "agreement" in r}
    assert agreements and agreements <= {"exact to working precision", "right up to the rounding of its float "
                                                                       "evaluation"}
    assert {r["dtype"] for r in result.records} == {"float64"} and {r["seed"] for r in result.records} == {0}
    assert {r["entries"] for r in result.records if "agreement" in r} == {problem.x.size}
    # a callable without a __name__ (a partial, an object with __call__) is "fun"
    partial = verify(functools.partial(Problem.fun, problem), problem.x, grad=problem.grad)
    assert {r["function"] for r in partial.records} == {"fun"}


def test_the_rounding_scale_is_measured_by_moving_x_in_its_last_two_bits():
    from checks.verify import EPS, JITTERS, _Point

    x = np.linspace(-3.0, 5.0, 64)
    point = _Point(lambda y: y @ y, x, np.random.default_rng(0))
    moved = np.abs(np.array(point.jittered) / x - 1)
    assert len(point.jittered) == JITTERS
    assert moved.max() <= 2.5 * EPS  # uniform in (-2, 2) eps, the product rounded once more
    assert moved.max() >= EPS  # the copies do move


def test_steps_that_leave_the_domain_of_fun_or_grad_are_named_not_raised():
    # 1e-13 from log's edge every central step crosses it along these directions; grad raises there
    x = np.array([1e-13, 1.0, 2.0])

    def grad(y):
        return np.array([1 / math.sqrt(v) ** 2 for v in y])  # ValueError: math domain error below 0

    result = verify(lambda y: np.log(y).sum(), x, grad=grad, hvp=lambda y, p: -p / y**2)
    left = {(r["check"], r["quantity"], r["reason"]) for r in result.records
            if "every step leaves" in r.get("reason", "")}
    assert left == {("central difference", "gradient", "every step leaves fun's domain"),
                    ("Richardson", "gradient", "every step leaves fun's domain"),
                    ("central difference of grad", "Hv", "every step leaves grad's domain")}, result.table()


def test_a_grad_of_another_length_on_one_side_of_x_leaves_its_domain_there():
    problem = Problem(1)

    def grad(y):  # one entry short wherever y[0] lies above x[0]: no central step can use it
        g = problem.grad(y)
        return g[:-1] if y[0] > problem.x[0] + 1e-15 else g

    result = verify(problem.fun, problem.x, grad=grad, hvp=problem.hvp, directions=1)
    assert [r["reason"] for r in result.records if r["check"] == "central difference of grad"
            and r["quantity"] == "Hv"] == [
        "every step leaves grad's domain"], result.table()


class Chain:
    """sum(log cosh x_i + x_i^2 / 2) + 0.1 sum(x_i x_{i+1}), at any n; ``analytic=False`` refuses complex
    input, as a function written for real numbers does.  Each call is counted."""

    def __init__(self, n, analytic=True):
        self.x, self.analytic, self.calls = np.random.default_rng(1).standard_normal(n), analytic, 0

    def fun(self, y):
        self.calls += 1
        if not self.analytic and np.iscomplexobj(y):
            raise TypeError("this function takes real numbers")
        return np.sum(np.log(np.cosh(y)) + 0.5 * y * y) + 0.1 * np.sum(y[:-1] * y[1:])

    def grad(self, y):
        g = np.tanh(y) + y
        g[:-1] += 0.1 * y[1:]
        g[1:] += 0.1 * y[:-1]
        return g

    def hvp(self, y, p):
        h = (2 - np.tanh(y) ** 2) * p
        h[:-1] += 0.1 * p[1:]
        h[1:] += 0.1 * p[:-1]
        return h


@pytest.mark.parametrize("analytic, delta", [(True, 1e-6), (False, 1e-4)])
def test_a_gradient_of_20000_entries_takes_under_200_evaluations_in_memory_linear_in_n(analytic, delta):
    import tracemalloc

    chain = Chain(20_000, analytic)
    tracemalloc.start()
    try:
        result = verify(chain.fun, chain.x, grad=chain.grad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.passed, result.table()
    assert chain.calls < 200
    assert peak < 200 * 8 * chain.x.size  # 200 vectors of n floats; the n x n identity would be 3.2 GB
    assert ("complex step" if analytic else "differences") in {r["check"] for r in result.records}
    # above 2,000 entries fun is differenced along one direction
    assert {r.get("direction") for r in result.records if r["check"] in ("central difference", "Taylor")} == {0}
    # a relative error delta in the median entry fails, where the stated power says it is caught in nearly
    # every entry (not in the few within about delta of zero; the real differences' reference is less
    # certain, so for them delta is 1e-4)
    assert result.detection_power["gradient"]["fractions"][delta] >= 0.99
    entry = median_entry(chain.grad(chain.x))
    wrong = verify(chain.fun, chain.x, grad=planted(chain.grad, delta, entry))
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


@pytest.mark.parametrize("analytic, most", [(True, 220), (False, 1200)])  # the docstring: about 210, 1,100
def test_an_hv_of_20000_entries_costs_what_the_docstring_says(analytic, most):
    chain = Chain(20_000, analytic)
    result = verify(chain.fun, chain.x, hvp=chain.hvp)
    assert result.verdicts["Hv"] == "pass", result.table()
    assert chain.calls <= most


def test_along_a_direction_each_point_is_evaluated_once():
    seen = {}

    def fun(y):
        seen[y.tobytes()] = seen.get(y.tobytes(), 0) + 1
        return chain.fun(y)

    chain = Chain(5_000)
    verify(fun, chain.x, grad=chain.grad)
    assert sorted(seen.values())[-1] == 1, "a point evaluated twice"


def test_dense_limit_x_size_checks_every_entry_of_every_claim():
    chain = Chain(300)
    result = verify(chain.fun, chain.x, grad=chain.grad, hvp=chain.hvp, dense_limit=300)
    assert chain.calls < (8 + 10) * 300  # the docstring's cost: about 8 n for a gradient, 10 n for an Hv
    real = Chain(300, analytic=False)
    assert verify(real.fun, real.x, grad=real.grad, hvp=real.hvp, dense_limit=300).passed
    assert real.calls < (7 + 85) * 300  # and 7 n and 85 n where fun takes no complex input
    entrywise = [(r["quantity"], r["checked"], r["entries"]) for r in result.records
                 if r["check"] == "complex step" and "entry" in r]
    assert entrywise == [("gradient", 300, 300), ("Hv", 300, 300)]
    default = verify(chain.fun, chain.x, grad=chain.grad, hvp=chain.hvp)  # Hv's references cost 6 or more
    assert [(r["quantity"], r["checked"]) for r in default.records if r["check"] == "complex step"
            and "entry" in r] == [("gradient", 300), ("Hv", 10)]
    with pytest.raises(VerifyError, match="dense_limit must be a positive whole number"):
        verify(chain.fun, chain.x, grad=chain.grad, dense_limit=0.5)


def test_at_a_minimum_of_a_real_only_function_the_gradient_is_judged_to_the_differences_resolution():
    # gradient entries of 1e-12 lie below what differences of a float64 fun resolve: once such a reference
    # was "too uncertain at every entry" and the gradient was judged along directions alone, with no power
    # stated; now each entry is judged within the reference's rounding and the line says what it catches
    c = np.linspace(-1.0, 1.0, 6)

    def fun(x):
        if np.iscomplexobj(x):
            raise TypeError("this function takes real numbers")
        return float(np.sum(np.cosh(x - c)))

    def grad(x):
        return np.sinh(x - c)

    x = c + 1e-12 * np.arange(1.0, 7.0)
    result = verify(fun, x, grad=grad)
    entrywise = [r for r in result.records if r["check"] == "differences" and r["quantity"] == "gradient"]
    assert [r["verdict"] for r in entrywise] == ["pass"], result.table()
    largest = result.detection_power["gradient"]["entries"]["largest"]
    assert largest["smallest_caught"] is None and 1e-12 < largest["tolerance"] < 1e-8
    assert "only once off by more than" in result.table()
    off = verify(fun, x, grad=lambda y: grad(y) + np.where(np.arange(6) == 2, 10 * largest["tolerance"], 0.0))
    assert off.verdicts["gradient"] == "fail", off.table()


def test_the_stated_power_holds_for_an_error_of_either_sign():
    # a claim already off by most of its tolerance: a further error of the opposite sign cancels it, so the
    # power line may promise only a size caught with either sign (it once promised one sign's)
    problem = Problem(2)
    g = problem.grad(problem.x)
    k = int(np.argmax(np.abs(g)))
    tolerance = verify(problem.fun, problem.x, grad=problem.grad).detection_power["gradient"]["entries"][
        "largest"]["tolerance"]

    def shifted(delta):
        def grad(x):
            value = problem.grad(x)
            value[k] = (value[k] + 0.7 * tolerance * np.sign(value[k])) * (1 + delta)  # +delta adds to it
            return value
        return grad

    near = verify(problem.fun, problem.x, grad=shifted(0.0))
    assert near.verdicts["gradient"] == "pass", near.table()
    promised = near.detection_power["gradient"]["entries"]["largest"]["smallest_caught"]
    assert promised is not None
    for delta in (promised, -promised):
        wrong = verify(problem.fun, problem.x, grad=shifted(delta))
        assert wrong.verdicts["gradient"] == "fail", (delta, wrong.table())


def real_only(fun):
    def wrapped(x):
        if np.iscomplexobj(x):
            raise TypeError("this function takes real numbers")
        return fun(x)
    return wrapped


def test_a_fast_change_along_one_entry_is_followed_by_a_smaller_step_not_left_unjudged():
    # cos(1000 x_0): a difference over 2e-3 cannot see its slope; the reference shrinks its step (it once
    # left that entry unjudged, and a wrong slope there went unseen by the entrywise check)
    def fun(x):
        return float(x @ x + 1e-3 * np.cos(1e3 * x[0]))

    def grad(x):
        g = 2 * x
        g[0] -= np.sin(1e3 * x[0])
        return g

    x = np.array([0.3, -0.2, 0.5, 0.1])
    result = verify(real_only(fun), x, grad=grad)
    entrywise = next(r for r in result.records if r["check"] == "differences" and r["quantity"] == "gradient")
    assert (entrywise["verdict"], entrywise["checked"]) == ("pass", 4), result.table()
    wrong = verify(real_only(fun), x, grad=planted(grad, 1e-6, 0))
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


def test_entries_left_unjudged_are_counted_in_the_power_line():
    def fun(x):
        return float(np.sqrt(x[0]) + x @ x)

    def grad(x):
        g = 2 * x
        g[0] += 0.5 / np.sqrt(x[0])
        return g

    x = np.array([1e-6, 0.3, -0.2, 0.5])  # steps along e_0 leave the domain: that entry has no reference
    result = verify(real_only(fun), x, grad=grad)
    entrywise = next(r for r in result.records if r["check"] == "differences" and r["quantity"] == "gradient")
    assert entrywise["checked"] == 3 and entrywise["entries"] == 4
    assert "1 left unjudged" in result.detection_power["gradient"]["check"]
    assert "detection power, gradient (differences, every entry (1 left unjudged" in result.table()


def test_a_sampled_power_counts_an_entry_caught_only_if_caught_with_either_sign():
    from checks import sampling

    claim, u = np.array([1.0, 1.0]), np.array([1.0, -1.0])
    none = (np.array([], int), np.array([]), np.array([]))
    # the claim is already off by 0.7 along u (tolerance 1): +0.5 in an entry adds to that, -0.5 cancels it
    assert sampling.power(claim, [(u, 0.7, 1.0)], none, deltas=(0.5, 2.0)) == {0.5: 0.0, 2.0: 1.0}
    # a sampled entry: the same, entry by entry
    sampled = (np.array([0]), np.array([0.7]), np.array([1.0]))
    assert sampling.power(claim, [], sampled, deltas=(0.5, 2.0)) == {0.5: 0.0, 2.0: 0.5}


def test_the_sample_holds_the_smallest_median_and_largest_entry_and_its_power_counts_nonzero_entries():
    from checks import sampling

    magnitude = np.array([0.0, 5.0, 1e-9, 3.0, 7e3, 2.0, 0.4, 9.0, 1.0, 6.0])
    for seed in range(5):  # 1e-9, the median 3.0 and 7e3 whatever the draw; the zero is not the smallest
        assert sampling.entries(magnitude, 3, np.random.default_rng(seed)).tolist() == [2, 3, 4]
        chosen = sampling.entries(magnitude, 5, np.random.default_rng(seed))
        assert {2, 3, 4} <= set(chosen.tolist()) and len(chosen) == 5
    assert sampling.entries(magnitude, 10, np.random.default_rng(0)).tolist() == list(range(10))
    # the fraction is over the nonzero entries: a zero entry has no relative error to catch
    claim = np.array([0.0, 1.0, 1.0, 1.0])
    assert sampling.power(claim, [(np.ones(4), 0.0, 0.5)], (np.array([], int), np.array([]), np.array([])),
                          deltas=(1.0,)) == {1.0: 1.0}
    # every entry is caught once an error exceeds the least tolerance plus the error already along it
    directional = [(np.ones(4), 0.1, 0.5), (np.ones(4), -0.3, 2.0)]
    assert sampling.caught_in_every_entry(directional) == pytest.approx(0.6)
