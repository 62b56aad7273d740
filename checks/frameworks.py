"""``checks.verify`` in torch's and JAX's idiom: their autodiff checked by the lab's estimators.

    verify_torch(fn, *tensors)   # fn(*tensors) -> a scalar tensor; a custom autograd.Function included
    verify_jax(fn, x)            # fn(x) -> a scalar; x a JAX array; custom_jvp / custom_vjp included

Each flattens its inputs into one float vector x, takes the framework's own
gradient (torch.autograd.grad; jax.grad) as the claimed gradient and its
Hessian-vector product (torch's double backward; jax.jvp of jax.grad) as the
claimed Hv, and runs ``checks.verify`` on the function itself.  The complex
step runs fn on complex tensors where fn takes them (torch's matmul wants
every operand complex: cast constants with ``.to(x.dtype)``); the claimed
gradient is never taken at complex points, since autodiff there gives a
conjugate (Wirtinger) derivative, not the analytic one.  The Hv is judged
entry by entry against the complex step of fn differenced along p (or
differences of fn where fn takes no complex input), which needs no complex
autograd; the table names it.  Inputs in float32
(JAX without ``jax_enable_x64``) are named as such by verify, which then
judges against float32's rounding and refuses the complex step.
"""

import numpy as np

from checks import records
from checks.verify import VerifyError, verify


def _real_only(x):
    if np.iscomplexobj(x) or np.asarray(x).dtype == object:
        raise TypeError("the framework's gradient is taken at real float points only")


def _at_real_points(how):
    """Marks a framework's gradient: verify then skips the complex step of it (autodiff at complex points
    gives the conjugate derivative) and says so once; Hv is judged from the function itself."""
    def mark(grad):
        grad.real_points_only = how
        return grad
    return mark


def verify_torch(fn, *tensors, **options):
    """``verify`` on a torch function of ``tensors``: autograd's gradient and double-backward Hv."""
    import torch

    if not callable(fn):
        raise VerifyError(f"fn must be callable, got {type(fn).__name__}")
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise VerifyError("verify_torch takes fn and one or more torch tensors")
    dtype = tensors[0].dtype
    shapes = [t.shape for t in tensors]
    sizes = [t.numel() for t in tensors]

    def split(x, requires_grad=False):
        x = torch.as_tensor(np.ascontiguousarray(x))
        if not x.is_complex():
            x = x.to(dtype)
        parts = torch.split(x, sizes)
        return [p.reshape(s).clone().requires_grad_(requires_grad) for p, s in zip(parts, shapes)]

    def fun(x):
        if np.asarray(x).dtype == object:
            raise TypeError("torch takes no mpmath numbers")
        with torch.no_grad():
            return fn(*split(x)).detach().numpy()

    @_at_real_points("torch.autograd.grad")
    def grad(x):
        _real_only(x)
        inputs = split(x, requires_grad=True)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(fn(*inputs), inputs)]).detach().numpy()

    def hvp(x, p):
        _real_only(x)
        inputs = split(x, requires_grad=True)
        gradients = torch.autograd.grad(fn(*inputs), inputs, create_graph=True)
        along = sum((g * v).sum() for g, v in zip(gradients, split(p)))
        return torch.cat([h.reshape(-1) for h in torch.autograd.grad(along, inputs)]).detach().numpy()

    x = torch.cat([t.detach().reshape(-1) for t in tensors]).numpy()
    options.setdefault("name", getattr(fn, "__name__", "torch function"))
    return _verify_with_hvp_if_it_runs(fun, x, grad, hvp, "torch's double backward", options)


def verify_jax(fn, x, **options):
    """``verify`` on a JAX function of one array: jax.grad's gradient and jax.jvp(jax.grad) as Hv."""
    import jax
    import jax.numpy as jnp

    if not callable(fn):
        raise VerifyError(f"fn must be callable, got {type(fn).__name__}")
    x = jnp.asarray(x)
    shape, dtype = x.shape, x.dtype

    def as_input(v):
        v = jnp.asarray(np.asarray(v).reshape(shape))
        return v if jnp.iscomplexobj(v) else v.astype(dtype)

    def fun(v):
        if np.asarray(v).dtype == object:
            raise TypeError("JAX takes no mpmath numbers")
        return np.asarray(fn(as_input(v)))

    gradient = jax.grad(fn)

    @_at_real_points("jax.grad")
    def grad(v):
        _real_only(v)
        return np.asarray(gradient(as_input(v))).ravel()

    def hvp(v, p):
        _real_only(v)
        return np.asarray(jax.jvp(gradient, (as_input(v),), (as_input(p),))[1]).ravel()

    options.setdefault("name", getattr(fn, "__name__", "JAX function"))
    return _verify_with_hvp_if_it_runs(fun, np.asarray(x, dtype=np.float64).ravel(), grad, hvp,
                                       "jax.jvp of jax.grad", options)


def _verify_with_hvp_if_it_runs(fun, x, grad, hvp, how, options):
    """verify with the framework's Hv, or without it (a cannot-run record saying why) where the
    framework cannot differentiate fn's gradient (a custom backward written outside the framework)."""
    try:
        hvp(x, np.ones_like(x))
    except Exception as error:
        result = verify(fun, x, grad=grad, **options)
        result.records.append(records.cannot_run(
            "autodiff", "Hv", f"{how} fails: {type(error).__name__}: {str(error).splitlines()[0]}",
            {"function": options["name"], "dtype": result.records[0]["dtype"]}))
        return result
    return verify(fun, x, grad=grad, hvp=hvp, **options)
