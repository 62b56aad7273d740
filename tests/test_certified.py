"""Certified bounds by ball arithmetic: every entry proven against a series built from the declared
net, and each way a proof can break (a rounded distance, a dropped radius, an error p.Hp cannot
see, a wrong loss, an engine that differs from its declaration, extreme scales, zero derivatives)
caught by a test."""

import mpmath
import numpy as np
import pytest

import ae
from ae import numeric

flint = pytest.importorskip("flint")

from checks import certified, suite  # noqa: E402


def case(spec, seed=0):
    return (*suite.build_case(spec, seed), suite.declared(spec))


def total(result, quantity, dtype="float64"):
    return result["total"][dtype][quantity]["relative"]


@pytest.mark.parametrize("spec", suite.QUICK, ids=lambda s: s[1])
def test_the_correct_engine_is_proven_entry_by_entry_on_every_net_of_the_quick_lab(spec):
    model, inputs, w, p, declared = case(spec)
    found = suite.certified_records(model, spec, inputs, w, suite._context(model, 0, batch=inputs.shape[1]), 0)
    assert found and all(r["verdict"] == "pass" for r in found), [r for r in found if r["verdict"] != "pass"]
    assert {(r["dtype"], r["quantity"]) for r in found if r["statement"] == "total"} == {
        (d, q) for d in ("float64", "float32", "mpmath") for q in certified.QUANTITIES}
    assert max(r["measured"] for r in found if r["statement"] == "formula") < 1e-40
    # the float64 targets hold with a margin of more than 10x on every net
    assert max(r["measured"] for r in found if r["dtype"] == "float64" and r["statement"] == "total") < 1e-15
    text = certified.sentence(found)
    assert "every entry of the gradient" in text and "every entry of Hv and GNv" in text
    assert f"batch of {inputs.shape[1]} columns" in text


def test_the_exact_entries_are_the_derivatives_that_60_digits_approximate():
    model, inputs, w, p, declared = case(suite.QUICK[2])  # tied, tanh and sigmoid
    with certified.ball_precision():
        exact = certified.exact_derivatives(declared, *(numeric.to_arb(a) for a in (inputs, w, p)))
    with mpmath.workdps(60):
        model.set_weights(numeric.to_mp(w))
        _, g60 = model.compute_loss(numeric.to_mp(inputs))
        h60 = model.compute_hessvec(numeric.to_mp(p))
    for reference, balls in ((g60, exact["gradient"]), (h60, exact["Hv"])):
        assert all(b.rad() < 1e-50 for b in balls)
        with mpmath.workdps(60):
            assert all(abs(v - mpmath.ldexp(*map(int, b.mid().man_exp()))) <= 1e-55 for v, b in zip(reference, balls))


def test_the_distance_is_computed_in_balls_never_from_a_rounded_midpoint():
    with certified.ball_precision():
        tenth = flint.arb(1) / 10  # not a float: |0.1 - 1/10| = 5.55e-18 exactly, to 17 digits
        found = certified.bound(np.array([0.1]), np.array([tenth], dtype=object))
    assert 5.551115123125782e-18 <= found["absolute"] < 5.551115123125784e-18
    # on a net: the float64 gradient of F = |WX - X|^2 / 2N is 4.985e-17 from the exact one
    model = ae.build([3, 3], "l", use_bias=False)
    w = model.init_weights(seed=2)
    rng = np.random.default_rng(2)
    X, p = rng.random((3, 3)), rng.standard_normal(9)
    result = certified.certify(model, certified.Declared((3, 3), "l", use_bias=False), X, w, p)
    W = mpmath.matrix([[mpmath.mpf(v) for v in w[3 * i:3 * i + 3]] for i in range(3)])
    with mpmath.workdps(60):
        Xm = mpmath.matrix(X.tolist())
        G = (W * Xm - Xm) * Xm.T / 3
        model.set_weights(w)
        g = model.compute_loss(X)[1]
        truth = max(abs(G[i, j] - mpmath.mpf(g[3 * i + j])) for i in range(3) for j in range(3))
    assert truth > 4e-17
    assert truth <= result["total"]["float64"]["gradient"]["absolute"] <= truth * (1 + 1e-15)
    assert result["evaluation"]["gradient"]["absolute"] >= truth * (1 - 1e-15)


def test_a_ball_s_radius_is_part_of_the_distance():
    with certified.ball_precision():
        wide = flint.arb(1, 1e-3)  # [1 +/- 1e-3]: its exact value may be 1.001
        assert certified.bound(np.array([1.0]), np.array([wide], dtype=object))["absolute"] >= 1e-3
        assert certified.upper_float(flint.arb(0)) == 0.0 and certified.upper_float(flint.arb(0.5)) == 0.5
        assert certified.upper_float(flint.arb(2) ** -2000) == 5e-324  # below float64: rounded up, not 0


def test_an_antisymmetric_hv_error_that_p_hp_cannot_see_fails(monkeypatch):
    model, inputs, w, p, declared = case(suite.QUICK[0])
    original = ae.Autoencoder.compute_hessvec

    def off(self, v):
        Hv = original(self, v).copy()
        Hv[0] += 0.5 * v[1]
        Hv[1] -= 0.5 * v[0]  # p.Hv is unchanged
        return Hv

    monkeypatch.setattr(ae.Autoencoder, "compute_hessvec", off)
    result = certified.certify(model, declared, inputs, w, p)
    assert total(result, "Hv") > 1e-3 and result["formula"]["Hv"]["relative"] > 1e-3
    assert total(result, "gradient") < 1e-15 and total(result, "GNv") < 1e-15


def test_a_doubled_loss_fails(monkeypatch):
    model, inputs, w, p, declared = case(suite.QUICK[1])
    original = ae.Autoencoder.compute_loss

    def doubled(self, X):
        loss, grad = original(self, X)
        return 2 * loss, grad

    monkeypatch.setattr(ae.Autoencoder, "compute_loss", doubled)
    records = certified.records(model, declared, inputs, w, p, {"net": "x"}, 0)
    failed = {(r["dtype"], r["quantity"]) for r in records if r["verdict"] == "fail" and r["statement"] == "total"}
    assert failed == {("float64", "loss"), ("float32", "loss"), ("mpmath", "loss")}


def test_an_engine_whose_leaky_slope_differs_from_its_declaration_fails():
    model, inputs, w, p, declared = case(suite.QUICK[1])  # 4-3r-4k: declared LeakyReLU slope 0.1
    model.layers[1].afun.alpha = 0.01  # the engine's object only: the series reads the declaration
    result = certified.certify(model, declared, inputs, w, p)
    assert total(result, "loss") > 1e-6 and total(result, "gradient") > 1e-6
    model.layers[1].afun.alpha = 0.1
    assert total(certified.certify(model, declared, inputs, w, p), "loss") < 1e-15


def test_a_gradient_entry_off_by_1e_12_fails_whatever_the_direction(monkeypatch):
    model, inputs, w, p, declared = case(suite.QUICK[2])
    model.set_weights(w)
    k = int(np.argmin(np.abs(model.compute_loss(inputs)[1])))  # the smallest entry
    original = ae.Autoencoder.compute_loss

    def off(self, X):
        loss, grad = original(self, X)
        grad[k] = grad[k] * (1 + 1e-12) if not numeric.is_arb(grad) else grad[k] * (1 + flint.arb(2) ** -40)
        return loss, grad

    monkeypatch.setattr(ae.Autoencoder, "compute_loss", off)
    result = certified.certify(model, declared, inputs, w, p)
    assert result["formula"]["gradient"]["relative"] > certified.TARGETS["formula"]
    assert total(result, "Hv") < 1e-15  # the other quantities stay proven


def test_a_sigmoid_second_derivative_off_by_1e_12_fails_the_formula_statement_for_hv_only(monkeypatch):
    model, inputs, w, p, declared = case(suite.QUICK[0])  # tlsl: a sigmoid layer
    original = ae.SigmoidActivationFunction.second_deriv
    monkeypatch.setattr(ae.SigmoidActivationFunction, "second_deriv", lambda self, X: original(self, X) * (1 + 1e-12))
    result = certified.certify(model, declared, inputs, w, p)
    assert result["formula"]["Hv"]["relative"] > 1e-16  # seen far above float64 round-off
    assert result["formula"]["gradient"]["relative"] < 1e-40 and result["formula"]["GNv"]["relative"] < 1e-40


def test_a_direction_spanning_1e160_to_1e_160_keeps_true_bounds_and_float32_says_it_cannot_run():
    model, inputs, w, p, declared = case(suite.QUICK[0])
    p = np.where(np.arange(len(p)) % 2 == 0, 1e160, 1e-160) * np.sign(p)
    result = certified.certify(model, declared, inputs, w, p)
    for quantity in ("Hv", "GNv"):
        bounds = result["total"]["float64"][quantity]
        assert 0 < bounds["relative"] < 1e-14 and 1e140 < bounds["norm"] < 1e200
    assert result["total"]["float32"] == "cannot run: the direction overflow float32"
    records = certified.records(model, declared, inputs, w, p, {"net": "x"}, 0)
    assert all(r["verdict"] == "pass" for r in records if r["dtype"] != "float32")
    assert {r["reason"] for r in records if r["dtype"] == "float32"} == {
        "float32: cannot run: the direction overflow float32"}


def test_weights_beyond_float32_keep_the_float64_certificate():
    model = ae.build([2, 2], "l", use_bias=False)
    w = np.array([1e39, 0.0, 0.0, 1.0])
    X, p = np.array([[1e-30, 0.0], [0.0, 1.0]]), np.ones(4)
    records = certified.records(model, certified.Declared((2, 2), "l", use_bias=False), X, w, p, {"net": "x"}, 0)
    assert {r["reason"] for r in records if r["dtype"] == "float32"} == {
        "float32: cannot run: the weights overflow float32"}
    assert all(r["verdict"] == "pass" for r in records if r["dtype"] != "float32")


def test_a_zero_gradient_is_judged_absolutely_never_divided_by():
    model = ae.build([3, 2, 3], "ll", use_bias=True)
    w = model.init_weights(seed=0)
    X = np.zeros((3, 4))  # linear net, zero biases, zero data: F = 0, g = 0, Gv = 0
    records = certified.records(model, certified.Declared((3, 2, 3), "ll"), X, w, np.ones(model.params_number),
                                {"net": "x"}, 0)
    judged = {(r["dtype"], r["quantity"]): r for r in records if r["statement"] == "total"}
    assert judged["float64", "loss"]["judged"].startswith("absolute")
    assert judged["float64", "gradient"]["judged"].startswith("absolute")
    assert all(r["verdict"] == "pass" and np.isfinite(r["measured"]) for r in records)
    assert "absolute bounds" in certified.sentence(records)


def straddling_relu_net():
    """tanh makes two equal balls t, t; the ReLU layer sees t - t, a ball around 0 of nonzero radius."""
    layers = [ae.FCLayer((2, 2), ae.TanhActivationFunction()), ae.FCLayer((2, 2), ae.ReluActivationFunction())]
    model = ae.Autoencoder(layers)
    w = np.array([0.3, 0.7, 0.3, 0.7, 1.0, -1.0, 0.5, 0.5])
    return model, np.array([[0.2, 0.4], [0.1, 0.3]]), w, certified.Declared((2, 2, 2), "tr", use_bias=False)


def test_a_relu_ball_straddling_its_kink_is_uncertifiable_naming_layer_and_unit():
    model, inputs, w, declared = straddling_relu_net()
    with certified.ball_precision():
        model.set_weights(numeric.to_arb(w))
        with pytest.raises(numeric.UncertifiableError, match=r"layer 1, unit 0, column 0: the ball .* straddles"):
            model.compute_loss(numeric.to_arb(inputs))
    records = certified.records(model, declared, inputs, w, np.ones(8), {"net": "relu"}, 0)
    assert {r["verdict"] for r in records} == {"cannot run"}
    assert all("uncertifiable: layer 1, unit 0" in r["reason"] for r in records)


def test_a_declaration_that_does_not_match_the_model_is_refused():
    model, inputs, w, p, _ = case(suite.QUICK[3])
    with pytest.raises(ValueError, match="declared net has 12 parameters, the model 9"):
        certified.certify(model, certified.Declared((3, 3), "l", use_bias=True), inputs, w, p)
    with pytest.raises(ValueError, match="1 layers need 1 activation letters"):
        certified.Declared((3, 3), "ll").unpack(np.zeros(9, dtype=object))


def test_the_declared_layout_is_the_engine_s_documented_one_tied_and_untied():
    nets = (([5, 3, 2, 3, 5], True, True), ([4, 3, 4], True, False), ([4, 3, 2, 4], False, True),
            ([5, 2, 3, 2, 5], True, True))
    for widths, tied, bias in nets:
        model = ae.build(widths, "l" * (len(widths) - 1), use_bias=bias, tied=tied)
        declared = certified.Declared(tuple(widths), "l" * (len(widths) - 1), bias, tied)
        assert declared.params_number == model.params_number
        w = np.arange(model.params_number, dtype=float)
        model.set_weights(w)
        for layer, (W, b) in zip(model.layers, declared.unpack(w.astype(object))):
            assert np.array_equal(layer.W, W.astype(float))
            assert (b is None) == (not bias) and (b is None or np.array_equal(layer.b.ravel(), b.astype(float)))


def test_bad_precision_and_non_finite_balls_get_clear_errors():
    with pytest.raises(ValueError, match="at least 53 bits"):
        with certified.ball_precision(bits=40):
            pass
    with flint.ctx.workprec(40):
        with pytest.raises(ValueError, match="at 40 bits cannot hold a float64"):
            numeric.to_arb(np.array([0.1]))
    bad = np.array([flint.arb(1), flint.arb("inf")], dtype=object)
    with pytest.raises(ValueError, match="non-finite ball"):
        numeric.check_array(bad, "weights")
    with pytest.raises(ValueError, match="cannot make a ball of NaN"):
        numeric.to_arb(np.array([np.nan]))


def test_without_python_flint_the_lab_records_cannot_run_and_goes_on(monkeypatch):
    def missing():
        raise ImportError("ball arithmetic needs python-flint: pip install \"ae-lab[certified]\"")

    monkeypatch.setattr(numeric, "_flint", missing)
    model, inputs, w, p, _ = case(suite.QUICK[3])
    found = suite.certified_records(model, suite.QUICK[3], inputs, w, suite._context(model, 0), 0)
    assert {r["verdict"] for r in found} == {"cannot run"}
    assert all("cannot run: ball arithmetic needs python-flint" in r["reason"] for r in found)


def test_a_relative_bound_divides_by_the_exact_norm_s_lower_bound():
    with certified.ball_precision():
        wide = flint.arb(1, 0.1)  # the exact value lies in [0.9, 1.1]
        found = certified.bound(np.array([1.0]), np.array([wide], dtype=object))
    # 0.1 over a lower bound of the norm (below 0.9, as the ball's square widens it); over an upper bound
    # (1.1 or more) it would be 0.091
    assert found["absolute"] >= 0.1 and found["relative"] > 0.1


def test_the_series_refuses_a_relu_at_its_kink_itself():
    model, inputs, w, declared = straddling_relu_net()
    with certified.ball_precision(), pytest.raises(numeric.UncertifiableError,
                                                   match=r"layer 1, unit 0, column 0: the pre-activation"):
        certified.exact_derivatives(declared, numeric.to_arb(inputs), numeric.to_arb(w), numeric.to_arb(np.ones(8)))
    zero = certified.Declared((2, 2), "r", use_bias=False)  # zero weights: every pre-activation exactly 0
    with certified.ball_precision(), pytest.raises(numeric.UncertifiableError, match="straddles the kink at 0"):
        certified.exact_derivatives(zero, numeric.to_arb(np.ones((2, 2))), numeric.to_arb(np.zeros(4)),
                                    numeric.to_arb(np.ones(4)))


def test_a_zero_direction_is_certified_too():
    model, inputs, w, _, declared = case(suite.QUICK[3])
    result = certified.certify(model, declared, inputs, w, np.zeros(model.params_number))
    assert result["total"]["float64"]["Hv"]["absolute"] == 0.0 and result["total"]["float64"]["GNv"]["absolute"] == 0


def test_a_certified_record_says_what_it_proves():
    model, inputs, w, p, declared = case(suite.QUICK[3])
    records = certified.records(model, declared, inputs, w, p, {"net": "x"}, 2)
    total = next(r for r in records if r["statement"] == "total" and r["dtype"] == "float64" and r["quantity"] == "Hv")
    assert (total["direction"], total["entries"], total["judged"]) == (2, "every entry",
                                                                     "relative to the exact vector's norm")
    assert total["estimator"] == "float64 engine vs the exact value (series on balls)"
    assert total["measured"] * total["exact_norm"] == pytest.approx(total["absolute"], rel=1e-6)
    assert total["certify_seconds"] > 0
    relu, relu_inputs, relu_w, relu_declared = straddling_relu_net()
    uncertifiable = certified.records(relu, relu_declared, relu_inputs, relu_w, np.ones(8), {"net": "x"}, 1)
    assert all(r["direction"] == 1 for r in uncertifiable)


ABSOLUTE = "absolute (the exact value may be 0)"


def made_up_record(quantity, measured, dtype="float64", statement="total", direction=0,
                   judged="relative to the exact vector's norm", verdict="pass", batch=4):
    """A certified record as the sentence reads it."""
    return {"dtype": dtype, "quantity": quantity, "measured": measured, "statement": statement,
            "direction": direction, "judged": judged, "verdict": verdict, "batch": batch}


def test_the_sentence_says_exactly_what_the_records_prove():
    found = [made_up_record(q, m) for q, m in zip(certified.QUANTITIES, (1e-16, 2e-16, 3e-16, 4e-16))]
    found += [made_up_record("Hv", 5e-16, direction=1), made_up_record("loss", 1e-8, dtype="float32"),
              made_up_record("GNv", 2e-52, dtype="mpmath"), made_up_record("gradient", 1e-58, statement="formula"),
              made_up_record("loss", 3e-18, judged=ABSOLUTE),
              made_up_record("GNv", 2e-13, direction=1, verdict="fail"),
              {"verdict": "cannot run", "reason": "float32: cannot run: the weights overflow float32"}]
    assert certified.sentence(found) == (
        "at the lab's seeded weights on its batch of 4 columns, the loss and every entry of the gradient, and every "
        "entry of Hv and GNv along each of 2 random directions, are proven within relative (to the exact vector's "
        "norm) float64 loss 1.0e-16, gradient 2.0e-16, Hv 5.0e-16, GNv 2.0e-13; float32 loss 1.0e-08; 50 digits GNv "
        "2.0e-52; float32: cannot run: the weights overflow float32; the engine's formulas agree with the exact "
        "derivatives within 1e-58 (loss: absolute bounds, the exact value may be 0); 1 bounds exceed their targets")
    assert certified.sentence([{"verdict": "cannot run", "reason": "cannot run: no flint"}]) == \
        "nothing proven: cannot run: no flint"


def test_the_50_digit_engine_values_are_computed_at_50_digits_exactly_and_leave_mpmath_as_it_was():
    model, inputs, w, p, _ = case(suite.QUICK[3])
    before = mpmath.mp.dps
    values = certified.engine_values(model, inputs, w, p, "mpmath")
    assert mpmath.mp.dps == before
    with mpmath.workdps(50):
        model.set_weights(numeric.to_mp(w))
        loss, grad = model.compute_loss(numeric.to_mp(inputs))
        hv = model.compute_hessvec(numeric.to_mp(p))
    assert values["loss"][0] == loss and all(a == b for a, b in zip(values["gradient"], grad))
    assert all(a == b for a, b in zip(values["Hv"], hv))


def test_the_series_names_the_unit_and_column_of_a_relu_at_its_kink():
    one_unit_dead = certified.Declared((2, 2), "r", use_bias=False)  # W = [[1, 0], [0, 0]]: unit 1 is 0
    with certified.ball_precision(), pytest.raises(numeric.UncertifiableError, match=r"unit 1, column 0: "):
        certified.exact_derivatives(one_unit_dead, numeric.to_arb(np.ones((2, 3))),
                                    numeric.to_arb(np.array([1.0, 0, 0, 0])), numeric.to_arb(np.ones(4)))
    with pytest.raises(ValueError, match="the declared net has 4 parameters, the vector 5"):
        one_unit_dead.unpack(np.zeros(5))
    with certified.ball_precision(), pytest.raises(ValueError, match="no definition for activation 'q'"):
        certified.exact_derivatives(certified.Declared((2, 2), "q", use_bias=False), numeric.to_arb(np.ones((2, 1))),
                                    numeric.to_arb(np.ones(4)), numeric.to_arb(np.ones(4)))


def test_the_certified_records_of_a_net_their_names_and_statements():
    model, inputs, w, p, declared = case(suite.QUICK[3])
    found = certified.records(model, declared, inputs, w, p, {"net": "x"}, 1)
    expected = {(f"certified: {s}", q, d, s, e) for q in certified.QUANTITIES for s, d, e in (
        ("total", "float64", "float64 engine vs the exact value (series on balls)"),
        ("total", "float32", "float32 engine vs the exact value (series on balls)"),
        ("total", "mpmath", "mpmath engine vs the exact value (series on balls)"),
        ("evaluation", "float64", "float64 engine vs its own formulas on balls"),
        ("formula", "float64", "the engine's formulas on balls vs the series"))}
    assert {(r["check"], r["quantity"], r["dtype"], r["statement"], r["estimator"]) for r in found} == expected
    assert len(found) == len(expected) and all(r["direction"] == 1 for r in found)
    assert all(0 < r["certify_seconds"] < 60 for r in found)
    huge = certified.records(model, declared, inputs, w * 1e39, p, {"net": "x"}, 2)
    float32 = [r for r in huge if r["dtype"] == "float32"]
    assert {(r["check"], r["quantity"], r["statement"], r["direction"], r["verdict"]) for r in float32} == {
        ("certified: total", q, "total", 2, "cannot run") for q in certified.QUANTITIES}
    relu, relu_inputs, relu_w, relu_declared = straddling_relu_net()
    refused = certified.records(relu, relu_declared, relu_inputs, relu_w, np.ones(8), {"net": "x"}, 0)
    assert {(r["check"], r["quantity"]) for r in refused} == {("certified: total", q) for q in certified.QUANTITIES}


def test_certify_returns_its_four_parts_and_the_same_bounds_for_float32_typed_input():
    model, inputs, w, p, declared = case(suite.QUICK[3])
    w32 = w.astype(np.float32)
    as_float32 = certified.certify(model, declared, inputs, w32, p)
    as_float64 = certified.certify(model, declared, inputs, w32.astype(np.float64), p)
    assert set(as_float64) == {"exact", "total", "evaluation", "formula"}
    assert as_float32["total"]["float64"] == as_float64["total"]["float64"]


def test_the_sentence_in_the_singular_with_several_skips_and_absolute_bounds_and_no_failure():
    found = [made_up_record("loss", 1e-16, judged=ABSOLUTE, batch=None),
             made_up_record("gradient", 2e-16, batch=None),
             made_up_record("Hv", 3e-16, judged=ABSOLUTE, batch=None), made_up_record("GNv", 4e-16, batch=None),
             made_up_record("gradient", 1e-58, statement="formula", batch=None),
             {"verdict": "cannot run", "reason": "float32: cannot run: b"},
             {"verdict": "cannot run", "reason": "mpmath: cannot run: a"}]
    assert certified.sentence(found) == (
        "at the lab's seeded weights on its batch, the loss and every entry of the gradient, and every entry of Hv "
        "and GNv along each of 1 random direction, are proven within relative (to the exact vector's norm) float64 "
        "loss 1.0e-16, gradient 2.0e-16, Hv 3.0e-16, GNv 4.0e-16; float32: cannot run: b; mpmath: cannot run: a; "
        "the engine's formulas agree with the exact derivatives within 1e-58 (Hv, loss: absolute bounds, the exact "
        "value may be 0)")
    assert certified.sentence([{"verdict": "cannot run", "reason": "y"}, {"verdict": "cannot run", "reason": "x"},
                               {"verdict": "cannot run"}]) == "nothing proven: ; x; y"


def test_at_a_low_ball_precision_every_bound_counts_the_radii():
    # at 200 bits a radius is ~1e-60 and no figure shows whether a bound counts it; at 53 bits the radii
    # of the engine run on balls are as large as float64's own round-off, so a bound that used the
    # midpoints alone would come out below max_i (|float64_i - mid_i| + rad_i), which is what it must cover
    model, inputs, w, p, declared = case(suite.QUICK[0])
    bits = 53
    result = certified.certify(model, declared, inputs, w, p, bits=bits)
    model.set_weights(w)
    loss, float64_grad = model.compute_loss(inputs)
    with certified.ball_precision(bits):
        balls = certified.balls_of_engine(model, inputs, w, p)["gradient"]
    with mpmath.workprec(400):  # mid and rad are exact binary numbers: 400 bits hold their sums exactly
        def mp(x):  # an exact ball (a midpoint or a radius) as the same binary number in mpmath
            mantissa, exponent = x.mid().man_exp()
            return mpmath.ldexp(mpmath.mpf(int(mantissa)), int(exponent))
        needed = max(abs(mpmath.mpf(g) - mp(b.mid())) + mp(b.rad()) for g, b in zip(float64_grad, balls))
        widest = max(mp(b.rad()) for b in balls)
        assert widest > 0.1 * max(abs(mpmath.mpf(g) - mp(b.mid())) for g, b in zip(float64_grad, balls))
        assert result["evaluation"]["gradient"]["absolute"] >= needed
    model.set_weights(w)
