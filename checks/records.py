"""Records: every check's facts as a JSON-ready dict, and their files.

A record says what was checked (check, quantity, estimator), on what
(architecture, seed, dtype, precision), how (steps), against what threshold,
what was measured, and the verdict: "pass", "fail", or "cannot run" with the
reason (a check that cannot run never reports a misleading number).
"""

import collections
import json
import math
import os
import pathlib
import tempfile

import numpy as np

from ae.activations import letter_of
from checks.provenance import source_hash


def code_version():
    """A hash of the engine and the lab: a record made by other code is stale."""
    return source_hash("ae", "checks")


def architecture(model):
    """A JSON description of an autoencoder's layers."""
    return {
        "layers": [{"shape": list(layer.shape), "activation": repr(layer.afun),
                    "bias": layer.use_bias} for layer in model.layers],
        "tied": model.tied,
        "params": model.params_number,
    }


def describe(model):
    """A short label such as '5-4t-5 bias tied'."""
    widths = [str(model.layers[0].shape[0])]
    for layer in model.layers:
        widths.append(f"{layer.shape[1]}{letter_of(layer.afun)}")
    flags = (" bias" if model.layers[0].use_bias else "") + (" tied" if model.tied else "")
    return "-".join(widths) + flags


def verdict(check, quantity, measured, threshold, context, **fields):
    """A record whose verdict is measured <= threshold (NaN fails)."""
    measured = float(measured)
    ok = math.isfinite(measured) and measured <= threshold
    return {"check": check, "quantity": quantity, **context, **fields,
            "threshold": threshold, "measured": measured, "verdict": "pass" if ok else "fail"}


def cannot_run(check, quantity, reason, context, **fields):
    return {"check": check, "quantity": quantity, **context, **fields,
            "measured": None, "verdict": "cannot run", "reason": reason}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing point is a null
    return value


def output_folder_problem(folder):
    """None if ``folder`` is, or can be made, a folder this process can write in; else why not.

    Nothing is left behind: the test writes a temporary file in the folder, or in its nearest
    existing parent when the folder is still to be made.
    """
    folder = pathlib.Path(folder).absolute()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        return "it is a file" if existing == folder else f"{existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def atomic_write(path, write):
    """``write(temporary path)`` in ``path``'s folder under a name of this writer's own, then rename:
    a reader sees the old file or the new one, never half of one."""
    path = pathlib.Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_json(obj, path):
    """Written whole or not at all (``atomic_write``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_plain(obj), indent=1, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


BOUND_FIELDS = ("measured", "threshold", "absolute")  # numbers a verdict rests on


def verdict_problems(records):
    """What is wrong with records read back from a file: a pass/fail verdict must rest on finite
    numbers and follow from them (measured <= threshold is a pass), whoever wrote the file."""
    problems = []
    for k, r in enumerate(records):
        if not isinstance(r, dict) or r.get("verdict") not in ("pass", "fail"):
            continue
        label = f"record {k} ({r.get('check')}, {r.get('quantity')}, {r.get('dtype')})"
        bad = [f for f in BOUND_FIELDS if f in r and not (isinstance(r[f], (int, float)) and not isinstance(r[f], bool)
                                                          and math.isfinite(r[f]))]
        if bad or "threshold" not in r or "measured" not in r:
            problems.append(f"{label}: {', '.join(bad) or 'measured or threshold'} is not a finite number")
        elif (r["measured"] <= r["threshold"]) != (r["verdict"] == "pass"):
            problems.append(f"{label}: verdict {r['verdict']} does not follow from measured {r['measured']!r} "
                            f"and threshold {r['threshold']!r}")
    return problems


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def group_records(records):
    """Rows of (check, quantity, dtype): worst measured value, target, verdict counts.

    "worst" is the largest measured value among pass/fail verdicts (for info
    rows, the largest value they report).  Dense H is assembled three ways
    with different targets, so each way gets its own row.
    """
    groups = collections.OrderedDict()
    for r in records:
        label = f"{r['check']}: {r['estimator'].split(' vs ')[0]}" if r["check"] == "dense H" else r["check"]
        groups.setdefault((label, r["quantity"], r["dtype"]), []).append(r)
    rows = []
    for (check, quantity, dtype), members in groups.items():
        judged = [r["measured"] for r in members if r["verdict"] in ("pass", "fail") and r["measured"] is not None]
        info = [r["measured"] for r in members if r["verdict"] == "info" and isinstance(r["measured"], float)]
        values = judged or info
        targets = [r["threshold"] for r in members if r.get("threshold") is not None]
        rows.append({"check": check, "quantity": quantity, "dtype": dtype,
                     "worst": max(values) if values else None, "target": max(targets) if targets else None,
                     "verdicts": dict(sorted(collections.Counter(r["verdict"] for r in members).items())),
                     "count": len(members)})
    return rows
