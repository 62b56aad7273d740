"""The lab on another implementation of the assignment's API (``python -m checks --engine``).

A candidate is a package, or a folder of the course template's four modules
that import each other by bare name (``activations``, ``layers``, ``ffnet``,
``autoencoder``).  Most are float64 only, so the reference is this project's
engine at 50 digits, built with the same architecture and the same weights;
the candidate's own weight layout is discovered by probing ``set_weights``
with unit vectors (any order of W, W^T and a bias column or vector; a layer
that ignores ``use_bias`` is probed without one and said so), never assumed.
The nets are ``checks.configurations.COVERING``: together they cover every
activation (LeakyReLU with alpha 0.3), layers with and without bias, square
and non-square layers, depths 1 to 4 and batches of one, two and more objects
than the widest layer; the records' summary lists what each net covered.
Checked, each against its 50-digit reference, in the order a result depends
on the ones before it:

* every activation the candidate has (val, deriv, second_deriv): a value is
  always compared (a scalar that broadcasts to the right values is a note);
* every layer's four passes, each on a fresh layer object that ran only the
  passes it needs (forward; backward: dL/dinputs, dW, db; Rp_forward;
  Rp_backward: R{dL/dinputs}, R{dW}, R{db}), so state left by another pass can
  neither cause nor hide a finding; a pass that changes the state an earlier
  pass stored (an Rp_forward overwriting the stored input) is named;
* the whole model: loss, gradient, and Hv and GNv in every call order the API
  allows (GNv before any Hv, GNv with a direction other than the last Hv's,
  Hv twice, Hv after GNv, products after ``compute_loss`` on other data), and
  ``get_activations`` of every layer;
* ``checks.verify`` on the model's loss, gradient and Hv of the two largest
  nets (float64, and the complex step where the candidate computes in
  complex: mpmath numbers do not cross to its worker);
* its optimizers, a few full-batch epochs on the 5-3-5 net
  (``checks.candidate_optim``).

The lab never imports the candidate's code: ``checks.worker`` does, in a
process of its own started by ``checks.sandbox``, and the lab holds proxies
(``checks.remote``) whose calls cross a pipe (``checks.channel``), so the
candidate can neither patch the lab's comparisons nor its numpy.

The rooms: ``checks.configurations`` (which nets), this module (loading,
layout probing, the layer passes, the model's products), ``checks.candidate_optim``
(the optimizers), ``checks.diagnosis`` (how a wrong result is named),
``checks.findings`` (what is said, from the records).

A wrong result is diagnosed against the classic hypotheses: a constant
factor (N, 1/N, 2, 1/2, -1, ...; at a batch of two a factor 2 is named N only
where a larger batch shows it is N), the reference transposed, a missing term
of the pass's formula, W for W^T in a square layer, the activation applied
twice, the layers' blocks of a flat vector in another order, the values of an
earlier call, a product right before a call and wrong after it (state that
call leaves), agreement to float32 precision only.  Findings come root cause
first: a failure that an earlier failure explains is listed under it.  For
a wrong activation that is shown, not inferred: every net that uses it is
examined again with ae's activation in its place (in the candidate's worker);
what then passes follows from it, what still fails is a root of its own.
Otherwise the order of dependence decides (a layer's backward pass under the
model's gradient; an activation's method under what calls it).  Per-layer
scaling that the model undoes (dividing by N inside each layer) is a note,
not a failure.  A missing method, an exception
(named at the innermost line of the candidate's own files), an argument
changed in place, a crash of its worker, a call that does not answer within
the time limit, an answer that cannot be read (too large, not numbers): each
is a finding, never a crash of the lab.  What the candidate prints is kept
apart (``examine``'s output), never mixed into the lab's.
"""

import itertools
import pathlib
import re

import mpmath
import numpy as np

import ae
from ae import numeric
from ae.activations import LeakyReluActivationFunction, from_letter
from checks import candidate_optim, configurations, diagnosis, findings, records, remote, sandbox
from checks.configurations import LEAKY_ALPHA
from checks.findings import ACTIVATIONS, MP_DPS, STAGES
from checks.loader import API, MODULES, EngineError, problem_with
from checks.verify import VerifyError, verify

__all__ = ["API", "MODULES", "EngineError", "Lab", "examine"]
ACTIVATION_ARGUMENTS = {"k": (LEAKY_ALPHA,)}  # what the candidate's class is constructed with
THRESHOLD = 1e-12  # float64 arithmetic against exact: a few hundred eps of normwise error
FAILED = object()  # what Lab.call returns when the candidate's method raised
def activations_of(module):
    """{our letter: the candidate's class} for the activations it has."""
    found = {}
    for letter, name in ACTIVATIONS.items():
        for attr in dir(module):
            cls = getattr(module, attr)
            if (remote.is_class(cls) and name.lower() in attr.lower() and ("leaky" in attr.lower()) == (letter == "k")
                    and all(callable(getattr(cls, m, None)) for m in ("val", "deriv", "second_deriv"))):
                found[letter] = cls
                break
    return found


def reference_activation(letter):
    """ae's activation for a letter, LeakyReLU with the alpha the candidate's class is given."""
    return LeakyReluActivationFunction(LEAKY_ALPHA) if letter == "k" else from_letter(letter)


class Lab:
    """Runs the checks on one candidate and collects records; ``findings()`` says what failed, root first."""

    def __init__(self, modules, name, seed=0):
        """``modules``: the candidate's modules as ``checks.remote`` proxies (``Session.modules``)."""
        self.modules, self.name, self.seed = modules, name, seed
        self.rng = np.random.default_rng(seed)
        self.records = []
        self.activations = activations_of(modules["activations"])
        self.substituted = set()  # letters whose activation is ae's, in the candidate's worker
        self.reference_layers = None  # the batch power ae's layers stand in with, in place of the candidate's
        self.layouts = {}  # label -> the probed (perm, bias) of each layer of the net
        self.layer_convention = {}  # label -> the name of the per-layer factor accepted as a convention
        self.layer_factor = {}  # label -> (factor, name) that the failing layer records share
        self.letter_at = {}  # "activation <class name>" -> its letter
        self.net = None  # the label of the net being examined, for the records
        self.config = None  # ... and its configuration
        self.configs = {}  # label -> configuration of every net examined
        self.judged = {}  # id(record) -> (theirs, exact, n, matrix, hypotheses) of a failed comparison

    # --- records ---------------------------------------------------------------------------------

    def context(self, stage, where, layer=None, **fields):
        return {"engine": self.name, "net": self.net, "letters": self.config.letters if self.config else None,
                "dtype": "float64",
                "precision": f"reference {MP_DPS} digits", "seed": self.seed, "stage": stage, "where": where,
                "layer": layer, **fields}

    def compare(self, stage, where, part, theirs, exact, layer=None, matrix=None, hypotheses=(), n=None):
        """A verdict: normwise relative error of the candidate's value against the exact one, and a
        diagnosis when it is wrong.  A value of another shape is compared where it broadcasts."""
        exact = numeric.to_float64(np.asarray(exact))
        try:
            theirs = np.asarray(theirs, dtype=float)
        except (TypeError, ValueError):
            self.failure(stage, where, part, f"returned {type(theirs).__name__} {str(theirs)[:60]!r}, not numbers",
                         layer)
            return
        note = None
        if theirs.shape != exact.shape:
            try:
                broadcast = np.broadcast_to(theirs, exact.shape)
            except ValueError:
                explained = next((sentence for sentence, alternative in hypotheses  # of the shape it has
                                  if np.shape(alternative) == theirs.shape and diagnosis.close(
                                      theirs.ravel(), numeric.to_float64(np.asarray(alternative)).ravel())), None)
                self.failure(stage, where, part, f"shape {theirs.shape}, expected {exact.shape}", layer)
                self.records[-1]["diagnosis"] = explained
                return
            note = f"returns shape {theirs.shape} where {exact.shape} is expected; compared broadcast"
            theirs = np.array(broadcast)
        scale = np.linalg.norm(exact)
        error = np.linalg.norm(theirs - exact) / scale if scale > 0 else np.linalg.norm(theirs)
        fields = {"note": note} if note else {}
        record = records.verdict("engine", part, error, THRESHOLD, self.context(stage, where, layer), **fields)
        if record["verdict"] == "fail":
            hypotheses = tuple((s, numeric.to_float64(np.asarray(a))) for s, a in hypotheses)
            record["diagnosis"], record["factor"], record["residual"] = diagnosis.diagnose_with_residual(
                theirs, exact, n, matrix, hypotheses)
            if record["diagnosis"] is None and error <= diagnosis.SINGLE:
                record["diagnosis"] = diagnosis.SINGLE_SENTENCE
            record["batch"] = n
            self.judged[id(record)] = (theirs, exact, n, matrix, hypotheses)
        self.records.append(record)

    def failure(self, stage, where, part, reason, layer=None, verdict="fail"):
        record = records.cannot_run("engine", part, reason, self.context(stage, where, layer))
        record.update(verdict=verdict, measured=None, threshold=THRESHOLD)
        self.records.append(record)

    def call(self, stage, where, fn, *args, layer=None, record=True, **keywords):
        """fn(*args, **keywords) in the candidate's worker, noting an exception (then FAILED is returned: "not
        implemented" for NotImplementedError), an argument changed in place, a crash, a time-out or an
        answer that cannot be read.  ``record=False``: a prerequisite of the pass examined, whose own
        failure is recorded elsewhere."""
        try:
            result, facts = remote.call(fn, *args, **keywords)
        except remote.WorkerFailure as failure:
            if record:
                self.failure(stage, where, failure.quantity, failure.reason, layer, verdict=failure.verdict)
            return FAILED
        except remote.CandidateError as error:
            if not record:
                return FAILED
            frame = error.frame
            name = getattr(fn, "__qualname__", getattr(fn, "__name__", "?"))
            at = f" ({frame[0]})" if frame else ""
            if frame and frame[1] != name.split(".")[-1]:
                at += f", reached from {name}"
            if isinstance(error, NotImplementedError):
                inner = name if not frame or frame[1] == name.split(".")[-1] else frame[1]
                self.failure(stage, where, "not implemented", f"not implemented: {inner}{at}", layer,
                             verdict="not implemented")
            else:
                self.failure(stage, where, "raised", f"raised {type(error).__name__}: {error}{at}", layer)
            return FAILED
        for k in facts["changed"]:
            self.failure(stage, where, f"argument {k + 1} changed in place", "the caller's array was modified", layer)
        return result

    def accept_conventions(self):
        """Per-layer scaling that the model undoes is the candidate's convention, not an error, judged per
        component: when the failing dW, db, R{dW}, R{db} that carry a factor all carry one and the same and
        the model's gradient is right (its net turns the factor into the right gradient; where another bug
        breaks that gradient, ``confirm_layer_causes`` shows it on ae's layers given the same factor), those
        records become notes; every other layer record of those quantities is judged again with the factor
        taken out, so a bug of its own is named at its place, with the figure it has without the convention.
        Where rounding remains once the factor is removed (a float32 pass), a record stays a failure whose
        figure is that remainder."""
        for net in {r["net"] for r in self.records}:
            mine = [r for r in self.records if r["net"] == net]
            scaled = [r for r in mine if r["stage"] in ("backward", "Rp_backward") and r["verdict"] == "fail"
                      and r["quantity"] in ("dW", "db", "R{dW}", "R{db}")]
            factors = {round(r["factor"], 12) for r in scaled if r.get("factor")}
            if len(factors) != 1:
                continue
            factor, columns = factors.pop(), self.configs[net].layer_batch
            # a factor 1/columns (or columns) is the layer's own 1/N (N), whatever N is
            name = ("1/N" if abs(factor * columns - 1) <= diagnosis.NAMED_FACTOR else
                    "N" if abs(factor / columns - 1) <= diagnosis.NAMED_FACTOR else
                    diagnosis.factor_name(factor, columns)[0] or f"{factor:.6g}")
            self.layer_factor[net] = (factor, name)
            if any(r["where"] == "model" and r["quantity"] == "gradient" and r["verdict"] == "pass" for r in mine):
                self.take_out_convention(net)

    def take_out_convention(self, net):
        """The records of a net's layers judged with its per-layer factor taken out (``accept_conventions``)."""
        factor, name = self.layer_factor[net]
        columns = self.configs[net].layer_batch
        self.layer_convention[net] = name
        scaled = [r for r in self.records if r["net"] == net and r["stage"] in ("backward", "Rp_backward")
                  and r["verdict"] == "fail" and r["quantity"] in ("dW", "db", "R{dW}", "R{db}")]
        convention = (f"{name} times the reference inside each layer (batch of {columns} columns), "
                      "undone by the model (it makes the right gradient of them): the implementation's "
                      "convention, not an error")
        for r in scaled:
            if not r.get("factor"):  # wrong for a reason of its own: judged without the convention
                if id(r) not in self.judged:  # of another shape: said as it is
                    continue
                theirs, exact, n, matrix, hypotheses = self.judged[id(r)]
                theirs = theirs / factor
                r["measured"] = float(np.linalg.norm(theirs - exact) / (np.linalg.norm(exact) or 1))
                r["diagnosis"], _, r["residual"] = diagnosis.diagnose_with_residual(
                    theirs, exact, n, matrix, hypotheses)
                if r["residual"] is None:
                    r["residual"] = r["measured"]
            elif round(r["factor"], 12) != factor:
                continue
            if (r["measured"] if r.get("factor") is None else r["residual"]) <= r["threshold"]:
                r["verdict"], r["reason"] = "note", convention
                r["diagnosis"] = None
            else:  # what remains is float32 rounding, or a finding of its own
                if r.get("factor"):
                    r["diagnosis"] = diagnosis.SINGLE_SENTENCE if r["residual"] <= diagnosis.SINGLE else None
                r["note"] = convention
                r["convention"] = f"{name} times the reference inside each layer"
                if not r["diagnosis"]:
                    r["reason"] = f"differs from the reference once the convention ({r['convention']}) is taken out"

    def name_batch_factors(self):
        """A factor 2 (1/2) at a batch of two is named as the same place's factor in a larger batch is: N
        (1/N) when there it is N (1/N), so one cause is one line."""
        named = {(r["where"], r["quantity"]): r["diagnosis"] for r in self.records
                 if r["verdict"] == "fail" and str(r.get("diagnosis")).startswith(("is N times", "is 1/N times"))}
        for r in self.records:
            if (r["verdict"] == "fail" and r.get("batch") == 2 and (r["where"], r["quantity"]) in named
                    and str(r.get("diagnosis")).startswith(("is 2 times", "is 1/2 times"))
                    and named[r["where"], r["quantity"]].startswith("is N" if r["factor"] == 2 else "is 1/N")):
                r["diagnosis"] = named[r["where"], r["quantity"]]

    def findings(self):
        """Lines, root causes first; a failure an earlier one explains is listed under it."""
        return findings.lines(self.records)

    def summary(self):
        """{stage: pass / fail / not implemented / cannot run} and the root causes, for a class table."""
        cells = {}
        for stage in STAGES:
            found = {r["verdict"] for r in self.records if r["stage"] == stage}
            cells[stage] = next((v for v in ("fail", "not implemented", "pass", "cannot run") if v in found), "-")
        roots = [line for line in self.findings() if not line.startswith(("    ", "cannot run", "note"))]
        return {"stages": cells, "root_causes": roots, "configurations": self.covered()}

    # --- the checks ------------------------------------------------------------------------------

    def check_activations(self):
        X = np.linspace(-4, 4, 24).reshape(4, 6)
        for letter, name in ACTIVATIONS.items():
            if letter not in self.activations:
                self.records.append(records.cannot_run("engine", "activation", f"no {name} activation class",
                                                       self.context("activation", f"activation {name}")))
                continue
            cls = self.activations[letter]
            where = f"activation {cls.__name__}"
            self.letter_at[where] = letter
            candidate = self.call("activation", where, cls, *ACTIVATION_ARGUMENTS.get(letter, ()))
            if candidate is FAILED:
                continue
            ours = reference_activation(letter)
            with mpmath.workdps(MP_DPS):
                X_mp = numeric.to_mp(X)
                for method in ("val", "deriv", "second_deriv"):
                    theirs = self.call("activation", f"{where} {method}", getattr(candidate, method), X.copy())
                    if theirs is not FAILED:
                        self.compare("activation", f"{where} {method}", method, theirs, getattr(ours, method)(X_mp),
                                     hypotheses=diagnosis.other_alphas(X, method) if letter == "k" else ())

    def layout(self, index, shape, use_bias=True):
        """(where each entry of the candidate's flat block sits in ours, whether the layer has a bias).

        Probed with unit vectors, so W, W^T, a bias column or a bias vector in any order is found; a
        layer whose get_params_number() ignores use_bias=True is probed without a bias (a note); one that
        counts a bias with use_bias=False is a failure, probed with the bias it keeps.
        """
        n_in, n_out = shape
        linear = self.activations.get("l") or self.modules["stand_ins"].LinearActivationFunction
        layer = self.modules["layers"].FCLayer(shape, linear(), use_bias=use_bias)
        size = layer.get_params_number()
        if size == n_out * (n_in + 1):
            bias = True
            if not use_bias:
                self.failure("layout", f"layer {index}", "use_bias",
                             "the layer keeps a bias with use_bias=False (get_params_number() counts one)", index)
        elif size == n_out * n_in:
            bias = False
            if use_bias:
                self.failure("layout", f"layer {index}", "use_bias", "the layer ignores use_bias=True "
                             "(get_params_number() counts no bias); examined without one", index, verdict="note")
        else:
            raise EngineError(f"get_params_number() is {size}; a {n_in}->{n_out} layer has "
                              f"{n_out * (n_in + 1)} with a bias, {n_out * n_in} without")
        probe = np.hstack([np.eye(n_in), np.zeros((n_in, 1))])  # unit inputs, then zero input
        ours = np.empty(size, dtype=int)
        for k in range(size):
            unit = np.zeros(size)
            unit[k] = 1
            layer.set_weights(unit)
            U = np.asarray(layer.forward(probe.copy()), dtype=float)
            b = U[:, n_in]
            W = U[:, :n_in] - b[:, None]
            if bias and np.count_nonzero(b) == 1 and not W.any():
                ours[k] = n_in * n_out + int(np.flatnonzero(b)[0])
            elif np.count_nonzero(W) == 1 and not b.any():
                o, i = np.argwhere(W)[0]
                ours[k] = o * n_in + i
            else:
                raise EngineError(f"set_weights with unit vector {k} does not set one weight or bias")
        if sorted(ours) != list(range(size)):
            raise EngineError("two entries of the weight vector set the same weight")
        return ours, bias

    def check_layers(self, widths, letters, layouts):
        for k, (shape, letter, found) in enumerate(zip(zip(widths, widths[1:]), letters, layouts)):
            if found is not None:
                self.check_layer(k, shape, letter, *found)

    def check_layer(self, k, shape, letter, perm, bias):
        n_in, n_out = shape
        where = f"layer {k}"
        size = len(perm)
        w_ours, p_ours = self.rng.standard_normal((2, size)) * 0.7
        columns = self.config.layer_batch
        Z, RZ = self.rng.standard_normal((2, n_in, columns))
        D, RD = self.rng.standard_normal((2, n_out, columns))
        with mpmath.workdps(MP_DPS):
            mp = numeric.to_mp
            ours = ae.FCLayer(shape, reference_activation(letter), use_bias=bias)
            ours.set_weights(mp(w_ours))
            ours.set_direction(mp(p_ours))
            out = ours.forward(mp(Z))
            dZ, dW = ours.backward(mp(D))
            Rout = ours.Rp_forward(mp(RZ))
            RdZ, RdW = ours.Rp_backward(mp(RD))
            terms = self.formula_terms(ours, mp(Z), mp(RZ), mp(D), mp(RD), n_in * n_out)
        # each pass on a fresh object that ran only what it needs: no state of another pass leaks in
        prerequisites = {"forward": [], "backward": [("forward", Z)], "Rp_forward": [("forward", Z)],
                         "Rp_backward": [("forward", Z), ("backward", D), ("Rp_forward", RZ)]}
        expected = {"forward": [("outputs", out)], "backward": [("dL/dinputs", dZ), ("weights", dW)],
                    "Rp_forward": [("R{outputs}", Rout)], "Rp_backward": [("R{dL/dinputs}", RdZ), ("weights", RdW)]}
        arguments = {"forward": Z, "backward": D, "Rp_forward": RZ, "Rp_backward": RD}
        for name in ("forward", "backward", "Rp_forward", "Rp_backward"):
            layer = self.new_layer(name, where, shape, letter, k, bias)
            # `is`, never `in`: a setter may return an array, and `FAILED in (array,)` compares with ==
            if layer is FAILED or any(result is FAILED for result in (
                    self.call(name, f"{where} set_weights", layer.set_weights, w_ours[perm], layer=k),
                    self.call(name, f"{where} set_direction", layer.set_direction, p_ours[perm], layer=k))):
                return
            ready, changed = True, []
            for before, argument in prerequisites[name]:
                state = remote.held_arrays(layer)
                if self.call(name, f"{where} {before}", getattr(layer, before), argument.copy(), layer=k,
                             record=False) is FAILED:
                    self.records.append(records.cannot_run("engine", name, f"{before} raised first",
                                                           self.context(name, f"{where} {name}", k)))
                    ready = False
                    break
                if before == "Rp_forward":  # R-forward must leave what forward and backward stored
                    after = remote.held_arrays(layer)
                    changed = [a for a, v in state.items() if a in after and not _same_array(after[a], v)]
            if not ready:
                continue
            result = self.call(name, f"{where} {name}", getattr(layer, name), arguments[name].copy(), layer=k)
            if result is FAILED:
                if changed:
                    self.state_finding(k, where, changed)
                continue
            values = [result] if len(expected[name]) == 1 else list(result)
            before = len(self.records)
            for (label, exact), value in zip(expected[name], values):
                self.compare_pass(name, where, k, label, value, exact, perm, n_in, n_out, terms)
            if changed and any(r["verdict"] == "fail" for r in self.records[before:]):
                self.state_finding(k, where, changed)

    def new_layer(self, stage, where, shape, letter, k, bias=True):
        """The candidate's FCLayer(shape, its activation, use_bias=bias), both constructors called with
        their prints kept and their exceptions recorded; FAILED if either raised.  Where the lab stands
        ae's layers in (``reference_layers``), ae's layer in the candidate's probed layout."""
        if self.reference_layers is not None:
            perm, probed_bias = self.layouts[self.net][k]
            return self.call(stage, where, self.modules["stand_ins"].ReferenceLayer, shape, letter,
                             ACTIVATION_ARGUMENTS.get(letter, ()), probed_bias, [int(i) for i in perm],
                             self.reference_layers, layer=k)
        cls = (self.modules["stand_ins"].ReferenceActivation if letter in self.substituted
               else self.activations[letter])
        arguments = ((letter,) if letter in self.substituted else ()) + ACTIVATION_ARGUMENTS.get(letter, ())
        activation = self.call(stage, f"{where} activation", cls, *arguments, layer=k)
        if activation is FAILED:
            return FAILED
        return self.call(stage, where, self.modules["layers"].FCLayer, shape, activation, bias, layer=k)

    def state_finding(self, k, where, changed):
        self.failure("Rp_forward", f"{where} Rp_forward", "state",
                     f"Rp_forward changes the stored {', '.join(changed)} that Rp_backward reads", k)

    def compare_pass(self, name, where, k, label, value, exact, perm, n_in, n_out, terms):
        prefix, close = ("R{d", "}") if name.startswith("Rp") else ("d", "")
        if label != "weights":
            self.compare(name, f"{where} {name}", label, value, exact, k, hypotheses=terms.get(label, ()),
                         n=self.config.layer_batch)
            return
        block = np.empty(len(perm))  # the candidate's block, put in our layout, split into W and b
        flat = np.asarray(value, dtype=float).ravel()
        if flat.size != len(perm):
            self.failure(name, f"{where} {name}", "weights", f"{flat.size} entries, the layer has {len(perm)}", k)
            return
        block[perm] = flat
        exact = numeric.to_float64(np.asarray(exact))
        m = n_in * n_out
        self.compare(name, f"{where} {name}", f"{prefix}W{close}", block[:m], exact[:m], k, matrix=(n_out, n_in),
                     hypotheses=terms.get(f"{prefix}W{close}", ()), n=self.config.layer_batch)
        if len(perm) > m:
            self.compare(name, f"{where} {name}", f"{prefix}b{close}", block[m:], exact[m:], k,
                         n=self.config.layer_batch,
                         hypotheses=terms.get(f"{prefix}b{close}", ()))

    @staticmethod
    def formula_terms(ours, Z, RZ, D, RD, m):
        """{part: [(sentence, the pass's formula with one term left out)]}: the missing-term hypotheses."""
        U, RU = ours.get_preactivations()
        g1, g2 = ours.afun.deriv(U), ours.afun.second_deriv(U)
        W, PW = ours.W, ours.P_W
        bias = ours.P_b if ours.use_bias else 0
        dU = D * g1
        RdU = RD * g1 + D * g2 * RU
        RdU_first = RD * g1  # R{dU} without its second-order term g''(u) (dL/dz) R{u}
        second = "lacks the second-order term g''(u) dL/dz R{u} of R{dU} = g'(u) R{dL/dz} + g''(u) dL/dz R{u}"
        terms = {
            "outputs": [("applies the activation twice: g(g(u))", ours.afun.val(ours.afun.val(U)))],
            "R{dW}": [("lacks the term dU (R z)^T of R{dW} = R{dU} z^T + dU (R z)^T", (RdU @ Z.T).ravel()),
                      ("lacks the term R{dU} z^T of R{dW} = R{dU} z^T + dU (R z)^T", (dU @ RZ.T).ravel()),
                      (second, (RdU_first @ Z.T + dU @ RZ.T).ravel())],
            "R{db}": [(second, RdU_first.sum(axis=1))],
            "R{dL/dinputs}": [("lacks the term P_W^T dU of R{dL/dinputs} = W^T R{dU} + P_W^T dU", W.T @ RdU),
                              ("lacks the term W^T R{dU} of R{dL/dinputs} = W^T R{dU} + P_W^T dU", PW.T @ dU),
                              (second, W.T @ RdU_first + PW.T @ dU)],
            "R{outputs}": [("lacks the bias direction P_b in R{u} = P_W z + W R{z} + P_b", g1 * (PW @ Z + W @ RZ)),
                           ("lacks the term P_W z of R{u} = P_W z + W R{z} + P_b",
                            g1 * (W @ RZ + bias))],
        }
        if W.shape[0] == W.shape[1]:  # a square layer takes W for W^T without a shape error
            terms["dL/dinputs"] = [("uses W where W^T belongs in dL/dinputs = W^T dU", W @ dU)]
            terms["R{outputs}"].append(("uses P_W^T where P_W belongs in R{u} = P_W z + W R{z} + P_b",
                                        g1 * (PW.T @ Z + W @ RZ + bias)))
        return terms

    def check_model(self, widths, letters, layouts):
        biases = [bias for _, bias in layouts]
        layers = [self.new_layer("model", f"layer {k}", shape, g, k, bias)
                  for k, (shape, g, bias) in enumerate(zip(zip(widths, widths[1:]), letters, biases))]
        if any(layer is FAILED for layer in layers):
            return
        model = self.call("model", "model", self.modules["autoencoder"].Autoencoder, layers)
        if model is FAILED:
            return
        setter = getattr(model, "set_weights", None) or getattr(getattr(model, "net", None), "set_weights", None)
        if setter is None:
            self.failure("model", "model", "set_weights", "neither the model nor model.net has set_weights")
            return
        offsets = np.cumsum([0] + [len(p) for p, _ in layouts])
        perm = np.concatenate([offset + p for offset, (p, _) in zip(offsets, layouts)])  # candidate entry -> ours

        def to_theirs(v):
            return np.asarray(v, dtype=float)[perm]

        def to_ours(v):
            try:
                v = np.asarray(v, dtype=float).ravel()
            except (TypeError, ValueError):
                return v  # compare() says what it is
            if v.size != len(perm):
                return v  # compare() names the wrong length
            out = np.empty(len(perm))
            out[perm] = v
            return out

        ours = ae.Autoencoder([ae.FCLayer(shape, reference_activation(g), use_bias=b)
                               for shape, g, b in zip(zip(widths, widths[1:]), letters, biases)])
        w = ours.init_weights(self.seed) + 0.1 * self.rng.standard_normal(ours.params_number)
        p, q = self.rng.standard_normal((2, ours.params_number))
        # the other data has three more columns (never twice as many): a batch size kept from an earlier
        # compute_loss shows, and is not taken for a factor 2
        X, X2 = self.rng.random((widths[0], self.config.batch)), self.rng.random((widths[0], self.config.batch + 3))
        exact = {}
        with mpmath.workdps(MP_DPS):
            mp = numeric.to_mp
            ours.set_weights(mp(w))
            for data_name, data in (("X", X), ("X2", X2)):
                exact[data_name, "loss"], exact[data_name, "gradient"] = ours.compute_loss(mp(data))
                for d_name, d in (("p", p), ("q", q)):
                    exact[data_name, "Hv", d_name] = ours.compute_hessvec(mp(d))
                    exact[data_name, "GNv", d_name] = ours.compute_gaussnewtonvec(mp(d))
                exact[data_name, "activations"] = [(ours.net.get_activations(k), layer.get_preactivations()[0])
                                                   for k, layer in enumerate(ours.layers)]
        if self.call("model", "model set_weights", setter, to_theirs(w)) is FAILED:
            return
        result = self.call("model", "model compute_loss", model.compute_loss, X.copy())
        if result is FAILED:
            return
        n = X.shape[1]
        sizes = [len(p) for p, _ in layouts]

        def block_orders(value):  # the layers' blocks of a flat vector in another order
            blocks = np.split(to_theirs(value), np.cumsum(sizes)[:-1])
            return [(f"holds the layers' blocks in the order {', '.join(map(str, order))}",
                     to_ours(np.concatenate([blocks[k] for k in order])))
                    for order in itertools.permutations(range(len(sizes))) if order != tuple(range(len(sizes)))]

        self.compare("model", "model", "loss", np.float64(result[0]), exact["X", "loss"], n=n)
        self.compare("model", "model", "gradient", to_ours(result[1]), exact["X", "gradient"], n=n,
                     hypotheses=block_orders(exact["X", "gradient"]))
        self.name_loss_factor(*self.records[-2:])
        # every call order the API allows (GNv first, before any Hv), each product against its own
        # reference: state left by an earlier call (a GNv reusing the last Hv's R-forward pass, a Hessian
        # state overwritten by GNv, a product at the data before the last compute_loss) shows.  The first
        # Hv follows a fresh compute_loss, so state GNv leaves shows in "Hv after GNv" alone
        directions = {"p": p, "q": q}
        self.call_in_order(model, "X", [("GNv", "GNv", "p")], directions, exact, to_theirs, to_ours, n,
                           block_orders)
        if self.call("model", "model compute_loss", model.compute_loss, X.copy()) is FAILED:
            return
        calls = [("Hv", "Hv", "p"), ("Hv with another direction", "Hv", "q"),
                 ("GNv with a direction other than the last Hv's", "GNv", "p"), ("Hv after GNv", "Hv", "p")]
        self.call_in_order(model, "X", calls, directions, exact, to_theirs, to_ours, n, block_orders)
        if self.call("model", "model compute_loss", model.compute_loss, X2.copy()) is not FAILED:
            self.call_in_order(model, "X2", [("Hv after compute_loss on other data", "Hv", "q"),
                                             ("GNv after compute_loss on other data", "GNv", "p")],
                               directions, exact, to_theirs, to_ours, X2.shape[1], block_orders)
            self.check_activations_of(model, exact["X2", "activations"])
            self.check_refilled_batch(model, X2, exact, to_ours)
        if self.config.verify and self.call("model", "model set_weights", setter, to_theirs(w)) is not FAILED:
            self.verify_model(model, setter, X)

    def call_in_order(self, model, data, calls, directions, exact, to_theirs, to_ours, n, block_orders):
        """The products in the order of ``calls``; a product wrong after a call and right before it (the
        same product, direction and data) is diagnosed as state that call leaves."""
        passed, previous = {}, None
        for label, quantity, direction in calls:
            method = model.compute_gaussnewtonvec if quantity == "GNv" else model.compute_hessvec
            value = self.call("model", f"model {method.__name__}", method, to_theirs(directions[direction]))
            if value is FAILED:
                continue
            # the classic state bugs, as hypotheses: another direction's values, the other product
            other = "q" if direction == "p" else "p"
            hypotheses = [(f"equals the {quantity} of the direction of an earlier call", exact[data, quantity, other]),
                          (f"equals the {'Hv' if quantity == 'GNv' else 'GNv'} of this direction",
                           exact[data, "Hv" if quantity == "GNv" else "GNv", direction])]
            if data == "X2":
                hypotheses += [("equals the value at the data of the previous compute_loss",
                                exact["X", quantity, direction]),
                               *self.stale_batch(exact[data, quantity, direction], n)]
            hypotheses += block_orders(exact[data, quantity, direction])
            self.compare("model", "model", label, to_ours(value), exact[data, quantity, direction],
                         hypotheses=hypotheses, n=n)
            record = self.records[-1]
            if record["verdict"] == "pass":
                passed.setdefault((quantity, direction), label)
            elif (quantity, direction) in passed and not record.get("diagnosis"):
                record["diagnosis"] = (f"is wrong only after the call before it ({previous}); right as "
                                       f"{passed[quantity, direction]!r}: that call leaves state {quantity} reads")
            previous = label

    def name_loss_factor(self, loss, gradient):
        """A wrong loss is c times the reference where its gradient is: one number alone is a multiple of any
        other, so only the gradient can say that c is a factor."""
        c = gradient.get("factor")
        if loss["verdict"] != "fail" or loss.get("diagnosis") or not c or id(loss) not in self.judged:
            return
        theirs, exact = (np.ravel(a) for a in self.judged[id(loss)][:2])
        if diagnosis.close(theirs, c * exact):
            loss["diagnosis"], loss["factor"], loss["residual"] = (gradient["diagnosis"], c,
                                                                   diagnosis.distance(theirs, c * exact))

    def stale_batch(self, value, n):
        """[The hypothesis that a result at a batch of ``n`` columns divides by the N of the first
        compute_loss (the net's batch) instead]; none after a batch of one, where it is N times the value
        (the 1/N missing) whatever the cause."""
        first = self.config.batch
        return [(f"divides by the batch size N of an earlier compute_loss ({first}), not this one's ({n})",
                 numeric.to_float64(np.asarray(value)) * n / first)] if first > 1 else []

    def check_refilled_batch(self, model, X2, exact, to_ours):
        """compute_loss on one array object, refilled in place with other data between two calls: the
        second loss and gradient are those of the new contents."""
        n2 = X2.shape[1]
        held = self.call("model", "model compute_loss", self.modules["stand_ins"].HeldBatch, X2[:, ::-1].copy(),
                         record=False)  # its columns in another order: other data of the same shape
        if held is FAILED or self.call("model", "model compute_loss", held.compute_loss, model) is FAILED:
            return
        if self.call("model", "model compute_loss", held.refill, X2, record=False) is FAILED:
            return
        result = self.call("model", "model compute_loss", held.compute_loss, model)
        if result is FAILED:
            return
        fresh = self.call("model", "model compute_loss", model.compute_loss, X2.copy(), record=False)
        for k, quantity in enumerate(("loss", "gradient")):
            value = np.float64(result[0]) if k == 0 else to_ours(result[1])
            self.compare("model", "model", f"{quantity} on the same array refilled in place", value,
                         exact["X2", quantity], hypotheses=self.stale_batch(exact["X2", quantity], n2), n=n2)
            record = self.records[-1]
            again = np.ravel(np.float64(fresh[0]) if k == 0 else to_ours(fresh[1])) if fresh is not FAILED else None
            right = np.ravel(numeric.to_float64(np.asarray(exact["X2", quantity])))
            if (record["verdict"] == "fail" and not record.get("diagnosis") and again is not None
                    and again.shape == right.shape and diagnosis.close(again, right)):
                record["diagnosis"] = ("is wrong on an array refilled in place with new data, right on a fresh "
                                       "array of the same values: a result kept by the array's identity (id()), "
                                       "not its values")

    def check_activations_of(self, model, activations):
        """FFNet.get_activations(k) after the last forward pass: the outputs z of layer k."""
        net = getattr(model, "net", model)
        if not hasattr(net, "get_activations"):
            self.failure("model", "model", "get_activations", "neither the model nor model.net has get_activations")
            return
        for k, (exact, preactivations) in enumerate(activations):
            value = self.call("model", "model get_activations", net.get_activations, k)
            if value is not FAILED:
                hypotheses = [("returns the pre-activations u, not the outputs z = g(u)", preactivations)]
                if k + 1 < len(activations):
                    hypotheses.append(("returns the outputs of layer k + 1, not of layer k", activations[k + 1][0]))
                self.compare("model", "model", f"get_activations({k})", value, exact, hypotheses=hypotheses)

    def verify_model(self, model, setter, X):
        """checks.verify on the candidate's own loss, gradient and Hv, in its own layout."""
        # set the weights and ask in one round trip; an object array of mpmath numbers raises ChannelError:
        # it is not carried to the worker
        def fun(v):
            return remote.sequence((setter, [v]), (model.compute_loss, [X]))[0]

        def grad(v):
            return remote.sequence((setter, [v]), (model.compute_loss, [X]))[1]

        def hvp(v, p):
            return remote.sequence((setter, [v]), (model.compute_loss, [X]), (model.compute_hessvec, [p]))

        def fun_many(points):  # one round trip for the points of one reference
            calls = [call for v in points for call in ((setter, [v]), (model.compute_loss, [X]))]
            return [loss for loss, _ in remote.sequence(*calls, every=True)[1::2]]

        getter = getattr(model, "get_weights", None) or getattr(model, "net", None).get_weights
        x = np.array(getter(), dtype=float)
        try:
            result = verify(fun, x, grad=grad, hvp=hvp, seed=self.seed, name="model", fun_many=fun_many)
        except VerifyError as error:
            self.failure("verify", "model", "verify", str(error))
            return
        finally:
            self.call("verify", "model set_weights", setter, x, record=False)
        for record in result.records:
            self.records.append({**record, "stage": "verify", "where": f"model ({record['check']})",
                                 "layer": None, "engine": self.name, "net": self.net})

    def guarded(self, check, *args):
        """check(*args); an attribute read outside ``call`` (``model.net``) that raises or loses the worker
        ends that check with a finding."""
        try:
            check(*args)
        except remote.WorkerFailure as failure:
            self.failure("model", "model", failure.quantity, failure.reason, verdict=failure.verdict)
        except remote.CandidateError as error:
            self.failure("model", "model", "raised", f"raised {type(error).__name__}: {error}")

    def run(self):
        self.check_activations()
        self.examine_nets(configurations.for_candidate(self.activations))
        self.confirm_activation_causes()
        self.accept_conventions()
        self.confirm_layer_causes()
        self.name_batch_factors()
        return self.records

    def letter_of(self, r):
        """The activation letter of a record of the stage "activation" (None for another record)."""
        return self.letter_at.get(" ".join(r["where"].split()[:2])) if r["stage"] == "activation" else None

    def confirm_activation_causes(self):
        """Causes shown, not inferred: for each activation that failed, every net that uses it is examined
        again with ae's activation in its place (in the candidate's worker).  A later failure that then
        passes follows from that activation (its record lists the letter in ``follows``); one that still
        fails is a root of its own.  The activation's root record is marked ``substituted``."""
        failed = {self.letter_of(r) for r in self.records if r["verdict"] in ("fail", "not implemented")}
        for letter in sorted(g for g in failed if g):
            shadow = Lab(self.modules, self.name, self.seed)
            shadow.activations, shadow.substituted = self.activations, {letter}
            shadow.examine_nets([c for c in configurations.for_candidate(self.activations) if letter in c.letters])
            outcome = {_key(r): r for r in shadow.records}
            for r in self.records:
                again = outcome.get(_key(r), {})
                if self.letter_of(r) == letter:
                    r["substituted"], r["letter"] = True, letter
                elif r["verdict"] in ("fail", "not implemented") and _passes_again(r, shadow.records):
                    r.setdefault("follows", []).append(letter)
                elif r["verdict"] == "fail" and again.get("diagnosis") and not r.get("diagnosis"):
                    # a cause of its own, which the activation's error blurred: named as it shows without
                    # it; the figures stay this record's own
                    r["diagnosis"], r["residual"], r["factor"] = again["diagnosis"], None, None

    def confirm_layer_causes(self):
        """Causes shown, not inferred, for the layers: each net where a layer pass failed is examined again
        (its model products, checks.verify, its optimizers) with ae's layers, in the candidate's layout and
        with its per-layer convention, in place of the candidate's, under the candidate's own FFNet and
        Autoencoder.  A failure of the model that then passes follows from the layers (``follows`` lists
        "layers"); one that still fails is a root of its own.  Where the candidate's model could not run on
        ae's layers at all (its loss not computed), nothing is shown and the dependency order stands."""
        failed = {r["net"] for r in self.records
                  if r["stage"] in findings.LAYER_STAGES and r["verdict"] in ("fail", "not implemented")}
        seen = {name for _, name in self.layer_factor.values()}
        for net in sorted(failed):
            name = self.layer_factor.get(net, (None, None))[1]
            if name is None and self.configs[net].layer_batch == 1 and len(seen) == 1:
                name = next(iter(seen))  # at one column a per-layer 1/N is 1: the other nets show the layer's
            power = {None: 0, "1/N": -1, "N": 1}.get(name)
            if power is None:  # a factor ae's layer cannot take
                continue
            shadow = self.on_reference_layers(net, power)
            if power and net in self.layer_factor and net not in self.layer_convention:
                if any(r["where"] == "model" and r["quantity"] == "gradient" and r["verdict"] == "pass"
                       for r in shadow.records):  # the model makes the right gradient of ae's layers given the
                    self.take_out_convention(net)  # factor: a convention, beside another bug
                else:  # the factor is an error of the layers: their model is examined on ae's own layers
                    shadow = self.on_reference_layers(net, 0)
            if not any(r["where"] == "model" and r["quantity"] == "loss" for r in shadow.records):
                continue
            outcome = {_key(r): r for r in shadow.records}
            for r in self.records:
                again = outcome.get(_key(r), {})
                if r["net"] != net:
                    continue
                if r["stage"] in findings.LAYER_STAGES:
                    r["substituted_layers"] = True
                elif r["verdict"] in ("fail", "not implemented") and _passes_again(r, shadow.records):
                    r.setdefault("follows", []).append("layers")
                elif r["verdict"] in ("fail", "not implemented") and _stand_in_lacking(r, shadow.records):
                    r["unshown"] = _stand_in_lacking(r, shadow.records)
                elif r["verdict"] == "fail" and again.get("diagnosis") and not r.get("diagnosis"):
                    r["diagnosis"], r["residual"], r["factor"] = again["diagnosis"], None, None

    def on_reference_layers(self, net, power):
        """A lab that examined the model of a net on ae's layers (``batch_power``: ``power``)."""
        shadow = Lab(self.modules, self.name, self.seed)
        shadow.activations, shadow.reference_layers, shadow.layouts = self.activations, power, self.layouts
        shadow.examine_model(self.configs[net], self.layouts[net])
        return shadow

    def examine_nets(self, chosen):
        for config in chosen:
            widths, letters = list(config.widths), config.letters
            self.net, self.config = config.label, config
            self.configs[config.label] = config
            if any(g not in self.activations for g in letters):
                self.records.append(records.cannot_run("engine", "model", "no linear activation to stand in",
                                                       self.context("model", f"net {widths}")))
                continue
            layouts = []
            for k, shape in enumerate(zip(widths, widths[1:])):
                try:
                    layouts.append(self.layout(k, shape, config.bias))
                except Exception as error:  # probing degrades: this layer is left out, the rest is examined
                    reason = (f"probing found that {error}" if isinstance(error, EngineError) else
                              f"probing: {error}" if isinstance(error, remote.WorkerFailure) else
                              f"probing raised {type(error).__name__}: {error}")
                    verdict = error.verdict if isinstance(error, remote.WorkerFailure) else "fail"
                    self.failure("layout", f"layer {k}", "weight layout", reason, k, verdict=verdict)
                    layouts.append(None)
            self.layouts[config.label] = layouts
            self.guarded(self.check_layers, widths, letters, layouts)
            self.examine_model(config, layouts)

    def examine_model(self, config, layouts):
        """The model of a net (products, call orders, checks.verify) and, where the net carries them,
        its optimizers."""
        self.net, self.config = config.label, config
        self.configs[config.label] = config
        widths, letters = list(config.widths), config.letters
        if None in layouts:
            self.records.append(records.cannot_run(
                "engine", "model", "the weight layout of a layer could not be probed", self.context("model", "model")))
            return
        self.guarded(self.check_model, widths, letters, layouts)
        if config.optimizers:  # a few epochs of each optimizer
            self.guarded(candidate_optim.check, self, widths, letters, layouts)

    def covered(self):
        """[{net, covers}]: the configurations examined and what part of the API each exercised."""
        return [{"net": label, "covers": config.covers()} for label, config in self.configs.items()]


def _key(r):
    """What identifies a check across two examinations of one candidate."""
    return r["net"], r["stage"], r["where"], r["quantity"], r.get("check")


def _passes_again(r, again):
    """Whether the check of record ``r`` passed in the examination ``again`` (records): its own record
    passed there, or ``r`` is a call that failed (raised, gave nothing to measure) and, there, the same
    call failed in nothing and its stage passed checks in the net."""
    same = [a for a in again if _key(a) == _key(r)]
    if same:
        return all(a["verdict"] == "pass" for a in same)
    if r.get("measured") is not None:  # a check that ran there too, under its own key
        return False
    stage = [a for a in again if a["net"] == r["net"] and a["stage"] == r["stage"]]
    return (any(a["verdict"] == "pass" for a in stage)
            and not any(a["where"] == r["where"] and a["verdict"] in ("fail", "not implemented") for a in stage))


def _stand_in_lacking(r, again):
    """Why the examination ``again`` cannot show whether ``r`` follows: there, its check (or, where it did
    not run, another of its stage) failed because the candidate's code read something of its own layer
    that ae's stand-in does not have (that reason), or None."""
    same = [a for a in again if _key(a) == _key(r)]
    return next((re.sub(r" \(.*$", "", a["reason"]) for a in same or again if a["net"] == r["net"]
                 and a["stage"] == r["stage"] and "'Reference" in str(a.get("reason"))), None)


def _same_array(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def engine_name(spec):
    return pathlib.Path(spec).resolve().name if pathlib.Path(spec).is_dir() else str(spec).replace("/", "_")


def examine(spec, seed=0, limits=None):
    """(records, findings, output, summary) of the whole lab on a candidate, its code run in a worker
    (``checks.remote``) with ``limits`` (``call_seconds`` a call; ``env`` the variables it is given);
    ``output`` is what it printed; ``summary["round_trips"]`` counts the calls that crossed to the worker.
    EngineError if there is no candidate or its API is incomplete."""
    problem = problem_with(spec)
    if problem:
        raise EngineError(problem)
    session = remote.Session(spec, limits or sandbox.Limits())
    try:
        lab = Lab(session.modules, engine_name(spec), seed)
        lab.run()
    finally:
        output = session.close()
    return lab.records, lab.findings(), output, {**lab.summary(), "round_trips": session.round_trips}
