"""Imports a candidate's implementation of the course API; only the worker (``checks.worker``) calls this.

A candidate is a package (a name, or a folder with __init__.py) or a folder of the course template's four
modules that import each other by bare name (``import layers``).  This module imports nothing of the judge.
"""

import importlib
import importlib.util
import pathlib
import sys

MODULES = ("activations", "layers", "ffnet", "autoencoder")
# what the assignment asks of each class (a layer's own get_activations is ae's, not the assignment's)
API = {
    "layers": {"FCLayer": ("get_params_number", "get_weights", "set_weights", "set_direction", "forward",
                           "backward", "Rp_forward", "Rp_backward")},
    "ffnet": {"FFNet": ("set_weights", "get_weights", "set_direction", "compute_outputs", "compute_loss_grad",
                        "compute_Rp_outputs", "compute_loss_Rp_grad", "get_activations")},
    "autoencoder": {"Autoencoder": ("compute_loss", "compute_hessvec", "compute_gaussnewtonvec")},
}


class EngineError(RuntimeError):
    """The candidate cannot be examined at all (missing modules or methods); the message lists what."""


def problem_with(spec):
    """Why ``spec`` names no candidate (a sentence), or None."""
    path = pathlib.Path(spec)
    looks_like_a_path = "/" in str(spec) or str(spec).startswith(".") or path.suffix == ".py"
    if looks_like_a_path and not path.is_dir():
        return (f"no such folder: {spec}" if not path.exists() else
                f"{spec} is a file: give the folder that holds activations.py, layers.py, ffnet.py, "
                "autoencoder.py, or a package name")
    if not path.is_dir() and importlib.util.find_spec(str(spec).split(".")[0]) is None:
        return f"no such folder or importable package: {spec}"
    return None


def load(spec):
    """{module name: module} of a candidate; EngineError naming what is missing."""
    problem = problem_with(spec)
    if problem:
        raise EngineError(problem)
    path = pathlib.Path(spec)
    bare = path.is_dir() and not (path / "__init__.py").exists()
    package = path.resolve().name if path.is_dir() and not bare else str(spec)
    search = str(path.resolve() if bare else path.resolve().parent) if path.is_dir() else None
    modules, problems = {}, []
    if bare:
        for name in MODULES:  # bare names: a candidate examined before must not answer for this one
            sys.modules.pop(name, None)
    if search:
        sys.path.insert(0, search)
    try:
        for name in MODULES:
            try:
                modules[name] = importlib.import_module(name if bare else f"{package}.{name}")
            except Exception as error:
                problems.append(f"module {name}: cannot import ({type(error).__name__}: {error})")
    finally:
        if search:
            sys.path.remove(search)
        if bare:
            for name in MODULES:
                sys.modules.pop(name, None)
    for module, classes in API.items():
        for cls, methods in classes.items():
            if module not in modules:
                continue
            found = getattr(modules[module], cls, None)
            if found is None:
                problems.append(f"{module}.{cls}: missing")
                continue
            problems += [f"{module}.{cls}.{m}: missing" for m in methods if not callable(getattr(found, m, None))]
    if problems:
        raise EngineError(f"{spec} does not offer the assignment's API:\n  " + "\n  ".join(problems))
    return modules
