"""The engine's quantities as functions of the flat weight vector.

The estimators in ``checks.estimators`` differentiate functions of w; these
adapters turn an autoencoder and a fixed batch into such functions.  Each
sets the weights it is given (in whatever number type they are), so call
``model.set_weights`` again before using the model at its own point.
"""

import numpy as np

from ae import numeric
from ae.activations import LeakyReluActivationFunction


def loss_at(model, inputs):
    """w -> F(w) on ``inputs``."""
    def loss(w):
        model.set_weights(w)
        return model.compute_loss(inputs)[0]
    return loss


def gradient_at(model, inputs):
    """w -> grad F(w) on ``inputs`` (backprop)."""
    def gradient(w):
        model.set_weights(w)
        return model.compute_loss(inputs)[1]
    return gradient


def outputs_at(model, inputs):
    """w -> network outputs z^L(w) on ``inputs`` (its derivative along p is J p)."""
    def outputs(w):
        model.set_weights(w)
        return model.compute_outputs(inputs)
    return outputs


def basis_vector(k, like):
    """e_k in the number type of ``like``."""
    e = numeric.zeros_like(like)
    e[k] = numeric.ones_like(like[:1])[0]
    return e


def dense_jacobian(model, w, inputs):
    """J as an array (outputs x objects x M), one R-forward pass per column."""
    model.set_weights(w)
    model.compute_loss(inputs)
    columns = []
    for k in range(model.params_number):
        model.net.set_direction(basis_vector(k, w))
        columns.append(model.net.compute_Rp_outputs())
    return np.stack(columns, axis=-1)


def dense_matrix(product, w):
    """The M x M matrix whose k-th column is product(e_k)."""
    return np.stack([product(basis_vector(k, w)) for k in range(w.shape[0])], axis=1)


def kink_distance(model, inputs, w, p, safety=0.5):
    """A step h below which w + h p moves no ReLU/LeakyReLU pre-activation across 0.

    From the linearisation u(w + h p) ~ u + h R{u}: the smallest |u| / |R{u}|
    over kinked layers, times ``safety`` for the second-order terms.
    Finite differences with a larger step straddle a kink and are not run.
    """
    model.set_weights(w)
    model.compute_loss(inputs)
    model.net.set_direction(p)
    model.net.compute_Rp_outputs()
    distance = np.inf
    for layer in model.layers:
        if isinstance(layer.afun, LeakyReluActivationFunction):
            u, Ru = layer.get_preactivations()
            u, Ru = np.abs(numeric.to_float64(u)), np.abs(numeric.to_float64(Ru))
            moving = Ru > 0
            if moving.any():
                distance = min(distance, float((u[moving] / Ru[moving]).min()))
    return safety * distance
