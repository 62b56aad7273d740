"""A whole class at once: ``python -m checks --engine DIR [DIR ...]`` (or a folder of submission folders).

Each submission is examined by our judge, ``python -I -m checks --engine ONE``, started through
``checks.sandbox`` (``--sandbox auto|bwrap|none``), ``--jobs`` of them at a time: under bubblewrap it sees
only the lab, Python and its own submission (read-only), writes only a staging folder of its own, has no
network and its own PID namespace; in every mode it gets a cleaned environment, a session of its own,
per-process limits, and where a cgroup can be made, a memory and process cap on all its processes
together and a kill of all of them at the end.

Only the grader writes the output folder, and only after every process of the submission is gone: the
submission's old folder is removed before it runs, its records are read from its staging folder
(regular files only, size-capped) and written into OUT/NAME atomically, and the class summary
(submission x stage: pass / fail / not implemented / cannot run, and the root causes; to the terminal,
OUT/class-summary.csv and OUT/class-summary.json) is written last.
"""

import concurrent.futures
import csv
import dataclasses
import io
import json
import os
import pathlib
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time

from checks import sandbox
from checks.candidate import MODULES, engine_name
from checks.findings import STAGES
from checks.records import atomic_write

KEPT = {"records.json": 64 << 20, "candidate-output.txt": 2 << 20}  # what the grader takes from the judge
# (the worker keeps 1 MiB of what the candidate printed, and the count of the rest)


def submissions(specs):
    """The submissions of a class, or None when ``specs`` is one candidate (examined in this process)."""
    if len(specs) > 1:
        return [pathlib.Path(s) for s in specs]
    path = pathlib.Path(specs[0])
    if path.is_dir() and not (path / "__init__.py").exists() and not any((path / f"{m}.py").exists()
                                                                         for m in MODULES):
        found = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
        return found or None
    return None


def read_regular(folder, name, limit):
    """The bytes of ``folder/name`` if it is a regular file (never a link out) of at most ``limit`` bytes."""
    try:
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except OSError:
        return None
    finally:
        os.close(directory)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return f.read(limit + 1)[:limit]


def write_atomic(path, data):
    atomic_write(path, lambda tmp: tmp.write_bytes(data if isinstance(data, bytes) else data.encode()))


def judge_command(submission, staging, seed, limits):
    """Our judge for one submission (trusted code: it examines, and starts the worker that imports)."""
    passed_on = [arg for name, _ in limits.env for arg in ("--candidate-env", name)]  # values: the judge's env
    return [sys.executable, "-I", "-m", "checks", "--engine", str(pathlib.Path(submission).resolve()),
            "--out", str(staging), "--seed", str(seed), "--call-time-limit", f"{limits.call_seconds:g}",
            "--sandbox", limits.sandbox, *passed_on]


def status_of(worker, code, time_limit, folder):
    """(status, records or None) from how the judge ended and what it left in its staging folder."""
    limits = worker.limits
    if worker.memory_exceeded:
        return f"memory limit ({limits.memory_gib:g} GiB) exceeded", None
    if worker.cpu_exceeded or (limits.cpu_seconds is not None and code in (-signal.SIGXCPU, 128 + signal.SIGXCPU)):
        return f"CPU time limit ({limits.cpu_seconds:g} s) exceeded", None
    if code is None:
        return f"timed out after {time_limit:g} s", None
    stderr = worker.output().strip().splitlines()
    if code == 2:
        return "incomplete API: " + "; ".join(line.strip() for line in stderr[1:]), None
    records = read_regular(folder, "records.json", KEPT["records.json"])
    if code in (0, 1) and records is not None:
        try:
            return ("pass" if code == 0 else "fail"), json.loads(records)
        except ValueError:
            return f"records unreadable (exit code {code})", None
    if code in (0, 1):
        return f"ended without records (exit code {code})", None
    if any("MemoryError" in line for line in stderr[-3:]):
        return f"memory limit ({limits.memory_gib:g} GiB of address space per process) exceeded", None
    return f"crashed (exit code {code}): {(stderr or ['no message'])[-1]}", None


def examine(submission, out, seed, time_limit, limits, mode):
    """{"submission", "status", "stages", "root_causes", "seconds", ...} of one submission, examined apart."""
    name = engine_name(submission)
    folder = pathlib.Path(out) / name
    shutil.rmtree(folder, ignore_errors=True)  # its old records never stand for this run
    folder.mkdir(parents=True)
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"ae-lab-{name}-") as scratch:
        staging, work = pathlib.Path(scratch) / "out", pathlib.Path(scratch) / "work"
        staging.mkdir()
        work.mkdir()
        worker = sandbox.start(judge_command(submission, staging, seed, limits), submission, limits,
                               mode=mode, writable=[staging], channel=False, name=name, cwd=work)
        try:
            code = worker.wait(time_limit)
        finally:
            worker.stop()  # every process of the submission ends here, before anything of it is read
        status, records = status_of(worker, code, time_limit, staging)
        kept = read_regular(staging, "candidate-output.txt", KEPT["candidate-output.txt"])
    seconds = time.perf_counter() - tic
    result = {"submission": name, "status": status, "seconds": seconds, "sandbox": worker.mode,
              "memory_peak_gib": None if worker.memory_peak is None else worker.memory_peak / 2**30,
              "stages": dict.fromkeys(STAGES, "-"), "root_causes": []}
    if worker.left_alive:
        result["status"] = status = f"{status}; processes left alive after the end"
    if records is not None:
        summary = records.get("summary", {}) if isinstance(records, dict) else {}
        result.update(stages={s: str(summary.get("stages", {}).get(s, "-")) for s in STAGES},
                      root_causes=[str(c) for c in summary.get("root_causes", [])])
        write_atomic(folder / "records.json", json.dumps(records, indent=1))
    if kept is not None:
        write_atomic(folder / "candidate-output.txt", kept)
    write_atomic(folder / "lab-output.txt", worker.printed.text() + worker.output())
    return result


def table(results):
    header = ["submission", "status", *STAGES, "root causes"]
    rows = [[r["submission"], r["status"] if r["status"] in ("pass", "fail") else r["status"][:40],
             *[r["stages"][s] for s in STAGES], str(len(r["root_causes"]))] for r in results]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in [header, *rows]]
    for r in results:
        lines += [f"{r['submission']}: {cause}" for cause in r["root_causes"]]
    return header, rows, "\n".join(lines)


def main(submissions_, out, seed=0, time_limit=600, limits=None, mode="auto", jobs=None):
    limits = limits or sandbox.Limits()
    out = pathlib.Path(out)
    names = [engine_name(s) for s in submissions_]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        print(f"--engine: two submissions share the folder name {', '.join(repeated)}; rename one", file=sys.stderr)
        return 2
    try:
        mode, why = sandbox.choose(mode)
    except sandbox.SandboxError as error:
        print(error, file=sys.stderr)
        return 2
    limits = dataclasses.replace(limits, sandbox=mode)  # each judge starts its worker in the class's mode
    for line in (why, sandbox.limits_note(limits)):
        if line:
            print(line, file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("class-summary.csv", "class-summary.json"):  # never a summary of another run
        (out / stale).unlink(missing_ok=True)
    done, lock = [], threading.Lock()

    def one(submission):
        try:
            result = examine(submission, out, seed, time_limit, limits, mode)
        except OSError as error:  # the grader could not start or read it: said in its row, the class goes on
            result = {"submission": engine_name(submission), "status": f"not examined ({error})", "seconds": 0.0,
                      "sandbox": None, "memory_peak_gib": None, "stages": dict.fromkeys(STAGES, "-"),
                      "root_causes": []}
        with lock:
            done.append(result)
            print(f"[{len(done)}/{len(submissions_)}] {result['submission']}: {result['status']} "
                  f"({result['seconds']:.1f} s)", file=sys.stderr, flush=True)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        results = list(pool.map(one, submissions_))
    header, rows, text = table(results)
    print(text)
    table_csv = io.StringIO(newline="")
    csv.writer(table_csv).writerows([header, *rows])
    write_atomic(out / "class-summary.csv", table_csv.getvalue())
    write_atomic(out / "class-summary.json", json.dumps({"submissions": results}, indent=1))  # last
    print(f"summary: {out / 'class-summary.csv'}, {out / 'class-summary.json'}")
    return 1 if any(r["status"] != "pass" for r in results) else 0
