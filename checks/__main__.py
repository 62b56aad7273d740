"""python -m checks [--quick] [--out DIR] [--seed N]
python -m checks --engine PACKAGE_OR_FOLDER [PACKAGE_OR_FOLDER ...] [--out DIR] [--call-time-limit S]
                 [--candidate-env NAME[=VALUE] ...]

Runs the lab's suite, writes ``records.json`` (every verdict), ``curves.json``
(the data behind the figures) and the figures (PNG and PDF) into the results
folder, prints a one-screen table of verdicts, and exits 1 if any check
failed.  With ``--engine`` it examines another implementation of the
assignment's API instead (``checks.candidate``): records in
results/engine-NAME, root causes first; exit 1 if any, 2 if the API is
incomplete (the missing pieces are listed).  The candidate's code runs in a
worker process of its own (``checks.worker``), never in the lab's.  With several submissions (or a
folder of submission folders) it examines a whole class (``checks.classroom``).
"""

import argparse
import collections
import os
import pathlib
import platform
import sys
import time

import mpmath
import numpy as np

from checks import candidate, plots, sandbox, suite
from checks.records import code_version, group_records, output_folder_problem, read_json, write_json


def summary_table(records):
    """One line per (check, quantity, dtype): the worst measured value, target and verdicts."""
    lines = [f"{'check':32} {'quantity':24} {'dtype':8} {'worst':>9} {'target':>8}  verdicts"]
    for row in group_records(records):
        worst = f"{row['worst']:9.1e}" if row["worst"] is not None else f"{'-':>9}"
        target = f"{row['target']:8.0e}" if row["target"] is not None else f"{'-':>8}"
        verdicts = ", ".join(f"{n} {v}" for v, n in row["verdicts"].items())
        lines.append(f"{row['check'][:32]:32} {row['quantity'][:24]:24} {row['dtype']:8} {worst} {target}  {verdicts}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m checks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 nets, curves on the first (< 1 minute)")
    parser.add_argument("--out", default=None, help="results folder (default results/checks[-quick])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots-only", action="store_true",
                        help="redraw the figures from an existing curves.json")
    parser.add_argument("--engine", default=None, nargs="+", metavar="PACKAGE_OR_FOLDER",
                        help="examine another implementation of the assignment's API: a package name, or a "
                             "folder holding activations.py, layers.py, ffnet.py, autoencoder.py; several, or a "
                             "folder of such folders, examine a whole class, each in its own process")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per submission (class mode)")
    parser.add_argument("--memory-limit", type=float, default=4,
                        help="GiB per submission, all its processes together where a cgroup can count them, "
                             "else address space per process (class mode)")
    parser.add_argument("--cpu-limit", type=float, default=None,
                        help="CPU seconds per submission, all its processes together where a cgroup counts them")
    parser.add_argument("--process-limit", type=int, default=64, help="processes per submission at once")
    parser.add_argument("--sandbox", default="auto", choices=("auto", "bwrap", "none"),
                        help="where the candidate's code runs (its worker; in class mode its judge too): "
                             "bubblewrap, process isolation only, or bwrap where it works")
    parser.add_argument("--jobs", type=int, default=None, help="submissions examined at once (default: cores)")
    parser.add_argument("--call-time-limit", type=float, default=60,
                        help="seconds one call of the candidate's code may take (its worker is then killed)")
    parser.add_argument("--candidate-env", action="append", default=[], metavar="NAME[=VALUE]",
                        help="an environment variable the candidate's code is given (with the lab's own value "
                             "unless VALUE is given); it gets no other of the lab's variables")
    args = parser.parse_args(argv)
    if args.out is not None:
        problem = output_folder_problem(args.out)
        if problem:
            print(f"--out: cannot write to {args.out}: {problem}", file=sys.stderr)
            return 2
    if args.engine:
        from checks import classroom

        submissions = classroom.submissions(args.engine)
        for option, value in (("--jobs", args.jobs), ("--memory-limit", args.memory_limit),
                              ("--process-limit", args.process_limit), ("--cpu-limit", args.cpu_limit),
                              ("--time-limit", args.time_limit), ("--call-time-limit", args.call_time_limit)):
            if value is not None and value <= 0:
                print(f"{option}: expected a positive number, got {value:g}", file=sys.stderr)
                return 2
        try:
            env = candidate_env(args.candidate_env)
        except ValueError as error:
            print(f"--candidate-env: {error}", file=sys.stderr)
            return 2
        if submissions is None:
            try:
                mode, why = sandbox.choose(args.sandbox)
            except sandbox.SandboxError as error:
                print(error, file=sys.stderr)
                return 2
            if why:
                print(why, file=sys.stderr)
            return engine_main(args.engine[0], args.out, args.seed,
                               sandbox.Limits(call_seconds=args.call_time_limit, env=env, sandbox=mode))
        limits = sandbox.Limits(memory_gib=args.memory_limit, processes=args.process_limit,
                                cpu_seconds=args.cpu_limit, call_seconds=args.call_time_limit, env=env,
                                sandbox=args.sandbox)
        return classroom.main(submissions, args.out or "results/class", args.seed, args.time_limit, limits,
                              args.sandbox, args.jobs)
    out = args.out or ("results/checks-quick" if args.quick else "results/checks")
    problem = output_folder_problem(out)
    if problem:
        print(f"--out: cannot write to {out}: {problem}", file=sys.stderr)
        return 2

    if args.plots_only:
        for path in plots.all_figures(read_json(f"{out}/curves.json"), f"{out}/figures"):
            print(path)
        return 0

    start = time.perf_counter()

    def progress(message):
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    records, curves = suite.run_suite(quick=args.quick, seed=args.seed, progress=progress)
    meta = {"command": "python -m checks" + (" --quick" if args.quick else ""), "seed": args.seed,
            "quick": args.quick, "seconds": time.perf_counter() - start,
            "code_version": code_version(),
            "python": platform.python_version(), "numpy": np.__version__, "mpmath": mpmath.__version__}
    write_json({"meta": meta, "records": records}, f"{out}/records.json")
    write_json(curves, f"{out}/curves.json")
    progress("figures")
    figures = plots.all_figures(read_json(f"{out}/curves.json"), f"{out}/figures")
    print(summary_table(records))
    failed = [r for r in records if r["verdict"] == "fail"]
    counts = collections.Counter(r["verdict"] for r in records)
    print(f"\n{len(records)} records: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    print(f"records: {out}/records.json   figures: {len(figures)} files in {out}/figures")
    for r in failed:
        print(f"FAILED {r['check']} / {r['quantity']} on {r['net']} ({r.get('estimator')}): "
              f"{r['measured']:.3g} > {r['threshold']:.0e}")
    return 1 if failed else 0


def candidate_env(items):
    """(NAME, VALUE) pairs of --candidate-env NAME[=VALUE]: VALUE, else the lab's own value of NAME."""
    pairs = []
    for item in items:
        name, given, value = item.partition("=")
        if not name.isidentifier():
            raise ValueError(f"{item!r} is not NAME or NAME=VALUE")
        if not given and name not in os.environ:
            raise ValueError(f"{name} is not set in the lab's environment (give NAME=VALUE)")
        pairs.append((name, value if given else os.environ[name]))
    return tuple(pairs)


def engine_main(spec, out=None, seed=0, limits=None):
    try:
        found, findings, output, summary = candidate.examine(spec, seed=seed, limits=limits)
    except candidate.EngineError as error:
        print(error, file=sys.stderr)
        return 2
    name = candidate.engine_name(spec)
    out = out or f"results/engine-{name}"
    meta = {"command": f"python -m checks --engine {spec}", "engine": name, "seed": seed,
            "code_version": code_version(), "round_trips": summary.pop("round_trips")}
    write_json({"meta": meta, "records": found, "findings": findings, "summary": summary}, f"{out}/records.json")
    pathlib.Path(f"{out}/candidate-output.txt").write_text(output)  # its prints, apart from the lab's
    counts = collections.Counter(r["verdict"] for r in found)
    print(f"engine {name}: {len(found)} records: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))
    for config in summary["configurations"]:  # what part of the API each net exercised
        print(f"examined net {config['net']}: {'; '.join(config['covers'])}")
    for line in findings:
        print(("FAILED " if not line.startswith(("    ", "cannot run", "note")) else "") + line)
    print(f"records: {out}/records.json" + (f"   its own output: {out}/candidate-output.txt" if output else ""))
    return 1 if counts.get("fail") or counts.get("not implemented") else 0


if __name__ == "__main__":
    sys.exit(main())
