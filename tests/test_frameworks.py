"""verify_torch and verify_jax: autodiff checked by the lab's estimators, side by side with the
frameworks' own checkers (torch.autograd.gradcheck, jax.test_util.check_grads) on a one-entry error
they pass with their defaults.  Run by the tox envs "torch" and "jax"; skipped where neither is
installed."""

import numpy as np
import pytest

from checks import VerifyError
from checks.frameworks import verify_jax, verify_torch

RNG = np.random.default_rng(0)
A, B, X = RNG.standard_normal((6, 5)) / np.sqrt(5), RNG.standard_normal(6), RNG.standard_normal(5)
ENTRY, DELTA = 2, 1e-6  # one gradient entry off by a relative 1e-6


def numpy_grad(x):
    s = A @ x + B
    r = s + 0.3 * s ** 3
    return A.T @ ((1 + 0.9 * s * s) * r)


def test_torch_autograd_and_double_backward_pass_and_a_custom_function_off_by_1e_6_fails():
    torch = pytest.importorskip("torch")
    At, Bt = torch.tensor(A), torch.tensor(B)

    def loss(x):  # constants cast to x's dtype: torch's matmul takes complex tensors only with complex ones
        s = At.to(x.dtype) @ x + Bt.to(x.dtype)
        r = s + 0.3 * s ** 3
        return 0.5 * (r * r).sum()

    result = verify_torch(loss, torch.tensor(X))
    assert result.verdicts == {"gradient": "pass", "Hv": "pass"}, result.table()
    assert {"complex step", "central difference"} <= {r["check"] for r in result.records if r["verdict"] == "pass"}

    class Planted(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return loss(x)

        @staticmethod
        def backward(ctx, out):
            (x,) = ctx.saved_tensors
            g = torch.tensor(numpy_grad(x.detach().numpy()))
            g[ENTRY] *= 1 + DELTA
            return out * g

    x = torch.tensor(X, requires_grad=True)
    assert torch.autograd.gradcheck(Planted.apply, (x,))  # its defaults (rtol 1e-3) pass the error
    wrong = verify_torch(Planted.apply, torch.tensor(X))
    assert wrong.verdicts["gradient"] == "fail", wrong.table()


def test_torch_bad_input_gets_a_clear_error():
    pytest.importorskip("torch")
    with pytest.raises(VerifyError, match="one or more torch tensors"):
        verify_torch(lambda x: x.sum(), np.ones(3))


def jax_loss(jnp, dtype=None):
    def loss(x):
        s = jnp.asarray(A, dtype) @ x + jnp.asarray(B, dtype)
        r = s + 0.3 * s ** 3
        return 0.5 * r @ r
    return loss


def test_jax_grad_and_hvp_pass_and_custom_vjp_and_custom_jvp_off_by_1e_6_fail():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    loss = jax_loss(jnp)
    result = verify_jax(loss, jnp.asarray(X))
    assert result.verdicts == {"gradient": "pass", "Hv": "pass"}, result.table()

    def planted_gradient(x):
        g = numpy_grad(np.asarray(x))
        g[ENTRY] *= 1 + DELTA
        return jnp.asarray(g)

    @jax.custom_vjp
    def by_vjp(x):
        return loss(x)

    by_vjp.defvjp(lambda x: (loss(x), x), lambda x, ct: (ct * planted_gradient(x),))

    @jax.custom_jvp
    def by_jvp(x):
        return loss(x)

    by_jvp.defjvp(lambda primals, tangents: (loss(primals[0]), planted_gradient(primals[0]) @ tangents[0]))

    check_grads(by_vjp, (jnp.asarray(X),), order=1, modes=["rev"])  # passes: the error is missed
    for planted in (by_vjp, by_jvp):
        wrong = verify_jax(planted, jnp.asarray(X))
        assert wrong.verdicts["gradient"] == "fail", wrong.table()


def test_a_float32_jax_function_is_named_float32_not_refused_as_non_analytic():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    result = verify_jax(jax_loss(jnp, jnp.float32), jnp.asarray(X, dtype=jnp.float32))
    assert {r["dtype"] for r in result.records} == {"float32"}
    reason = next(r["reason"] for r in result.records if r["check"] == "complex step")
    assert "float32" in reason and "jax_enable_x64" in reason
    assert result.passed, result.table()  # judged against float32's rounding
