"""Feed-forward network: the flat parameter vector and the passes over layers.

Parameter vector layout: each layer's block in layer order; inside a block,
W (num_outputs x num_inputs) raveled row-major, then b if the layer has one.

Tied weights: ``ties`` lists pairs ``(decoder, encoder)`` of layer indices
(encoder < decoder) whose matrices are shared as W_decoder = W_encoder^T.
The shared matrix is stored once, in the encoder's block; the decoder's
block then holds only its own bias.  Internally every layer keeps its full
(W, b); ``self._index[l]`` says where each entry of layer l's full block sits
in the flat vector.  So weights are gathered through the index, and a
gradient (or Hv, GNv) is the sum of each layer's full-block result scattered
back through it: the transpose of the tying map, which adds the decoder's
dW^T to the encoder's dW: the chain rule through W_decoder = W_encoder^T gives
dF/dW_encoder = (its own term) + (dF/dW_decoder)^T.
"""

import numpy as np

from ae import numeric
from ae.layers import BaseLayer


class FFNet:
    def __init__(self, layers, ties=()):
        layers = list(layers)
        if not layers or not all(isinstance(layer, BaseLayer) for layer in layers):
            raise TypeError("layers must be a non-empty list of BaseLayer objects")
        for k, (a, b) in enumerate(zip(layers, layers[1:])):
            if a.shape[1] != b.shape[0]:
                raise ValueError(
                    f"layer {k} has {a.shape[1]} outputs but layer {k + 1} "
                    f"takes {b.shape[0]} inputs: layer shapes do not chain"
                )
        self.layers = layers
        self.ties = dict(self._check_ties(ties))
        index = self._build_index()
        self.params_number = 1 + max(int(i.max()) for i in index)
        # a contiguous block becomes a slice: w[block] is then a view, not a gather
        self._index = [slice(i[0], i[-1] + 1) if np.array_equal(i, np.arange(i[0], i[-1] + 1)) else i
                       for i in index]
        self._direction_set = False
        self.version = 0  # bumped by every change of weights or forward state

    def _check_ties(self, ties):
        seen, n = set(), len(self.layers)
        for dec, enc in ties:
            if not (0 <= enc < dec < n):
                raise ValueError(f"tie ({dec}, {enc}) must satisfy 0 <= encoder < decoder < {n}")
            if self.layers[dec].shape != self.layers[enc].shape[::-1]:
                raise ValueError(
                    f"cannot tie layer {dec} of shape {self.layers[dec].shape} to "
                    f"layer {enc} of shape {self.layers[enc].shape}: shapes must mirror"
                )
            if {dec, enc} & seen:
                raise ValueError(f"layer {dec} or {enc} appears in more than one tie")
            seen.update((dec, enc))
            yield dec, enc

    def _build_index(self):
        index, matrix_index, next_free = [], {}, 0
        for k, layer in enumerate(self.layers):
            n_in, n_out = layer.shape
            if k in self.ties:
                W_idx = matrix_index[self.ties[k]].T
            else:
                W_idx = np.arange(next_free, next_free + n_in * n_out).reshape(n_out, n_in)
                next_free += n_in * n_out
            matrix_index[k] = W_idx
            n_bias = layer.get_params_number() - n_in * n_out
            b_idx = np.arange(next_free, next_free + n_bias)
            next_free += n_bias
            index.append(np.concatenate([W_idx.ravel(), b_idx]))
        return index

    def _backward_pass(self, derivs, step):
        """Sum of the layers' full-block results scattered into one flat vector (E^T v).

        ``step(layer, derivs, input_derivs) -> (derivs below, block)`` runs top
        down; each block is added as soon as it exists, so at most one is alive.
        """
        out = None
        for k in range(len(self.layers) - 1, -1, -1):
            # the first layer's inputs are the data: no derivative is needed there
            derivs, block = step(self.layers[k], derivs, k > 0)
            if out is None:  # the top block has every input's type
                out = (numeric.zeros(self.params_number, block.dtype, like=block) if self.ties
                       else np.empty(self.params_number, block.dtype))
            if self.ties:  # a shared matrix gets the sum of its layers' blocks
                out[self._index[k]] += block
            else:  # the blocks tile the vector: each entry is written once
                out[self._index[k]] = block
        return out

    def set_weights(self, w):
        w = numeric.check_vector(w, "weights", self.params_number)
        for idx, layer in zip(self._index, self.layers):
            layer.set_weights(w[idx], check=False)
        self.version += 1

    def init_weights(self, seed=None, dtype=np.float64):
        """Glorot-uniform matrices, zero biases; returns the flat vector.

        ``seed`` is an int, None or a numpy Generator.  Values are drawn in
        float64 and converted exactly to ``dtype`` (object: mpmath mpf), so
        one seed gives the same weights in every number type.
        """
        dtype = numeric.parse_dtype(dtype)
        rng = np.random.default_rng(seed)
        w = np.zeros(self.params_number)
        for k, (idx, layer) in enumerate(zip(self._index, self.layers)):
            if k in self.ties:
                continue  # the matrix is the encoder's; the bias starts at zero
            n_in, n_out = layer.shape
            limit = np.sqrt(6.0 / (n_in + n_out))
            block = w[idx]  # W first, then the bias (left at zero)
            block[: n_in * n_out] = rng.uniform(-limit, limit, n_in * n_out)
            w[idx] = block
        w = numeric.astype(w, dtype)
        self.set_weights(w)
        return w

    def get_weights(self):
        blocks = [layer.get_weights() for layer in self.layers]
        w = numeric.zeros(self.params_number, numeric.working_dtype(*blocks))
        for idx, block in zip(self._index, blocks):
            w[idx] = block
        return w

    def set_direction(self, p):
        p = numeric.check_vector(p, "direction", self.params_number)
        for idx, layer in zip(self._index, self.layers):
            layer.set_direction(p[idx], check=False)
        self._direction_set = True

    def compute_outputs(self, inputs, check=True):
        """The forward pass; ``check=False`` skips validation the caller has done."""
        out = numeric.check_array(inputs, "inputs", ndim=2) if check else inputs
        self.version += 1
        for k, layer in enumerate(self.layers):
            try:
                out = layer.forward(out)
            except numeric.UncertifiableError as error:  # a ball at a kink: say which layer
                raise numeric.UncertifiableError(f"layer {k}, {error}") from None
        return out

    def compute_loss_grad(self, derivs, remember=True):
        """J^T derivs: the gradient of sum(derivs * outputs) over the weights (a general backward
        pass; the name is the course template's, where derivs is dF/doutputs and this is grad F).

        ``remember=False`` leaves the layers' backward state (which the
        R-backward pass needs) untouched.
        """
        return self._backward_pass(derivs, lambda layer, d, below: layer.backward(
            d, remember=remember, input_derivs=below))

    def compute_example_gradient_squares(self):
        """sum_i g_i * g_i (elementwise) over the columns i of the last remembered backward pass,
        g_i the flat gradient that column i alone contributes to ``compute_loss_grad``.

        Per layer: W's part is (dU * dU)(Z * Z)^T and b's is (dU * dU) 1, one
        matrix product.  A tied matrix's per-column gradient is A_i + B_i^T
        (encoder's and decoder's parts), whose square has the cross term
        2 sum_i A_i * B_i^T = 2 (dU_enc * Z_dec)(Z_enc * dU_dec)^T: again one product.
        """
        out, factors = None, []
        for idx, layer in zip(self._index, self.layers):
            du, Z = layer.example_gradient_factors()
            factors.append((du, Z))
            du2 = du * du
            block = np.concatenate([(du2 @ (Z * Z).T).ravel()] + ([du2.sum(axis=1)] if layer.use_bias else []))
            if out is None:
                out = numeric.zeros(self.params_number, block.dtype, like=block)
            out[idx] += block  # a shared matrix's entries receive both layers' squares
        for dec, enc in self.ties.items():
            (du_e, Z_e), (du_d, Z_d) = factors[enc], factors[dec]
            n_in, n_out = self.layers[enc].shape
            W_part = self._index[enc]
            W_part = (slice(W_part.start, W_part.start + n_in * n_out) if isinstance(W_part, slice)
                      else W_part[: n_in * n_out])
            out[W_part] += 2 * ((du_e * Z_d) @ (Z_e * du_d).T).ravel()
        return out

    def compute_Rp_outputs(self):
        """J p for the direction p of the last set_direction (the R-forward pass)."""
        if not self._direction_set:
            raise ValueError("set_direction must be called before compute_Rp_outputs")
        Rp = None
        for layer in self.layers:
            Rp = layer.Rp_forward(Rp)
        return Rp

    def compute_loss_Rp_grad(self, Rp_derivs):
        """R_p{J^T derivs}: the directional derivative along p (of the last set_direction) of the
        last remembered backward pass, given R_p{derivs} = ``Rp_derivs`` at the top.  With
        derivs = dF/doutputs this is H p (the name is the course template's); see ae.layers."""
        return self._backward_pass(Rp_derivs, lambda layer, d, below: layer.Rp_backward(d, input_derivs=below))

    def get_activations(self, layer_number):
        """Outputs of layer ``layer_number`` (0-based) from the last forward pass."""
        if not -len(self.layers) <= layer_number < len(self.layers):
            raise ValueError(f"layer_number {layer_number} out of range for {len(self.layers)} layers")
        return self.layers[layer_number].get_activations()
