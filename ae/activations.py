"""Activation functions g with their first and second derivatives.

Each method takes an array of any supported number type (see
``ae.numeric``) and returns an array of the same shape and type.

Kinks (ReLU, LeakyReLU) are decided on the real part, so a complex-step
perturbation never switches branches.  At exactly Re(s) = 0 the left branch
is used: ReLU'(0) = 0 and LeakyReLU'(0) = alpha, as in torch.
"""

import numpy as np

from ae import numeric


class BaseActivationFunction:
    def val(self, X):
        raise NotImplementedError

    def deriv(self, X):
        raise NotImplementedError

    def second_deriv(self, X):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class LinearActivationFunction(BaseActivationFunction):
    def val(self, X):
        return X.copy()

    def deriv(self, X):
        return numeric.ones_like(X)

    def second_deriv(self, X):
        return numeric.zeros_like(X)


class SigmoidActivationFunction(BaseActivationFunction):
    # sigmoid(s) = (1 + tanh(s/2)) / 2 never calls exp, so |s| = 1e4 neither
    # overflows nor warns in float32/float64, and it is analytic for complex s.
    def val(self, X):
        return (1 + numeric.tanh(X / 2)) / 2

    def deriv(self, X):
        s = self.val(X)
        return s * (1 - s)

    def second_deriv(self, X):
        s = self.val(X)
        return s * (1 - s) * (1 - 2 * s)


class TanhActivationFunction(BaseActivationFunction):
    def val(self, X):
        return numeric.tanh(X)

    def deriv(self, X):
        t = numeric.tanh(X)
        return 1 - t * t

    def second_deriv(self, X):
        t = numeric.tanh(X)
        return -2 * t * (1 - t * t)


class LeakyReluActivationFunction(BaseActivationFunction):
    """max(s, alpha s) for 0 < alpha < 1 (ReLU is alpha = 0)."""

    def __init__(self, alpha=0.01):
        alpha = float(alpha)
        if not 0 < alpha < 1:
            raise ValueError(f"LeakyReLU alpha must lie in (0, 1), got {alpha}")
        self.alpha = alpha

    def val(self, X):
        return np.where(numeric.real_positive(X), X, self.alpha * X)

    def deriv(self, X):
        ones = numeric.ones_like(X)
        return np.where(numeric.real_positive(X), ones, self.alpha * ones)

    def second_deriv(self, X):
        return numeric.zeros_like(X)

    def __repr__(self):
        return f"{type(self).__name__}(alpha={self.alpha})"


class ReluActivationFunction(LeakyReluActivationFunction):
    def __init__(self):
        self.alpha = 0  # exact zero, so the "leaky" branch is 0 * s = 0

    def __repr__(self):
        return f"{type(self).__name__}()"
