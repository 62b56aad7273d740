r"""Fully connected layer with the four passes of the R-operator method.

Arrays are features x objects (one column per example).  For a layer with
matrix W (q x p), bias b, activation g and input Z (p x N):

forward (2):      U = W Z + b 1^T,             out = g(U)
backward (3):     dU = dOut * g'(U),            dW = dU Z^T,  db = dU 1,
                  dZ = W^T dU
R forward (4):    RU = W R{Z} + P_W Z + P_b 1^T,   R{out} = g'(U) * RU

where (P_W, P_b) is the direction p cut like (W, b).

R backward, derived by applying the differential operator R_p{.} (the
directional derivative along p) to every line of (3).  R_p is linear and
obeys the product rule; W, b depend on theta linearly so R{W} = P_W,
R{b} = P_b; and R{g'(U)} = g''(U) * R{U} by the chain rule:

    R{dU} = R{dOut} * g'(U) + dOut * g''(U) * RU
    R{dW} = R{dU} Z^T + dU R{Z}^T
    R{db} = R{dU} 1
    R{dZ} = W^T R{dU} + P_W^T dU

``R{dOut}`` arrives from the layer above (at the top it is R{(z^L - x)/N}
= R{z^L}/N, because x does not depend on theta); ``R{Z}`` is the R-forward
input (zero for the first layer, whose input is the data).  The stacked
(R{dW}, R{db}) of all layers is the Hessian-vector product H p.

The flat weight vector of a layer is W raveled row-major (num_outputs x
num_inputs), then b if the layer has a bias.
"""

import numpy as np

from ae import numeric
from ae.activations import BaseActivationFunction


class BaseLayer:
    """Interface of a layer (see FCLayer for the contract of each method)."""

    def get_params_number(self):
        raise NotImplementedError

    def get_weights(self):
        raise NotImplementedError

    def set_weights(self, w):
        raise NotImplementedError

    def set_direction(self, p):
        raise NotImplementedError

    def forward(self, inputs):
        raise NotImplementedError

    def backward(self, derivs, remember=True, input_derivs=True):
        raise NotImplementedError

    def Rp_forward(self, Rp_inputs):
        raise NotImplementedError

    def Rp_backward(self, Rp_derivs, input_derivs=True):
        raise NotImplementedError

    def get_activations(self):
        raise NotImplementedError


class FCLayer(BaseLayer):
    """z = g(W x + b) with W of shape (num_outputs, num_inputs).

    ``shape = (num_inputs, num_outputs)``; ``afun`` an activation object.
    """

    def __init__(self, shape, afun, use_bias=False):
        try:
            num_inputs, num_outputs = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be (num_inputs, num_outputs), got {shape!r}") from None
        if num_inputs < 1 or num_outputs < 1:
            raise ValueError(f"layer sizes must be positive, got {shape!r}")
        if not isinstance(afun, BaseActivationFunction):
            raise TypeError(f"afun must be a BaseActivationFunction, got {type(afun).__name__}")
        self.shape = (num_inputs, num_outputs)
        self.afun = afun
        self.use_bias = bool(use_bias)
        self.W = self.b = None
        self.P_W = self.P_b = None
        self.inputs = None

    def __repr__(self):
        return f"FCLayer({self.shape}, {self.afun!r}, use_bias={self.use_bias})"

    def get_params_number(self):
        num_inputs, num_outputs = self.shape
        return num_outputs * num_inputs + (num_outputs if self.use_bias else 0)

    def _split(self, v):
        num_inputs, num_outputs = self.shape
        W = v[: num_inputs * num_outputs].reshape(num_outputs, num_inputs)
        b = v[num_inputs * num_outputs:, None] if self.use_bias else None
        return W, b

    def get_weights(self):
        if self.W is None:
            raise ValueError("layer weights are not set: call set_weights first")
        parts = [self.W.ravel()] + ([self.b[:, 0]] if self.use_bias else [])
        return np.concatenate(parts)

    def set_weights(self, w, check=True):
        """Set the flat weights; ``check=False`` skips validation the caller has done."""
        if check:
            w = numeric.check_vector(w, "weights", self.get_params_number())
        self.W, self.b = self._split(w.copy())

    def set_direction(self, p, check=True):
        if check:
            p = numeric.check_vector(p, "direction", self.get_params_number())
        self.P_W, self.P_b = self._split(p.copy())

    def forward(self, inputs):
        if self.W is None:
            raise ValueError("layer weights are not set: call set_weights first")
        inputs = numeric.check_array(inputs, "inputs", ndim=2, finite=False)
        if inputs.shape[0] != self.shape[0]:
            raise ValueError(
                f"inputs have {inputs.shape[0]} rows, this layer takes {self.shape[0]}"
            )
        # state of an earlier point is dropped now, not when the next pass replaces it
        self.derivs = self.du = self.derivs_g2 = self.Ru = self.Rp_inputs = None
        self.inputs = inputs
        u = self.W @ inputs
        if self.use_bias:
            u += self.b
        self.u = u
        if self.afun.identity:
            self.g1, self.z = None, u  # g1 None means g' = 1 and g'' = 0
        else:
            self.g1, self.z = self.afun.deriv(u), self.afun.val(u)
        return self.z

    def _require(self, attr, what):
        if getattr(self, attr, None) is None:
            raise ValueError(f"{what} must be called first")

    def _times_g1(self, x):
        """x * g'(u); x itself for an identity activation (g1 is None), never a copy."""
        return x if self.g1 is None else x * self.g1

    def _weight_derivs(self, du, extra=None):
        """Flat [du Z^T (+ extra), du 1]: the layer's block of a gradient-like vector.

        Written in place into one buffer (no concatenation of a copy).
        """
        num_inputs, num_outputs = self.shape
        block = np.empty(self.get_params_number(), numeric.working_dtype(du, self.inputs))
        dW = block[: num_inputs * num_outputs].reshape(num_outputs, num_inputs)
        np.matmul(du, self.inputs.T, out=dW)
        if extra is not None:
            dW += extra
        if self.use_bias:
            np.sum(du, axis=1, out=block[num_inputs * num_outputs:])
        return block

    def backward(self, derivs, remember=True, input_derivs=True):
        """(dL/dinputs, dL/dweights) for dL/doutputs = ``derivs``.

        With ``remember=False`` the layer's stored backward state (used by
        Rp_backward) is left untouched: the Gauss-Newton product runs a
        backward pass of its own without disturbing the Hessian's.  With
        ``input_derivs=False`` (the first layer: its inputs are the data)
        dL/dinputs is not computed and None is returned in its place.
        """
        self._require("inputs", "forward")
        du = self._times_g1(derivs)
        if remember:  # du is recomputed by the first Rp_backward: it would only raise the peak here
            self.derivs, self.du, self.derivs_g2 = derivs, None, None
        return (self.W.T @ du if input_derivs else None), self._weight_derivs(du)

    def Rp_forward(self, Rp_inputs):
        """R{outputs}; ``Rp_inputs=None`` means zero (the data do not depend on theta)."""
        self._require("inputs", "forward")
        self._require("P_W", "set_direction")
        Ru = self.P_W @ self.inputs
        if Rp_inputs is not None:
            Ru += self.W @ Rp_inputs
        if self.use_bias:
            Ru += self.P_b
        self.Rp_inputs, self.Ru = Rp_inputs, Ru
        return self._times_g1(Ru)

    def Rp_backward(self, Rp_derivs, input_derivs=True):
        """(R{dL/dinputs}, R{dL/dweights}); see the module docstring."""
        self._require("derivs", "backward")
        self._require("Ru", "Rp_forward")
        if self.du is None:  # du and derivs g'' are the same in every direction: once per point
            self.du = self._times_g1(self.derivs)
            self.derivs_g2 = None if self.g1 is None else self.derivs * self.afun.second_deriv(self.u)
        Rdu = self._times_g1(Rp_derivs)
        if self.derivs_g2 is not None:
            Rdu += self.derivs_g2 * self.Ru
        R_Z = self.Rp_inputs
        grads = self._weight_derivs(Rdu, None if R_Z is None else self.du @ R_Z.T)
        if not input_derivs:
            return None, grads
        Rd_inputs = self.W.T @ Rdu
        Rd_inputs += self.P_W.T @ self.du
        return Rd_inputs, grads

    def get_activations(self):
        self._require("inputs", "forward")
        return self.z

    def get_preactivations(self):
        """(U, R{U}) of the last forward and R-forward passes (R{U} None before any R-forward)."""
        self._require("inputs", "forward")
        return self.u, self.Ru

    def example_gradient_factors(self):
        """(dU, Z) of the last remembered backward pass: the gradient of column i alone is
        dU[:, i] Z[:, i]^T for W (and dU[:, i] for b), so per-example sums need no loop."""
        self._require("derivs", "backward")
        return self._times_g1(self.derivs), self.inputs
