"""python -m checks [--quick] [--out DIR] [--seed N]

Runs the lab's suite, writes ``records.json`` (every verdict), ``curves.json``
(the data behind the figures) and the figures (PNG and PDF) into the results
folder, prints a one-screen table of verdicts, and exits 1 if any check
failed.
"""

import argparse
import collections
import platform
import sys
import time

import mpmath
import numpy as np

from checks import plots, suite
from checks.records import read_json, write_json


def summary_table(records):
    """One line per (check, quantity, dtype): counts and the worst measured value."""
    groups = collections.OrderedDict()
    for r in records:
        # dense H is assembled three ways with different targets: a row each
        label = f"{r['check']}: {r['estimator'].split(' vs ')[0]}" if r["check"] == "dense H" else r["check"]
        key = (label, r["quantity"], r["dtype"])
        groups.setdefault(key, []).append(r)
    lines = [f"{'check':32} {'quantity':24} {'dtype':8} {'worst':>9} {'target':>8}  verdicts"]
    for (check, quantity, dtype), rows in groups.items():
        measured = [r["measured"] for r in rows if r["verdict"] in ("pass", "fail")
                    and r["measured"] is not None]
        measured = measured or [r["measured"] for r in rows if r["verdict"] == "info"
                                and isinstance(r["measured"], float)]
        worst = f"{max(measured):9.1e}" if measured else f"{'-':>9}"
        targets = {r.get("threshold") for r in rows if r.get("threshold") is not None}
        target = f"{max(targets):8.0e}" if targets else f"{'-':>8}"
        counts = collections.Counter(r["verdict"] for r in rows)
        verdicts = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        lines.append(f"{check[:32]:32} {quantity[:24]:24} {dtype:8} {worst} {target}  {verdicts}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m checks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 nets, curves on the first (< 1 minute)")
    parser.add_argument("--out", default=None, help="results folder (default results/checks[-quick])")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots-only", action="store_true",
                        help="redraw the figures from an existing curves.json")
    args = parser.parse_args(argv)
    out = args.out or ("results/checks-quick" if args.quick else "results/checks")

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


if __name__ == "__main__":
    sys.exit(main())
