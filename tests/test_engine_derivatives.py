"""The engine's derivatives against independent references, on random nets."""

import mpmath
import numpy as np
from hypothesis import assume, given
from strategies import autoencoders, relu_margin

import ae
from ae import numeric
from checks.estimators import complex_step, mp_central_difference, relative_error
from checks.model_functions import (
    basis_vector,
    dense_jacobian,
    gradient_at,
    loss_at,
)

H_COMPLEX = 1e-30


def random_direction(model, seed=0):
    return np.random.default_rng(seed).standard_normal(model.params_number)


@given(autoencoders())
def test_gradient_matches_complex_step_of_loss(case):
    model, inputs, w = case
    _, grad = model.compute_loss(inputs)
    loss = loss_at(model, inputs)
    reference = np.array(
        [complex_step(loss, w, basis_vector(k, w), H_COMPLEX) for k in range(w.size)]
    )
    assert relative_error(grad, reference) <= 1e-13


@given(autoencoders())
def test_hessvec_matches_complex_step_of_gradient(case):
    model, inputs, w = case
    p = random_direction(model)
    reference = complex_step(gradient_at(model, inputs), w, p, H_COMPLEX)
    model.set_weights(w)
    model.compute_loss(inputs)
    assert relative_error(model.compute_hessvec(p), reference) <= 1e-12


@given(autoencoders())
def test_gaussnewtonvec_matches_dense_jacobian(case):
    model, inputs, w = case
    p = random_direction(model)
    J = dense_jacobian(model, w, inputs)  # outputs x objects x M
    N = inputs.shape[1]
    reference = np.einsum("dnk,dn->k", J, J @ p) / N
    model.set_weights(w)
    model.compute_loss(inputs)
    assert relative_error(model.compute_gaussnewtonvec(p), reference) <= 1e-13


@given(autoencoders())
def test_adjoint_identity_between_R_forward_and_backward(case):
    model, inputs, w = case
    rng = np.random.default_rng(1)
    v = rng.standard_normal(model.params_number)
    u = rng.standard_normal(inputs.shape)
    model.compute_loss(inputs)
    model.net.set_direction(v)
    Jv = model.net.compute_Rp_outputs()
    JTu = model.net.compute_loss_grad(u, remember=False)
    # errors are measured against ||u|| ||J v||, the size the inner product could
    # have: a relative error of the value itself is meaningless when it cancels to 0
    scale = np.linalg.norm(u) * np.linalg.norm(Jv) + np.linalg.norm(JTu) * np.linalg.norm(v)
    assert abs((u * Jv).sum() - JTu @ v) <= 1e-13 * max(scale, 1e-300)


@given(autoencoders())
def test_hessian_and_gauss_newton_are_symmetric(case):
    model, inputs, _ = case
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, model.params_number))
    model.compute_loss(inputs)
    for product in (model.compute_hessvec, model.compute_gaussnewtonvec):
        uAv, vAu = u @ product(v), v @ product(u)
        scale = np.linalg.norm(u) * np.linalg.norm(product(v))
        assert abs(uAv - vAu) <= 1e-13 * max(scale, 1e-300)


@given(autoencoders())
def test_gauss_newton_is_positive_semidefinite(case):
    model, inputs, w = case
    model.compute_loss(inputs)
    G = np.stack([model.compute_gaussnewtonvec(basis_vector(k, w)) for k in range(w.size)], 1)
    eig = np.linalg.eigvalsh((G + G.T) / 2)
    assert eig.min() >= -1e-13 * max(eig.max(), 1e-300)


@given(autoencoders(max_layers=1, tied=False))
def test_gauss_newton_equals_hessian_for_one_linear_layer(case):
    model, inputs, _ = case
    model = ae.Autoencoder([ae.FCLayer(model.layers[0].shape, ae.LinearActivationFunction(),
                                       use_bias=model.layers[0].use_bias)])
    model.init_weights(3)
    model.compute_loss(inputs)
    p = random_direction(model, 4)
    assert relative_error(model.compute_gaussnewtonvec(p), model.compute_hessvec(p)) <= 1e-13


@given(autoencoders())
def test_mpmath_50_digit_gradient_vs_central_difference(case):
    model, inputs, w = case
    assume(relu_margin(model, inputs, w) > 1e-6)  # h = 1e-17 never crosses a kink
    p = random_direction(model)
    with mpmath.workdps(50):
        w_mp, p_mp = numeric.to_mp(w), numeric.to_mp(p)
        model.set_weights(w_mp)
        _, grad = model.compute_loss(inputs)
        exact = (grad * p_mp).sum()
        estimate = mp_central_difference(loss_at(model, inputs), w, p, 1e-17, dps=50)
        scale = mpmath.sqrt((grad * grad).sum() * (p_mp * p_mp).sum())
        assert abs(estimate - exact) <= 1e-30 * max(scale, mpmath.mpf(1e-300))


def _all_results(model, inputs, w, p):
    model.set_weights(w)
    loss, grad = model.compute_loss(inputs)
    return [loss, grad, model.compute_hessvec(p), model.compute_gaussnewtonvec(p)]


@given(autoencoders(max_layers=3, max_width=5))
def test_float32_agrees_with_mpmath_reference(case):
    model, inputs, w = case
    w32, x32 = w.astype(np.float32), inputs.astype(np.float32)
    p32 = random_direction(model).astype(np.float32)
    single = _all_results(model, x32, w32, p32)
    with mpmath.workdps(50):
        reference = _all_results(model, numeric.to_mp(x32), numeric.to_mp(w32), numeric.to_mp(p32))
        for name, got, ref in zip(["loss", "grad", "Hv", "GNv"], single, reference):
            assert relative_error(numeric.to_mp(np.asarray(got, dtype=np.float32)), ref) <= 1e-5, name


@given(autoencoders())
def test_products_do_not_depend_on_call_order(case):
    model, inputs, _ = case
    rng = np.random.default_rng(5)
    p, q = rng.standard_normal((2, model.params_number))
    model.compute_loss(inputs)
    hv_first, gn_first = model.compute_hessvec(p), model.compute_gaussnewtonvec(q)
    gn_again, hv_again = model.compute_gaussnewtonvec(q), model.compute_hessvec(p)
    model.compute_hessvec(q)
    model.compute_gaussnewtonvec(p)
    assert np.array_equal(hv_first, hv_again) and np.array_equal(hv_first, model.compute_hessvec(p))
    assert np.array_equal(gn_first, gn_again) and np.array_equal(gn_first, model.compute_gaussnewtonvec(q))


@given(autoencoders(tied=True, max_layers=4))
def test_tied_gradient_is_encoder_plus_transposed_decoder_gradient(case):
    """Section 1.2: dF/dW1 = grad_{W1} + (grad_{W_L})^T, checked on an untied twin."""
    model, inputs, w = case
    L = len(model.layers)
    untied = ae.Autoencoder(model.layers, tied=False)
    blocks = [layer.get_weights() for layer in model.layers]
    untied.set_weights(np.concatenate(blocks))
    _, grad_untied = untied.compute_loss(inputs)
    model.set_weights(w)
    _, grad_tied = model.compute_loss(inputs)
    expected, offset = [], 0
    untied_blocks = []
    for layer in model.layers:
        n = layer.get_params_number()
        untied_blocks.append(grad_untied[offset: offset + n])
        offset += n
    for k, layer in enumerate(model.layers):
        n_in, n_out = layer.shape
        dW, db = untied_blocks[k][: n_in * n_out].reshape(n_out, n_in), untied_blocks[k][n_in * n_out:]
        if k < L // 2:
            mirror = model.layers[L - 1 - k]
            dW_mirror = untied_blocks[L - 1 - k][: n_in * n_out].reshape(mirror.shape[1], mirror.shape[0])
            expected += [(dW + dW_mirror.T).ravel(), db]
        elif k >= L - L // 2:
            expected += [db]
        else:
            expected += [dW.ravel(), db]
    assert model.params_number < untied.params_number or L == 1
    assert relative_error(grad_tied, np.concatenate(expected)) <= 1e-14
