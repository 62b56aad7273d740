"""Number types flow through unchanged, layouts are as documented, bad input is refused."""

import mpmath
import numpy as np
import pytest

import ae
from ae import numeric

DTYPES = [np.float32, np.float64, np.complex64, np.complex128, object]


def small_model(tied=False, bias=True):
    layers = [
        ae.FCLayer((4, 3), ae.TanhActivationFunction(), use_bias=bias),
        ae.FCLayer((3, 2), ae.LinearActivationFunction(), use_bias=bias),
        ae.FCLayer((2, 3), ae.SigmoidActivationFunction(), use_bias=bias),
        ae.FCLayer((3, 4), ae.LeakyReluActivationFunction(0.1), use_bias=bias),
    ]
    return ae.Autoencoder(layers, tied=tied)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_every_public_method_keeps_the_number_type(dtype, tied):
    model = small_model(tied)
    dt = np.dtype(dtype)
    with mpmath.workdps(40):
        w = model.init_weights(0, dtype=dtype)
        x = numeric.astype(np.random.default_rng(1).standard_normal((4, 3)), dtype)
        p = numeric.astype(np.random.default_rng(2).standard_normal(model.params_number), dtype)
        assert w.dtype == dt and model.get_weights().dtype == dt
        loss, grad = model.compute_loss(x)
        if dt == np.dtype(object):
            assert isinstance(loss, mpmath.mpf)
            assert all(isinstance(v, mpmath.mpf) for v in grad)
        else:
            assert loss.dtype == dt
        outs = [grad, model.compute_hessvec(p), model.compute_gaussnewtonvec(p),
                model.compute_outputs(x), model.get_activations(1)]
        model.net.set_direction(p)
        outs += [model.net.compute_Rp_outputs()]
        for out in outs:
            assert out.dtype == dt
        layer = model.layers[0]
        d_in, d_w = layer.backward(numeric.astype(np.ones((3, 3)), dtype), remember=False)
        assert d_in.dtype == dt and d_w.dtype == dt and layer.get_weights().dtype == dt


def test_parameter_layout_is_W_row_major_then_bias():
    layer = ae.FCLayer((3, 2), ae.LinearActivationFunction(), use_bias=True)
    layer.set_weights(np.arange(8.0))
    assert np.array_equal(layer.W, [[0, 1, 2], [3, 4, 5]])
    assert np.array_equal(layer.b[:, 0], [6, 7])
    out = layer.forward(np.array([[1.0], [0.0], [0.0]]))
    assert np.array_equal(out[:, 0], [6, 10])


def test_tied_vector_holds_the_shared_matrix_once():
    tied, untied = small_model(tied=True), small_model(tied=False)
    # untied: 15 + 8 + 9 + 16; tied drops the decoder matrices (6 + 12)
    assert untied.params_number == 48 and tied.params_number == 48 - 6 - 12
    w = tied.init_weights(0)
    assert np.array_equal(tied.layers[3].W, tied.layers[0].W.T)
    assert np.array_equal(tied.layers[2].W, tied.layers[1].W.T)
    assert np.array_equal(tied.get_weights(), w)


@pytest.mark.bitexact
def test_seeded_initialisation_is_reproducible_and_the_same_in_every_type():
    a, b = small_model().init_weights(7), small_model().init_weights(7)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, small_model().init_weights(8))
    mp = small_model().init_weights(7, dtype=object)
    assert all(mpmath.mpf(x) == y for x, y in zip(a, mp))


# --- bad input -------------------------------------------------------------

def test_layers_that_do_not_chain():
    with pytest.raises(ValueError, match="do not chain"):
        ae.Autoencoder([ae.FCLayer((4, 3), ae.TanhActivationFunction()),
                        ae.FCLayer((2, 4), ae.TanhActivationFunction())])


def test_output_size_must_equal_input_size():
    with pytest.raises(ValueError, match="output size must equal its input size"):
        ae.Autoencoder([ae.FCLayer((4, 3), ae.TanhActivationFunction())])


def test_tied_layers_must_mirror():
    layers = [ae.FCLayer((4, 3), ae.TanhActivationFunction()),
              ae.FCLayer((3, 2), ae.TanhActivationFunction()),
              ae.FCLayer((2, 4), ae.TanhActivationFunction())]
    with pytest.raises(ValueError, match="shapes must mirror"):
        ae.Autoencoder(layers, tied=True)


@pytest.mark.parametrize("inputs, match", [
    (np.ones(4), "2-D"),
    (np.ones((5, 2)), "rows"),
    (np.ones((4, 0)), "no columns"),
    (np.array([[np.nan], [0], [0], [0]]), "NaN or inf"),
    (np.array([[np.inf], [0], [0], [0]]), "NaN or inf"),
])
def test_bad_inputs(inputs, match):
    model = small_model()
    model.init_weights(0)
    with pytest.raises(ValueError, match=match):
        model.compute_loss(inputs)


def test_finite_inputs_whose_sum_overflows_are_accepted_and_opposite_infinities_are_not():
    # the validation first sums the entries: an overflowing sum must not be taken for an inf
    huge = np.full((4, 3), 3e38, dtype=np.float32)
    assert numeric.check_array(huge, "x") is huge
    with pytest.raises(ValueError, match="NaN or inf"):
        numeric.check_array(np.array([[np.inf, -np.inf]]), "x")  # their sum is NaN, quietly


@pytest.mark.parametrize("bad", [np.ones((4, 2), dtype=np.int64), np.ones((4, 2), dtype=np.float16),
                                 np.array([["a"] * 2] * 4), np.full((4, 2), 1.0, dtype=object)])
def test_unsupported_dtypes(bad):
    model = small_model()
    model.init_weights(0)
    with pytest.raises(TypeError, match="dtype|object arrays must hold mpmath"):
        model.compute_loss(bad)


def test_unsupported_dtype_in_init():
    with pytest.raises(TypeError, match="unsupported dtype"):
        small_model().init_weights(0, dtype=np.int32)


@pytest.mark.parametrize("method", ["set_weights", "compute_hessvec", "compute_gaussnewtonvec"])
def test_vectors_of_the_wrong_length_or_with_nan(method):
    model = small_model()
    w = model.init_weights(0)
    model.compute_loss(np.ones((4, 2)))
    with pytest.raises(ValueError, match="length 3, expected 48"):
        getattr(model, method)(np.ones(3))
    bad = w.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        getattr(model, method)(bad)


def test_direction_of_the_wrong_length():
    model = small_model()
    with pytest.raises(ValueError, match="direction has length"):
        model.net.set_direction(np.ones(2))


def test_products_before_compute_loss():
    model = small_model()
    w = model.init_weights(0)
    with pytest.raises(ValueError, match="call compute_loss"):
        model.compute_hessvec(w)
    model.compute_loss(np.ones((4, 2)))
    model.set_weights(w * 2)  # moving the point invalidates the stored passes
    with pytest.raises(ValueError, match="call compute_loss"):
        model.compute_gaussnewtonvec(w)


def test_forward_before_weights_and_bad_layer_shape():
    layer = ae.FCLayer((3, 2), ae.TanhActivationFunction())
    with pytest.raises(ValueError, match="weights are not set"):
        layer.forward(np.ones((3, 1)))
    with pytest.raises(ValueError, match="shape must be"):
        ae.FCLayer(3, ae.TanhActivationFunction())
    with pytest.raises(TypeError, match="afun"):
        ae.FCLayer((3, 2), np.tanh)


def test_get_activations_out_of_range():
    model = small_model()
    model.init_weights(0)
    model.compute_loss(np.ones((4, 1)))
    with pytest.raises(ValueError, match="out of range"):
        model.get_activations(4)
