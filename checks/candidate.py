"""The lab on another implementation of the assignment's API (``python -m checks --engine``).

A candidate is a package, or a folder of the course template's four modules
that import each other by bare name (``activations``, ``layers``, ``ffnet``,
``autoencoder``).  Most are float64 only, so the reference is this project's
engine at 50 digits, built with the same architecture and the same weights;
the candidate's own weight layout is discovered by probing ``set_weights``
with unit vectors (a common layout keeps the bias as an extra last column of
W), never assumed.  Checked, each against its 50-digit reference:

* every activation the candidate has (val, deriv, second_deriv);
* every layer's four passes on their own (forward; backward: dL/dinputs, dW,
  db; Rp_forward; Rp_backward: R{dL/dinputs}, R{dW}, R{db}), so a failure
  names the layer and the pass;
* the whole model: loss, gradient, Hv, GNv, and Hv again after GNv (a
  Gauss-Newton pass must not overwrite the state the Hessian pass needs);
* ``checks.verify`` on the model's loss, gradient and Hv (central
  differences, Richardson, Taylor; complex step and mpmath where the
  candidate takes them, "cannot run" with its error where it does not).

A missing method, an exception inside one, an argument changed in place:
each is a finding in the records, never a crash of the lab.
"""

import importlib
import importlib.util
import pathlib
import sys

import mpmath
import numpy as np

import ae
from ae import numeric
from ae.activations import from_letter
from checks import records
from checks.verify import VerifyError, verify

MODULES = ("activations", "layers", "ffnet", "autoencoder")
API = {
    "layers": {"FCLayer": ("get_params_number", "get_weights", "set_weights", "set_direction", "forward",
                           "backward", "Rp_forward", "Rp_backward", "get_activations")},
    "ffnet": {"FFNet": ("set_weights", "get_weights", "set_direction", "compute_outputs", "compute_loss_grad",
                        "compute_Rp_outputs", "compute_loss_Rp_grad", "get_activations")},
    "autoencoder": {"Autoencoder": ("compute_loss", "compute_hessvec", "compute_gaussnewtonvec")},
}
ACTIVATIONS = {"t": "Tanh", "s": "Sigmoid", "l": "Linear", "r": "Relu"}  # our letter -> name in the class
THRESHOLD = 1e-12  # float64 arithmetic against exact: a few hundred eps of normwise error
FAILED = object()  # what Lab.call returns when the candidate's method raised
MP_DPS = 50
NETS = (([6, 4, 2, 4, 6], "tlts"), ([5, 3, 5], "st"))


class EngineError(RuntimeError):
    """The candidate cannot be examined at all (missing modules or methods); the message lists what."""


def load(spec):
    """{module name: module} of a candidate: a package (a name, or a folder with __init__.py) or a
    folder of bare-name modules that import each other as ``import layers``."""
    path = pathlib.Path(spec)
    looks_like_a_path = "/" in str(spec) or str(spec).startswith(".") or path.suffix == ".py"
    if looks_like_a_path and not path.is_dir():
        raise EngineError(f"no such folder: {spec}" if not path.exists() else
                          f"{spec} is a file: give the folder that holds activations.py, layers.py, ffnet.py, "
                          "autoencoder.py, or a package name")
    if not path.is_dir() and importlib.util.find_spec(str(spec).split(".")[0]) is None:
        raise EngineError(f"no such folder or importable package: {spec}")
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


def activations_of(module):
    """{our letter: the candidate's class} for the activations it has."""
    found = {}
    for letter, name in ACTIVATIONS.items():
        for attr in dir(module):
            cls = getattr(module, attr)
            if (isinstance(cls, type) and name.lower() in attr.lower() and "leaky" not in attr.lower()
                    and all(callable(getattr(cls, m, None)) for m in ("val", "deriv", "second_deriv"))):
                found[letter] = cls
                break
    return found


def _net(record):
    return f"[net {record['net']}] " if record.get("net") else ""


class Lab:
    """Runs the checks on one candidate and collects records; ``findings()`` says what failed."""

    def __init__(self, modules, name, seed=0):
        self.modules, self.name, self.seed = modules, name, seed
        self.rng = np.random.default_rng(seed)
        self.records = []
        self.activations = activations_of(modules["activations"])
        self.net = None  # the label of the net being examined, for the records

    # --- records ---------------------------------------------------------------------------------

    def context(self, **fields):
        return {"engine": self.name, "net": self.net, "dtype": "float64",
                "precision": f"reference {MP_DPS} digits", "seed": self.seed, **fields}

    def compare(self, where, part, theirs, exact, **fields):
        """A verdict: normwise relative error of the candidate's value against the exact one."""
        exact = numeric.to_float64(np.asarray(exact))
        theirs = np.asarray(theirs, dtype=float)
        if theirs.shape != exact.shape:
            self.failure(where, part, f"shape {theirs.shape}, expected {exact.shape}", **fields)
            return
        scale = np.linalg.norm(exact)
        error = np.linalg.norm(theirs - exact) / scale if scale > 0 else np.linalg.norm(theirs)
        self.records.append(records.verdict("engine", part, error, THRESHOLD, self.context(where=where, **fields)))

    def failure(self, where, part, reason, **fields):
        self.records.append(records.verdict("engine", part, float("inf"), THRESHOLD,
                                            self.context(where=where, **fields), reason=reason))

    def call(self, where, fn, *args):
        """fn(*args), noting an exception (then FAILED is returned) or an argument changed in place."""
        originals = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
        try:
            result = fn(*args)
        except Exception as error:
            self.failure(where, "raised", f"{type(error).__name__}: {error}")
            return FAILED
        for k, (given, original) in enumerate(zip(args, originals)):
            if isinstance(given, np.ndarray) and not np.array_equal(given, original):
                self.failure(where, f"argument {k + 1} changed in place", "the caller's array was modified")
        return result

    def findings(self):
        lines = []
        for r in self.records:
            if r["verdict"] == "fail":
                where = r.get("where") or r.get("function", "model")
                what = r.get("reason") or f"off by {r['measured']:.1e} (target {r['threshold']:.0e})"
                lines.append(f"{_net(r)}{where}: {r['quantity']} {what}")
            elif r["verdict"] == "cannot run":
                lines.append(f"{_net(r)}{r.get('where') or 'model'}: {r['check']} / {r['quantity']} cannot run: "
                             f"{r['reason']}")
        return lines

    # --- the checks ------------------------------------------------------------------------------

    def check_activations(self):
        X = np.linspace(-4, 4, 24).reshape(4, 6)
        for letter, name in ACTIVATIONS.items():
            if letter not in self.activations:
                self.records.append(records.cannot_run("engine", "activation", f"no {name} activation class",
                                                       self.context(where=f"activation {name}")))
                continue
            cls = self.activations[letter]
            ours = from_letter(letter)
            candidate = self.call(f"activation {cls.__name__}", cls)
            if candidate is FAILED:
                continue
            with mpmath.workdps(MP_DPS):
                X_mp = numeric.to_mp(X)
                for method in ("val", "deriv", "second_deriv"):
                    theirs = self.call(f"activation {cls.__name__} {method}", getattr(candidate, method), X.copy())
                    if theirs is not FAILED:
                        self.compare(f"activation {cls.__name__} {method}", method, theirs,
                                     getattr(ours, method)(X_mp))

    def layout(self, index, shape):
        """Where each entry of the candidate's flat block of a layer sits in ours (an index array)."""
        n_in, n_out = shape
        linear = self.activations.get("l", ae.LinearActivationFunction)
        layer = self.modules["layers"].FCLayer(shape, linear(), use_bias=True)
        size = layer.get_params_number()
        if size != n_out * (n_in + 1):
            raise EngineError(f"layer {index}: get_params_number() is {size}, a {n_in}->{n_out} layer with a bias "
                              f"has {n_out * (n_in + 1)}")
        probe = np.hstack([np.eye(n_in), np.zeros((n_in, 1))])  # unit inputs, then zero input
        ours = np.empty(size, dtype=int)
        for k in range(size):
            unit = np.zeros(size)
            unit[k] = 1
            layer.set_weights(unit)
            U = np.asarray(layer.forward(probe.copy()), dtype=float)
            b = U[:, n_in]
            W = U[:, :n_in] - b[:, None]
            if np.count_nonzero(b) == 1 and not W.any():
                ours[k] = n_in * n_out + int(np.flatnonzero(b)[0])
            elif np.count_nonzero(W) == 1 and not b.any():
                o, i = np.argwhere(W)[0]
                ours[k] = o * n_in + i
            else:
                raise EngineError(f"layer {index}: set_weights with unit vector {k} does not set one weight or bias")
        if sorted(ours) != list(range(size)):
            raise EngineError(f"layer {index}: two entries of the weight vector set the same weight")
        return ours

    def check_layers(self, widths, letters, layouts):
        for k, (shape, letter) in enumerate(zip(zip(widths, widths[1:]), letters)):
            if letter not in self.activations:
                continue
            n_in, n_out = shape
            where = f"layer {k}"
            theirs_layer = self.modules["layers"].FCLayer(shape, self.activations[letter](), use_bias=True)
            ours_layer = ae.FCLayer(shape, from_letter(letter), use_bias=True)
            w_ours, p_ours = self.rng.standard_normal((2, n_out * (n_in + 1))) * 0.7
            Z, RZ = self.rng.standard_normal((2, n_in, 5))
            D, RD = self.rng.standard_normal((2, n_out, 5))
            perm = layouts[k]
            if FAILED in (self.call(f"{where} set_weights", theirs_layer.set_weights, w_ours[perm]),
                          self.call(f"{where} set_direction", theirs_layer.set_direction, p_ours[perm])):
                continue
            with mpmath.workdps(MP_DPS):
                mp = numeric.to_mp
                ours_layer.set_weights(mp(w_ours))
                ours_layer.set_direction(mp(p_ours))
                out = ours_layer.forward(mp(Z))
                dZ, dW = ours_layer.backward(mp(D))
                Rout = ours_layer.Rp_forward(mp(RZ))
                RdZ, RdW = ours_layer.Rp_backward(mp(RD))
            passes = [("forward", (Z,), [("outputs", out)]),
                      ("backward", (D,), [("dL/dinputs", dZ), ("weights", dW)]),
                      ("Rp_forward", (RZ,), [("R{outputs}", Rout)]),
                      ("Rp_backward", (RD,), [("R{dL/dinputs}", RdZ), ("weights", RdW)])]
            for name, args, expected in passes:
                result = self.call(f"{where} {name}", getattr(theirs_layer, name), *[a.copy() for a in args])
                if result is FAILED:
                    break
                values = [result] if len(expected) == 1 else list(result)
                for (label, exact), value in zip(expected, values):
                    if label == "weights":  # the candidate's block, put in our layout, split into W and b
                        block = np.empty(len(perm))
                        block[perm] = np.asarray(value, dtype=float).ravel()
                        d = "R{d" if name.startswith("Rp") else "d"
                        close = "}" if name.startswith("Rp") else ""
                        self.compare(f"{where} {name}", f"{d}W{close}", block[: n_in * n_out],
                                     exact[: n_in * n_out], layer=k, pass_=name)
                        self.compare(f"{where} {name}", f"{d}b{close}", block[n_in * n_out:],
                                     exact[n_in * n_out:], layer=k, pass_=name)
                    else:
                        self.compare(f"{where} {name}", label, value, exact, layer=k, pass_=name)

    def check_model(self, widths, letters, layouts):
        layers = [self.modules["layers"].FCLayer(shape, self.activations[g](), use_bias=True)
                  for shape, g in zip(zip(widths, widths[1:]), letters)]
        model = self.call("model", self.modules["autoencoder"].Autoencoder, layers)
        if model is FAILED:
            return
        setter = getattr(model, "set_weights", None) or getattr(getattr(model, "net", None), "set_weights", None)
        if setter is None:
            self.failure("model", "set_weights", "neither the model nor model.net has set_weights")
            return
        offsets = np.cumsum([0] + [len(p) for p in layouts])
        perm = np.concatenate([offset + p for offset, p in zip(offsets, layouts)])  # candidate entry -> ours

        def to_theirs(v):
            return np.asarray(v, dtype=float)[perm]

        def to_ours(v):
            out = np.empty(len(perm))
            out[perm] = np.asarray(v, dtype=float).ravel()
            return out

        ours = ae.build(widths, letters)
        w = ours.init_weights(self.seed) + 0.1 * self.rng.standard_normal(ours.params_number)
        p, q = self.rng.standard_normal((2, ours.params_number))
        X, X2 = self.rng.random((2, widths[0], 7))
        exact = {}
        with mpmath.workdps(MP_DPS):
            mp = numeric.to_mp
            ours.set_weights(mp(w))
            for data_name, data in (("X", X), ("X2", X2)):
                exact[data_name, "loss"], exact[data_name, "gradient"] = ours.compute_loss(mp(data))
                for d_name, d in (("p", p), ("q", q)):
                    exact[data_name, "Hv", d_name] = ours.compute_hessvec(mp(d))
                    exact[data_name, "GNv", d_name] = ours.compute_gaussnewtonvec(mp(d))
                exact[data_name, "activations"] = [ours.net.get_activations(k) for k in range(len(ours.layers))]
        where = "model"
        if self.call(f"{where} set_weights", setter, to_theirs(w)) is FAILED:
            return
        result = self.call(f"{where} compute_loss", model.compute_loss, X.copy())
        if result is FAILED:
            return
        self.compare(where, "loss", np.float64(result[0]), exact["X", "loss"])
        self.compare(where, "gradient", to_ours(result[1]), exact["X", "gradient"])
        # every call order the API allows (GNv first, before any Hv), each product against its own reference:
        # state left by an earlier call (a GNv reusing the last Hv's R-forward pass, a Hessian state
        # overwritten by GNv, a product at the data before the last compute_loss) shows
        directions = {"p": p, "q": q}
        calls = [("GNv", "GNv", "p"), ("Hv", "Hv", "p"), ("Hv with another direction", "Hv", "q"),
                 ("GNv with a direction other than the last Hv's", "GNv", "p"), ("Hv after GNv", "Hv", "p")]
        self.call_in_order(model, where, "X", calls, directions, exact, to_theirs, to_ours)
        if self.call(f"{where} compute_loss", model.compute_loss, X2.copy()) is not FAILED:
            self.call_in_order(model, where, "X2", [("Hv after compute_loss on other data", "Hv", "q"),
                                                    ("GNv after compute_loss on other data", "GNv", "p")],
                               directions, exact, to_theirs, to_ours)
            self.check_activations_of(model, where, exact["X2", "activations"])
        if self.call(f"{where} set_weights", setter, to_theirs(w)) is not FAILED:
            self.verify_model(model, setter, X, where)

    def call_in_order(self, model, where, data, calls, directions, exact, to_theirs, to_ours):
        for label, quantity, direction in calls:
            method = model.compute_gaussnewtonvec if quantity == "GNv" else model.compute_hessvec
            value = self.call(f"{where} {method.__name__}", method, to_theirs(directions[direction]))
            if value is not FAILED:
                self.compare(where, label, to_ours(value), exact[data, quantity, direction])

    def check_activations_of(self, model, where, activations):
        """FFNet.get_activations(k) after the last forward pass: the outputs z of layer k."""
        net = getattr(model, "net", model)
        if not hasattr(net, "get_activations"):
            self.failure(where, "get_activations", "neither the model nor model.net has get_activations")
            return
        for k, exact in enumerate(activations):
            value = self.call(f"{where} get_activations", net.get_activations, k)
            if value is not FAILED:
                self.compare(where, f"get_activations({k})", np.asarray(value, dtype=float), exact)

    def verify_model(self, model, setter, X, where):
        """checks.verify on the candidate's own loss, gradient and Hv, in its own layout."""
        def fun(v):
            setter(v)
            return model.compute_loss(X)[0]

        def grad(v):
            setter(v)
            return model.compute_loss(X)[1]

        def hvp(v, p):
            setter(v)
            model.compute_loss(X)
            return model.compute_hessvec(p)

        getter = getattr(model, "get_weights", None) or getattr(model, "net", None).get_weights
        x = np.array(getter(), dtype=float)
        try:
            result = verify(fun, x, grad=grad, hvp=hvp, seed=self.seed, name=where)
        except VerifyError as error:
            self.failure(where, "verify", str(error))
            return
        finally:
            setter(x)
        for record in result.records:
            self.records.append({**record, "where": f"{where} ({record['check']})", "engine": self.name,
                                 "net": self.net})

    def run(self):
        self.check_activations()
        for widths, wanted in NETS:  # an activation the candidate lacks is stood in for by linear
            letters = "".join(g if g in self.activations else "l" for g in wanted)
            self.net = "-".join(str(w) for w in widths) + " " + letters
            if any(g not in self.activations for g in letters):
                self.records.append(records.cannot_run("engine", "model", "no linear activation to stand in",
                                                       self.context(where=f"net {widths}")))
                continue
            try:
                layouts = [self.layout(k, shape) for k, shape in enumerate(zip(widths, widths[1:]))]
            except EngineError as error:
                self.failure(f"net {widths}", "weight layout", str(error))
                continue
            except Exception as error:
                self.failure(f"net {widths}", "weight layout", f"probing raised {type(error).__name__}: {error}")
                continue
            self.check_layers(widths, letters, layouts)
            self.check_model(widths, letters, layouts)
        return self.records


def engine_name(spec):
    return pathlib.Path(spec).resolve().name if pathlib.Path(spec).is_dir() else str(spec).replace("/", "_")


def examine(spec, seed=0):
    """(records, findings) of the whole lab on a candidate; EngineError if its API is incomplete."""
    modules = load(spec)
    lab = Lab(modules, engine_name(spec), seed)
    lab.run()
    return lab.records, lab.findings()
