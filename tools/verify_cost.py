"""What checks.verify costs at a size: evaluations of fun, seconds and peak memory, for a gradient, an Hv and
both, with fun complex-analytic and real-only (tests/test_verify.py's Chain, each call made to cost
``--call-ms``).  A benchmark, not a test: one run, timings noisy on a shared machine.

    python tools/verify_cost.py [--n 20000] [--call-ms 10] [--out record.json]
"""

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_verify import Chain  # noqa: E402

from checks import verify  # noqa: E402


def measure(n, analytic, claims, call_seconds):
    chain = Chain(n, analytic)

    def fun(y):
        time.sleep(call_seconds)
        return chain.fun(y)

    start = time.perf_counter()
    tracemalloc.start()
    try:
        result = verify(fun, chain.x, **{claim: getattr(chain, claim) for claim in claims})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"n": n, "fun": "complex-analytic" if analytic else "real-only", "claims": list(claims),
            "passed": result.passed, "evaluations": chain.calls, "seconds": round(time.perf_counter() - start, 1),
            "peak_mb": round(peak / 1e6, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--call-ms", type=float, default=10.0)
    parser.add_argument("--out", default="verify_cost.json")
    args = parser.parse_args(argv)
    rows = [measure(args.n, analytic, claims, args.call_ms / 1e3)
            for analytic in (True, False) for claims in (("grad",), ("hvp",), ("grad", "hvp"))]
    for row in rows:
        print(row, flush=True)
    Path(args.out).write_text(json.dumps({"call_ms": args.call_ms, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
