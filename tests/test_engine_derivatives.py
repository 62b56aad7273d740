"""The engine's derivatives against independent references, on random nets."""

import mpmath
import numpy as np
import pytest
from hypothesis import assume, example, given, target
from strategies import autoencoders, relu_margin

import ae
from ae import numeric
from checks.estimators import complex_step, mp_central_difference, relative_error
from checks.model_functions import (
    basis_vector,
    dense_jacobian,
    dense_matrix,
    gradient_at,
    loss_at,
    outputs_at,
)

H_COMPLEX = 1e-30


def measured(label, error):
    """Report an error to hypothesis, which then searches for larger ones.

    ``pytest --hypothesis-show-statistics`` prints the worst value per label.
    """
    target(float(error), label=label)
    return error


def normwise_scale(product, w, p):
    """||A||_F ||p||: the scale of round-off in A p whatever A p itself is.

    A plain relative error of A p blows up when A p cancels to a small vector
    (targeted search found nets where ||H p|| is 1e-5 of ||H|| ||p||); the
    product's own round-off is bounded in terms of ||A|| ||p||.
    """
    return float(np.linalg.norm(numeric.to_float64(dense_matrix(product, w))) *
                 np.linalg.norm(numeric.to_float64(p)))


def gradient_scale(model, inputs, w):
    """||J||_F ||r|| / N: the round-off scale of grad F = J^T r / N (r = z - x).

    Like H p, the gradient can cancel to far below the size of its terms
    (targeted search found a relative error of 6e-13 where the gradient was
    small); its round-off is bounded in terms of ||J|| ||r|| / N.
    """
    J = numeric.to_float64(dense_jacobian(model, w, inputs))
    model.set_weights(w)
    residual = numeric.to_float64(model.compute_outputs(inputs) - inputs)
    return float(np.linalg.norm(J) * np.linalg.norm(residual) / inputs.shape[1])


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
    error = relative_error(grad, reference, gradient_scale(model, inputs, w))
    assert measured("gradient vs complex step (normwise)", error) <= 1e-13


@given(autoencoders())
def test_hessvec_matches_complex_step_of_gradient(case):
    model, inputs, w = case
    p = random_direction(model)
    reference = complex_step(gradient_at(model, inputs), w, p, H_COMPLEX)
    model.set_weights(w)
    model.compute_loss(inputs)
    scale = normwise_scale(model.compute_hessvec, w, p)
    error = relative_error(model.compute_hessvec(p), reference, scale)
    assert measured("Hv vs complex step (normwise)", error) <= 1e-12


@given(autoencoders())
def test_gaussnewtonvec_matches_dense_jacobian(case):
    model, inputs, w = case
    p = random_direction(model)
    # J column by column from the complex step of the outputs: no R-forward pass of the engine's
    outputs = outputs_at(model, inputs)
    J = np.stack([complex_step(outputs, w, basis_vector(k, w), H_COMPLEX) for k in range(w.shape[0])], axis=-1)
    N = inputs.shape[1]
    reference = np.einsum("dnk,dn->k", J, J @ p) / N
    model.set_weights(w)
    model.compute_loss(inputs)
    scale = normwise_scale(model.compute_gaussnewtonvec, w, p)
    error = relative_error(model.compute_gaussnewtonvec(p), reference, scale)
    assert measured("GNv vs J^T J p / N (normwise)", error) <= 1e-13


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
    assert measured("adjoint", abs((u * Jv).sum() - JTu @ v) / max(scale, 1e-300)) <= 1e-13


@given(autoencoders())
def test_hessian_and_gauss_newton_are_symmetric(case):
    model, inputs, _ = case
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, model.params_number))
    model.compute_loss(inputs)
    for name, product in (("H", model.compute_hessvec), ("G", model.compute_gaussnewtonvec)):
        uAv, vAu = u @ product(v), v @ product(u)
        # ||u|| ||A||_F ||v||: the size u.(Av) can have (||Av|| alone can cancel, as for Hv)
        scale = np.linalg.norm(u) * normwise_scale(product, model.get_weights(), v)
        assert measured(f"symmetry of {name}", abs(uAv - vAu) / max(scale, 1e-300)) <= 1e-13


@given(autoencoders())
def test_gauss_newton_is_positive_semidefinite(case):
    model, inputs, w = case
    model.compute_loss(inputs)
    G = np.stack([model.compute_gaussnewtonvec(basis_vector(k, w)) for k in range(w.size)], 1)
    eig = np.linalg.eigvalsh((G + G.T) / 2)
    assert measured("G psd: -lambda_min / lambda_max", -eig.min() / max(eig.max(), 1e-300)) <= 1e-13


@given(autoencoders(max_layers=1, tied=False))
def test_gauss_newton_equals_hessian_for_one_linear_layer(case):
    model, inputs, _ = case
    model = ae.Autoencoder([ae.FCLayer(model.layers[0].shape, ae.LinearActivationFunction(),
                                       use_bias=model.layers[0].use_bias)])
    model.init_weights(3)
    model.compute_loss(inputs)
    p = random_direction(model, 4)
    assert measured("G = H, one linear layer",
                    relative_error(model.compute_gaussnewtonvec(p), model.compute_hessvec(p))) <= 1e-13


def _small_gradient_beside_a_large_loss():
    """The ReLU unit random search found: g.p = -2.1e-8 while F = 0.40."""
    model = ae.build([1, 1], "r", use_bias=False)
    return model, np.array([[0.0007996369858082831, -1.2647165749536307]]), np.array([0.4868666628178954])


@given(autoencoders())
@example(_small_gradient_beside_a_large_loss())
def test_mpmath_50_digit_gradient_vs_central_difference(case):
    """g.p within 1e-30 |g||p| of the 50-digit central difference, or within the quotient's own round-off.

    (F(w + hp) - F(w - hp)) / 2h carries eps_50 |F| / h of round-off whatever
    the engine does (4e-34 at F = 0.4): where g.p is tiny beside F, that is
    the floor of the comparison, not 1e-30 |g||p|.
    """
    model, inputs, w = case
    assume(relu_margin(model, inputs, w) > 1e-6)  # h = 1e-17 never crosses a kink
    p = random_direction(model)
    with mpmath.workdps(50):
        w_mp, p_mp = numeric.to_mp(w), numeric.to_mp(p)
        model.set_weights(w_mp)
        loss, grad = model.compute_loss(inputs)
        exact = (grad * p_mp).sum()
        estimate = mp_central_difference(loss_at(model, inputs), w, p, 1e-17, dps=50)
        scale = mpmath.sqrt((grad * grad).sum() * (p_mp * p_mp).sum())
        error = abs(estimate - exact)
        measured("mpmath central difference", error / max(scale, mpmath.mpf(1e-300)))
        assert error <= 1e-30 * scale + 10 * mpmath.eps * abs(loss) / mpmath.mpf(1e-17)


def _all_results(model, inputs, w, p):
    """Loss, gradient, Hv, GNv, and the scales their errors are measured against."""
    model.set_weights(w)
    loss, grad = model.compute_loss(inputs)
    results = [loss, grad, model.compute_hessvec(p), model.compute_gaussnewtonvec(p)]
    hv_scale, gn_scale = (normwise_scale(f, w, p) for f in (model.compute_hessvec, model.compute_gaussnewtonvec))
    scales = [None, gradient_scale(model, inputs, w), hv_scale, gn_scale]  # gradient_scale moves the point
    return results, scales


def _cancelling_residual_case():
    """The 1-3-3-1 net random search found: z = 0.2000435 against x = 0.1998768."""
    model = ae.build([1, 3, 3, 1], "llt", use_bias=False, tied=True)
    w = np.array([-1.4303929, 1.5691158, -0.12078114, 0.30885732, 0.56026703, -0.026049208, -0.51407939,
                  0.22449824, -0.75019807, -0.30802965, 0.78926641, -0.093947507])
    return model, np.array([[0.19987676]]), w


@given(autoencoders(max_layers=3, max_width=5))
@example(_cancelling_residual_case())
def test_float32_agrees_with_mpmath_reference(case):
    """float32 within 1e-5 of 50 digits, or within what the problem's conditioning allows.

    Targeted search finds nets where cancellation amplifies round-off 1000-fold
    (normwise float32 error 8e-5 in Hv).  The same amplification shows in
    float64: so float32 passes if its error is <= 1e-5, or <= 10 times the
    float64 error scaled by the precision ratio eps32 / eps64.  A float32-
    specific defect (a cast to float16, a float32 accumulation where float64
    was meant...) fails both.

    One amplification float64 need not show: the residual r = z - x cancels
    where the net reproduces its input, and r then carries the round-off of z
    multiplied by kappa = ||z|| / ||r||.  Random search found a 1-3-3-1 net
    with kappa = 1200 whose float32 loss is 2e-4 off while float64's was
    lucky (3e-14, a tenth of its kappa eps64).  So the rows that depend on r
    (loss, grad, Hv) also admit 10 kappa eps32; GNv does not depend on r.
    """
    model, inputs, w = case
    p = random_direction(model)
    cast = [(a.astype(np.float32)) for a in (inputs, w, p)]
    single, _ = _all_results(model, *cast)
    double, _ = _all_results(model, *(a.astype(np.float64) for a in cast))
    eps32 = np.finfo(np.float32).eps
    ratio = eps32 / np.finfo(np.float64).eps
    model.set_weights(cast[1].astype(np.float64))
    z = model.compute_outputs(cast[0].astype(np.float64))
    kappa = np.linalg.norm(z) / max(np.linalg.norm(z - cast[0]), 1e-300)
    with mpmath.workdps(50):
        reference, scales = _all_results(model, *(numeric.to_mp(a) for a in cast))
        for k, name in enumerate(["loss", "grad", "Hv", "GNv"]):
            err32, err64 = (relative_error(numeric.to_mp(np.asarray(r[k])), reference[k], scales[k])
                            for r in (single, double))
            allowance = max(1e-5, 10 * ratio * err64, 10 * kappa * eps32 if name != "GNv" else 0)
            measured(f"float32 vs mpmath: {name}", err32)
            measured(f"float32 vs mpmath / conditioning allowance: {name}", err32 / allowance)
            assert err32 <= allowance, (name, err32, err64, kappa)


@pytest.mark.bitexact
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
    assert measured("tied gradient rule", relative_error(grad_tied, np.concatenate(expected))) <= 1e-14
