"""The MNIST optimizer study: runs, their records, tuning, seeds, and the summary.

The study follows optimizer-benchmark practice (DeepOBS; Schmidt et al.
2021): three sets with one job each (train; validation, only to choose;
test, only to report), the tuned configuration rerun with several seeds,
winners only where a rank test over the seeds says so, and budgets in epochs,
seconds and examples processed.

A *run* is one config (architecture, optimizer, step size, minibatch size,
epochs, seed, L2, number type) trained on the study's data.  Its record (JSON,
plus the 2-D codes and a few reconstructions of test digits as an npz without
pickle) is saved the moment it finishes, under a key hashed from the config,
the data's fingerprint and the code version: an interrupted study resumes
without redoing finished runs, and other data, config or code never pick up
an old record.  Workers only compute; the study process writes every file.

Tuning rule, per architecture and optimizer, by validation loss at the end of
the fixed epoch budget (diverged runs are out), all with seed 0:

1. every step size of the log grid at the middle minibatch size; while the
   best step sits at an edge of the grid, the grid grows past that edge (the
   next point of the 1-3-10 sequence, at most ``max_extensions`` times a side);
2. the best step size at every other minibatch size of the grid;
3. the tuned config is the best run of 1 and 2; it is rerun with seeds
   1 .. ``seeds`` - 1 (the seed sets the initial weights and the minibatch order).

HF has no step size: its grid is the gradient minibatch size alone.

The test set scores each tuned config's seed runs (median and min-max); a
winner is declared only when a one-sided exact Mann-Whitney test of its seeds'
test losses against every other method's gives p <= 0.05
(``studies.summary.rank_test``), otherwise the tied methods are named.  Where
the same test on validation losses cannot decide, the tied configs get more
seeds, one at a time, up to ``max_seeds`` (``more_seeds``).

Runs are independent, so they go to an executor: by default a process pool
on this machine; ``run_study(executor=...)`` takes any
``concurrent.futures.Executor``, e.g. a Dask cluster's
``distributed.Client(address).get_executor()`` (``python -m studies --scheduler``).
"""

import math
import time
import warnings

from ae.train import evaluate
from studies import data as study_data
from studies.executors import make_executor, run_batch
from studies.protocol import (
    HF_GRID,
    MODES,
    OPTIMIZERS,
    RECONSTRUCTED,
    STEP_GRID,
    _score,
    beyond,
    build_architecture,
    epochs_for,
    fit_to_data,
    make_config,
)
from studies.store import code_version, folder_lock, run_key
from studies.summary import _ranking, summarise


def encode(model, middle, inputs):
    model.compute_outputs(inputs)
    return model.get_activations(middle)


def run_one(config, data):
    """Train one config on the digits of ``data`` (a DataSpec); returns (record, arrays).  Saving is the
    caller's (workers write nothing)."""
    dataset = study_data.load_spec(data)
    model, middle = build_architecture(config["architecture"])
    model.init_weights(config["seed"], dtype=config["dtype"])
    codes_initial = encode(model, middle, dataset.test)
    options = dict(num_epoch=config["epochs"], minibatch_size=config["minibatch_size"], l2_coef=config["l2_coef"],
                   test_inputs=dataset.validation, seed=config["seed"])
    if config["optimizer"] != "hf":
        options["step_size"] = config["step_size"]
    else:
        options.update(config["hf"])
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is in the history, and in the record
        history = getattr(model, f"run_{config['optimizer']}")(dataset.train, **options)
    wall = time.perf_counter() - tic
    # the engine's held-out set is this study's validation set: say so in the record
    for name in ("loss", "grad"):
        history[f"validation_{name}"] = history.pop(f"test_{name}")
        history["initial"][f"validation_{name}"] = history["initial"].pop(f"test_{name}")
    validation_loss = history["validation_loss"]
    test_loss = evaluate(model, dataset.test, model.get_weights(), 0.0)[0]  # reported, never used to choose
    data = dataset.describe()
    version = code_version()
    record = {
        "config": config, "key": run_key(config, data["fingerprint"], version), "code_version": version,
        "data": data, "history": history, "wall_seconds": wall,
        "diverged": history.get("diverged"),
        "final_validation_loss": validation_loss[-1] if validation_loss else None,
        "best_validation_loss": min(validation_loss) if validation_loss else None,
        "final_test_loss": test_loss if math.isfinite(test_loss) else None,
    }
    arrays = {"codes_initial": codes_initial, "codes_final": encode(model, middle, dataset.test),
              "reconstructions": model.compute_outputs(dataset.test[:, :RECONSTRUCTED])}
    return record, arrays


def more_seeds(spec, tuned, seeded, records, data_id, seed):
    """One more seed of every method in each undecided tie, while the cap ``max_seeds`` allows.

    Decided by the rank test on the seeds' validation losses, never on the test set, so that the
    number of test results reported is chosen by nothing they say.
    """
    version = code_version()

    def validation_losses(arch, opt):
        runs = [records[run_key(c, data_id, version)] for c in [tuned[arch, opt]] + seeded[arch, opt]]
        return [r["final_validation_loss"] for r in runs if not r["diverged"]]

    new = []
    for arch in spec["architectures"]:
        by_opt = {opt: {"validation_losses": validation_losses(arch, opt)} for opt in OPTIMIZERS}
        _, tied, winner, _, _ = _ranking(by_opt, losses="validation_losses")
        if winner is None and len(tied) > 1:
            for opt in tied:
                if len(seeded[arch, opt]) + 1 < spec.get("max_seeds", spec["seeds"]):
                    config = {**tuned[arch, opt], "seed": seed + len(seeded[arch, opt]) + 1}
                    seeded[arch, opt].append(config)
                    new.append(config)
    return new


def run_study(folder, mode="quick", data=None, seed=0, executor=None, workers=2,
              progress=print, verbose=True):
    """Tune every optimizer on every architecture of ``mode``, rerun the tuned configs with more
    seeds, and write the summary; returns the summary dict.

    Holds ``folder`` for the whole study (``folder_lock``).  Ctrl-C stops the
    workers and raises KeyboardInterrupt; a failed run raises StudyError.
    Finished runs are saved as they come, so a rerun resumes.
    """
    spec = MODES[mode]
    data = study_data.DataSpec(*(data or ()))  # the embedded digits by default; a plain tuple is read in order
    dataset = study_data.load_spec(data)
    data_id, n_train = dataset.fingerprint(), dataset.train.shape[1]
    minibatches, capped = fit_to_data(spec["minibatches"], n_train)
    hf_minibatches, hf_capped = fit_to_data(spec["hf_minibatches"], n_train)
    for asked, used in {**capped, **hf_capped}.items():
        progress(f"minibatch {asked} is more than the {n_train} training digits: using {used}")
    middle = minibatches[len(minibatches) // 2]
    epochs = epochs_for(spec, n_train)
    pairs = [(arch, opt) for arch in spec["architectures"] for opt in OPTIMIZERS]
    tic = time.perf_counter()
    with folder_lock(folder):
        own = executor is None
        executor = make_executor(workers) if own else executor
        records, stats = {}, {"computed": 0, "workers": workers if own else None}  # key -> record

        def run(configs, stage):
            progress(f"{stage}: {len(configs)} runs")
            for record in run_batch(configs, run_one, data, folder, executor, progress, data_id, stats, verbose):
                records[record["key"]] = record

        def best_of(configs):
            """The lowest validation loss; among equals (all diverged, say) the smallest step and batch."""
            version = code_version()
            return min((records[run_key(c, data_id, version)] for c in configs),
                       key=lambda r: (_score(r), r["config"]["step_size"] or 0, r["config"]["minibatch_size"]))

        try:
            grids = {}
            for arch, opt in pairs:
                grid = ([(None, b) for b in hf_minibatches] if opt == "hf"
                        else [(s, middle) for s in STEP_GRID[opt][spec["steps"]]])
                grids[arch, opt] = [make_config(arch, opt, s, b, epochs, seed) for s, b in grid]
            run([c for cs in grids.values() for c in cs], "stage 1 (step sizes)")
            extensions = {pair: {"low": 0, "high": 0} for pair in pairs}
            while True:  # grow each grid past the edge where its best step sits
                new = []
                for arch, opt in pairs:
                    if opt == "hf":
                        continue
                    steps = sorted(c["step_size"] for c in grids[arch, opt])
                    best = best_of(grids[arch, opt])["config"]["step_size"]
                    for side, edge, direction in (("low", steps[0], -1), ("high", steps[-1], 1)):
                        if best == edge and extensions[arch, opt][side] < spec["max_extensions"]:
                            extensions[arch, opt][side] += 1
                            config = make_config(arch, opt, beyond(edge, direction), middle, epochs, seed)
                            grids[arch, opt].append(config)
                            new.append(config)
                if not new:
                    break
                run(new, "stage 1b (grids extended past an edge that held the best step)")
            stage2 = {}
            for arch, opt in pairs:
                best = best_of(grids[arch, opt])
                if opt == "hf":  # HF's own options, one change at a time, at its best minibatch
                    stage2[arch, opt] = [make_config(arch, opt, None, best["config"]["minibatch_size"],
                                                     epochs, seed, hf=change) for change in HF_GRID]
                else:
                    stage2[arch, opt] = [make_config(arch, opt, best["config"]["step_size"], b, epochs, seed)
                                         for b in minibatches if b != best["config"]["minibatch_size"]]
            run([c for cs in stage2.values() for c in cs],
                "stage 2 (minibatch sizes at the best step; HF's options at its best minibatch)")
            tuned, seeded = {}, {}
            for pair in pairs:
                grids[pair] += stage2[pair]
                tuned[pair] = best_of(grids[pair])["config"]
                seeded[pair] = [{**tuned[pair], "seed": seed + k} for k in range(1, spec["seeds"])]
            run([c for cs in seeded.values() for c in cs], f"stage 3 (the tuned configs with {spec['seeds']} seeds)")
            while True:  # a tie the rank test cannot decide gets more seeds, decided on validation only
                new = more_seeds(spec, tuned, seeded, records, data_id, seed)
                if not new:
                    break
                run(new, f"stage 3b (more seeds where the rank test on validation losses cannot decide, up to "
                         f"{spec['max_seeds']})")
        finally:
            if own:
                executor.shutdown(cancel_futures=True)
        sizes = {"minibatches": minibatches, "hf_minibatches": hf_minibatches,
                 "capped": {str(k): v for k, v in {**capped, **hf_capped}.items()},
                 # how long this invocation took, and how much of the study it computed (a resumed
                 # study reuses records): a benchmark figure, never a verdict
                 "timing": {**stats, "runs": len(records), "wall_seconds": time.perf_counter() - tic}}
        return summarise(folder, mode, spec, grids, extensions, tuned, seeded, records, dataset, sizes)
