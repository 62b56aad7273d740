"""ae-lab's verification lab: every derivative checked independent ways, the engine's or anyone's.

``checks.verify(fun, x, grad=..., hvp=..., ...)`` and its pytest form
``checks.assert_verified`` take any function of a flat vector and its claimed
derivatives (see ``checks.verify``); ``checks.verify_torch`` and
``checks.verify_jax`` check torch's and JAX's autodiff the same way; ``python -m checks`` runs the whole lab
on the ae engine.
"""

from checks.frameworks import verify_jax, verify_torch
from checks.verify import Verification, VerifyError, assert_verified, verify

__all__ = ["Verification", "VerifyError", "assert_verified", "verify", "verify_jax", "verify_torch"]
