"""PCA with k components: the optimum of a linear autoencoder, the study's yardstick."""

import numpy as np


def fit(train, k=2):
    """(mean, basis) of the top-k principal subspace of the columns of ``train``."""
    mean = train.mean(axis=1, keepdims=True)
    U, _, _ = np.linalg.svd(train - mean, full_matrices=False)
    return mean, U[:, :k]


def codes(model, data):
    mean, basis = model
    return basis.T @ (data - mean)


def reconstruct(model, data):
    mean, basis = model
    return mean + basis @ codes(model, data)


def loss(model, data):
    """F of formula (1) for the PCA reconstruction: (1/N) sum 1/2 ||x - x_hat||^2."""
    residual = data - reconstruct(model, data)
    return float((residual * residual).sum() / (2 * data.shape[1]))
