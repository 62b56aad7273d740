"""Limits on all of a submission's processes together: one control group (cgroup) per submission.

``create(name, memory_bytes, processes)`` makes a group under this process's own cgroup (v2, or v1's
memory, pids, freezer and cpuacct hierarchies), with the memory of all its processes and their count
capped; ``Group.attach_fds()`` are opened files a child writes ``0`` into before it runs anything
(so it and all it starts are inside); ``Group.kill()`` kills every process inside, also those that
left their session, and ``Group.remove()`` deletes the group.  ``problem()`` says why no group can
be made here (no writable cgroup), in which case callers fall back to per-process limits.
"""

import functools
import os
import pathlib
import signal
import time
import uuid

ROOT = pathlib.Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "freezer", "cpuacct")


def _own_paths(proc_cgroup="/proc/self/cgroup"):
    """{controller or "": path of this process's cgroup in it} from /proc/self/cgroup ("" is v2)."""
    paths = {}
    for line in pathlib.Path(proc_cgroup).read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    return paths


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Group:
    """One submission's group: ``dirs`` maps a controller ("" for v2) to its folder."""

    def __init__(self, dirs, version):
        self.dirs, self.version = dirs, version

    @property
    def main(self):
        return self.dirs.get("") or self.dirs["memory"]

    def attach_fds(self):
        """One open cgroup.procs per hierarchy; the child writes b"0" into each (0: itself)."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY) for d in self.dirs.values()]

    def pids(self):
        found = set()
        for d in self.dirs.values():
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return found

    def _freeze(self, frozen):
        if self.version == 2 and (self.main / "cgroup.freeze").exists():
            _write(self.main / "cgroup.freeze", "1" if frozen else "0")
        elif "freezer" in self.dirs:
            _write(self.dirs["freezer"] / "freezer.state", "FROZEN" if frozen else "THAWED")

    def kill(self, timeout=10.0):
        """Kills every process in the group (frozen first, so none forks meanwhile); True if none is left."""
        deadline = time.monotonic() + timeout
        if self.version == 2 and (self.main / "cgroup.kill").exists():
            _write(self.main / "cgroup.kill", "1")
        while self.pids() and time.monotonic() < deadline:
            try:
                self._freeze(True)
            except OSError:
                pass
            for pid in self.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self._freeze(False)  # a frozen process dies of SIGKILL once thawed
            except OSError:
                pass
            time.sleep(0.01)
        return not self.pids()

    def memory_exceeded(self):
        """True if the kernel killed a process of the group for going past its memory limit."""
        if self.version == 2:
            text, key = _read(self.main / "memory.events"), "oom_kill"
        else:
            text, key = _read(self.dirs["memory"] / "memory.oom_control"), "oom_kill"
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get(key, 0)) > 0

    def memory_peak(self):
        """Bytes: the most all its processes held together (None where the kernel does not say)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self.main / name if self.version == 2 else self.dirs["memory"] / name)
        return int(text) if text.strip().isdigit() else None

    def cpu_seconds(self):
        """CPU time of all its processes so far (None where no controller counts it)."""
        if self.version == 2:
            usage = dict(line.split() for line in _read(self.main / "cpu.stat").splitlines() if line.strip())
            return int(usage["usage_usec"]) / 1e6 if "usage_usec" in usage else None
        if "cpuacct" in self.dirs:
            text = _read(self.dirs["cpuacct"] / "cpuacct.usage")
            return int(text) / 1e9 if text.strip().isdigit() else None
        return None

    def remove(self):
        for d in self.dirs.values():
            for _ in range(100):  # rmdir fails while the kernel still tears a killed process down
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _read(path):
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return ""


def _version(root):
    if (root / "cgroup.controllers").exists():
        return 2
    if (root / "memory").is_dir():
        return 1
    return None


def _make_v1(root, own, name, memory_bytes, processes):
    dirs = {}
    try:
        for controller in V1_CONTROLLERS:
            base = root / controller / own.get(controller, "")
            if controller in own and base.is_dir():
                dirs[controller] = base / name
                dirs[controller].mkdir()
        if "memory" not in dirs or "pids" not in dirs:
            raise OSError("cgroup v1 without a memory or pids hierarchy of this process")
        _write(dirs["memory"] / "memory.limit_in_bytes", str(memory_bytes))
        try:  # the same cap on memory plus swap, where swap is accounted
            _write(dirs["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes))
        except OSError:
            pass
        _write(dirs["pids"] / "pids.max", str(processes))
    except BaseException:
        Group(dirs, 1).remove()
        raise
    return Group(dirs, 1)


def _make_v2(root, own, name, memory_bytes, processes):
    parent = root / own.get("", "")
    enabled = set((parent / "cgroup.subtree_control").read_text().split())
    if not {"memory", "pids"} <= enabled:
        # A v2 cgroup that holds processes cannot hand controllers to children: move this process
        # into a leaf of its own first, then enable them for the submissions' siblings.
        leaf = parent / "ae-lab-grader"
        leaf.mkdir(exist_ok=True)
        _write(leaf / "cgroup.procs", "0")
        _write(parent / "cgroup.subtree_control", "+memory +pids +cpu")
    group = Group({"": parent / name}, 2)
    group.main.mkdir()
    try:
        _write(group.main / "memory.max", str(memory_bytes))
        try:
            _write(group.main / "memory.swap.max", "0")
        except OSError:
            pass
        _write(group.main / "pids.max", str(processes))
    except BaseException:
        group.remove()
        raise
    return group


def create(name, memory_bytes, processes, root=ROOT, proc_cgroup="/proc/self/cgroup"):
    """A new group for the submission ``name``; OSError (saying why) where this system has none writable."""
    root = pathlib.Path(root)
    version = _version(root)
    if version is None:
        raise OSError(f"no cgroup hierarchy under {root}")
    own = _own_paths(proc_cgroup)
    unique = f"ae-lab-{os.getpid()}-{''.join(c if c.isalnum() else '_' for c in name)[:40]}-{uuid.uuid4().hex[:8]}"
    make = _make_v2 if version == 2 else _make_v1
    try:
        return make(root, own, unique, int(memory_bytes), int(processes))
    except OSError as error:
        raise OSError(f"cgroup v{version} not writable here ({error})") from error


@functools.cache
def problem():
    """None if a group can be made here, else why not (asked once, by making and removing one)."""
    try:
        create("probe", 1 << 30, 16).remove()
    except OSError as error:
        return str(error)
    return None
