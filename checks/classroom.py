"""A whole class at once: ``python -m checks --engine DIR [DIR ...]`` (or a folder of submission folders).

Each submission is examined by ``python -m checks --engine`` in a process of its own, with a time
limit, a memory limit (RLIMIT_AS) and a fresh temporary working directory, so an infinite loop, a
crash, ``os._exit``, a change to ``sys.modules`` or a file written by one submission touches neither
the others nor the lab.  This protects against accidents, not against malicious code: a submission
still runs as the user who runs the lab, with their files and network; examine untrusted code in a
container.

Writes OUT/NAME/records.json per submission (as the single command does), and one table
(submission x stage: pass / fail / not implemented / cannot run, and the root causes) to the
terminal, OUT/class-summary.csv and OUT/class-summary.json.
"""

import csv
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

from checks.candidate import MODULES, STAGES, engine_name


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


def _limits(memory_gib):
    def apply():  # in the child, before it runs anything of the submission
        limit = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def examine(submission, out, seed, time_limit, memory_gib):
    """{"submission", "status", "stages", "root_causes", "seconds"} of one submission, examined apart."""
    name = engine_name(submission)
    folder = pathlib.Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "checks", "--engine", str(pathlib.Path(submission).resolve()),
               "--out", str(folder.resolve()), "--seed", str(seed)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ae-lab-submission-") as work:
        try:
            done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=time_limit,
                                  preexec_fn=_limits(memory_gib), start_new_session=True)
            status, log = None, done.stdout + done.stderr
        except subprocess.TimeoutExpired as timeout:
            done, status = None, f"timed out after {time_limit:g} s"
            log = (timeout.stdout or b"").decode(errors="replace") + (timeout.stderr or b"").decode(errors="replace")
    seconds = time.perf_counter() - tic
    (folder / "lab-output.txt").write_text(log)
    result = {"submission": name, "seconds": seconds, "stages": dict.fromkeys(STAGES, "-"), "root_causes": []}
    if done is not None and done.returncode in (0, 1) and (folder / "records.json").exists():
        summary = json.loads((folder / "records.json").read_text())["summary"]
        status = "pass" if done.returncode == 0 else "fail"
        result.update(stages=summary["stages"], root_causes=summary["root_causes"])
    elif done is not None and done.returncode == 2:
        status = "incomplete API: " + "; ".join(line.strip() for line in done.stderr.strip().splitlines()[1:])
    elif done is not None:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        status = f"crashed (exit code {done.returncode}): {last}"
    result["status"] = status
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


def main(submissions_, out, seed=0, time_limit=600, memory_gib=4):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for k, submission in enumerate(submissions_, start=1):
        result = examine(submission, out, seed, time_limit, memory_gib)
        print(f"[{k}/{len(submissions_)}] {result['submission']}: {result['status']} ({result['seconds']:.1f} s)",
              file=sys.stderr, flush=True)
        results.append(result)
    header, rows, text = table(results)
    print(text)
    with open(out / "class-summary.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    (out / "class-summary.json").write_text(json.dumps({"submissions": results}, indent=1))
    print(f"summary: {out / 'class-summary.csv'}, {out / 'class-summary.json'}")
    return 1 if any(r["status"] != "pass" for r in results) else 0
