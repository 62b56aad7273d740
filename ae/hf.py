"""Hessian-free optimization (Martens, ICML 2010) on Gauss-Newton products.

The curvature matrix is the Gauss-Newton matrix of the squared loss (1):
G = (1/N) sum_i J_i^T J_i, with J_i the Jacobian of example i's outputs z_i
(taken through the output activation, the sigmoid for pixels) with respect
to the weights.  This is not the "matching loss" Gauss-Newton matrix that
Martens pairs with a sigmoid output and cross-entropy; for the squared loss
of (1) it is the standard one, positive semi-definite and equal to the
Hessian wherever the residuals z_i - x_i vanish.

One step at weights w on a minibatch B (often the whole train set):

1. gradient g of the objective on B, computed in K chunks; each chunk also
   gives its exact per-example squared gradients, so the preconditioner's
   diagonal is (1/n) sum_i g_i * g_i over the n examples of B (the diagonal
   of the empirical Fisher matrix, as Martens uses it);
2. truncated preconditioned CG on (G + (l2 + lambda) I) d = -g, with G from
   GN products on a random curvature minibatch C of B (``curvature_fraction``
   of its columns), preconditioner M = (fisher + l2 + lambda)^0.75, warm start
   from ``cg_decay`` times the previous step's last CG iterate (restarted from
   zero when the warm start is worse than zero), and Martens' stopping rule
   (relative progress of the quadratic model over the last max(10, i/10)
   iterations below ``cg_tolerance`` per iteration);
3. backtracking over the CG iterates saved at iterations ceil(1.3^j): from
   the last, step back while the objective on B keeps decreasing;
4. Levenberg-Marquardt: rho = (f(w + d) - f(w)) / q(d) with q the undamped
   quadratic model; rho < 1/4: lambda *= 3/2, rho > 3/4: lambda *= 2/3;
5. Armijo backtracking line search on the chosen direction (c = 1e-2, factor
   0.8); if no step length passes, the weights stay where they are.

Each step's ``info`` (kept per step in the training history) says what
happened: lambda, rho, CG iterations and why CG stopped, whether the warm
start was dropped, which saved iterate backtracking chose, the step length
and the curvature batch size.  Everything runs in the weights' number type.
"""

import math
from typing import NamedTuple

import numpy as np

from ae import numeric
from ae.train import l2_objective


class CGResult(NamedTuple):
    saved: list  # (iteration, x, phi) at iterations ceil(1.3^j) and the last one
    iterations: int
    restarted: bool  # the warm start was worse than zero, so CG started from zero
    stopped_by: str  # "progress" (Martens' rule), "max_iterations" or "curvature" (p.Ap <= 0)


def progress_stalled(phis, tolerance):
    """Martens' CG stopping rule on phis = [phi_0, ..., phi_i]: over the last k = max(10, i/10)
    iterations phi (negative) fell by less than k * tolerance of its value."""
    i = len(phis) - 1
    k = max(10, i // 10)
    phi = phis[i]
    return i > k and phi < 0 and (phi - phis[i - k]) / phi < k * tolerance


def conjugate_gradient(A, b, x0, preconditioner, max_iterations, tolerance=5e-4):
    """Minimise phi(x) = 1/2 x.Ax - b.x by preconditioned CG from x0; returns a CGResult."""
    x = x0
    r = b - A(x)
    phi = -0.5 * (x @ (b + r))  # since A x = b - r
    restarted = bool(phi > 0)
    if restarted:  # the warm start is worse than zero: start from zero
        x, r, phi = numeric.zeros_like(b), b, 0 * phi
    phis, saved = [phi], []
    y = r / preconditioner
    p, ry = y, r @ y
    next_save, j, i, stopped_by = 1, 1, 0, "max_iterations"
    for i in range(1, max_iterations + 1):
        Ap = A(p)
        pAp = p @ Ap
        if not pAp > 0:  # zero residual, or no curvature left along p
            i -= 1
            stopped_by = "curvature"
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
        if progress_stalled(phis, tolerance):
            stopped_by = "progress"
            break
        y = r / preconditioner
        ry_new = r @ y
        p, ry = y + (ry_new / ry) * p, ry_new
    if not saved or saved[-1][0] != i:
        saved.append((i, x, phi))
    return CGResult(saved, i, restarted, stopped_by)


def backtrack(saved, objective):
    """(index into ``saved``, its objective): from the last iterate, step back while the objective
    keeps decreasing (Martens' CG backtracking)."""
    best = len(saved) - 1
    f_best = objective(saved[best][1])
    while best > 0:
        f_prev = objective(saved[best - 1][1])
        if not f_prev < f_best:
            break
        best, f_best = best - 1, f_prev
    return best, f_best


def levenberg_marquardt(damping, rho):
    """The next lambda: up by 3/2 when the model over-promised (rho < 1/4), down by 2/3 when it
    was trustworthy (rho > 3/4); rho is None when the model promised no decrease."""
    if rho is None or rho < 0.25:
        return damping * 1.5
    return damping * (2 / 3) if rho > 0.75 else damping


class HessianFree:
    """A stepper for ``ae.train.train`` (see the module docstring)."""

    def __init__(self, damping=1.0, curvature_fraction=0.1, max_cg_iterations=100, cg_decay=0.95,
                 gradient_chunks=10, armijo=1e-2, cg_tolerance=5e-4, seed=0):
        if not damping > 0:
            raise ValueError(f"damping must be positive, got {damping}")
        if not 0 < curvature_fraction <= 1:
            raise ValueError(f"curvature_fraction must lie in (0, 1], got {curvature_fraction}")
        if max_cg_iterations < 1:
            raise ValueError(f"max_cg_iterations must be >= 1, got {max_cg_iterations}")
        if not 0 <= cg_decay <= 1:
            raise ValueError(f"cg_decay must lie in [0, 1], got {cg_decay}")
        if gradient_chunks < 1:
            raise ValueError(f"gradient_chunks must be >= 1, got {gradient_chunks}")
        self.damping = float(damping)
        self.curvature_fraction = float(curvature_fraction)
        self.max_cg_iterations = int(max_cg_iterations)
        self.cg_decay = float(cg_decay)
        self.gradient_chunks = int(gradient_chunks)
        self.armijo = float(armijo)
        self.cg_tolerance = float(cg_tolerance)
        self.seed = seed

    def init(self, model, w):
        return {"damping": self.damping, "previous": numeric.zeros_like(w),
                "rng": np.random.default_rng(self.seed)}

    def curvature_batch_size(self, n):
        return max(1, math.ceil(self.curvature_fraction * n))

    def step(self, model, batch, w, l2_coef, state):
        n = batch.shape[1]
        damping = state["damping"]

        def objective(v):
            model.set_weights(v)
            return l2_objective(model.compute_loss(batch)[0], v, l2_coef)

        # Python ints: a numpy scalar share would promote float32 (or mpf) work to float64
        bounds = [round(k * n / min(self.gradient_chunks, n)) for k in range(min(self.gradient_chunks, n) + 1)]
        loss, grad, fisher = 0, 0, 0
        for a, b in zip(bounds, bounds[1:]):
            chunk_loss, chunk_grad = model.compute_loss(batch[:, a:b])
            share = (b - a) / n
            squares = model.compute_example_gradient_squares()  # (1/n_k) sum over the chunk
            loss, grad, fisher = loss + share * chunk_loss, grad + share * chunk_grad, fisher + share * squares
        grad = grad + l2_coef * w
        f0 = l2_objective(loss, w, l2_coef)

        size = self.curvature_batch_size(n)
        columns = np.sort(state["rng"].choice(n, size, replace=False))
        model.compute_loss(batch[:, columns])  # the point of the GN products

        def damped_gn(v):
            return model.compute_gaussnewtonvec(v) + (l2_coef + damping) * v

        cg = conjugate_gradient(damped_gn, -grad, self.cg_decay * state["previous"],
                                (fisher + (l2_coef + damping)) ** 0.75, self.max_cg_iterations,
                                self.cg_tolerance)
        best, f_best = backtrack(cg.saved, lambda d: objective(w + d))
        _, d, phi = cg.saved[best]

        model_decrease = phi - damping / 2 * (d @ d)  # the undamped quadratic model q(d)
        rho = float((f_best - f0) / model_decrease) if model_decrease < 0 else None
        if rho is not None and not math.isfinite(rho):
            rho = None

        slope, alpha, f_alpha = grad @ d, 1.0, f_best
        for _ in range(60 if slope < 0 else 0):
            if f_alpha <= f0 + self.armijo * alpha * slope:
                break
            alpha *= 0.8
            f_alpha = objective(w + alpha * d)
        else:
            alpha = 0.0  # no length passed (or d is not a descent direction): stay
        state = {"damping": levenberg_marquardt(damping, rho), "previous": cg.saved[-1][1], "rng": state["rng"]}
        info = {"damping": damping, "reduction_ratio": rho, "cg_iterations": cg.iterations,
                "cg_stopped_by": cg.stopped_by, "cg_restarted": cg.restarted,
                "backtrack_iteration": cg.saved[best][0], "step_length": alpha, "curvature_batch": size}
        return w + alpha * d, f0, state, info
