"""checks.verify on every case of the published corpus (tests/published), every size (n up to 20,000),
with the published claims and with planted mistakes; writes a record of false alarms, misses and crashes
per size, with each case's seconds and evaluations of fun.

    python tools/verify_published.py [--sizes small,large] [--planted rel1e-6,factor2] [--out record.json]

A false alarm is a fail on a claim the corpus calls right; a miss is a pass on a claim it calls wrong
(a plant the corpus marks undetectable, below the claim's own rounding, is counted apart, and so is a fail
on a plant that changes nothing at x but the claimed function near it); a crash is an exception out of
verify.  The fast subset runs in tests/test_verify_published.py.
"""

import argparse
import collections
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
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--planted", default="", help="comma-separated kinds from published.KINDS")
    parser.add_argument("--out", default="verify_published.json")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    cases = published.cases(tuple(args.sizes.split(",")))
    runs = [(case, "published") for case in cases]
    for kind in filter(None, args.planted.split(",")):
        rng = np.random.default_rng(1)
        runs += [(p, kind) for p in (published.planted(c, kind, rng) for c in cases) if p is not None]
    rows, tally = [], collections.Counter()
    for case, kind in runs:
        row = {"name": case["name"], "library": case["library"], "version": case["version"], "n": case["x"].size,
               "claims_from": kind, **judge(case)}
        rows.append(row)
        outcomes = ["crash"] if "crash" in row else [c["outcome"] for c in row["claims"].values()]
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
