"""The only process that imports a candidate's code: ``python -I -m checks.worker FOLDER_OR_PACKAGE [DIR]``.

(DIR: a folder to search for a package given by name; ``python -I`` leaves the working directory off
sys.path.)  It keeps the channel (``checks.channel``) on private copies of fds 0 and 1 and points fd 1 at
fd 2 and fd 0 at /dev/null, so the candidate's prints go to stderr (which the judge keeps, capped) and
its reads find nothing.  It answers first with the inventory of the candidate (its modules' classes,
their public methods and constructor parameters) or why it has none, then serves the judge's requests:

* ``call``: the method ``name`` of an object (or the object itself: a class constructs) with arguments;
  ``calls``: several in one round trip (the lab's ``verify`` sets the weights, then asks the loss);
* ``get``: an attribute of an object; ``arrays``: the arrays an object holds (its ``vars``);
  ``parameters``: a method's parameter names ("**" for ``**kwargs``), None where they cannot be read.

Numbers, strings and numeric arrays cross by value; any other object stays here and crosses as a
``channel.Handle``.  With each result come the facts that cannot cross as identity: which argument
arrays the call changed in place, which returned arrays share memory with an argument or with an array
the object holds, and what the call printed; with an exception, its type, message and innermost frame in
the candidate's own files.  An answer that cannot be carried is sent as ``malformed`` with the reason.
"""

import ctypes
import inspect
import io
import os
import pathlib
import signal
import sys
import traceback
import types

import numpy as np

from checks import channel, loader

TEXT = 2000  # characters kept of a message, a frame's line, or one call's prints


class Prints(io.TextIOBase):
    """The worker's sys.stdout and sys.stderr: written through to fd 2, the current call's start kept."""

    def __init__(self, real):
        self.real, self.kept = real, []

    def write(self, text):
        self.real.write(text)
        if sum(map(len, self.kept)) < TEXT:
            self.kept.append(text)
        return len(text)

    def flush(self):
        self.real.flush()

    def fileno(self):
        return self.real.fileno()

    @property
    def buffer(self):
        return self.real.buffer

    def take(self):
        self.flush()
        text, self.kept = "".join(self.kept)[:TEXT], []
        return text


class LinearActivationFunction:
    """The lab's stand-in (module ``stand_ins``) where a candidate has no linear activation to probe with."""

    def val(self, X):
        return np.array(X, dtype=float)

    def deriv(self, X):
        return np.ones(np.shape(X))

    def second_deriv(self, X):
        return np.zeros(np.shape(X))


def _numbers(X):
    """X as float64, or complex128 where it is complex (the complex step through a stand-in)."""
    X = np.asarray(X)
    return X.astype(complex) if np.iscomplexobj(X) else X.astype(float)


class ReferenceActivation:
    """ae's activation of a letter in float64, or complex where given complex numbers (module
    ``stand_ins``): put in place of the candidate's, it shows which of the candidate's findings its own
    activation causes."""

    def __init__(self, letter, *arguments):
        from ae.activations import LETTERS

        cls, defaults = LETTERS[letter]
        self.afun = cls(*arguments) if arguments else cls(**defaults)

    def val(self, X):
        return self.afun.val(_numbers(X))

    def deriv(self, X):
        return self.afun.deriv(_numbers(X))

    def second_deriv(self, X):
        return self.afun.second_deriv(_numbers(X))


class ReferenceLayer:
    """ae's FCLayer with ae's activation of a letter, in float64 (complex where given complex numbers),
    presenting the course's layer API in the candidate's weight layout (module ``stand_ins``): ``perm[i]``
    is where entry i of the candidate's flat block sits in ae's; ``batch_power`` -1 (1) gives the weight
    derivatives divided (multiplied) by the batch's N, as a candidate's layer with that convention does.
    Put in place of the candidate's layers, it shows which findings of the candidate's model they cause."""

    def __init__(self, shape, letter, arguments, use_bias, perm, batch_power=0):
        from ae.layers import FCLayer

        self.shape, self.use_bias = tuple(shape), bool(use_bias)
        self.afun = ReferenceActivation(letter, *arguments).afun
        self.layer = FCLayer(self.shape, self.afun, use_bias=self.use_bias)
        self.perm, self.batch_power = np.asarray(perm, dtype=int), batch_power

    def get_params_number(self):
        return len(self.perm)

    def _ours(self, v):
        v = _numbers(v).ravel()
        out = np.empty(len(self.perm), dtype=v.dtype)
        out[self.perm] = v
        return out

    def _theirs(self, block):
        return np.asarray(block)[self.perm] * float(self.layer.inputs.shape[1]) ** self.batch_power

    def get_weights(self):
        return self.layer.get_weights()[self.perm]

    def set_weights(self, w):
        self.layer.set_weights(self._ours(w))

    def set_direction(self, p):
        self.layer.set_direction(self._ours(p))

    def forward(self, inputs):
        return self.layer.forward(_numbers(inputs))

    def backward(self, derivs):
        below, block = self.layer.backward(_numbers(derivs))
        return below, self._theirs(block)

    def Rp_forward(self, Rp_inputs):
        return self.layer.Rp_forward(None if Rp_inputs is None else _numbers(Rp_inputs))

    def Rp_backward(self, Rp_derivs):
        below, block = self.layer.Rp_backward(_numbers(Rp_derivs))
        return below, self._theirs(block)

    def get_activations(self):
        return self.layer.get_activations()


class HeldBatch:
    """A batch kept in the worker and refilled in place between calls (module ``stand_ins``), as a caller
    that reuses one buffer does: a result kept by the array's identity (``id()``), not its values, shows."""

    def __init__(self, X):
        self.X = np.array(X, dtype=float)

    def refill(self, X):
        self.X[...] = X

    def compute_loss(self, model):
        return model.compute_loss(self.X)


def _public_methods(obj):
    kind = obj if isinstance(obj, type) else type(obj)
    return tuple(m for m in dir(kind) if not m.startswith("_") and callable(getattr(kind, m, None)))


def _parameters(cls):
    try:
        return [p for p in inspect.signature(cls).parameters]
    except (TypeError, ValueError):
        return []


def _method_parameters(fn):
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return ["**" if p.kind is p.VAR_KEYWORD else p.name for p in parameters]


class Server:
    def __init__(self, modules, folder, prints):
        self.modules, self.folder, self.prints = modules, folder, prints
        self.objects, self.numbers = {}, {}  # number -> object; id -> number (the objects are kept alive)

    def handle(self, obj):
        number = self.numbers.setdefault(id(obj), len(self.objects) + 1)
        self.objects[number] = obj
        kind = "module" if isinstance(obj, types.ModuleType) else "class" if isinstance(obj, type) else "object"
        name = obj.__name__ if kind != "object" else type(obj).__name__
        return channel.Handle(number, name, kind, _public_methods(obj) if kind != "module" else ())

    def outgoing(self, value):
        """``value`` with every object that does not cross by value replaced by its handle."""
        if value is None or isinstance(value, (bool, int, float, complex, str, np.ndarray, np.generic)):
            return value
        if isinstance(value, (list, tuple)):
            items = [self.outgoing(v) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {self.outgoing(k): self.outgoing(v) for k, v in value.items()}
        return self.handle(value)

    def incoming(self, value):
        return channel.map_leaves(value, self.resolve)

    def resolve(self, leaf):
        if not isinstance(leaf, channel.Handle):
            return leaf
        if leaf.number not in self.objects:
            raise channel.ChannelError(f"no object {leaf.number} in this worker")
        return self.objects[leaf.number]

    def inventory(self):
        modules = {}
        for name, module in self.modules.items():
            classes = {attr: {"handle": self.handle(cls), "parameters": _parameters(cls)}
                       for attr, cls in vars(module).items() if isinstance(cls, type)}
            modules[name] = {"handle": self.handle(module), "classes": classes}
        return {"op": "inventory", "modules": modules, "folder": str(self.folder)}

    def innermost(self, error):
        """[file:line: text, function] of the innermost frame in the candidate's own files, or None."""
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if pathlib.Path(f.filename).resolve().is_relative_to(self.folder)]
        if not frames:
            return None
        f = frames[-1]
        return [f"{pathlib.Path(f.filename).name}:{f.lineno}: {(f.line or '').strip()}"[:TEXT], f.name[:TEXT]]

    def serve(self, request):
        """The reply to one request; ``calls``: a sequence of calls in one round trip, answered by the
        last one's reply (``every``: with the list of every value) or the first that is not a value."""
        if request.get("op") != "calls":
            return self.serve_one(request)
        reply, values = {"op": "malformed", "text": "an empty sequence of calls"}, []
        for item in request.get("calls", ()):
            reply = self.serve_one({**item, "op": "call"})
            if reply["op"] != "value":
                return reply
            values.append(reply["value"])
        return {**reply, "value": values} if request.get("every") and values else reply

    def serve_one(self, request):
        op = request.get("op")
        target = self.incoming(request.get("target"))
        if op == "arrays":
            held = getattr(target, "__dict__", {})
            return {"op": "value", "value": {k: v for k, v in held.items() if isinstance(v, np.ndarray)}}
        if op == "parameters":  # a method's parameter names ("**" for **kwargs), None where unreadable
            return {"op": "value", "value": _method_parameters(getattr(target, str(request["name"]), None))}
        if op not in ("call", "get"):
            raise channel.ChannelError(f"unknown request {op!r}")
        args = self.incoming(list(request.get("args", ())))
        kwargs = {str(k): v for k, v in self.incoming(dict(request.get("kwargs", {}))).items()}
        before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
        self.prints.take()
        try:
            if op == "get":
                value = getattr(target, str(request["name"]))
            else:
                value = (getattr(target, request["name"]) if request.get("name") else target)(*args, **kwargs)
        except BaseException as error:  # SystemExit too: a call that exits is reported, not obeyed
            try:
                text = str(error)[:TEXT]
            except Exception:  # an exception whose message itself raises
                text = "(its message cannot be read)"
            return {"op": "raised", "kind": type(error).__name__, "text": text, "frame": self.innermost(error),
                    "not_implemented": isinstance(error, NotImplementedError), "printed": self.prints.take()}
        changed = [k for k, (a, b) in enumerate(zip(args, before))
                   if b is not None and not (a.shape == b.shape and a.tobytes() == b.tobytes())]
        return {"op": "value", "value": self.outgoing(value), "changed": changed,
                "shares": self.shared(value, args, target), "printed": self.prints.take()}

    @staticmethod
    def shared(value, args, target):
        """[(k, what)]: returned array k (0 for the value itself, else its k-th item) shares memory with
        an argument or an array the object holds."""
        results = [value] if isinstance(value, np.ndarray) else list(value) if isinstance(value, (list, tuple)) else []
        held = {f"argument {k + 1}": a for k, a in enumerate(args) if isinstance(a, np.ndarray)}
        held.update({f"attribute {k}": v for k, v in getattr(target, "__dict__", {}).items()
                     if isinstance(v, np.ndarray)})
        return [[k, what] for k, r in enumerate(results, start=0 if isinstance(value, np.ndarray) else 1)
                if isinstance(r, np.ndarray) for what, a in held.items() if np.may_share_memory(r, a)][:32]


def die_with_the_judge():
    """Linux: the kernel kills this worker when the judge that started it dies (a judge killed for its
    class time limit must not leave a candidate's loop running).  Under bubblewrap, bwrap's
    --die-with-parent does it, and the parent seen from inside its PID namespace is always its pid 1."""
    if os.environ.get("AE_LAB_SANDBOX") == "bwrap":
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the judge died before the request took effect
        os._exit(1)


def private_channel():
    """(reader, writer) of the channel on private copies of fds 0 and 1; fd 1 then writes to fd 2."""
    reader, writer = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = Prints(sys.__stderr__)
    return reader, writer


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    die_with_the_judge()
    reader, writer = private_channel()
    spec = argv[0]
    sys.path += argv[1:]  # where the judge found a package given by name
    try:
        modules = loader.load(spec)
    except loader.EngineError as error:
        channel.send(writer, {"op": "incomplete", "text": str(error)[:channel.MAX_TEXT]})
        return 0
    path = pathlib.Path(spec)
    folder = (path if path.is_dir() else pathlib.Path(modules["layers"].__file__).parent).resolve()
    stand_ins = types.ModuleType("stand_ins")
    stand_ins.LinearActivationFunction = LinearActivationFunction
    stand_ins.ReferenceActivation = ReferenceActivation
    stand_ins.ReferenceLayer = ReferenceLayer
    stand_ins.HeldBatch = HeldBatch
    server = Server({**modules, "stand_ins": stand_ins}, folder, sys.stdout)
    channel.send(writer, server.inventory())
    while True:
        try:
            request = channel.receive(reader)
        except channel.ChannelClosed:
            return 0
        if request.get("op") == "bye":
            return 0
        try:
            reply = server.serve(request)
            channel.send(writer, reply)
        except channel.ChannelError as error:
            channel.send(writer, {"op": "malformed", "text": str(error)[:TEXT]})
        except Exception as error:  # the candidate's objects misbehaved outside a call (a describing getattr)
            channel.send(writer, {"op": "malformed", "text": f"the worker could not answer: {type(error).__name__}: "
                                                             f"{str(error)[:TEXT]}"})


if __name__ == "__main__":
    sys.exit(main())
