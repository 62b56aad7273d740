"""Dense comparisons on small nets: whole matrices, assembled independent ways.

H from M Hessian-vector products, from complex steps of the gradient, from
central differences of the gradient, and from complex steps of the gradient
in 50-digit mpmath (the reference, independent of the R-operator).  G from M Gauss-Newton products against J^T J / N
with J from complex steps of the outputs (independent of the R-forward pass).
Also the eigenvalues of both, and the two exact identities of section 1.4:
G = H for one linear layer, and G -> H as the residual goes to zero.
"""

import mpmath
import numpy as np

from ae import numeric
from checks.estimators import central_difference, complex_step
from checks.model_functions import basis_vector, dense_matrix, gradient_at, outputs_at

H_COMPLEX = 1e-30


def relative_frobenius(A, B):
    return float(np.linalg.norm(A - B) / max(np.linalg.norm(B), np.finfo(float).tiny))


def hessians(model, inputs, w, dps=50):
    """({name: H}, {name: G}): each matrix assembled the independent ways.

    The 50-digit references do not use the R-operator at all: H is the
    complex step (h = 1e-60) of the backprop gradient, G is J^T J / N with J
    from complex steps of the outputs, both in ``dps``-digit mpmath.
    """
    model.set_weights(w)
    model.compute_loss(inputs)
    H = dense_matrix(model.compute_hessvec, w)
    G = dense_matrix(model.compute_gaussnewtonvec, w)
    N = inputs.shape[1]

    def jacobian(x, v, h):
        return np.stack([complex_step(outputs_at(model, x), v, basis_vector(k, v), h)
                         for k in range(v.shape[0])], axis=-1)  # outputs x objects x M

    def gauss_newton(J):
        return np.einsum("dnk,dnl->kl", J, J) / N

    h_central = np.finfo(float).eps ** (1 / 3)
    Hs = {
        "Hv products": H,
        "complex step": dense_matrix(lambda e: complex_step(gradient_at(model, inputs), w, e, H_COMPLEX), w),
        "central difference": dense_matrix(
            lambda e: central_difference(gradient_at(model, inputs), w, e, h_central), w),
    }
    Gs = {"GN products": G, "J^T J / N": gauss_newton(jacobian(inputs, w, H_COMPLEX))}
    with mpmath.workdps(dps):
        x_mp, w_mp, h_mp = numeric.to_mp(inputs), numeric.to_mp(w), mpmath.mpf(10) ** -(dps + 10)
        Hs["mpmath"] = numeric.to_float64(dense_matrix(
            lambda e: complex_step(gradient_at(model, x_mp), w_mp, e, h_mp), w_mp))
        Gs["mpmath"] = numeric.to_float64(gauss_newton(jacobian(x_mp, w_mp, h_mp)))
    model.set_weights(w)
    return Hs, Gs


def asymmetry(A):
    return relative_frobenius(A, A.T)


def psd_violation(G):
    """max(0, -lambda_min / lambda_max): zero for a positive semi-definite G."""
    eig = np.linalg.eigvalsh((G + G.T) / 2)
    return max(0.0, -eig[0] / max(eig[-1], np.finfo(float).tiny)), eig


def gauss_newton_gap_along_residual(dim=5, code=2, n=6, seed=0, scales=None):
    """||H - G|| / ||H|| for data whose residual shrinks to zero.

    A two-layer linear autoencoder z = W2 W1 x is bilinear in its weights,
    so its Hessian has a residual term and G != H in general.  With W1 = U^T,
    W2 = U (U orthonormal, dim x code) it reproduces exactly the data in U's
    span; data = U C + s E has residual proportional to s, and the gap must
    shrink like s, reaching round-off at s = 0.
    """
    from ae import Autoencoder, FCLayer, LinearActivationFunction

    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((dim, code)))[0]
    model = Autoencoder([FCLayer((dim, code), LinearActivationFunction()),
                         FCLayer((code, dim), LinearActivationFunction())])
    w = np.concatenate([U.T.ravel(), U.ravel()])
    model.set_weights(w)
    clean = U @ rng.standard_normal((code, n))
    noise = rng.standard_normal((dim, n))
    scales = [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 0.0] if scales is None else scales
    gaps, residuals = [], []
    for s in scales:
        x = clean + s * noise
        model.set_weights(w)
        model.compute_loss(x)
        H = dense_matrix(model.compute_hessvec, w)
        G = dense_matrix(model.compute_gaussnewtonvec, w)
        gaps.append(relative_frobenius(G, H))
        residuals.append(float(np.linalg.norm(model.compute_outputs(x) - x)))
    return {"scales": scales, "residual_norm": residuals, "relative_gap": gaps}
