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

The rooms: ``checks.loader`` (what a candidate must have), ``checks.configurations``
(which nets), this module (the lab's records and calls, and the order of the stages),
``checks.candidate_layers`` (layout probing, the layer passes), ``checks.candidate_model``
(the model's products), ``checks.candidate_optim`` (the optimizers), ``checks.diagnosis`` (how a
wrong result is named), ``checks.causes`` (causes shown by substitution, conventions),
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

import pathlib

import mpmath
import numpy as np

from ae import numeric
from ae.activations import LeakyReluActivationFunction, from_letter
from checks import (
    candidate_layers,
    candidate_model,
    candidate_optim,
    causes,
    configurations,
    diagnosis,
    findings,
    records,
    remote,
    sandbox,
)
from checks.configurations import LEAKY_ALPHA
from checks.loader import API, MODULES, EngineError, problem_with

__all__ = ["API", "MODULES", "EngineError", "Lab", "examine"]
ACTIVATION_ARGUMENTS = {"k": (LEAKY_ALPHA,)}  # what the candidate's class is constructed with
THRESHOLD = 1e-12  # float64 arithmetic against exact: a few hundred eps of normwise error
FAILED = object()  # what Lab.call returns when the candidate's method raised


def activations_of(module):
    """{our letter: the candidate's class} for the activations it has."""
    found = {}
    for letter, name in findings.ACTIVATIONS.items():
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

    def __init__(self, modules, name, seed=0, activations=None):
        """``modules``: the candidate's modules as ``checks.remote`` proxies (``Session.modules``);
        ``activations``: {letter: class} where already found (a shadow's), else looked up in the worker."""
        self.modules, self.name, self.seed = modules, name, seed
        self.rng = np.random.default_rng(seed)
        self.records = []
        self.activations = activations if activations is not None else activations_of(modules["activations"])
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
                "precision": f"reference {findings.MP_DPS} digits", "seed": self.seed, "stage": stage, "where": where,
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

    def findings(self):
        """Lines, root causes first; a failure an earlier one explains is listed under it."""
        return findings.lines(self.records)

    def summary(self):
        """{stage: pass / fail / not implemented / cannot run} and the root causes, for a class table."""
        cells = {}
        for stage in findings.STAGES:
            found = {r["verdict"] for r in self.records if r["stage"] == stage}
            cells[stage] = next((v for v in ("fail", "not implemented", "pass", "cannot run") if v in found), "-")
        roots = [line for line in self.findings() if not line.startswith(("    ", "cannot run", "note"))]
        return {"stages": cells, "root_causes": roots, "configurations": self.covered()}

    # --- the checks ------------------------------------------------------------------------------

    def check_activations(self):
        X = np.linspace(-4, 4, 24).reshape(4, 6)
        for letter, name in findings.ACTIVATIONS.items():
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
            with mpmath.workdps(findings.MP_DPS):
                X_mp = numeric.to_mp(X)
                for method in ("val", "deriv", "second_deriv"):
                    theirs = self.call("activation", f"{where} {method}", getattr(candidate, method), X.copy())
                    if theirs is not FAILED:
                        self.compare("activation", f"{where} {method}", method, theirs, getattr(ours, method)(X_mp),
                                     hypotheses=diagnosis.other_alphas(X, method) if letter == "k" else ())

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
        causes.confirm_activation_causes(self)
        causes.accept_conventions(self)
        causes.confirm_layer_causes(self)
        causes.name_batch_factors(self)
        return self.records

    def shadow(self, **attributes):
        """A lab on the same candidate and seed, for an examination again with ``attributes`` set
        (``substituted``, ``reference_layers``, ``layouts``): it shares the activations found."""
        lab = Lab(self.modules, self.name, self.seed, self.activations)
        for name, value in attributes.items():
            setattr(lab, name, value)
        return lab

    def letter_of(self, r):
        """The activation letter of a record of the stage "activation" (None for another record)."""
        return self.letter_at.get(" ".join(r["where"].split()[:2])) if r["stage"] == "activation" else None

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
                    layouts.append(candidate_layers.probe_layout(self, k, shape, config.bias))
                except Exception as error:  # probing degrades: this layer is left out, the rest is examined
                    reason = (f"probing found that {error}" if isinstance(error, EngineError) else
                              f"probing: {error}" if isinstance(error, remote.WorkerFailure) else
                              f"probing raised {type(error).__name__}: {error}")
                    verdict = error.verdict if isinstance(error, remote.WorkerFailure) else "fail"
                    self.failure("layout", f"layer {k}", "weight layout", reason, k, verdict=verdict)
                    layouts.append(None)
            self.layouts[config.label] = layouts
            self.guarded(candidate_layers.check, self, widths, letters, layouts)
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
        self.guarded(candidate_model.check, self, widths, letters, layouts)
        if config.optimizers:  # a few epochs of each optimizer
            self.guarded(candidate_optim.check, self, widths, letters, layouts)

    def covered(self):
        """[{net, covers}]: the configurations examined and what part of the API each exercised."""
        return [{"net": label, "covers": config.covers()} for label, config in self.configs.items()]


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
