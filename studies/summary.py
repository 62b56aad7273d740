"""The study's summary statistics: medians and ranges over seeds, the winner or the tie, time to
target, and Hessian-free at equal budgets; ``summarise`` writes summary.json from the records."""

import json
import math
import pathlib

from checks.records import atomic_write
from studies import data as study_data
from studies import pca
from studies.protocol import (
    HF_DEFAULT,
    HF_GRID,
    OPTIMIZERS,
    STEP_GRID,
    TARGET_FACTOR,
    budget_rule,
    describe_config,
    epochs_for,
    seed_list,
)
from studies.store import StudyError, code_version, run_key


def _median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


ALPHA = 0.05  # the rank test's level: with 3 seeds a side only complete separation reaches it (p = 1/20)


def rank_test(better, worse):
    """One-sided exact Mann-Whitney p-value of "``better``'s losses are lower than ``worse``'s": the
    probability, were both sets from one distribution, of ranks at least this separated.  Every seed of
    A below every seed of B gives the smallest p there is (1/20 for 3 and 3, 1/252 for 5 and 5), so one
    wild seed cannot turn a clear result into a tie, nor make one."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(better, worse, alternative="less", method="exact").pvalue)


def _ranking(tuned, losses="test_losses"):
    """(ranked optimizers, tied set, winner or None, margin of medians, the rule's sentence).

    Ranked by median loss over seeds; the best wins only when a rank test of its seeds' ``losses``
    against each other method's gives p <= ALPHA; the methods it cannot be told from are tied with it.
    """
    def finished(opt):
        return [v for v in tuned[opt].get(losses) or [] if v is not None]

    def key(opt):
        median = tuned[opt]["median_test_loss"] if losses == "test_losses" else _median(finished(opt))
        return math.inf if median is None else median

    ranked = sorted(tuned, key=key)
    best = ranked[0]
    if key(best) == math.inf:
        return ranked, ranked, None, None, "no winner: every run diverged"
    tests = {opt: rank_test(finished(best), finished(opt)) for opt in ranked[1:] if finished(opt)}
    tied = [best] + [opt for opt, p in tests.items() if p > ALPHA]
    runner_up = key(ranked[1]) if len(ranked) > 1 else math.inf
    margin = None if runner_up == math.inf else runner_up - key(best)
    seeds = len(finished(best))
    if len(tied) == 1:
        rule = (f"rank test over seeds: {best} is below every other method (one-sided exact Mann-Whitney, "
                f"largest p = {max(tests.values(), default=0):.3g} <= {ALPHA}, {seeds} seeds of {best})")
    else:
        rule = (f"rank test over seeds: {', '.join(tied[1:])} cannot be told from {best} "
                f"(p = {', '.join(f'{tests[o]:.3g}' for o in tied[1:])} > {ALPHA}, {seeds} seeds of {best})")
    return ranked, tied, (best if len(tied) == 1 else None), margin, rule


def time_to_target(runs, target, n_train):
    """Median epochs, seconds and examples processed (gradient + curvature) over the seed runs that
    reach ``target`` validation loss; ``reached`` counts them."""
    hits = []
    for run in runs:
        h = run["history"]
        first = next((i for i, loss in enumerate(h["validation_loss"]) if loss <= target), None)
        if first is not None:
            hits.append((h["epoch"][first], h["seconds"][first], h["passes"][first] * n_train))
    return {"reached": len(hits), "runs": len(runs),
            "epochs": _median([e for e, _, _ in hits]), "seconds": _median([s for _, s, _ in hits]),
            "examples": _median([x for _, _, x in hits])}


def _loss_within(run, budget, measure, n_train):
    """Validation loss at the last epoch end whose spent ``measure`` (seconds, or examples) fits the budget."""
    h = run["history"]
    spent = h["seconds"] if measure == "seconds" else [p * n_train for p in h["passes"]]
    within = [loss for loss, used in zip(h["validation_loss"], spent) if used <= budget]
    return within[-1] if within else h["initial"]["validation_loss"]


def hf_at_equal_budget(runs_by_optimizer, n_train):
    """HF's median final validation loss against the best first-order method's at the same seconds and
    at the same examples processed (gradient and curvature examples both count), medians over seeds."""
    finished = {o: [r for r in runs if not r["diverged"] and r["history"]["validation_loss"]]
                for o, runs in runs_by_optimizer.items()}
    first_order = [o for o in finished if o != "hf" and finished[o]]
    if not finished.get("hf") or not first_order:
        return None
    best = min(first_order, key=lambda o: _median([r["final_validation_loss"] for r in finished[o]]))
    hf = finished["hf"]
    out = {"first_order": best, "hf_validation": _median([r["final_validation_loss"] for r in hf])}
    for measure in ("seconds", "examples"):
        budget = _median([r["history"]["seconds"][-1] if measure == "seconds"
                          else r["history"]["passes"][-1] * n_train for r in hf])
        theirs = _median([_loss_within(r, budget, measure, n_train) for r in finished[best]])
        out[measure] = {"budget": budget, "first_order_validation": theirs,
                        "hf_over_first_order": out["hf_validation"] / theirs - 1}
    return out


def summarise(folder, mode, spec, grids, extensions, tuned_configs, seeded, records, dataset, sizes):
    data = dataset.describe()
    yardstick = pca.fit(dataset.train, k=2)
    pca_losses = {split: pca.loss(yardstick, getattr(dataset, split)) for split in study_data.SPLITS}
    version = code_version()

    def record_of(config):
        record = records[run_key(config, data["fingerprint"], version)]
        if record["data"]["fingerprint"] != data["fingerprint"]:
            raise StudyError(f"{describe_config(config)}: a record of other data reached the summary")
        return record

    architectures = {}
    for arch in spec["architectures"]:
        tuned = {}
        for opt in OPTIMIZERS:
            grid = [record_of(c) for c in grids[arch, opt]]
            runs = [record_of(tuned_configs[arch, opt])] + [record_of(c) for c in seeded[arch, opt]]
            finished = [r for r in runs if not r["diverged"] and r["final_test_loss"] is not None]
            test_losses = [r["final_test_loss"] for r in finished]
            median = _median(test_losses)
            tuned[opt] = {
                "key": runs[0]["key"], "config": runs[0]["config"], "data_fingerprint": runs[0]["data"]["fingerprint"],
                "seed_keys": [r["key"] for r in runs], "seeds": [r["config"]["seed"] for r in runs],
                "test_losses": [r["final_test_loss"] for r in runs], "diverged_seeds": len(runs) - len(finished),
                "validation_losses": [r["final_validation_loss"] for r in finished],
                "median_test_loss": median, "min_test_loss": min(test_losses, default=None),
                "max_test_loss": max(test_losses, default=None),
                "spread": (max(test_losses) - min(test_losses)) if test_losses else None,
                "ratio_to_pca": None if median is None else median / pca_losses["test"],
                "validation_loss": runs[0]["final_validation_loss"],
                "median_validation_loss": _median([r["final_validation_loss"] for r in finished]),
                "wall_seconds": _median([r["wall_seconds"] for r in runs]),
                "extensions": extensions.get((arch, opt), {"low": 0, "high": 0}),
                "grid": [{"step_size": r["config"]["step_size"], "minibatch_size": r["config"]["minibatch_size"],
                          "hf": r["config"].get("hf"),
                          "final_validation_loss": r["final_validation_loss"], "diverged": bool(r["diverged"]),
                          "key": r["key"]} for r in grid]}
        ranked, tied, winner, margin, rule = _ranking(tuned)
        finals = [t["median_validation_loss"] for t in tuned.values() if t["median_validation_loss"] is not None]
        target = TARGET_FACTOR * min(finals) if finals else None
        for opt in OPTIMIZERS:
            runs = [records[k] for k in tuned[opt]["seed_keys"]]
            tuned[opt]["time_to_target"] = (time_to_target(runs, target, data["train"]) if target is not None
                                            else None)
        hf_budget = hf_at_equal_budget({o: [records[k] for k in tuned[o]["seed_keys"]] for o in OPTIMIZERS},
                                       data["train"])
        architectures[arch] = {"tuned": tuned, "ranking": ranked, "tied": tied, "winner": winner, "rule": rule,
                               "hf_at_equal_budget": hf_budget,
                               "best": ranked[0], "runner_up": ranked[1], "margin": margin, "target": target}
    grid_text = {o: STEP_GRID[o][spec["steps"]] for o in STEP_GRID}
    first_seed = next(iter(tuned_configs.values()))["seed"]
    n_train = dataset.train.shape[1]
    epochs = epochs_for(spec, n_train)
    summary = {
        "mode": mode, "epochs": epochs, "examples_per_run": epochs * n_train,
        "budget_rule": budget_rule(spec, n_train),
        "seeds": spec["seeds"], "code_version": version, "data": data,
        "pca2": {f"{split}_loss": loss for split, loss in pca_losses.items()},
        "mean_only_test_loss": float(((dataset.test - dataset.train.mean(1, keepdims=True)) ** 2).sum()
                                     / (2 * dataset.test.shape[1])),
        "tuning_rule": ("per architecture and optimizer, with seed 0: every step size of the log grid "
                        f"{grid_text} at minibatch {sizes['minibatches'][len(sizes['minibatches']) // 2]}, "
                        f"the grid extended past an edge that holds the best step (at most "
                        f"{spec['max_extensions']} points a side), then the best step at minibatch sizes "
                        f"{sizes['minibatches']}; HF over gradient minibatches {sizes['hf_minibatches']} with "
                        f"{HF_DEFAULT}, then at its best minibatch each of {HF_GRID}; "
                        f"best = lowest validation loss after {epochs} epochs, diverged runs excluded; "
                        f"the tuned config is rerun with seeds {seed_list(spec, first_seed)} and scored on the "
                        "test set"
                        + "".join(f"; minibatch {k} capped to the {v} training digits"
                                  for k, v in sizes["capped"].items())),
        "target_rule": (f"time to target: the first epoch whose validation loss is within "
                        f"{round(100 * (TARGET_FACTOR - 1))}% of the architecture's best median final "
                        "validation loss; medians over the seed runs that reach it"),
        "grid_capped": sizes["capped"],
        "timing": sizes["timing"],
        "architectures": architectures,
    }
    path = pathlib.Path(folder) / "summary.json"
    atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=1)))
    return summary
