"""Certified bounds by ball arithmetic: the engine on balls, the Taylor series of the forward pass,
and planted errors far below float64's round-off that only a proof can see."""

import mpmath
import numpy as np
import pytest

import ae
from ae import numeric

flint = pytest.importorskip("flint")

from checks import certified, suite  # noqa: E402


def case(spec, seed=0):
    return suite.build_case(spec, seed)


@pytest.mark.parametrize("spec", suite.QUICK, ids=lambda s: s[1])
def test_the_correct_engine_is_proven_on_every_net_of_the_quick_lab(spec):
    model, inputs, w, p = case(spec)
    found = suite.certified_records(model, inputs, w, suite._context(model, 0), 0)
    assert found and all(r["verdict"] == "pass" for r in found), [r for r in found if r["verdict"] != "pass"]
    formula = [r["measured"] for r in found if r["statement"] == "formula"]
    assert max(formula) < 1e-40  # the formulas are exact to far beyond float64
    assert "proven within relative" in certified.sentence(found)


def test_balls_contain_the_truth_that_50_digits_approximate():
    model, inputs, w, p = case(suite.QUICK[2])
    with certified.ball_precision():
        model.set_weights(numeric.to_arb(w))
        _, g_ball = model.compute_loss(numeric.to_arb(inputs))
    with mpmath.workdps(60):
        model.set_weights(numeric.to_mp(w))
        _, g60 = model.compute_loss(numeric.to_mp(inputs))
    mids, rads = numeric.ball_bounds(g_ball)
    assert np.all(rads < 1e-50)
    assert all(abs(v - b.mid()) <= b.rad() + mpmath.mpf(10) ** -55 for v, b in zip(g60, g_ball))


def test_a_sigmoid_second_derivative_off_by_1e_12_fails_the_formula_statement_for_hv(monkeypatch):
    model, inputs, w, p = case(suite.QUICK[0])  # tlsl: a sigmoid layer
    original = ae.SigmoidActivationFunction.second_deriv
    monkeypatch.setattr(ae.SigmoidActivationFunction, "second_deriv", lambda self, X: original(self, X) * (1 + 1e-12))
    result = certified.certify(model, inputs, w, p)
    assert result["Hv"]["formula"] / result["Hv"]["scale"] > certified.TARGETS["formula"]
    assert result["Hv"]["formula"] / result["Hv"]["scale"] > 1e-16  # seen far above float64 round-off
    # the gradient and GNv never use second_deriv: still proven
    assert result["gradient"]["formula"] / result["gradient"]["scale"] < 1e-40
    assert result["GNv"]["formula"] / result["GNv"]["scale"] < 1e-40


def test_a_gradient_entry_off_by_1e_12_fails_along_a_direction_that_touches_it(monkeypatch):
    model, inputs, w, _ = case(suite.QUICK[2])
    model.set_weights(w)
    k = int(np.argmax(np.abs(model.compute_loss(inputs)[1])))
    original = ae.Autoencoder.compute_loss

    def off(self, X):
        loss, grad = original(self, X)
        grad[k] = grad[k] * (1 + 1e-12) if not numeric.is_arb(grad) else grad[k] * (1 + flint.arb(2) ** -40)
        return loss, grad

    monkeypatch.setattr(ae.Autoencoder, "compute_loss", off)
    touching = np.zeros(model.params_number)
    touching[k] = 1
    result = certified.certify(model, inputs, w, touching)["gradient"]
    assert result["formula"] / result["scale"] > certified.TARGETS["formula"]
    assert result["total"] / result["scale"] > 1e-13  # the float64 g.p is not what it should be
    records = certified.records(model, inputs, w, touching, {"net": "x"}, 0)
    assert any(r["verdict"] == "fail" and r["quantity"] == "gradient" for r in records)


def straddling_relu_net():
    """tanh makes two equal balls t, t; the ReLU layer sees t - t, a ball around 0 of nonzero radius."""
    layers = [ae.FCLayer((2, 2), ae.TanhActivationFunction()), ae.FCLayer((2, 2), ae.ReluActivationFunction())]
    model = ae.Autoencoder(layers)
    w = np.array([0.3, 0.7, 0.3, 0.7, 1.0, -1.0, 0.5, 0.5])
    return model, np.array([[0.2, 0.4], [0.1, 0.3]]), w


def test_a_relu_ball_straddling_its_kink_is_uncertifiable_naming_layer_and_unit():
    model, inputs, w = straddling_relu_net()
    with certified.ball_precision():
        model.set_weights(numeric.to_arb(w))
        with pytest.raises(numeric.UncertifiableError, match=r"layer 1, unit 0, column 0: the ball .* straddles"):
            model.compute_loss(numeric.to_arb(inputs))
    records = certified.records(model, inputs, w, np.ones(8), {"net": "relu"}, 0)
    assert {r["verdict"] for r in records} == {"cannot run"}
    assert all("uncertifiable: layer 1, unit 0" in r["reason"] for r in records)


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
    model, inputs, w, p = case(suite.QUICK[3])
    found = suite.certified_records(model, inputs, w, suite._context(model, 0), 0)
    assert {r["verdict"] for r in found} == {"cannot run"}
    assert all("cannot run: ball arithmetic needs python-flint" in r["reason"] for r in found)
