"""Hessian-free optimization: each of its rules made to matter, its preconditioner, and every
optimizer in every real number type."""

import math

import mpmath
import numpy as np
import pytest

import ae
from ae import numeric, optim
from ae.hf import HessianFree, backtrack, conjugate_gradient, levenberg_marquardt, progress_stalled


class QuadraticModel:
    """f(w) = 1/2 (w - c).A(w - c) standing in for an autoencoder; its "Gauss-Newton" product is
    ``curvature`` @ v, exact when curvature is A, over-confident when it is smaller."""

    def __init__(self, A, c, curvature):
        self.A, self.c, self.curvature = A, c, curvature
        self.w, self.batch_widths, self.gn_point_width = None, [], None
        self.examples_processed = 0

    def set_weights(self, w):
        self.w = w

    def compute_loss(self, batch):
        self.batch_widths.append(batch.shape[1])
        r = self.w - self.c
        return 0.5 * r @ self.A @ r, self.A @ r

    def compute_example_gradient_squares(self):
        g = self.A @ (self.w - self.c)
        return g * g

    def compute_gaussnewtonvec(self, v):
        if self.gn_point_width is None:
            self.gn_point_width = self.batch_widths[-1]
        return self.curvature @ v


def spd(n, condition, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q @ np.diag(np.logspace(0, np.log10(condition), n)) @ Q.T


def hf_step(model, w, batch_width=50, **options):
    stepper = HessianFree(**{"gradient_chunks": 1, **options})
    state = stepper.init(model, w)
    model.set_weights(w)  # as the training loop does before each step
    return stepper.step(model, np.zeros((1, batch_width)), w, 0.0, state)


def test_lambda_goes_down_after_a_trustworthy_step_and_up_after_an_over_promising_one():
    A = spd(30, 100)
    c, w = np.zeros(30), np.random.default_rng(1).standard_normal(30)
    _, _, state, info = hf_step(QuadraticModel(A, c, A), w, damping=1.0, max_cg_iterations=200)
    assert info["reduction_ratio"] > 0.75 and state["damping"] == pytest.approx(2 / 3)
    _, _, state, info = hf_step(QuadraticModel(A, c, 0.05 * A), w, damping=1e-3, max_cg_iterations=200)
    assert info["reduction_ratio"] < 0.25 and state["damping"] == pytest.approx(1.5e-3)


def test_levenberg_marquardt_rule():
    assert levenberg_marquardt(1.0, 0.1) == 1.5 and levenberg_marquardt(1.0, None) == 1.5
    assert levenberg_marquardt(1.0, 0.5) == 1.0
    assert levenberg_marquardt(1.0, 0.9) == pytest.approx(2 / 3)


class LoggedQuadraticModel(QuadraticModel):
    """Keeps every objective value the stepper asks for, in order."""

    def __init__(self, *args):
        super().__init__(*args)
        self.values = []

    def compute_loss(self, batch):
        value, grad = super().compute_loss(batch)
        self.values.append(float(value))
        return value, grad


def test_backtracking_returns_the_best_saved_iterate_when_the_last_is_worse():
    values = {1: 5.0, 2: 3.0, 3: 4.0, 4: 6.0}
    saved = [(i, i, None) for i in values]
    assert backtrack(saved, values.get) == (1, 3.0)  # 6 > 4 > 3, and 5 is not below 3: stop
    assert backtrack(saved[:1], values.get) == (0, 5.0)
    # in a step: the curvature is over-confident (0.3 A) along the flat directions only, which CG
    # resolves last, so its last iterates overshoot there and an earlier one wins.  A diagonal A keeps
    # every comparison far from round-off: each objective backtracking compares differs from the next
    # by more than 1e-5 relative (asserted; round-off is 1e-16), so no BLAS kernel can change the outcome.
    d = np.logspace(0, 2, 30)
    model = LoggedQuadraticModel(np.diag(d), np.zeros(30), np.diag(np.where(d < 10, 0.3, 1.0) * d))
    _, _, _, info = hf_step(model, np.ones(30), damping=1e-3, max_cg_iterations=8)
    assert info["step_length"] == 1.0  # the chosen iterate passed Armijo at once: no further evaluations
    seen = model.values[2:]  # after the gradient and the curvature point: backtracking's objectives
    assert info["backtrack_iteration"] < info["cg_iterations"] == 8
    assert all(abs(a - b) > 1e-5 * abs(a) for a, b in zip(seen, seen[1:]))
    chosen = min(seen)
    assert seen[0] > chosen * (1 + 1e-5) and seen[-1] > chosen  # the last iterate lost; the walk stopped at a rise


@pytest.mark.bitexact
def test_a_warm_start_worse_than_zero_restarts_from_zero():
    A = spd(20, 50)
    b = np.random.default_rng(2).standard_normal(20)
    cold = conjugate_gradient(lambda v: A @ v, b, np.zeros(20), np.ones(20), 5, tolerance=0)
    bad = conjugate_gradient(lambda v: A @ v, b, -10 * np.linalg.solve(A, b), np.ones(20), 5, tolerance=0)
    good = conjugate_gradient(lambda v: A @ v, b, 0.9 * np.linalg.solve(A, b), np.ones(20), 5, tolerance=0)
    assert bad.restarted and not good.restarted and not cold.restarted
    assert all(np.array_equal(x, y) for (_, x, _), (_, y, _) in zip(bad.saved, cold.saved))
    assert good.saved[-1][2] < cold.saved[-1][2]  # a good warm start is kept and helps
    # in a step: the previous step's iterate, pointing uphill, is dropped
    model = QuadraticModel(A, np.zeros(20), A)
    stepper = HessianFree(gradient_chunks=1)
    w = np.random.default_rng(3).standard_normal(20)
    state = {**stepper.init(model, w), "previous": 100 * (A @ w)}
    model.set_weights(w)
    _, _, _, info = stepper.step(model, np.zeros((1, 10)), w, 0.0, state)
    assert info["cg_restarted"]


def test_the_stopping_rule_ends_cg_early_on_an_ill_conditioned_quadratic():
    d = np.logspace(0, 4, 400)
    b = np.random.default_rng(4).standard_normal(400)
    ruled = conjugate_gradient(lambda v: d * v, b, np.zeros(400), np.ones(400), 1000)
    unruled = conjugate_gradient(lambda v: d * v, b, np.zeros(400), np.ones(400), 1000, tolerance=0)
    assert ruled.stopped_by == "progress" and ruled.iterations < 200
    # with no tolerance the rule fires only once round-off stops all progress, past n iterations
    assert unruled.iterations >= 400


def test_conjugate_gradient_solves_a_spd_system_and_its_model_decreases():
    A = spd(8, 10)
    b = np.random.default_rng(0).standard_normal(8)
    result = conjugate_gradient(lambda v: A @ v, b, np.zeros(8), np.ones(8), 50, tolerance=0)
    np.testing.assert_allclose(A @ result.saved[-1][1], b, atol=1e-10)
    phis = [phi for _, _, phi in result.saved]
    assert all(x >= y for x, y in zip(phis, phis[1:]))


@pytest.mark.parametrize("fraction, n", [(0.1, 50), (0.25, 50), (1.0, 7), (0.01, 30)])
def test_the_curvature_batch_is_the_stated_fraction(fraction, n):
    A = spd(10, 10)
    model = QuadraticModel(A, np.zeros(10), A)
    _, _, _, info = hf_step(model, np.ones(10), batch_width=n, curvature_fraction=fraction)
    assert info["curvature_batch"] == model.gn_point_width == math.ceil(fraction * n)


def test_each_hf_step_records_its_diagnostics():
    X = np.random.default_rng(0).random((6, 40))
    model = ae.build([6, 3, 2, 3, 6], "tlts")
    model.init_weights(0)
    history = model.run_hf(X, num_epoch=3, max_cg_iterations=20)
    for key in ("damping", "reduction_ratio", "cg_iterations", "cg_stopped_by", "cg_restarted",
                "backtrack_iteration", "step_length", "curvature_batch"):
        assert len(history[key]) == 3, key
    assert all(1 <= b <= c for b, c in zip(history["backtrack_iteration"], history["cg_iterations"]))
    assert history["curvature_batch"] == [4, 4, 4]


# --- the preconditioner: exact per-example squared gradients ------------------------------------------

@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "object"])
def test_example_gradient_squares_equal_a_loop_over_single_examples(tied, dtype):
    X = np.random.default_rng(5).random((5, 6))
    model = ae.build([5, 4, 2, 4, 5], "tlts", tied=tied)
    with mpmath.workdps(30):
        model.init_weights(1, dtype=dtype)
        X = numeric.astype(X, dtype)
        model.compute_loss(X)
        squares = model.compute_example_gradient_squares()
        reference = 0
        for i in range(X.shape[1]):
            _, g = model.compute_loss(X[:, i:i + 1])
            reference = reference + g * g
        reference = reference / X.shape[1]
        assert squares.dtype == reference.dtype == np.dtype(dtype)
        error = numeric.to_float64(squares - reference)
        scale = float(numeric.to_float64(reference).max())
        assert np.abs(error).max() <= (1e-28 if dtype == "object" else 1e-14) * scale


def test_example_gradient_squares_need_a_loss_first():
    model = ae.build([4, 2, 4], "ll")
    model.init_weights(0)
    with pytest.raises(ValueError, match="compute_loss"):
        model.compute_example_gradient_squares()


# --- every optimizer in every real number type ---------------------------------------------------

OPTIONS = {"sgd": {"step_size": 0.05}, "momentum": {"step_size": 0.02}, "rmsprop": {"step_size": 0.003},
           "adam": {"step_size": 0.003}, "hf": {"max_cg_iterations": 10}}


@pytest.mark.parametrize("method", OPTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "object"])
def test_every_optimizer_keeps_the_number_type_it_was_given(method, dtype):
    X = np.random.default_rng(0).random((6, 8))
    model = ae.build([6, 3, 2, 3, 6], "tlts")
    with mpmath.workdps(30):
        w0 = model.init_weights(0, dtype=dtype)
        data = numeric.astype(X, dtype)
        history = getattr(model, f"run_{method}")(data, num_epoch=2, minibatch_size=4, test_inputs=data,
                                                  **OPTIONS[method])
        w = model.get_weights()
    assert w.dtype == np.dtype(dtype)
    if dtype == "object":
        assert all(isinstance(v, mpmath.mpf) for v in w)
        # the values themselves carry more than float64's 53 bits (mpf = man 2^exp): trained at 30 digits
        bits = [int(v._mpf_[1]).bit_length() for v in w if v != 0]
        assert max(bits) > 53 and np.median(bits) > 53
    assert not np.array_equal(numeric.to_float64(w), numeric.to_float64(w0))  # it trained
    assert history["train_loss"][-1] < history["initial"]["train_loss"]


def test_an_mpmath_run_keeps_its_digits():
    """At 30 digits the trained weights agree with float64's to float64's round-off, no worse:
    nothing on the way was rounded to float."""
    X = np.random.default_rng(0).random((6, 8))
    results = {}
    for dtype in ("float64", "object"):
        model = ae.build([6, 3, 2, 3, 6], "tlts")
        with mpmath.workdps(30):
            model.init_weights(0, dtype=dtype)
            model.run_adam(numeric.astype(X, dtype), step_size=0.01, num_epoch=3, minibatch_size=4)
            results[dtype] = model.get_weights()
    with mpmath.workdps(30):
        reference = results["object"]
        low = numeric.to_mp(results["float64"])
        difference = max(abs(a - b) for a, b in zip(reference, low))
        # a value of exactly float64 precision would sit on the float64 grid
        off_grid = sum(mpmath.mpf(float(v)) != v for v in reference)
    assert 0 < difference < 1e-12
    assert off_grid > len(reference) // 2


@pytest.mark.parametrize("rule", [optim.SGD(0.1), optim.Momentum(0.1), optim.RMSprop(0.1), optim.Adam(0.1)])
@pytest.mark.parametrize("dtype", ["float32", "float64", "object"])
def test_step_rule_states_live_in_the_weights_type(rule, dtype):
    w = numeric.astype(np.linspace(-1, 1, 5), dtype)
    state = rule.init(w)
    step, state = rule.update(w * 0.5, state)
    assert step.dtype == np.dtype(dtype)
    assert type(state).__name__.endswith("State")  # a NamedTuple with named fields, as in optax
    arrays = [a for a in state if isinstance(a, np.ndarray)]
    assert len(arrays) == {"SGD": 0, "Momentum": 1, "RMSprop": 1, "Adam": 2}[type(rule).__name__]
    assert all(a.dtype == np.dtype(dtype) for a in arrays)


def test_armijo_accepts_only_a_sufficient_decrease():
    # curvature s A with s = 0.8^10 / 2: along the first CG iterate f(w + a d) - f(w) is proportional
    # to -a/s + a^2 / 2s^2, zero at a = 2s = 0.8^10, a step length the 0.8 line search tries; only a
    # decrease of at least 1e-2 a |g.d| may be accepted, which first holds at a = 0.8^11
    A = spd(10, 10)
    w = np.random.default_rng(0).standard_normal(10)
    new, f0, _, info = hf_step(QuadraticModel(A, np.zeros(10), 0.8**10 / 2 * A), w, damping=1e-12,
                               max_cg_iterations=1)
    alpha = info["step_length"]
    d = (new - w) / alpha
    f_new = 0.5 * new @ A @ new
    assert alpha > 0 and f_new <= f0 + 1e-2 * alpha * ((A @ w) @ d) < f0


def tiny_problem(seed=0):
    rng = np.random.default_rng(seed)
    model = ae.build([6, 3, 6], "tl", use_bias=True)
    w = model.init_weights(seed) + 0.1 * rng.standard_normal(model.params_number)
    return model, w, rng.random((6, 12))


def test_run_hf_preconditions_with_the_mean_of_per_example_squared_gradients_to_the_power_075(monkeypatch):
    from ae import hf

    model, w, X = tiny_problem()
    seen = []
    original = hf.conjugate_gradient
    monkeypatch.setattr(hf, "conjugate_gradient", lambda *args, **kw: seen.append(args[3]) or original(*args, **kw))
    stepper = HessianFree(damping=0.5, gradient_chunks=3, curvature_fraction=1.0)
    model.set_weights(w)
    stepper.step(model, X, w, 1e-3, stepper.init(model, w))
    squares = []
    for j in range(X.shape[1]):  # one example at a time: its own gradient, squared
        model.set_weights(w)
        squares.append(model.compute_loss(X[:, [j]])[1] ** 2)
    expected = (np.mean(squares, axis=0) + 1e-3 + 0.5) ** 0.75
    assert np.allclose(seen[0], expected, rtol=1e-12, atol=0)


def test_the_reduction_ratio_compares_the_decrease_with_the_undamped_quadratic_model():
    model, w, X = tiny_problem(1)
    stepper = HessianFree(damping=2.0, gradient_chunks=1, curvature_fraction=1.0, max_cg_iterations=5)
    model.set_weights(w)
    new, f0, _, info = stepper.step(model, X, w, 1e-3, stepper.init(model, w))
    d = (new - w) / info["step_length"]
    model.set_weights(w)
    loss, g = model.compute_loss(X)
    g = g + 1e-3 * w
    Gd = model.compute_gaussnewtonvec(d)
    assert f0 == pytest.approx(loss + 0.5e-3 * w @ w, rel=1e-14)  # the objective the step starts from, L2 in it
    q = g @ d + 0.5 * d @ Gd + 0.5e-3 * d @ d  # the objective's quadratic model: G and the L2 term, no lambda
    model.set_weights(w + d)
    f_d = model.compute_loss(X)[0] + 0.5e-3 * (w + d) @ (w + d)
    assert info["reduction_ratio"] == pytest.approx((f_d - f0) / q, rel=1e-9)
    # the damped model (lambda in it) gives another number: the test tells them apart
    assert abs((f_d - f0) / (q + 1.0 * d @ d) - info["reduction_ratio"]) > 1e-3


def test_cg_saves_its_iterates_on_the_1_3_power_schedule_with_their_quadratic_values():
    d = np.logspace(0, 4, 50)
    b = np.random.default_rng(5).standard_normal(50)
    result = conjugate_gradient(lambda v: d * v, b, np.zeros(50), np.ones(50), 30, tolerance=0)
    assert [i for i, _, _ in result.saved] == [1, 2, 3, 4, 5, 7, 9, 11, 14, 18, 24, 30]  # ceil(1.3^j), then the last
    for _, x, phi in result.saved:  # phi is the model 1/2 x.Ax - b.x at the saved iterate
        assert phi == pytest.approx(0.5 * x @ (d * x) - b @ x, rel=1e-10)
    assert result.stopped_by == "max_iterations" and result.iterations == 30


def test_cg_stops_at_once_when_there_is_no_curvature_and_says_so():
    result = conjugate_gradient(lambda v: 0 * v, np.ones(3), np.zeros(3), np.ones(3), 10)
    assert (result.iterations, result.stopped_by, result.restarted) == (0, "curvature", False)
    assert len(result.saved) == 1 and result.saved[0][0] == 0 and result.saved[0][2] == 0
    restarted = conjugate_gradient(lambda v: v, np.ones(2), np.array([2.5, 0.0]), np.ones(2), 0)
    # the warm start's value 1/2 x.x - b.x = 0.625 is above zero's: CG starts from zero, value 0
    assert restarted.restarted and restarted.saved == [(0, restarted.saved[0][1], 0.0)]
    assert np.array_equal(restarted.saved[0][1], np.zeros(2))


def test_the_rules_at_their_boundaries():
    assert levenberg_marquardt(1.0, 0.25) == 1.0 and levenberg_marquardt(1.0, 0.75) == 1.0  # strict inequalities
    values = {1: 1.0, 2: 2.0, 3: 3.0}  # every step back improves: back to the first saved iterate
    assert backtrack([(i, i, None) for i in values], values.get) == (0, 1.0)
    ties = {1: 2.0, 2: 2.0}  # an equal earlier value is no improvement: keep the later iterate
    assert backtrack([(i, i, None) for i in ties], ties.get) == (1, 2.0)


def test_hessian_free_defaults_and_argument_errors():
    hf = HessianFree()
    assert (hf.damping, hf.curvature_fraction, hf.max_cg_iterations, hf.cg_decay, hf.gradient_chunks, hf.armijo,
            hf.cg_tolerance, hf.seed) == (1.0, 0.1, 100, 0.95, 10, 1e-2, 5e-4, 0)
    HessianFree(cg_decay=0.0), HessianFree(cg_decay=1.0), HessianFree(curvature_fraction=1.0)  # the closed ends
    for kwargs, name in (({"damping": 0}, "damping"), ({"curvature_fraction": 1.5}, "curvature_fraction"),
                         ({"max_cg_iterations": 0}, "max_cg_iterations"), ({"cg_decay": 1.1}, "cg_decay"),
                         ({"gradient_chunks": 0}, "gradient_chunks")):
        with pytest.raises(ValueError, match=f"^{name} must"):
            HessianFree(**kwargs)


def test_at_a_minimum_the_step_stays_put_and_says_the_model_promised_nothing():
    A = spd(10, 10)
    c = np.random.default_rng(6).standard_normal(10)
    new, f0, state, info = hf_step(QuadraticModel(A, c, A), c.copy(), damping=0.5)
    assert np.array_equal(new, c) and f0 == 0.0
    assert info["step_length"] == 0.0 and info["reduction_ratio"] is None
    assert state["damping"] == pytest.approx(0.75)  # no promise kept: lambda goes up


def test_the_line_search_tries_sixty_lengths_and_no_more():
    # as in the Armijo test, with s = 0.8^59.5 / 2 / 0.99: 0.8^59 is too long, 0.8^60 would pass, but
    # the sixty lengths tried are 1 ... 0.8^59, so the step stays put
    A = spd(10, 10)
    w = np.random.default_rng(0).standard_normal(10)
    new, _, _, info = hf_step(QuadraticModel(A, np.zeros(10), 0.8**59.5 / 2 / 0.99 * A), w, damping=1e-30,
                              max_cg_iterations=1)
    assert info["step_length"] == 0.0 and np.array_equal(new, w)


def test_hessian_free_hands_its_cg_tolerance_to_cg():
    A = spd(30, 1e4)
    w = np.random.default_rng(7).standard_normal(30)
    _, _, _, ruled = hf_step(QuadraticModel(A, np.zeros(30), A), w, damping=1e-6, max_cg_iterations=500)
    _, _, _, unruled = hf_step(QuadraticModel(A, np.zeros(30), A), w, damping=1e-6, max_cg_iterations=500,
                               cg_tolerance=0.0)
    assert ruled["cg_iterations"] < unruled["cg_iterations"]  # a tolerance of 0 lets CG run on


def test_cg_used_alone_stops_by_the_same_rule_as_hessian_free():
    import inspect

    assert inspect.signature(conjugate_gradient).parameters["tolerance"].default == HessianFree().cg_tolerance == 5e-4


# The progress rule on made-up phi sequences of dyadic numbers: every comparison below is exact, so
# each boundary is tested where it lies and no round-off can move it.
TOLERANCE = 2.0**-10


def stalled_after(i, phi_i, earlier, k):
    """phis of length i + 1, phi_i at the end, phis[i - k] = earlier, the rest 0 (far above)."""
    phis = [0.0] * (i + 1)
    phis[i], phis[i - k] = phi_i, earlier
    return phis


def test_the_progress_rule_looks_back_k_equal_to_the_larger_of_10_and_a_tenth_of_i():
    # flat over the last k iterations, far from it one iteration earlier or later
    assert progress_stalled(stalled_after(11, -1.0, -1.0, 10), TOLERANCE)
    assert progress_stalled(stalled_after(110, -1.0, -1.0, 11), TOLERANCE)  # k = 110 // 10 = 11
    assert not progress_stalled(stalled_after(110, -1.0, -1.0, 10), TOLERANCE)
    assert not progress_stalled(stalled_after(109, -1.0, -1.0, 11), TOLERANCE)  # k = 10 there


def test_the_progress_rule_needs_more_than_k_iterations_and_a_negative_phi():
    assert not progress_stalled([-1.0] * 11, TOLERANCE)  # i = 10 = k: not yet
    assert progress_stalled([-1.0] * 12, TOLERANCE)
    assert not progress_stalled([0.0] * 12, TOLERANCE)  # phi = 0: nothing to compare with
    assert not progress_stalled([0.5] * 12, TOLERANCE)  # phi > 0: CG has not reached a decrease


def test_the_progress_rule_is_a_strict_inequality_at_k_times_the_tolerance():
    k = 10
    at_the_bound = -1.0 + k * TOLERANCE  # (phi_i - phi_{i-k}) / phi_i = k * tolerance exactly
    assert not progress_stalled(stalled_after(11, -1.0, at_the_bound, k), TOLERANCE)
    assert progress_stalled(stalled_after(11, -1.0, at_the_bound - TOLERANCE / 8, k), TOLERANCE)
    assert not progress_stalled(stalled_after(11, -1.0, at_the_bound + TOLERANCE / 8, k), TOLERANCE)


class OverflowingModel(QuadraticModel):
    """The quadratic at its start, +inf anywhere else: every CG iterate overflows the objective."""

    def compute_loss(self, batch):
        loss, grad = super().compute_loss(batch)
        return (loss if np.array_equal(self.w, self.start) else np.inf), grad


def test_an_overflowing_objective_gives_no_reduction_ratio_raises_lambda_and_stays_put():
    A = spd(10, 10)
    w = np.random.default_rng(8).standard_normal(10)
    model = OverflowingModel(A, np.zeros(10), A)
    model.start = w.copy()
    new, f0, state, info = hf_step(model, w, damping=0.5)
    assert math.isfinite(f0) and info["reduction_ratio"] is None
    assert state["damping"] == pytest.approx(0.75) and info["step_length"] == 0.0
    assert np.array_equal(new, w)
