"""Compare two study folders' run records, ignoring clock fields and the code version (and the key,
its hash): ``python tools/compare_study_records.py BEFORE AFTER`` prints what it checked or fails."""
import json
import pathlib
import sys

import numpy as np

CLOCK = {"wall_seconds", "seconds"}
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in CLOCK | {"key", "code_version"}}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x

def records(folder):
    out = {}
    for p in pathlib.Path(folder, "runs").glob("*.json"):
        r = json.loads(p.read_text())
        arrays = dict(np.load(p.with_suffix(".npz")))
        out[json.dumps(r["config"], sort_keys=True)] = (strip(r), arrays)
    return out

a, b = records(sys.argv[1]), records(sys.argv[2])
assert a.keys() == b.keys(), (len(a), len(b))
for k in a:
    assert a[k][0] == b[k][0], k
    assert a[k][1].keys() == b[k][1].keys() and all(np.array_equal(a[k][1][n], b[k][1][n]) for n in a[k][1]), k
print(f"{len(a)} runs: records identical except clock fields and the code version; arrays identical bit for bit")
