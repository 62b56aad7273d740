import warnings

import mpmath
import numpy as np
import pytest

import ae
from ae import numeric
from checks.estimators import complex_step

SMOOTH = [ae.LinearActivationFunction(), ae.SigmoidActivationFunction(), ae.TanhActivationFunction()]
KINKED = [ae.ReluActivationFunction(), ae.LeakyReluActivationFunction(0.2)]
ALL = SMOOTH + KINKED
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]


@pytest.mark.parametrize("afun", ALL, ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_or_warning_for_huge_arguments(afun, dtype):
    s = np.array([-1e4, -50.0, 0.0, 50.0, 1e4], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (afun.val, afun.deriv, afun.second_deriv):
            out = f(s)
            assert out.dtype == dtype and out.shape == s.shape
            assert np.isfinite(out).all()


def test_sigmoid_saturates_to_exact_limits():
    s = ae.SigmoidActivationFunction().val(np.array([-1e4, 1e4]))
    assert s[0] == 0.0 and s[1] == 1.0


@pytest.mark.parametrize("afun", ALL, ids=repr)
def test_derivatives_match_complex_step(afun):
    # away from the kink at 0, where both sides agree with the documented values
    s = np.linspace(-3, 3, 14)
    s = s[np.abs(s) > 0.1]
    one = np.ones_like(s)
    assert np.allclose(complex_step(afun.val, s, one, 1e-30), afun.deriv(s), rtol=1e-14, atol=1e-15)
    assert np.allclose(complex_step(afun.deriv, s, one, 1e-30), afun.second_deriv(s),
                       rtol=1e-13, atol=1e-15)


def test_relu_at_zero_takes_the_left_branch():
    relu, leaky = ae.ReluActivationFunction(), ae.LeakyReluActivationFunction(0.25)
    zero = np.array([0.0])
    assert relu.val(zero)[0] == 0 and relu.deriv(zero)[0] == 0
    assert leaky.val(zero)[0] == 0 and leaky.deriv(zero)[0] == 0.25
    # branches follow the real part: a complex-step perturbation never flips them
    z = np.array([-1e-3 + 1.0j, 1e-3 - 1.0j])
    assert np.array_equal(relu.val(z), [0, 1e-3 - 1.0j])


@pytest.mark.parametrize("afun", ALL, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES + [object])
def test_dtype_in_equals_dtype_out(afun, dtype):
    s = numeric.astype(np.array([[-1.5, 0.5], [2.0, -0.25]]), dtype)
    with mpmath.workdps(30):
        for f in (afun.val, afun.deriv, afun.second_deriv):
            out = f(s)
            assert out.dtype == np.dtype(dtype) and out.shape == s.shape
            if dtype is object:
                assert all(isinstance(v, mpmath.mpf) for v in out.flat)


def test_mpmath_tanh_keeps_its_precision():
    with mpmath.workdps(50):
        x = numeric.to_mp(np.array([0.5]))
        t = ae.TanhActivationFunction().val(x)[0]
        assert abs(t - mpmath.tanh(mpmath.mpf(0.5))) == 0
        assert abs(t - np.tanh(0.5)) > 1e-30  # not a float rounded back up


@pytest.mark.parametrize("alpha", [0, 1, -0.5, 2.0])
def test_leaky_relu_rejects_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ae.LeakyReluActivationFunction(alpha)


@pytest.mark.parametrize("dtype, largest", [(np.float64, 350.0), (np.float32, 40.0)])
def test_tanh_derivative_keeps_its_relative_accuracy_in_the_tails(dtype, largest):
    """sech^2 within 4 eps of the 40-digit value, where 1 - tanh^2 loses every digit."""
    s = np.concatenate([np.linspace(-largest, largest, 2001), np.geomspace(1e-8, 1, 50)]).astype(dtype)
    got = ae.TanhActivationFunction().deriv(s)
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.sech(mpmath.mpf(float(v))) ** 2) for v in s])
    assert got.dtype == dtype
    assert np.max(np.abs(got - exact) / exact) <= 4 * np.finfo(dtype).eps
