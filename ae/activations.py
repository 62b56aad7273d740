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
    # g(s) = s: layers then skip g' = 1 and g'' = 0 (no copies, no multiplications by one)
    identity = False

    def val(self, X):
        raise NotImplementedError

    def deriv(self, X):
        raise NotImplementedError

    def second_deriv(self, X):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class LinearActivationFunction(BaseActivationFunction):
    identity = True

    def val(self, X):
        return X.copy()

    def deriv(self, X):
        return numeric.ones_like(X)

    def second_deriv(self, X):
        return numeric.zeros_like(X)


class SigmoidActivationFunction(BaseActivationFunction):
    # The value is numeric.sigmoid: overflow-free in every number type (its branch
    # for floats is a number-type decision).  sigmoid'(s) = sech^2(s/2)/4, never
    # s(1 - s), which loses all relative accuracy at s = 30.
    def val(self, X):
        return numeric.sigmoid(X)

    def deriv(self, X):
        return numeric.sech_squared(X / 2) / 4

    def second_deriv(self, X):
        # sigmoid'' = sigmoid' (1 - 2 sigmoid) and 1 - 2 sigmoid(s) = -tanh(s/2)
        return -self.deriv(X) * numeric.tanh(X / 2)


class TanhActivationFunction(BaseActivationFunction):
    def val(self, X):
        return numeric.tanh(X)

    def deriv(self, X):
        return numeric.sech_squared(X)  # not 1 - tanh^2: see numeric.sech_squared

    def second_deriv(self, X):
        return -2 * numeric.tanh(X) * self.deriv(X)


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


# One letter per activation, for compact architecture specs and labels ("k" is
# LeakyReLU with alpha 0.1).
LETTERS = {"l": (LinearActivationFunction, {}), "s": (SigmoidActivationFunction, {}),
           "t": (TanhActivationFunction, {}), "r": (ReluActivationFunction, {}),
           "k": (LeakyReluActivationFunction, {"alpha": 0.1})}


def from_letter(letter):
    if letter not in LETTERS:
        raise ValueError(f"unknown activation letter {letter!r}: use one of {''.join(LETTERS)}")
    cls, kwargs = LETTERS[letter]
    return cls(**kwargs)


def letter_of(afun):
    """The letter of an activation object ('?' for a class outside LETTERS)."""
    return next((g for g, (cls, _) in LETTERS.items() if type(afun) is cls), "?")
