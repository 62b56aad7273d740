"""Step rules against iterates computed by hand with torch.optim's formulas."""

import math

import numpy as np
import pytest

from ae import optim

STEPS = 6


def gradients(size=5, seed=0):
    return np.random.default_rng(seed).standard_normal((STEPS, size))


def run_rule(rule, w0, grads):
    w, state = w0.copy(), rule.init(w0)
    for g in grads:
        step, state = rule.update(g, state)
        w = w + step
    return w


def by_hand(update_scalar, w0, grads):
    """Apply a scalar recurrence entry by entry, in plain Python floats."""
    out = []
    for k, w in enumerate(w0):
        memory = {}
        for t, g in enumerate(grads[:, k], start=1):
            w = update_scalar(w, float(g), t, memory)
        out.append(w)
    return np.array(out)


W0 = np.linspace(-1, 1, 5)


def test_sgd():
    lr = 0.1
    expected = by_hand(lambda w, g, t, m: w - lr * g, W0, gradients())
    assert np.allclose(run_rule(optim.SGD(lr), W0, gradients()), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_matches_torch_sgd_momentum(nesterov):
    lr, mu = 0.05, 0.9

    def torch_sgd(w, g, t, m):  # torch.optim.SGD: buf = mu buf + g (buf = g at t = 1)
        m["buf"] = g if t == 1 else mu * m["buf"] + g
        direction = g + mu * m["buf"] if nesterov else m["buf"]
        return w - lr * direction

    got = run_rule(optim.Momentum(lr, mu, nesterov=nesterov), W0, gradients())
    assert np.allclose(got, by_hand(torch_sgd, W0, gradients()), rtol=0, atol=1e-12)


def test_rmsprop_matches_torch_rmsprop():
    lr, rho, eps = 0.01, 0.9, 1e-8

    def torch_rmsprop(w, g, t, m):  # torch.optim.RMSprop(alpha=rho)
        m["sq"] = rho * m.get("sq", 0.0) + (1 - rho) * g * g
        return w - lr * g / (math.sqrt(m["sq"]) + eps)

    got = run_rule(optim.RMSprop(lr, rho=rho, eps=eps), W0, gradients())
    assert np.allclose(got, by_hand(torch_rmsprop, W0, gradients()), rtol=0, atol=1e-12)


def test_adam_matches_torch_adam():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8

    def torch_adam(w, g, t, m):  # torch.optim.Adam's own arrangement of the same formula
        m["m"] = b1 * m.get("m", 0.0) + (1 - b1) * g
        m["v"] = b2 * m.get("v", 0.0) + (1 - b2) * g * g
        step_size = lr / (1 - b1**t)
        denom = math.sqrt(m["v"]) / math.sqrt(1 - b2**t) + eps
        return w - step_size * m["m"] / denom

    got = run_rule(optim.Adam(lr, b1, b2, eps), W0, gradients())
    assert np.allclose(got, by_hand(torch_adam, W0, gradients()), rtol=0, atol=1e-12)


def test_against_torch_optim_when_installed():
    torch = pytest.importorskip("torch")
    grads = gradients()
    cases = [
        (optim.SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (optim.Momentum(0.05, 0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        (optim.Momentum(0.05, 0.9, nesterov=True),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        (optim.RMSprop(0.01, rho=0.9), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
        (optim.Adam(0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ]
    for rule, make in cases:
        param = torch.tensor(W0.copy(), dtype=torch.float64, requires_grad=True)
        opt = make([param])
        for g in grads:
            param.grad = torch.tensor(g)
            opt.step()
        assert np.allclose(run_rule(rule, W0, grads), param.detach().numpy(), rtol=0, atol=1e-12), rule


@pytest.mark.parametrize("rule", [optim.SGD(0.1), optim.Momentum(0.1), optim.RMSprop(0.1),
                                  optim.Adam(0.1)], ids=lambda r: type(r).__name__)
def test_float32_stays_float32(rule):
    w = W0.astype(np.float32)
    state = rule.init(w)
    for g in gradients().astype(np.float32):
        step, state = rule.update(g, state)
        assert step.dtype == np.float32


@pytest.mark.parametrize("make", [
    lambda: optim.SGD(0), lambda: optim.SGD(-1), lambda: optim.Adam(0.1, beta1=1.0),
    lambda: optim.Momentum(0.1, momentum=-0.1), lambda: optim.RMSprop(0.1, rho=1.5),
    lambda: optim.RMSprop(0.1, eps=0),
])
def test_bad_hyperparameters(make):
    with pytest.raises(ValueError, match="must"):
        make()


def optax_pairs():
    import optax

    return [(optim.SGD(0.1), optax.sgd(0.1)),
            (optim.Momentum(0.1, 0.9), optax.sgd(0.1, momentum=0.9)),
            (optim.Momentum(0.1, 0.9, nesterov=True), optax.sgd(0.1, momentum=0.9, nesterov=True)),
            (optim.RMSprop(0.01, rho=0.9, eps=1e-8), optax.rmsprop(0.01, decay=0.9, eps=1e-8, eps_in_sqrt=False)),
            (optim.Adam(0.01), optax.adam(0.01, b1=0.9, b2=0.999, eps=1e-8))]


def test_against_optax_when_installed():
    """The same gradients through optax's transformations (run by the tox env "jax")."""
    pytest.importorskip("optax")
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    grads = gradients(size=7, seed=3)
    start = np.linspace(-1, 1, 7)
    for ours, theirs in optax_pairs():
        w = jnp.asarray(start)
        state = theirs.init(w)
        for g in grads:
            updates, state = theirs.update(jnp.asarray(g), state, w)
            w = w + updates
        np.testing.assert_allclose(run_rule(ours, start, grads), np.asarray(w), rtol=1e-13, atol=1e-15,
                                   err_msg=type(ours).__name__)


@pytest.mark.parametrize("make, name", [
    (lambda: optim.SGD(0), "step_size"), (lambda: optim.Momentum(-1), "step_size"),
    (lambda: optim.Momentum(0.1, momentum=1.0), "momentum"), (lambda: optim.RMSprop(0), "step_size"),
    (lambda: optim.RMSprop(0.1, rho=1.0), "rho"), (lambda: optim.RMSprop(0.1, eps=0), "eps"),
    (lambda: optim.Adam(0), "step_size"), (lambda: optim.Adam(0.1, beta1=1.0), "beta1"),
    (lambda: optim.Adam(0.1, beta2=-0.1), "beta2"), (lambda: optim.Adam(0.1, eps=-1e-8), "eps"),
])
def test_a_bad_hyperparameter_is_named_in_its_error(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        make()


def test_the_defaults_are_the_documented_ones_and_zero_decay_is_allowed():
    momentum = optim.Momentum(0.1)
    assert (momentum.momentum, momentum.nesterov) == (0.9, False)
    rmsprop = optim.RMSprop(0.1)
    assert (rmsprop.rho, rmsprop.eps) == (0.9, 1e-8)
    adam = optim.Adam(0.1)
    assert (adam.beta1, adam.beta2, adam.eps) == (0.9, 0.999, 1e-8)
    assert optim.Momentum(0.1, momentum=0).momentum == 0.0  # [0, 1): no momentum is plain SGD
    assert optim.RMSprop(0.1, rho=0).rho == 0.0
