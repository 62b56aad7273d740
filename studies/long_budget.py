"""HF on its home ground: a study's tuned HF and best first-order config, trained long, at equal seconds.

Martens (2010) found HF ahead of first-order methods on deep autoencoders trained long; the study's
budget is short.  Here each of the two tuned configs (the study's own choice, at its tuning seed) trains for as
many epochs as the study measured to fit in ``minutes`` (its seconds per epoch, training steps only),
the two in parallel, one worker each (seconds are wall-clock training seconds: measure on a quiet
machine).  Both are scored at the end of the last epoch whose training
seconds fit in the shorter of the two runs (``studies.summary._loss_within``), and HF's steps are
described by the diagnostics the engine keeps per step (damping, reduction ratio, CG iterations and
why CG stopped).
"""

import collections
import json
import math
import pathlib

from checks.records import atomic_write
from studies import data as study_data
from studies.executors import make_executor, run_batch
from studies.runner import run_one
from studies.store import StudyError, code_version, folder_lock, read_record
from studies.summary import _loss_within, _median

DEEP_NET = "relu 784-512-128-2-128-512-784"


class PlanError(StudyError):
    """The comparison cannot be planned from what it was given (no study, other data, no such net)."""


def seconds_per_epoch(records):
    """The median training seconds per epoch of finished runs (evaluation excluded)."""
    return _median([r["history"]["seconds"][-1] / len(r["history"]["seconds"])
                    for r in records if r["history"]["seconds"]])


def plan(summary, study_folder, architecture, minutes):
    """The two long configs: the tuned HF and the tuned best first-order method (by median final
    validation loss) of ``architecture``, with the epochs the study's timing fits in ``minutes``."""
    if architecture not in summary["architectures"]:
        raise PlanError(f"the study has no architecture {architecture!r} (it has "
                        f"{', '.join(summary['architectures'])}); the deep net is in full mode")
    result = summary["architectures"][architecture]
    budget = result["hf_at_equal_budget"]
    if budget is None:
        raise PlanError(f"{architecture}: HF or every first-order method diverged in the study: nothing to compare")
    configs = {}
    for role, opt in (("hf", "hf"), ("first_order", budget["first_order"])):
        tuned = result["tuned"][opt]
        runs = [read_record(pathlib.Path(study_folder) / "runs" / f"{key}.json") for key in tuned["seed_keys"]]
        runs = [r for r in runs if isinstance(r, dict) and not r.get("diverged")]
        per_epoch = seconds_per_epoch(runs)
        if per_epoch is None:
            raise PlanError(f"{architecture} {opt}: the study's run records are missing from {study_folder}/runs")
        epochs = max(1, math.floor(minutes * 60 / per_epoch))
        configs[role] = {**tuned["config"], "epochs": epochs}
    return configs


def step_diagnostics(history):
    """What HF's steps did, from the per-step info the engine keeps."""
    ratios = [r for r in history.get("reduction_ratio", []) if r is not None]
    damping = history.get("damping", [])
    if not damping:
        return None
    return {"steps": len(damping),
            "damping": {"first": damping[0], "last": damping[-1], "min": min(damping), "max": max(damping)},
            "cg_iterations": {"median": _median(history["cg_iterations"]), "max": max(history["cg_iterations"])},
            "cg_stopped_by": dict(collections.Counter(history["cg_stopped_by"])),
            "reduction_ratio": {"median": _median(ratios),
                                "below_quarter": sum(r < 0.25 for r in ratios),
                                "none": len(damping) - len(ratios)}}


def compare(hf, first_order, n_train):
    """Both runs' validation losses at the shorter run's training seconds (None if either diverged)."""
    if hf["diverged"] or first_order["diverged"]:
        return None
    common = min(hf["history"]["seconds"][-1], first_order["history"]["seconds"][-1])
    hf_loss = _loss_within(hf, common, "seconds", n_train)
    fo_loss = _loss_within(first_order, common, "seconds", n_train)
    # how many epoch ends each had by then: the longer run is cut at an epoch end, up to one epoch short
    # (0: its initial weights), and a reader must see that to weigh the figure
    return {"seconds": common, "hf_validation": hf_loss, "first_order_validation": fo_loss,
            "hf_over_first_order": hf_loss / fo_loss - 1,
            "hf_epochs": sum(s <= common for s in hf["history"]["seconds"]),
            "first_order_epochs": sum(s <= common for s in first_order["history"]["seconds"])}


def describe_run(record):
    h = record["history"]
    return {"config": record["config"], "key": record["key"], "diverged": record["diverged"],
            "epochs_done": len(h["seconds"]), "seconds": h["seconds"][-1] if h["seconds"] else 0.0,
            "final_validation_loss": record["final_validation_loss"], "final_test_loss": record["final_test_loss"],
            "validation_loss": h["validation_loss"], "training_seconds": h["seconds"]}


def run_long_budget(study_folder, data, out, architecture=DEEP_NET, minutes=60, workers=2, progress=print,
                    verbose=True):
    """Plan, run (resuming saved runs) and compare; writes and returns OUT/long_budget.json."""
    study_folder = pathlib.Path(study_folder)
    summary = read_record(study_folder / "summary.json")
    if not isinstance(summary, dict):
        raise PlanError(f"{study_folder}/summary.json is missing or unreadable: run the study first")
    if not isinstance(summary.get("architectures"), dict) or not isinstance(summary.get("data"), dict):
        raise PlanError(f"{study_folder}/summary.json is not a study's summary (no architectures or data)")
    dataset = study_data.load_spec(data)
    data_id = dataset.fingerprint()
    if summary["data"]["fingerprint"] != data_id:
        raise PlanError(f"the data given (fingerprint {data_id}) are not the study's "
                        f"({summary['data']['name']}, fingerprint {summary['data']['fingerprint']}): "
                        "give the study's --data-dir, --train-subset and --validation-size")
    configs = plan(summary, study_folder, architecture, minutes)
    with folder_lock(out):
        executor = make_executor(workers)
        try:
            progress(f"long budget: {architecture}, HF for {configs['hf']['epochs']} epochs and "
                     f"{configs['first_order']['optimizer']} for {configs['first_order']['epochs']} "
                     f"(about {minutes:g} min each, by the study's timing)")
            hf, first_order = run_batch([configs["hf"], configs["first_order"]], run_one, data, out, executor,
                                        progress, data_id, None, verbose)
        finally:
            executor.shutdown(cancel_futures=True)
    n_train = dataset.train.shape[1]
    result = {
        "architecture": architecture, "minutes": minutes, "code_version": code_version(),
        "study": {"folder": str(study_folder), "code_version": summary["code_version"],
                  "examples_per_run": summary.get("examples_per_run")},
        "data": dataset.describe(),
        "rule": ("the study's tuned HF and best first-order config (the seed it tuned with), each trained for "
                 f"the epochs its study runs' median training seconds per epoch fit in {minutes:g} minutes; "
                 "compared at the last epoch end within the shorter run's training seconds"),
        "hf": describe_run(hf), "first_order": describe_run(first_order),
        "equal_seconds": compare(hf, first_order, n_train),
        "hf_steps": step_diagnostics(hf["history"]),
    }
    path = pathlib.Path(out) / "long_budget.json"
    atomic_write(path, lambda p: p.write_text(json.dumps(result, indent=1)))
    return result


def findings(result):
    """The comparison in plain sentences, for the command's output and the report alike."""
    runs = [result[role] for role in ("hf", "first_order")]
    out = ["; ".join(f"{r['config']['optimizer']} ran {r['epochs_done']} epochs in {r['seconds']:.0f} s of "
                     f"training, final validation loss {r['final_validation_loss']:.3f}"
                     + (" (diverged)" if r["diverged"] else "") for r in runs) + "."]
    equal = result["equal_seconds"]
    if equal:
        out.append(f"At equal seconds ({equal['seconds']:.0f} s of training, the shorter run): HF "
                   f"{equal['hf_validation']:.3f} after {equal['hf_epochs']} of its {runs[0]['epochs_done']} epochs, "
                   f"{runs[1]['config']['optimizer']} {equal['first_order_validation']:.3f} after "
                   f"{equal['first_order_epochs']} of {runs[1]['epochs_done']} "
                   f"(HF {100 * equal['hf_over_first_order']:+.1f}%).")
    steps = result["hf_steps"]
    if steps:
        ratio, damping = steps["reduction_ratio"], steps["damping"]
        stopped = ", ".join(f"{k} {v}" for k, v in steps["cg_stopped_by"].items())
        out.append(f"HF's {steps['steps']} steps: damping from {damping['first']:.3g} to {damping['last']:.3g} "
                   f"(between {damping['min']:.3g} and {damping['max']:.3g}); CG iterations median "
                   f"{steps['cg_iterations']['median']:g}, at most {steps['cg_iterations']['max']}; CG stopped by "
                   f"{stopped}; reduction ratio median "
                   f"{'-' if ratio['median'] is None else format(ratio['median'], '.2f')}, below 1/4 at "
                   f"{ratio['below_quarter']} steps.")
    return out
