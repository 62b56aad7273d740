"""Where a candidate's code runs: a process started apart from the judge (or grader) that examines it.

``start(command, folder, limits, mode)`` starts ``command`` (the worker: ``python -I -m checks.worker ...``,
or in class mode the judge ``python -I -m checks --engine ONE``) for the submission in ``folder`` and
returns a ``Worker``: its stdin and stdout are the channel's binary pipes, what it prints on stderr is
kept up to ``limits.output_bytes`` (the rest counted, not stored), and ``stop()`` ends every process the
submission started.

Two modes (``--sandbox``):

* ``bwrap``: bubblewrap.  The process sees, read-only, only what Python needs (the interpreter's
  prefixes, /usr, the libraries, a few files of /etc), the lab's own packages and this submission's
  folder; a private /tmp and working folder (tmpfs); no network; its own PID namespace (it cannot see
  or signal anything outside, and all in it die with it); an environment cleared to what it needs.
* ``none``: process isolation only: a session of its own killed whole, a cleaned environment.

In both, per-process limits (RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_CPU, no core files) and, where this system
lets us write a cgroup (``checks.cgroups``), the memory and process count of all the submission's
processes together, and a kill of every process in it at the end.  ``auto`` is bwrap where it works,
else none with one line saying why.
"""

import dataclasses
import functools
import importlib.util
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from checks import cgroups

UID = 1000  # the submission's uid inside the sandbox
MARK = "AE_LAB_SANDBOX"  # set in every process we start (its mode): a worker started there is inside its limits


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_gib: float = 4.0  # all the submission's processes together, where the system can count them
    processes: int = 64
    cpu_seconds: float | None = None  # all its processes together where a cgroup counts them, else each
    output_bytes: int = 1 << 20  # of what it prints; the rest is counted
    file_bytes: int = 64 << 20  # the largest file it may write (RLIMIT_FSIZE)
    call_seconds: float = 60.0  # one API call
    env: tuple = ()  # (NAME, VALUE) pairs the instructor passes to the submission on purpose
    sandbox: str = "auto"  # the mode a judge starts its candidate's worker in: "auto", "bwrap" or "none"


class SandboxError(RuntimeError):
    pass


class CappedReader:
    """Drains a pipe in a thread; keeps the first ``limit`` bytes and counts the rest."""

    def __init__(self, pipe, limit):
        self.pipe, self.limit = pipe, limit
        self.kept, self.dropped = bytearray(), 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for chunk in iter(lambda: self.pipe.read1(65536), b""):
                room = max(self.limit - len(self.kept), 0)
                self.kept += chunk[:room]
                self.dropped += len(chunk) - len(chunk[:room])
        except (OSError, ValueError):  # closed under us by stop()
            pass

    def text(self):
        # the worker is gone (its group killed), so the pipe ends; on a loaded machine draining what is
        # left can take seconds, and a count read before that would be short
        self.thread.join(timeout=10)
        text = self.kept.decode(errors="replace")
        return text + (f"\n[... {self.dropped} more bytes not kept]\n" if self.dropped else "")


class Worker:
    def __init__(self, process, limits, mode, group, channel):
        self.process, self.limits, self.mode, self.group = process, limits, mode, group
        self.stdin, self.stdout = (process.stdin, process.stdout) if channel else (None, None)
        self.errors = CappedReader(process.stderr, limits.output_bytes)
        self.printed = None if channel else CappedReader(process.stdout, limits.output_bytes)
        self.cpu_exceeded = False
        self.memory_exceeded = False
        self.memory_peak = None
        self.left_alive = False
        self._stopped = False

    def output(self):
        """What the submission printed on stderr, as text; the bytes past the limit are counted, not kept."""
        return self.errors.text()

    def alive(self):
        return self.process.poll() is None

    def wait(self, timeout):
        """Its exit code, or None if it still runs after ``timeout`` seconds, or went past its memory or CPU
        time (``memory_exceeded``, ``cpu_exceeded``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.process.wait(timeout=min(0.1, max(deadline - time.monotonic(), 0.001)))
            except subprocess.TimeoutExpired:
                pass
            if self.group is None:
                continue
            if self.group.memory_exceeded():  # the kernel killed one of its processes: stop them all now
                self.memory_exceeded = True
                return None
            used = self.group.cpu_seconds()
            if used is not None and self.limits.cpu_seconds is not None and used > self.limits.cpu_seconds:
                self.cpu_exceeded = True
                return None
        return None

    def stop(self):
        """Ends every process of the submission (idempotent); afterwards ``left_alive`` says if any survived."""
        if self._stopped:
            return
        self._stopped = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self.group:
            self.left_alive = not self.group.kill()
            self.memory_exceeded = self.memory_exceeded or self.group.memory_exceeded()
            self.memory_peak = self.group.memory_peak()
            self.group.remove()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass


def environment(limits, home="/tmp"):
    """The whole environment the submission gets: nothing of the caller's but a PATH and a locale."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home, "TMPDIR": "/tmp",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": "/tmp", **dict(limits.env)}


def _lab_folders():
    """The folders of the lab's own packages (the judge imports them), read-only in the sandbox."""
    return [pathlib.Path(folder) for name in ("checks", "ae")
            for folder in importlib.util.find_spec(name).submodule_search_locations]


ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "passwd", "group", "fonts",
       "alternatives", "ssl")


def bwrap_command(command, folder, writable=(), home="/ae-lab/work", limits=Limits(), nested=False):
    """The bubblewrap command line that runs ``command`` seeing only what it needs and ``folder``."""
    # a user namespace with an unprivileged uid inside: no capabilities, yet a worker can nest a sandbox of
    # its own (with --cap-drop ALL as root inside, the nested bwrap cannot map its uid)
    args = ["bwrap", "--unshare-all", "--unshare-user", "--uid", str(UID), "--gid", str(UID), "--die-with-parent",
            "--new-session"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/usr", "/usr"]
    args += [a for name in ETC for a in ("--ro-bind-try", f"/etc/{name}", f"/etc/{name}")]
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    prefixes |= {sys.prefix, sys.base_prefix}
    for path in sorted(prefixes | {str(p) for p in _lab_folders()}):
        if not path.startswith("/usr/"):
            args += ["--ro-bind", path, path]
    # nested inside our own sandbox, /proc cannot be mounted again: the outer one's is bound instead
    args += ["--ro-bind", "/proc", "/proc"] if nested else ["--proc", "/proc"]
    args += ["--dev", "/dev", "--size", str(limits.file_bytes), "--tmpfs", "/tmp",
             "--size", str(limits.file_bytes), "--tmpfs", home]
    folder = os.path.realpath(folder)
    args += ["--ro-bind", folder, folder]
    for path in writable:
        args += ["--bind", os.path.realpath(path), os.path.realpath(path)]
    args += ["--chdir", home, "--clearenv"]
    for name, value in {**environment(limits, home), MARK: "bwrap"}.items():
        args += ["--setenv", name, value]
    return args + ["--", *command]


@functools.cache
def bwrap_problem():
    """None if bubblewrap runs Python here with our binds, else why not."""
    if shutil.which("bwrap") is None:
        return "no bwrap on PATH"
    with tempfile.TemporaryDirectory(prefix="ae-lab-probe-") as empty:
        probe = bwrap_command([sys.executable, "-I", "-c", "import checks"], empty,
                              nested=os.environ.get(MARK) == "bwrap")
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    return None


def choose(mode):
    """(the mode to use, a line saying why not bwrap, or None); SandboxError if bwrap is demanded but fails."""
    if mode not in ("auto", "bwrap", "none"):
        raise SandboxError(f"--sandbox {mode}: expected auto, bwrap or none")
    if mode == "none":
        return "none", None
    problem = bwrap_problem()
    if problem is None:
        return "bwrap", None
    if mode == "bwrap":
        raise SandboxError(f"--sandbox bwrap: bubblewrap not available ({problem})")
    return "none", f"sandbox: bubblewrap not available ({problem}); process isolation only"


def limits_note(limits):
    """One line: how the limits on all of a submission's processes together are enforced here."""
    problem = cgroups.problem()
    if problem is None:
        return (f"limits: memory {limits.memory_gib:g} GiB and {limits.processes} processes per submission, "
                "all its processes together (cgroup)")
    nproc = "no process count (root is exempt from RLIMIT_NPROC)" if os.getuid() == 0 else "RLIMIT_NPROC"
    return (f"limits: per process only ({problem}): memory {limits.memory_gib:g} GiB of address space each, "
            f"{nproc}")


def _uid_processes():
    """How many processes this uid has now (RLIMIT_NPROC counts them all, not only the submission's)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def _in_child(limits, attach, nproc):
    """Runs in the child between fork and exec: into the cgroup first, then the per-process limits."""
    memory = int(limits.memory_gib * 2**30)
    files = limits.file_bytes
    cpu = None if limits.cpu_seconds is None else int(limits.cpu_seconds) + 1

    def lower(kind, value):
        # never above what this process already has (a judge inside a class's limits starts its worker)
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    def apply():
        for fd in attach:
            os.write(fd, b"0")
        lower(resource.RLIMIT_AS, memory)
        lower(resource.RLIMIT_FSIZE, files)
        lower(resource.RLIMIT_CORE, 0)
        if cpu is not None:
            lower(resource.RLIMIT_CPU, cpu)
        if nproc is not None:
            lower(resource.RLIMIT_NPROC, nproc)
    return apply


def start(command, folder, limits=Limits(), mode="auto", writable=(), channel=True, name=None, cwd=None):
    """The ``command`` started for the submission in ``folder`` (see the module's docstring).

    ``writable``: folders it may write (bound read-write under bwrap); ``channel``: stdin and stdout are the
    channel's pipes (else stdin is empty and stdout is kept like stderr, in ``Worker.printed``); ``cwd``:
    its working folder without bwrap (under bwrap, a private tmpfs).
    """
    mode, _ = choose(mode)
    group = None
    if MARK not in os.environ:  # inside a submission's sandbox its group already counts what starts here
        try:
            group = cgroups.create(name or pathlib.Path(folder).name, limits.memory_gib * 2**30, limits.processes)
        except OSError:
            pass
    nproc = None if group or os.getuid() == 0 else _uid_processes() + limits.processes
    attach = group.attach_fds() if group else []
    if mode == "bwrap":
        argv, env, cwd = bwrap_command(command, folder, writable, limits=limits,
                                       nested=os.environ.get(MARK) == "bwrap"), environment(limits), "/"
    else:
        argv, env = command, {**environment(limits, home=cwd or "/tmp"), MARK: "none"}
    try:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE if channel else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                                   start_new_session=True, preexec_fn=_in_child(limits, attach, nproc))
    except BaseException:
        if group:
            group.remove()
        raise
    finally:
        for fd in attach:
            os.close(fd)
    return Worker(process, limits, "bubblewrap" if mode == "bwrap" else "process isolation", group, channel)
