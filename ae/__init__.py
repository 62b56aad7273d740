"""ae: a fully connected autoencoder with exact derivatives in every number type."""

from ae.activations import (
    BaseActivationFunction,
    LeakyReluActivationFunction,
    LinearActivationFunction,
    ReluActivationFunction,
    SigmoidActivationFunction,
    TanhActivationFunction,
)
from ae.autoencoder import Autoencoder, build
from ae.ffnet import FFNet
from ae.layers import BaseLayer, FCLayer

__all__ = [
    "Autoencoder",
    "BaseActivationFunction",
    "BaseLayer",
    "FCLayer",
    "FFNet",
    "LeakyReluActivationFunction",
    "LinearActivationFunction",
    "ReluActivationFunction",
    "SigmoidActivationFunction",
    "TanhActivationFunction",
    "build",
]
