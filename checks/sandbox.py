"""Where a candidate's code runs: a worker process started apart from the judge that examines it.

``start(command, folder, limits)`` starts ``command`` (the worker: ``python -I -m checks.worker ...``)
with the submission's ``folder`` and returns a ``Worker``: its stdin and stdout are the channel's binary
pipes, what it prints on stderr is kept up to ``limits.output_bytes`` (the rest counted, not stored), and
``stop()`` ends every process the submission started.

This first form is process isolation only (a process group of its own, killed whole); the sandbox
(bubblewrap) and whole-submission limits (cgroups) are built on the same three calls.
"""

import dataclasses
import os
import signal
import subprocess
import threading


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_gib: float = 4.0  # all the submission's processes together, where the system can count them
    processes: int = 64
    cpu_seconds: float | None = None
    output_bytes: int = 1 << 20  # of what it prints; the rest is counted
    call_seconds: float = 60.0  # one API call
    env: tuple = ()  # (NAME, VALUE) pairs the instructor passes to the submission on purpose


class Worker:
    mode = "process isolation"

    def __init__(self, process, limits):
        self.process, self.limits = process, limits
        self.stdin, self.stdout = process.stdin, process.stdout
        self._kept, self._dropped = bytearray(), 0
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self):
        for chunk in iter(lambda: self.process.stderr.read1(65536), b""):
            room = self.limits.output_bytes - len(self._kept)
            self._kept += chunk[:max(room, 0)]
            self._dropped += max(len(chunk) - max(room, 0), 0)

    def output(self):
        """What the submission printed, as text; the bytes past the limit are counted, not kept."""
        self._reader.join(timeout=1)
        text = self._kept.decode(errors="replace")
        return text + (f"\n[... {self._dropped} more bytes not kept]\n" if self._dropped else "")

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        """Ends every process of the submission (idempotent)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        for pipe in (self.stdin, self.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def _environment(limits):
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "HOME") if k in os.environ}
    return {**keep, "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **dict(limits.env)}


def start(command, folder, limits=Limits(), cwd=None):
    """The worker ``command`` started for the submission in ``folder``, in a process group of its own."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=_environment(limits), cwd=cwd, start_new_session=True)
    return Worker(process, limits)
