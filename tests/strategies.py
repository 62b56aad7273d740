"""Hypothesis strategies for random autoencoders (1-4 layers, widths 1-7)."""

import numpy as np
from hypothesis import strategies as st

import ae

ACTIVATIONS = [
    ae.LinearActivationFunction,
    ae.SigmoidActivationFunction,
    ae.TanhActivationFunction,
    ae.ReluActivationFunction,
    lambda: ae.LeakyReluActivationFunction(0.1),
]


@st.composite
def autoencoders(draw, max_layers=4, max_width=7, tied=None):
    """(model, inputs as float64, weights as float64) of a random architecture."""
    num_layers = draw(st.integers(1, max_layers))
    is_tied = draw(st.booleans()) if tied is None else tied
    widths = [draw(st.integers(1, max_width)) for _ in range(num_layers + 1)]
    widths[-1] = widths[0]
    if is_tied:  # mirrored sizes so that layer k and layer L-1-k can share
        widths = [widths[min(k, num_layers - k)] for k in range(num_layers + 1)]
    layers = [
        ae.FCLayer((a, b), draw(st.sampled_from(ACTIVATIONS))(), use_bias=draw(st.booleans()))
        for a, b in zip(widths, widths[1:])
    ]
    model = ae.Autoencoder(layers, tied=is_tied)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    weights = model.init_weights(rng)
    # biases are drawn too, so that they take part in every check
    weights = weights + 0.3 * rng.standard_normal(weights.shape)
    model.set_weights(weights)
    batch = draw(st.integers(1, 6))
    inputs = rng.standard_normal((widths[0], batch))
    return model, inputs, weights


def relu_margin(model, inputs, weights):
    """Smallest |pre-activation| over layers with a kink (inf if none)."""
    model.set_weights(weights)
    model.compute_outputs(inputs)
    margins = [
        np.abs(layer.get_preactivations()[0]).min() for layer in model.layers
        if isinstance(layer.afun, ae.LeakyReluActivationFunction)
    ]
    return min(margins, default=np.inf)
