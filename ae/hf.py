"""Hessian-free optimization (Martens, ICML 2010) on Gauss-Newton products.

One step at weights w on a minibatch B (often the whole train set):

1. gradient g of the objective on B, computed in K chunks; the same chunk
   gradients give the preconditioner's empirical-Fisher diagonal
   ``sum_k (n_k / n) n_k g_k^2`` (an estimate of (1/n) sum_i g_i^2 at no extra
   cost; Martens uses the per-example sum);
2. truncated preconditioned CG on (G + (l2 + lambda) I) d = -g, with G from
   GN products on a random curvature minibatch C of B, preconditioner
   M = (fisher + l2 + lambda)^0.75, warm start from ``cg_decay`` times the
   previous step's last CG iterate, and Martens' stopping rule (relative
   progress of the quadratic model over the last max(10, i/10) iterations
   below 5e-4 per iteration);
3. backtracking over the CG iterates saved at iterations ceil(1.3^j): from
   the last, step back while the objective on B keeps decreasing;
4. Levenberg-Marquardt: rho = (f(w + d) - f(w)) / q(d) with q the undamped
   quadratic model; rho < 1/4: lambda *= 3/2, rho > 3/4: lambda *= 2/3;
5. Armijo backtracking line search on the chosen direction (c = 1e-2, factor
   0.8); if no step length passes, the weights stay where they are.
"""

import math

import numpy as np

from ae import numeric
from ae.train import l2_objective


def conjugate_gradient(A, b, x0, preconditioner, max_iterations, tolerance=5e-4):
    """Minimise phi(x) = 1/2 x.Ax - b.x by preconditioned CG from x0.

    Returns (saved, iterations): ``saved`` is a list of (iteration, x, phi)
    at iterations ceil(1.3^j) and the last one.
    """
    x = x0
    r = b - A(x)
    phi = -0.5 * (x @ (b + r))  # since A x = b - r
    if phi > 0:  # the warm start is worse than zero: start from zero
        x, r, phi = numeric.zeros_like(b), b, 0 * phi
    phis, saved = [phi], []
    y = r / preconditioner
    p, ry = y, r @ y
    next_save, j, i = 1, 1, 0
    for i in range(1, max_iterations + 1):
        Ap = A(p)
        pAp = p @ Ap
        if not pAp > 0:  # zero residual, or no curvature left along p
            i -= 1
            break
        alpha = ry / pAp
        x, r = x + alpha * p, r - alpha * Ap
        phi = -0.5 * (x @ (b + r))
        phis.append(phi)
        if i >= next_save:
            saved.append((i, x, phi))
            while next_save <= i:
                j += 1
                next_save = math.ceil(1.3**j)
        k = max(10, i // 10)
        if i > k and phi < 0 and (phi - phis[i - k]) / phi < k * tolerance:
            break
        y = r / preconditioner
        ry_new = r @ y
        p, ry = y + (ry_new / ry) * p, ry_new
    if not saved or saved[-1][0] != i:
        saved.append((i, x, phi))
    return saved, i


class HessianFree:
    """A stepper for ``ae.train.train`` (see the module docstring)."""

    def __init__(self, damping=1.0, curvature_fraction=0.1, max_cg_iterations=100, cg_decay=0.95,
                 gradient_chunks=10, armijo=1e-2, seed=0):
        if not damping > 0:
            raise ValueError(f"damping must be positive, got {damping}")
        if not 0 < curvature_fraction <= 1:
            raise ValueError(f"curvature_fraction must lie in (0, 1], got {curvature_fraction}")
        if max_cg_iterations < 1:
            raise ValueError(f"max_cg_iterations must be >= 1, got {max_cg_iterations}")
        self.damping = float(damping)
        self.curvature_fraction = float(curvature_fraction)
        self.max_cg_iterations = int(max_cg_iterations)
        self.cg_decay = float(cg_decay)
        self.gradient_chunks = int(gradient_chunks)
        self.armijo = float(armijo)
        self.seed = seed

    def init(self, model, w):
        return {"damping": self.damping, "previous": numeric.zeros_like(w),
                "rng": np.random.default_rng(self.seed)}

    def step(self, model, batch, w, l2_coef, state):
        n = batch.shape[1]
        damping = state["damping"]

        def objective(v):
            model.set_weights(v)
            return l2_objective(model.compute_loss(batch)[0], v, l2_coef)

        bounds = np.linspace(0, n, min(self.gradient_chunks, n) + 1).astype(int)
        loss, grad, fisher = 0, 0, 0
        for a, b in zip(bounds, bounds[1:]):
            chunk_loss, chunk_grad = model.compute_loss(batch[:, a:b])
            share = (b - a) / n
            loss, grad = loss + share * chunk_loss, grad + share * chunk_grad
            fisher = fisher + share * (b - a) * (chunk_grad * chunk_grad)
        grad = grad + l2_coef * w
        f0 = l2_objective(loss, w, l2_coef)

        size = max(1, math.ceil(self.curvature_fraction * n))
        columns = np.sort(state["rng"].choice(n, size, replace=False))
        model.compute_loss(batch[:, columns])  # the point of the GN products

        def damped_gn(v):
            return model.compute_gaussnewtonvec(v) + (l2_coef + damping) * v

        saved, iterations = conjugate_gradient(
            damped_gn, -grad, self.cg_decay * state["previous"],
            (fisher + l2_coef + damping) ** 0.75, self.max_cg_iterations)

        best = len(saved) - 1
        f_best = objective(w + saved[best][1])
        while best > 0:
            f_prev = objective(w + saved[best - 1][1])
            if not f_prev < f_best:
                break
            best, f_best = best - 1, f_prev
        _, d, phi = saved[best]

        model_decrease = phi - damping / 2 * (d @ d)  # the undamped quadratic model q(d)
        rho = (f_best - f0) / model_decrease if model_decrease < 0 else -np.inf
        new_damping = damping * (1.5 if rho < 0.25 else 2 / 3 if rho > 0.75 else 1)

        slope, alpha, f_alpha = grad @ d, 1.0, f_best
        for _ in range(60 if slope < 0 else 0):
            if f_alpha <= f0 + self.armijo * alpha * slope:
                break
            alpha *= 0.8
            f_alpha = objective(w + alpha * d)
        else:
            alpha = 0.0  # no length passed (or d is not a descent direction): stay
        state = {"damping": new_damping, "previous": saved[-1][1], "rng": state["rng"]}
        info = {"cg_iterations": iterations, "damping": damping, "step_length": alpha,
                "reduction_ratio": float(rho) if np.isfinite(rho) else None}
        return w + alpha * d, f0, state, info
