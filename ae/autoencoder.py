"""Autoencoder: loss (1), gradient, Hessian-vector and Gauss-Newton-vector products.

Data are features x objects: one column per example.  (A square X passed the
other way round cannot be told apart: transpose examples-by-rows data first.)

Every ``run_*`` adds an L2 term l2_coef/2 w.w with ``l2_coef=1e-5`` by
default (torch's weight_decay is 0: pass ``l2_coef=0`` to match) and keeps the
number type of the weights and data it is given (float32, float64, mpmath).

F(theta) = (1/N) sum_i 1/2 ||x_i - z^L(x_i, theta)||^2 over the N columns of
the batch.  ``compute_hessvec`` and ``compute_gaussnewtonvec`` work at the
weights and batch of the last ``compute_loss`` and reuse its forward and
backward passes; they may be called any number of times, in any order.

Tied weights: ``Autoencoder(layers, tied=True)`` shares the matrix of layer k
with layer L-1-k transposed (W_{L-1-k} = W_k^T) for k < L // 2; each layer
keeps its own bias, and with an odd number of layers the middle one is free.
The shared matrix appears once in the parameter vector (in the encoder's
block), see ``ae.ffnet``.
"""

import numpy as np

from ae import numeric, optim
from ae.activations import from_letter
from ae.ffnet import FFNet
from ae.hf import HessianFree
from ae.layers import FCLayer
from ae.train import GradientStepper, train


def build(widths, letters, use_bias=True, tied=False):
    """Autoencoder of FCLayers: ``widths`` [D, ..., D], one activation letter per layer.

    ``build([784, 64, 2, 64, 784], "tlts")``: tanh, linear, tanh, sigmoid
    (letters of ``ae.activations.LETTERS``).
    """
    if len(letters) != len(widths) - 1:
        raise ValueError(f"{len(widths) - 1} layers need {len(widths) - 1} activation letters, got {letters!r}")
    layers = [FCLayer((a, b), from_letter(g), use_bias=use_bias) for a, b, g in zip(widths, widths[1:], letters)]
    return Autoencoder(layers, tied=tied)


class Autoencoder:
    def __init__(self, layers, tied=False):
        layers = list(layers)
        if layers and layers[0].shape[0] != layers[-1].shape[1]:
            raise ValueError(
                f"an autoencoder's output size must equal its input size: the first "
                f"layer takes {layers[0].shape[0]}, the last gives {layers[-1].shape[1]}"
            )
        L = len(layers)
        ties = [(L - 1 - k, k) for k in range(L // 2)] if tied else []
        self.net = FFNet(layers, ties=ties)
        self.tied = bool(tied)
        self._loss_point = None  # (net.version, N) of the last compute_loss
        # work counter: examples through a forward+backward pass (loss or product)
        self.examples_processed = 0

    @property
    def layers(self):
        return self.net.layers

    @property
    def params_number(self):
        return self.net.params_number

    def get_weights(self):
        return self.net.get_weights()

    def set_weights(self, w):
        self.net.set_weights(w)

    def init_weights(self, seed=None, dtype="float64"):
        """Seeded Glorot initialisation in any number type (see FFNet.init_weights)."""
        return self.net.init_weights(seed, dtype=dtype)

    def compute_outputs(self, inputs):
        """Reconstructions z^L of the columns of ``inputs``."""
        return self.net.compute_outputs(inputs)

    def compute_loss(self, inputs):
        """(F, grad F) of formula (1) on the batch ``inputs`` (features x objects)."""
        inputs = numeric.check_array(inputs, "inputs", ndim=2)
        if inputs.shape[0] != self.layers[0].shape[0]:
            raise ValueError(
                f"inputs have {inputs.shape[0]} rows (features), the autoencoder "
                f"takes {self.layers[0].shape[0]}"
            )
        N = inputs.shape[1]
        if N < 1:
            raise ValueError("inputs have no columns (objects)")
        d = self.net.compute_outputs(inputs, check=False) - inputs  # validated above
        # a sum of products, never abs/norm/vdot: conjugation would destroy the complex
        # step; einsum needs no d * d temporary and sums as accurately as .sum()
        loss = np.einsum("ij,ij->", d, d) / (2 * N)
        d /= N  # d is ours: scaled in place
        grad = self.net.compute_loss_grad(d)
        self._loss_point = (self.net.version, N)
        self.examples_processed += N
        return loss, grad

    def _prepare_direction(self, p, what):
        if self._loss_point is None or self._loss_point[0] != self.net.version:
            raise ValueError(
                f"{what} works at the point of the last compute_loss: call "
                "compute_loss(inputs) first (and again after changing weights)"
            )
        p = numeric.check_vector(p, "p", self.params_number)
        self.net.set_direction(p)
        self.examples_processed += self._loss_point[1]
        return self._loss_point[1]

    def compute_hessvec(self, p):
        """H p by the R-operator: R-forward (4) then R-backward (see ae.layers)."""
        N = self._prepare_direction(p, "compute_hessvec")
        Rz = self.net.compute_Rp_outputs()
        return self.net.compute_loss_Rp_grad(Rz / N)

    def compute_gaussnewtonvec(self, p):
        """G p = (1/N) sum_i J_i^T J_i p: R-forward gives J p, a backward pass J^T."""
        N = self._prepare_direction(p, "compute_gaussnewtonvec")
        Jp = self.net.compute_Rp_outputs()
        return self.net.compute_loss_grad(Jp / N, remember=False)

    def compute_example_gradient_squares(self):
        """(1/N) sum_i g_i * g_i at the point and batch of the last ``compute_loss``.

        g_i is the gradient of example i's own loss 1/2 ||x_i - z_i||^2, so
        this is the diagonal of the empirical Fisher matrix (1/N) sum_i g_i g_i^T
        (Hessian-free optimization preconditions with it).  The layers keep
        dF/dz = (z - x)/N, whose per-example products are g_i / N: hence the factor N.
        """
        if self._loss_point is None or self._loss_point[0] != self.net.version:
            raise ValueError("compute_example_gradient_squares works at the point of the last compute_loss: "
                             "call compute_loss(inputs) first")
        squares = self.net.compute_example_gradient_squares()
        squares *= self._loss_point[1]
        return squares

    def get_activations(self, layer_number):
        return self.net.get_activations(layer_number)

    # --- training: every run_* is the one loop of ae.train with another stepper

    def _run(self, stepper, inputs, num_epoch, minibatch_size, l2_coef, test_inputs, display,
             seed, name):
        return train(self, stepper, inputs, num_epoch=num_epoch, minibatch_size=minibatch_size,
                     l2_coef=l2_coef, test_inputs=test_inputs, seed=seed, display=display,
                     name=name)

    def run_sgd(self, inputs, step_size=0.01, num_epoch=200, minibatch_size=100, l2_coef=1e-5,
                test_inputs=None, display=False, momentum=0.0, seed=0):
        """Minibatch SGD (heavy-ball momentum if ``momentum`` > 0); returns the history."""
        rule = optim.Momentum(step_size, momentum) if momentum else optim.SGD(step_size)
        return self._run(GradientStepper(rule), inputs, num_epoch, minibatch_size, l2_coef,
                         test_inputs, display, seed, "sgd")

    def run_momentum(self, inputs, step_size=0.01, num_epoch=200, minibatch_size=100, l2_coef=1e-5,
                     test_inputs=None, display=False, momentum=0.9, nesterov=False, seed=0):
        rule = optim.Momentum(step_size, momentum, nesterov=nesterov)
        return self._run(GradientStepper(rule), inputs, num_epoch, minibatch_size, l2_coef,
                         test_inputs, display, seed, "momentum")

    def run_rmsprop(self, inputs, step_size=0.001, num_epoch=200, minibatch_size=100, l2_coef=1e-5,
                    test_inputs=None, display=False, rho=0.9, eps=1e-8, seed=0):
        rule = optim.RMSprop(step_size, rho=rho, eps=eps)
        return self._run(GradientStepper(rule), inputs, num_epoch, minibatch_size, l2_coef,
                         test_inputs, display, seed, "rmsprop")

    def run_adam(self, inputs, step_size=0.001, num_epoch=200, minibatch_size=100, l2_coef=1e-5,
                 test_inputs=None, display=False, beta1=0.9, beta2=0.999, eps=1e-8, seed=0):
        rule = optim.Adam(step_size, beta1=beta1, beta2=beta2, eps=eps)
        return self._run(GradientStepper(rule), inputs, num_epoch, minibatch_size, l2_coef,
                         test_inputs, display, seed, "adam")

    def run_hf(self, inputs, num_epoch=20, minibatch_size=None, l2_coef=1e-5, test_inputs=None,
               display=False, damping=1.0, curvature_fraction=0.1, max_cg_iterations=100, seed=0):
        """Hessian-free optimization (ae.hf); ``minibatch_size=None`` uses the whole set."""
        if minibatch_size is None:
            minibatch_size = numeric.check_array(inputs, "inputs", ndim=2).shape[1]
        stepper = HessianFree(damping=damping, curvature_fraction=curvature_fraction,
                              max_cg_iterations=max_cg_iterations, seed=seed)
        return self._run(stepper, inputs, num_epoch, minibatch_size, l2_coef, test_inputs, display,
                         seed, "hf")
