"""The judge's side of a candidate's worker: proxies of its modules, classes and objects.

``Session(spec, limits)`` starts ``checks.worker`` on the candidate with ``checks.sandbox.start`` and
reads its inventory; ``session.modules`` are proxies of its four modules, whose classes construct
proxies of objects, whose methods run in the worker (``Remote``).  Every call has ``limits.call_seconds``
to answer: a call that does not is a ``WorkerFailure`` "timed out in NAME after N s" (the worker is
killed), a worker that dies is "crashed in NAME (exit code N)", an answer that cannot be read is "NAME:
malformed answer: ...".  The next call starts a fresh worker (its objects from before are gone, and a
call on one is "cannot run"), up to ``MAX_FAILURES`` times.  An exception of the candidate's code
arrives as a ``CandidateError`` whose class bears the candidate's exception's name (and derives from the
built-in exception of that name, so ``getattr(obj, name, None)`` and ``except NotImplementedError`` work).
"""

import builtins
import importlib.util
import pathlib
import sys
import threading
import time

from checks import channel, sandbox
from checks.loader import EngineError

MAX_FAILURES = 4  # crashes or time-outs before the rest of the candidate is "cannot run"
CHECKS = pathlib.Path(__file__).resolve().parent
# python -I: no working directory or PYTHON* variables; the lab's package is found by its path, and only
# the worker's own modules of it are imported (an empty package stands in for checks/__init__.py)
BOOT = ("import sys, types; checks = types.ModuleType('checks'); checks.__path__ = [sys.argv[1]]; "
        "sys.modules['checks'] = checks; from checks.worker import main; sys.exit(main(sys.argv[2:]))")


class CandidateError(Exception):
    """An exception the candidate's code raised in the worker: ``frame`` is (file:line: text, function)
    of its innermost frame in the candidate's files, or None."""

    def __init__(self, text, frame=None, printed=""):
        super().__init__(text)
        self.text, self.frame, self.printed = text, tuple(frame) if frame else None, printed

    def __str__(self):
        return self.text


class WorkerFailure(Exception):
    """The worker did not answer: ``quantity`` is "crashed", "timed out", "malformed answer" or "call"
    (verdict "cannot run": its worker was gone); ``reason`` the sentence for the finding."""

    def __init__(self, quantity, reason, verdict="fail"):
        super().__init__(reason)
        self.quantity, self.reason, self.verdict = quantity, reason, verdict


_KINDS = {}


def _exception_class(kind):
    if kind not in _KINDS:
        builtin = getattr(builtins, kind, None)
        bases = (CandidateError,)
        if isinstance(builtin, type) and issubclass(builtin, Exception) and builtin is not Exception:
            bases += (builtin,)
        try:
            _KINDS[kind] = type(kind if kind.isidentifier() else "Exception", bases, {})
        except TypeError:  # a built-in whose layout cannot be mixed in
            _KINDS[kind] = type(kind if kind.isidentifier() else "Exception", (CandidateError,), {})
    return _KINDS[kind]


def call(fn, *args, **keywords):
    """(value, facts) of a proxy call (keywords cross as arguments do): facts["changed"] the argument
    indices changed in place, facts["shares"] [(k, what)] returned arrays that share memory with an
    argument or the object's arrays, facts["printed"] what the call printed."""
    return fn.call_with_facts(*args, **keywords)


def sequence(*calls, every=False):
    """The value of the last of ``calls`` ((method, args), ...) run one after the other in the worker in
    one round trip (``every``: the list of every call's value); the candidate's exception of the first
    that raised."""
    session = calls[0][0].owner._session
    items = [{"target": method.owner._handle(), "name": method.__name__, "args": list(args)} for method, args in calls]
    return session.request(calls[-1][0].__name__, op="calls", calls=items, every=every)["value"]


def held_arrays(obj):
    """{attribute: array} the object holds in the worker (copies)."""
    return obj._session.request(f"reading {obj.__name__}'s arrays", op="arrays", target=obj._handle())["value"]


def is_class(obj):
    return isinstance(obj, Remote) and obj._kind == "class"


class Remote:
    """A module, class or object in the worker.  A module's classes are known by name, so they outlive a
    restart of the worker; an object dies with its worker."""

    def __init__(self, session, handle, generation, path=None):
        self._session, self._handle_, self._generation, self._path = session, handle, generation, path
        self._kind, self._methods = handle.kind, handle.methods
        self.__name__ = self.__qualname__ = handle.name

    def __repr__(self):
        return f"<the candidate's {self._handle_.name} {self._kind}>"

    def __dir__(self):
        return list(self._session.classes(self._path[0])) if self._path else list(self._methods)

    def _handle(self):
        if self._path:  # a module or class: its handle in the worker running now
            return self._session.resolve(self._path)
        self._session.alive(self._generation)
        return self._handle_

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._path and len(self._path) == 1 and name in self._session.classes(self._path[0]):
            return Remote(self._session, self._session.inventory_handle(self._path[0], name), None,
                          (self._path[0], name))
        if name in self._methods:
            return Method(self, name)
        return self._session.request(name, op="get", target=self._handle(), name=name)["value"]

    def call_with_facts(self, *args, **kwargs):
        reply = self._session.request(self._handle_.name, op="call", target=self._handle(), name=None,
                                      args=list(args), kwargs=kwargs)
        return reply["value"], reply

    def __call__(self, *args, **kwargs):
        return self.call_with_facts(*args, **kwargs)[0]


class Method:
    def __init__(self, owner, name):
        self.owner, self.__name__ = owner, name
        self.__qualname__ = f"{owner._handle_.name}.{name}"

    def call_with_facts(self, *args, **kwargs):
        reply = self.owner._session.request(self.__name__, op="call", target=self.owner._handle(),
                                            name=self.__name__, args=list(args), kwargs=kwargs)
        return reply["value"], reply

    def __call__(self, *args, **kwargs):
        return self.call_with_facts(*args, **kwargs)[0]

    def parameters(self):
        """The method's parameter names ("**" for ``**kwargs``), None where they cannot be read."""
        return self.owner._session.request(self.__name__, op="parameters", target=self.owner._handle(),
                                           name=self.__name__)["value"]


class Watchdog:
    """Stops a worker whose call outlives its deadline: one thread for the session, not one per call (a
    thread per call cost a third of the lab's time)."""

    def __init__(self):
        self.condition, self.deadline, self.worker = threading.Condition(), None, None
        self.expired, self.idle, self.closed = False, True, False
        threading.Thread(target=self.watch, daemon=True).start()

    def arm(self, worker, seconds):
        with self.condition:
            self.deadline, self.worker, self.expired = time.monotonic() + seconds, worker, False
            if self.idle:  # else it wakes at an earlier deadline and waits again
                self.condition.notify()

    def disarm(self):
        """Whether the deadline passed (and the worker was stopped)."""
        with self.condition:
            self.deadline = None
            return self.expired

    def close(self):
        with self.condition:
            self.closed = True
            self.condition.notify()

    def watch(self):
        with self.condition:
            while not self.closed:
                self.idle = self.deadline is None
                left = None if self.idle else self.deadline - time.monotonic()
                if left is not None and left <= 0:
                    self.expired, self.deadline = True, None
                    self.worker.stop()  # the judge's blocked read then ends
                else:
                    self.condition.wait(left)


class Session:
    """The candidate's worker, started again after a crash or a time-out (at most MAX_FAILURES times)."""

    def __init__(self, spec, limits=None):
        self.limits = limits or sandbox.Limits()
        self.worker, self.generation, self.failures, self.death = None, 0, 0, None
        self.outputs, self.round_trips, self.watchdog = [], 0, Watchdog()
        path = pathlib.Path(spec)
        if path.is_dir():
            self.argv = [str(path.resolve())]
        else:  # a package by name: where the judge finds it (python -I searches no working directory)
            found = importlib.util.find_spec(str(spec).split(".")[0])
            origin = pathlib.Path(found.origin) if found and found.origin else None
            search = [] if origin is None else [str(origin.parent.parent if origin.name == "__init__.py" else
                                                    origin.parent)]
            self.argv = [str(spec), *search]
        try:
            self.start()
        except WorkerFailure as failure:
            self.close()
            raise EngineError(f"{spec}: the candidate's modules cannot be imported: {failure.reason}") from None
        self.modules = {name: Remote(self, entry["handle"], None, (name,)) for name, entry in self.inventory.items()}

    # --- the worker --------------------------------------------------------------------------------

    def start(self):
        if self.failures >= MAX_FAILURES:
            raise WorkerFailure("call", f"not run: the candidate's worker failed {self.failures} times (the last "
                                f"{self.death})", verdict="cannot run")
        command = [sys.executable, "-I", "-c", BOOT, str(CHECKS), *self.argv]
        self.worker = sandbox.start(command, self.argv[0], self.limits, mode=self.limits.sandbox)
        self.generation += 1
        reply = self.receive("its import")
        if reply.get("op") == "incomplete":
            self.close()
            raise EngineError(reply.get("text", "the candidate's API is incomplete"))
        if reply.get("op") != "inventory":
            self.fail("malformed answer", f"its import: malformed answer: op {reply.get('op')!r}")
        self.inventory = {name: entry for name, entry in reply["modules"].items()}

    def alive(self, generation):
        if generation != self.generation or self.worker is None:
            raise WorkerFailure("call", f"not run: its object was lost when the candidate's worker {self.death}",
                                verdict="cannot run")

    def classes(self, module):
        return self.inventory[module]["classes"]

    def inventory_handle(self, module, name):
        return self.inventory[module]["classes"][name]["handle"]

    def resolve(self, path):
        if self.worker is None:
            self.start()
        entry = self.inventory[path[0]]
        return entry["handle"] if len(path) == 1 else entry["classes"][path[1]]["handle"]

    def fail(self, quantity, reason):
        """Stops the worker (its objects are gone) and raises the finding."""
        self.stop()
        self.failures += 1
        self.death = reason
        raise WorkerFailure(quantity, reason)

    def stop(self, goodbye=False):
        if self.worker is None:
            return
        if goodbye:
            try:
                channel.send(self.worker.stdin, {"op": "bye"})
                self.worker.process.wait(timeout=5)
            except Exception:  # it is stopped below whatever happened
                pass
        self.worker.stop()
        self.outputs.append(self.worker.output())
        stderr = getattr(getattr(self.worker, "process", None), "stderr", None)
        if stderr is not None:  # sandbox.Worker.stop closes the channel's pipes, not this one
            stderr.close()
        self.worker = None

    def receive(self, what):
        seconds = self.limits.call_seconds
        self.watchdog.arm(self.worker, seconds)
        try:
            reply = channel.receive(self.worker.stdout)
        except (channel.ChannelError, OSError, ValueError) as error:
            if self.watchdog.disarm():
                self.fail("timed out", f"timed out in {what} after {seconds:g} s")
            if isinstance(error, channel.ChannelClosed) or "truncated" in str(error):
                self.fail("crashed", f"crashed in {what} ({self.exit_status()})")
            self.fail("malformed answer", f"{what}: malformed answer: {error}")
        if self.watchdog.disarm():  # it answered as the deadline passed: the worker is stopped all the same
            self.fail("timed out", f"timed out in {what} after {seconds:g} s")
        self.round_trips += 1
        return reply

    def exit_status(self):
        try:
            code = self.worker.process.wait(timeout=10)
        except Exception:
            return "it closed its channel"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def request(self, what, **message):
        """The worker's reply to ``message``; CandidateError if the candidate's code raised."""
        message = self.outgoing(message)
        if self.worker is None:
            self.start()
        try:
            channel.send(self.worker.stdin, message)
        except OSError:
            self.fail("crashed", f"crashed before {what} ({self.exit_status()})")
        reply = self.receive(what)
        if reply.get("op") == "raised":
            kind = str(reply.get("kind", "Exception"))
            raise _exception_class(kind)(str(reply.get("text", "")), reply.get("frame"), reply.get("printed", ""))
        if reply.get("op") == "malformed":
            raise WorkerFailure("malformed answer", f"{what}: malformed answer: {reply.get('text')}")
        if reply.get("op") != "value" or "value" not in reply:
            self.fail("malformed answer", f"{what}: malformed answer: op {reply.get('op')!r}")
        return {**reply, "value": self.incoming(reply["value"])}

    def outgoing(self, value):
        return channel.map_leaves(value, lambda leaf: leaf._handle() if isinstance(leaf, Remote) else leaf)

    def incoming(self, value):
        return channel.map_leaves(value, lambda leaf: Remote(self, leaf, self.generation)
                                  if isinstance(leaf, channel.Handle) else leaf)

    def close(self):
        """Stops the worker; what the candidate printed, every worker's in turn."""
        self.stop(goodbye=True)
        self.watchdog.close()
        return "".join(self.outputs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
