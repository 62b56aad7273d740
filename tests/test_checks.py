"""The lab passes a correct engine and FAILS deliberately broken ones."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import ae
from checks import __main__ as cli
from checks import detection, sweeps, taylor
from checks.suite import build_case, dense_records, sweep_records, taylor_records


def square_net(afun=None, autoencoder=ae.Autoencoder, layer=ae.FCLayer, seed=0):
    """A 4-4-4 net: square layers, so that a wrong transpose still has valid shapes."""
    afun = afun or ae.TanhActivationFunction()
    model = autoencoder([layer((4, 4), afun, use_bias=True),
                         layer((4, 4), ae.SigmoidActivationFunction(), use_bias=True)])
    rng = np.random.default_rng(seed)
    w = model.init_weights(rng) + 0.3 * rng.standard_normal(model.params_number)
    return model, rng.standard_normal((4, 5)), w, rng.standard_normal(model.params_number)


class WrongTransposeLayer(ae.FCLayer):
    """Backward pass with W where W^T belongs: the bug shapes cannot reveal."""

    def backward(self, derivs, remember=True, input_derivs=True):
        _, grads = super().backward(derivs, remember, input_derivs)
        return self.W @ (derivs * self.g1), grads


class MissingOneOverN(ae.Autoencoder):
    def compute_hessvec(self, p):
        return super().compute_hessvec(p) * self._loss_point[1]


class WrongSecondDerivativeTanh(ae.TanhActivationFunction):
    def second_deriv(self, X):
        return -2 * self.val(X)  # forgets the factor (1 - tanh^2)


def verdicts(model, inputs, w, p, quantity):
    context = {"net": "test", "dtype": "float64"}
    records = sweep_records(sweeps.sweep(model, inputs, w, p, quantity,
                                         names=["forward", "central", "complex"]), quantity, context)
    return {r["check"]: r["verdict"] for r in records}


def taylor_verdicts(model, inputs, w, p):
    records = taylor_records(taylor.taylor_test(model, inputs, w, p), {"net": "test"})
    return [r["verdict"] for r in records]


def test_a_correct_engine_passes_every_check():
    model, inputs, w, p = square_net()
    for quantity in sweeps.QUANTITIES:
        got = verdicts(model, inputs, w, p, quantity)
        assert set(got.values()) == {"pass"}, got
    assert taylor_verdicts(model, inputs, w, p) == ["pass"] * 3
    assert {r["verdict"] for r in dense_records(model, inputs, w, {"net": "t"})} == {"pass", "info"}


def test_a_wrong_transpose_fails_the_gradient_checks():
    model, inputs, w, p = square_net(layer=WrongTransposeLayer)
    got = verdicts(model, inputs, w, p, "gradient")
    assert got["complex step"] == got["central best"] == got["forward at sqrt(eps)"] == "fail"
    assert taylor_verdicts(model, inputs, w, p)[1] == "fail"  # r1 stays at order 1


def test_a_missing_one_over_n_fails_the_hessian_checks():
    model, inputs, w, p = square_net(autoencoder=MissingOneOverN)
    got = verdicts(model, inputs, w, p, "Hv")
    assert got["complex step"] == got["central best"] == got["forward at sqrt(eps)"] == "fail"
    assert verdicts(model, inputs, w, p, "gradient")["complex step"] == "pass"
    assert taylor_verdicts(model, inputs, w, p)[2] == "fail"
    dense = {r["estimator"]: r["verdict"] for r in dense_records(model, inputs, w, {"net": "t"})
             if r["check"] == "dense H"}
    assert dense["Hv products vs mpmath"] == "fail"


def test_a_wrong_second_derivative_fails_hv_but_not_gradient_or_gauss_newton():
    model, inputs, w, p = square_net(afun=WrongSecondDerivativeTanh())
    assert verdicts(model, inputs, w, p, "Hv")["complex step"] == "fail"
    assert verdicts(model, inputs, w, p, "gradient")["complex step"] == "pass"
    assert verdicts(model, inputs, w, p, "GNv")["complex step"] == "pass"  # G has no g''
    assert taylor_verdicts(model, inputs, w, p) == ["pass", "pass", "fail"]


@pytest.mark.parametrize("quantity", sweeps.QUANTITIES)
def test_detection_power_beats_gradchecks_rule(quantity):
    model, inputs, w, p = square_net()
    result = detection.detection_power(model, inputs, w, p, quantity)
    for row in result["ae-lab"].values():  # the lab's claim: every delta >= 1e-10 caught
        assert not row["false_alarm"]
        assert row["smallest_caught"] is not None and row["smallest_caught"] <= 1e-10
    for row in result["ae-lab directional"].values():  # power depends on the direction: no bound claimed
        assert not row["false_alarm"] and row["smallest_caught"] is not None
    for row in result["gradcheck"].values():
        assert not row["false_alarm"]
        assert row["smallest_caught"] is None or row["smallest_caught"] >= 1e-3


def test_finite_differences_across_a_relu_kink_are_not_run():
    model, inputs, w, p = build_case(([4, 3, 4], "rk", True, False, 4), 1)
    curve = sweeps.sweep(model, inputs, w, p, "gradient", names=["central", "complex"])
    limit = curve["central"]["kink_limit"]
    h = np.asarray(curve["central"]["h"])
    assert np.isfinite(limit) and np.isnan(np.asarray(curve["central"]["error"])[h >= limit]).all()
    assert not np.isnan(curve["complex"]["error"]).any()  # complex steps never straddle a kink


def test_steps_below_float32_resolution_are_not_run():
    model, inputs, w, p = square_net()
    curve = sweeps.sweep(model, inputs, w, p, "gradient", dtype=np.float32, names=["complex"])["complex"]
    h, error = np.asarray(curve["h"]), np.asarray(curve["error"], float)
    assert np.isnan(error[h < 1e-45]).all() and np.isfinite(error[h > 1e-30]).all()


def test_quadratic_loss_makes_the_third_order_taylor_check_say_it_cannot_run():
    model = ae.Autoencoder([ae.FCLayer((3, 3), ae.LinearActivationFunction())])
    w = model.init_weights(0)
    rng = np.random.default_rng(0)
    records = taylor_records(taylor.taylor_test(model, rng.standard_normal((3, 4)), w,
                                                rng.standard_normal(9)), {"net": "linear"})
    assert [r["verdict"] for r in records] == ["pass", "pass", "cannot run"]
    assert records[2]["measured"] is None and "round-off" in records[2]["reason"]


@pytest.mark.slow
def test_command_quick_run_writes_records_and_figures(tmp_path, capsys):
    assert cli.main(["--quick", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "records.json").read_text())
    verdicts_seen = {r["verdict"] for r in data["records"]}
    assert "fail" not in verdicts_seen and "pass" in verdicts_seen
    assert (tmp_path / "figures" / "error_vs_step_Hv.pdf").stat().st_size > 1000
    assert "detection power" in capsys.readouterr().out


@pytest.mark.slow
def test_command_exits_nonzero_on_a_broken_engine(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ae.TanhActivationFunction, "second_deriv", WrongSecondDerivativeTanh.second_deriv)
    assert cli.main(["--quick", "--out", str(tmp_path)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_every_module_of_the_lab_imports_first_in_a_fresh_interpreter():
    """Each checks module imported before any other of the lab's (as ``python -m checks --engine`` and the
    class grader's judge process start): no import cycle leaves a module half made."""
    code = ("import importlib, pathlib, sys\n"
            "names = sorted(p.stem for p in pathlib.Path(sys.argv[1]).glob('*.py') if p.stem != '__init__')\n"
            "for name in names:\n"
            "    for loaded in [m for m in sys.modules if m == 'checks' or m.startswith('checks.')]:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module('checks.' + name)\n"
            "    except ImportError as error:\n"
            "        print(name, error)\n")
    folder = pathlib.Path(cli.__file__).parent
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr
