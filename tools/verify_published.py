"""checks.verify on every case of the published corpus (tests/published), every size (n up to 20,000),
with the published claims and with planted mistakes; writes a record of false alarms, misses and crashes
per size, with each case's seconds and evaluations of fun.

    python tools/verify_published.py [--sizes small,large] [--planted rel1e-6,factor2] [--corpus published,more]
                                     [--out record.json]
    python tools/verify_published.py --table record.json    # tests/README.md's table of a record written before

A false alarm is a fail on a claim the corpus calls right; a miss is a pass on a claim it calls wrong
(a plant the corpus marks undetectable, below the claim's own rounding, is counted apart, and so is a fail
on a plant that changes nothing at x but the claimed function near it); a miss of a relative error in the
gradient's largest entry that verify's own table says it does not catch (the detection power line: that
entry, or at a sampled size any entry, not caught at that size) is "stated", not silent; a crash is an
exception out of verify.  The fast subset runs in tests/test_verify_published.py.
"""

import argparse
import collections
import importlib
import json
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "published"))
import published  # noqa: E402

from checks import verify  # noqa: E402


def counted(fun):
    """fun, counting its evaluations."""
    def wrapped(x):
        wrapped.calls += 1
        return fun(x)
    wrapped.calls = 0
    return wrapped


def judge(case):
    fun = counted(case["fun"])
    start = time.perf_counter()
    try:
        result = verify(fun, case["x"], **published.verify_kwargs(case))
    except Exception as error:
        return {"crash": f"{type(error).__name__}: {error}", "trace": traceback.format_exc(limit=3)}
    row = {"seconds": round(time.perf_counter() - start, 2), "evaluations": fun.calls, "claims": {}}
    for claim, quantity in (("grad", "gradient"), ("hessvec" if "hessvec" in case else "hess", "Hv")):
        if case.get(claim) is None:
            continue
        expected, verdict = case["expected"].get(claim), result.verdicts.get(quantity, "absent")
        outcome = ("agrees" if {"right": "pass", "wrong": "fail"}.get(expected) == verdict
                   # a plant that changes nothing at x (a relative error of a zero gradient) still makes the
                   # claimed function wrong near x, which verify may find: not a false alarm
                   else "fails a no-op plant" if case.get("noop") and verdict == "fail"
                   else "false alarm" if expected == "right" and verdict == "fail"
                   else ("miss" if case.get("detectable", True) else "undetectable miss")
                   if expected == "wrong" and verdict == "pass" else "cannot run")
        row["claims"][claim] = {"expected": expected, "verdict": verdict, "outcome": outcome}
    row["power"] = {q: p.get("fractions") or {w: e["smallest_caught"] for w, e in p["entries"].items()}
                    for q, p in result.detection_power.items()}
    # every entry checked: the largest entry and the absolute error the power line says it needs
    row["absolute"] = {q: {k: p["entries"]["largest"][k] for k in ("value", "tolerance")}
                       for q, p in result.detection_power.items() if p.get("entries", {}).get("largest")}
    return row


# how far each plant moves the gradient's largest entry, in units of that entry as planted
CHANGE = {"factor2": 0.5, "sign_entry": 2.0, "rel1e-2": 1e-2, "rel1e-4": 1e-4, "rel1e-6": 1e-6}


def stated(row, kind):
    """The row with a miss in the gradient that its detection power line states as "miss the table states":
    the plant moves the largest entry by less than the absolute error the line says that entry needs, or (a
    relative plant) the line says no relative error that small is caught there (every entry checked) or in
    any entry (a sample)."""
    claim = row.get("claims", {}).get("grad")
    if claim is None or claim["outcome"] != "miss" or kind not in CHANGE or "gradient" not in row["power"]:
        return row  # no power line for the gradient: nothing stated
    largest = row.get("absolute", {}).get("gradient")
    if largest is not None and CHANGE[kind] * abs(largest["value"]) <= largest["tolerance"]:
        claim["outcome"] = "miss the table states"
        return row
    if not kind.startswith("rel"):
        return row
    delta = CHANGE[kind]
    # the record's JSON keeps a sample's probabilities under keys such as "1e-06"
    power = {float(k) if str(k)[:1].isdigit() else k: v for k, v in row["power"].get("gradient", {}).items()}
    if "largest" in power:  # every entry checked: the smallest relative error caught in the largest entry
        caught = power["largest"]
    else:  # a sample: the probability that an error in an entry drawn at random is caught
        caught = delta if power.get(delta, 0) > 0 else None
    if caught is None or caught > delta:
        claim["outcome"] = "miss the table states"
    return row


OUTCOMES = ("agrees", "false alarm", "miss", "miss the table states", "undetectable miss", "fails a no-op plant",
            "cannot run", "crash")


def table(record):
    """The markdown table of a record: per decade of n, the runs, each outcome's count over the claims judged, and the
    evaluations of fun and seconds per run (median and largest); then every false alarm, miss and crash."""
    rows = [stated(r, r["claims_from"]) for r in record["runs"]]
    lines = ["| n | runs | " + " | ".join(OUTCOMES) + " | evaluations (median, largest) | seconds (median, largest) |",
             "|---|---" + "|---" * len(OUTCOMES) + "|---|---|"]
    for decade in sorted({len(str(r["n"])) for r in rows}):
        runs = [r for r in rows if len(str(r["n"])) == decade]
        n = f"{10 ** (decade - 1):,} to {10 ** decade - 1:,}" if decade > 1 else "2 to 9"
        counts = collections.Counter(o for r in runs for o in _outcomes(r))
        evaluations = sorted(r["evaluations"] for r in runs if "evaluations" in r)
        seconds = sorted(r["seconds"] for r in runs if "seconds" in r)
        lines.append(f"| {n} | {len(runs)} | " + " | ".join(str(counts[o]) for o in OUTCOMES)
                     + f" | {_median_largest(evaluations, '{:,}')} | {_median_largest(seconds, '{:.1f}')} |")
    bad = [f"- {o}: {r['name']} ({r['library']} {r['version']}), claims from {r['claims_from']}"
           for r in rows for o in _outcomes(r) if o in ("false alarm", "miss", "crash")]
    return "\n".join(lines + ([""] + bad if bad else []))


def _outcomes(row):
    return ["crash"] if "crash" in row else [c["outcome"] for c in row["claims"].values()]


def _median_largest(values, form):
    return f"{form.format(values[len(values) // 2])}, {form.format(values[-1])}" if values else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--planted", default="", help="comma-separated kinds from published.KINDS")
    parser.add_argument("--corpus", default="published,more",
                        help="modules of tests/published: published (statsmodels, scikit-learn, scipy, autograd), "
                             "more (lifelines, scikit-survival, glum, GPy)")
    parser.add_argument("--out", default="verify_published.json")
    parser.add_argument("--table", default=None, help="print the table of this record; run nothing")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(Path(args.table).read_text())))
        return
    warnings.simplefilter("ignore")
    cases = [case for module in args.corpus.split(",")
             for case in importlib.import_module(module).cases(tuple(args.sizes.split(",")))]
    runs = [(case, "published") for case in cases]
    for kind in filter(None, args.planted.split(",")):
        rng = np.random.default_rng(1)
        runs += [(p, kind) for p in (published.planted(c, kind, rng) for c in cases) if p is not None]
    rows, tally = [], collections.Counter()
    for case, kind in runs:
        row = stated({"name": case["name"], "library": case["library"], "version": case["version"],
                      "n": case["x"].size, "claims_from": kind, **judge(case)}, kind)
        rows.append(row)
        outcomes = _outcomes(row)
        for outcome in outcomes:
            tally[(case["size"], row["n"], outcome)] += 1
        print(row["name"], row.get("seconds"), "s", row.get("evaluations"), "evaluations", outcomes, flush=True)
    summary = [{"size": s, "n": n, "outcome": o, "count": c} for (s, n, o), c in sorted(tally.items())]
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": rows}, indent=1, default=str))
    for line in summary:
        if line["outcome"] != "agrees":
            print(line)
    print(f"{len(rows)} runs; record in {args.out}")


if __name__ == "__main__":
    main()
