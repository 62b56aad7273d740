"""First-order step rules, each an ``init`` / ``update`` pair (the optax idea).

``rule.init(w) -> state`` and ``rule.update(g, state) -> (step, state)``;
the caller adds ``step`` (a new array, the caller's to reuse) to the weights.
``g`` already includes any L2 term.
The formulas are those of torch.optim, so iterates agree to round-off:

* SGD:       w -= lr g
* Momentum:  v = mu v + g;  w -= lr v            (Nesterov: w -= lr (g + mu v))
* RMSprop:   s = rho s + (1 - rho) g^2;  w -= lr g / (sqrt(s) + eps)
* Adam:      m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
             w -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)

States are NamedTuples (``AdamState(count, mu, nu)``, as in optax) whose
arrays live in the weights' number type (float32 stays float32).  ``update``
consumes the state it is given: its arrays are updated in place (an Adam step
over 470,000 weights costs two temporaries instead of nine), so keep a copy
if you need the old state.
"""

import math
from typing import NamedTuple

import numpy as np

from ae import numeric


class EmptyState(NamedTuple):
    """SGD keeps nothing between steps."""


class MomentumState(NamedTuple):
    velocity: np.ndarray


class RMSpropState(NamedTuple):
    mean_square: np.ndarray


class AdamState(NamedTuple):
    count: int  # steps taken, t of the bias corrections
    mu: np.ndarray  # first moment m
    nu: np.ndarray  # second moment v


def _positive(name, value):
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _fraction(name, value):
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return value


class SGD:
    def __init__(self, step_size):
        self.step_size = _positive("step_size", step_size)

    def init(self, w):
        return EmptyState()

    def update(self, g, state):
        return -self.step_size * g, state


class Momentum:
    """Heavy-ball momentum with velocity v (torch.optim.SGD(momentum=mu))."""

    def __init__(self, step_size, momentum=0.9, nesterov=False):
        self.step_size = _positive("step_size", step_size)
        self.momentum = _fraction("momentum", momentum)
        self.nesterov = bool(nesterov)

    def init(self, w):
        return MomentumState(numeric.zeros_like(w))

    def update(self, g, state):
        velocity = state.velocity
        velocity *= self.momentum
        velocity += g
        direction = g + self.momentum * velocity if self.nesterov else velocity
        return -self.step_size * direction, state


class RMSprop:
    """torch.optim.RMSprop(alpha=rho).  Note the default rho = 0.9 (Hinton's); torch's alpha is 0.99."""

    def __init__(self, step_size, rho=0.9, eps=1e-8):
        self.step_size = _positive("step_size", step_size)
        self.rho = _fraction("rho", rho)
        self.eps = _positive("eps", eps)

    def init(self, w):
        return RMSpropState(numeric.zeros_like(w))

    def update(self, g, state):
        mean_square = state.mean_square
        mean_square *= self.rho
        mean_square += (1 - self.rho) * (g * g)
        denominator = numeric.sqrt(mean_square)
        denominator += self.eps
        step = g * -self.step_size
        step /= denominator
        return step, state


class Adam:
    def __init__(self, step_size, beta1=0.9, beta2=0.999, eps=1e-8):
        self.step_size = _positive("step_size", step_size)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive("eps", eps)

    def init(self, w):
        return AdamState(0, numeric.zeros_like(w), numeric.zeros_like(w))

    def update(self, g, state):
        # torch.optim.Adam's arrangement: lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        t, m, v = state
        t += 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        denominator = numeric.sqrt(v)
        denominator /= math.sqrt(1 - self.beta2**t)
        denominator += self.eps
        step = m * (-self.step_size / (1 - self.beta1**t))
        step /= denominator
        return step, AdamState(t, m, v)
