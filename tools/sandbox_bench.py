"""Throughput of the class grader with and without its sandbox: ``python tools/sandbox_bench.py [OUT.json]``.

Makes a class of ``--size`` submissions (tools/make_class.py), grades it with ``--sandbox bwrap`` and
``--sandbox none`` (``--jobs``, default the cores), and writes a record: submissions per minute in each
mode, and the sandbox's cost per submission (the difference of the mean wall seconds a submission took,
and of the whole run's wall time divided by the class size).  A benchmark: figures, never pass or fail.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from make_class import make_class  # noqa: E402


def grade(room, out, mode, jobs):
    tic = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "checks", "--engine", str(room), "--out", str(out),
                           "--sandbox", mode, "--jobs", str(jobs), "--time-limit", "120"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if done.returncode not in (0, 1):
        raise SystemExit(f"--sandbox {mode}: the grader exited {done.returncode}: {done.stderr[-2000:]}")
    results = json.loads((out / "class-summary.json").read_text())["submissions"]
    return {"mode": mode, "wall_seconds": wall, "submissions_per_minute": 60 * len(results) / wall,
            "mean_seconds_per_submission": sum(r["seconds"] for r in results) / len(results),
            "statuses": sorted({r["status"][:40] for r in results})}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="results/sandbox-bench.json")
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ae-lab-bench-") as scratch:
        room = pathlib.Path(scratch) / "class"
        make_class(room, args.size)
        runs = [grade(room, pathlib.Path(scratch) / mode, mode, args.jobs) for mode in ("bwrap", "none")]
    by = {r["mode"]: r for r in runs}
    record = {"size": args.size, "jobs": args.jobs, "cores": os.cpu_count(), "machine": platform.platform(),
              "runs": runs,
              "sandbox_cost_seconds_per_submission": {
                  "mean_submission_wall": by["bwrap"]["mean_seconds_per_submission"]
                  - by["none"]["mean_seconds_per_submission"],
                  "class_wall_per_submission": (by["bwrap"]["wall_seconds"] - by["none"]["wall_seconds"]) / args.size}}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(record, indent=1))
    for r in runs:
        print(f"--sandbox {r['mode']:5}: {r['submissions_per_minute']:.1f} submissions/min "
              f"({r['wall_seconds']:.1f} s for {args.size}; {r['mean_seconds_per_submission']:.2f} s each)")
    print(f"sandbox cost per submission: {record['sandbox_cost_seconds_per_submission']}")
    print(f"record: {args.out}")


if __name__ == "__main__":
    main()
