"""The MNIST optimizer study: runs, their records, tuning, seeds, and the summary.

The study follows optimizer-benchmark practice (DeepOBS; Schmidt et al.
2021): three sets with one job each (train; validation, only to choose;
test, only to report), the tuned configuration rerun with several seeds,
winners only where the margin exceeds the seed spread, and budgets in epochs,
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
winner is declared only when the runner-up's median is further from it than
either's spread, otherwise the tied methods are named.

Runs are independent, so they go to an executor: by default a process pool
on this machine; ``run_study(executor=...)`` takes any
``concurrent.futures.Executor``, e.g. a Dask cluster's
``distributed.Client(address).get_executor()`` (``python -m studies --scheduler``).
"""

import concurrent.futures
import contextlib
import fcntl
import functools
import hashlib
import json
import math
import multiprocessing
import os
import pathlib
import signal
import socket
import tempfile
import threading
import time
import warnings

import numpy as np

import ae
from ae.train import evaluate
from checks.provenance import source_hash
from studies import data as study_data
from studies import pca

ARCHITECTURES = {
    # widths, activation letter per layer (linear middle, sigmoid output for pixels), tied
    "linear 784-2-784": ([784, 2, 784], "ll", False),
    "tanh 784-64-2-64-784": ([784, 64, 2, 64, 784], "tlts", False),
    "tanh 784-64-2-64-784 tied": ([784, 64, 2, 64, 784], "tlts", True),
    "tanh 784-256-2-256-784": ([784, 256, 2, 256, 784], "tlts", False),
    "relu 784-512-128-2-128-512-784": ([784, 512, 128, 2, 128, 512, 784], "rrlrrs", False),
    "tanh 784-256-2-256-784 tied": ([784, 256, 2, 256, 784], "tlts", True),
}
STEP_GRID = {
    "sgd": [0.003, 0.01, 0.03, 0.1, 0.3],
    "momentum": [0.001, 0.003, 0.01, 0.03, 0.1],
    "rmsprop": [0.0003, 0.001, 0.003, 0.01, 0.03],
    "adam": [0.0003, 0.001, 0.003, 0.01, 0.03],
}
MODES = {
    "quick": {"architectures": ["linear 784-2-784", "tanh 784-64-2-64-784", "tanh 784-64-2-64-784 tied"],
              "epochs": 10, "steps": slice(1, 4), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 3000],
              "seeds": 3, "max_extensions": 2},
    "full": {"architectures": ["linear 784-2-784", "tanh 784-256-2-256-784", "relu 784-512-128-2-128-512-784",
                               "tanh 784-256-2-256-784 tied"],
             "epochs": 40, "steps": slice(0, 5), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 4000],
             "seeds": 5, "max_extensions": 2},
}
TARGET_FACTOR = 1.05  # time-to-target: within 5% of the architecture's best final validation loss
OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam", "hf"]
# Hessian-free's own knobs (Martens 2010 tuned these where our diagnostics point: CG stopped early,
# damping climbing): the defaults, then one change at a time at HF's best gradient minibatch
HF_DEFAULT = {"curvature_fraction": 0.1, "max_cg_iterations": 100, "damping": 1.0}
HF_GRID = [{"curvature_fraction": 0.3}, {"max_cg_iterations": 250}, {"damping": 0.1}]
L2_COEF = 1e-5
RECONSTRUCTED = 8  # validation digits whose reconstructions are kept


def build_architecture(architecture):
    """(model, index of the 2-unit code layer) of an architecture of ``ARCHITECTURES``."""
    widths, acts, tied = ARCHITECTURES[architecture]
    return ae.build(widths, acts, tied=tied), widths.index(2) - 1


def code_version():
    """A hash of the engine and the study code: a record made by other code is stale."""
    return source_hash("ae", "studies")


def run_key(config, data_id, version):
    """A record's identity: everything that determines its result (config with seed and number
    type, the data's fingerprint, the code version)."""
    return hashlib.sha256(json.dumps([config, data_id, version], sort_keys=True).encode()).hexdigest()[:16]


class StudyError(RuntimeError):
    """The study cannot go on: a run failed, the folder is taken, or workers saw other data."""


@functools.lru_cache(maxsize=2)
def _dataset(data_dir, train_subset, seed, n_validation=None):
    return study_data.load(data_dir, train_subset=train_subset, seed=seed, n_validation=n_validation)


def encode(model, middle, inputs):
    model.compute_outputs(inputs)
    return model.get_activations(middle)


def run_one(config, data_args):
    """Train one config; returns (record, arrays).  Saving is the caller's (workers write nothing)."""
    dataset = _dataset(*data_args)
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


def atomic_write(path, write):
    """Write through a temporary file of this writer's own (unique name), then rename atomically."""
    path = pathlib.Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def save_record(folder, record, arrays):
    runs = pathlib.Path(folder) / "runs"
    runs.mkdir(parents=True, exist_ok=True)

    # arrays first: a record on disk always has its arrays beside it
    def write_arrays(path):
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(runs / f"{record['key']}.npz", write_arrays)
    atomic_write(runs / f"{record['key']}.json", lambda p: p.write_text(json.dumps(record)))


def read_record(path):
    """The record at ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def load_record(folder, config, data_id, version):
    """The saved record of this exact config, data and code version, or None."""
    record = read_record(pathlib.Path(folder) / "runs" / f"{run_key(config, data_id, version)}.json")
    if not isinstance(record, dict):
        return None
    if (record.get("config") != config or record.get("code_version") != version
            or (record.get("data") or {}).get("fingerprint") != data_id):
        return None
    return record


def saved_runs(folder, data_id, version=None):
    """How many records in ``folder`` belong to these data and this code version."""
    version = code_version() if version is None else version
    count = 0
    for path in (pathlib.Path(folder) / "runs").glob("*.json"):
        record = read_record(path)
        if (isinstance(record, dict) and record.get("code_version") == version
                and (record.get("data") or {}).get("fingerprint") == data_id):
            count += 1
    return count


def load_arrays(folder, key):
    with np.load(pathlib.Path(folder) / "runs" / f"{key}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def make_config(architecture, optimizer, step_size, minibatch_size, epochs, seed, dtype="float64", hf=None):
    """A run's config; HF has no step size but its own options (``HF_DEFAULT`` changed by ``hf``)."""
    return {"architecture": architecture, "optimizer": optimizer,
            "step_size": None if optimizer == "hf" else step_size, "minibatch_size": minibatch_size,
            "epochs": epochs, "seed": seed, "l2_coef": L2_COEF, "dtype": dtype,
            "hf": {**HF_DEFAULT, **(hf or {})} if optimizer == "hf" else None}


def describe_config(config):
    step = "" if config["step_size"] is None else f" step {config['step_size']}"
    changed = {k: v for k, v in (config.get("hf") or {}).items() if HF_DEFAULT[k] != v}
    options = "".join(f" {k} {v}" for k, v in changed.items())
    return (f"{config['architecture']} {config['optimizer']}{step}{options} batch {config['minibatch_size']} "
            f"seed {config['seed']}")


def _score(record):
    """Validation loss for tuning: the test set never chooses anything."""
    loss = record["final_validation_loss"]
    return math.inf if record.get("diverged") or loss is None or not math.isfinite(loss) else loss


def beyond(step, direction):
    """The next step size of the 1-3-10 log grid above (direction +1) or below (-1) ``step``."""
    exponent = math.floor(math.log10(step) + 1e-9)
    mantissa = step / 10**exponent
    if direction > 0:
        value = (3 if mantissa < 2 else 10) * 10**exponent
    else:
        value = (1 if mantissa > 2 else 0.3) * 10**exponent
    return float(f"{value:.3g}")


# --- one study per folder -------------------------------------------------------------------

_HELD = {}  # resolved folder -> [open lock file, depth]: re-entrant within this process


@contextlib.contextmanager
def folder_lock(folder):
    """Hold ``folder`` for this study; a second study on it fails at once naming the holder."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = str(folder.resolve())
    if name in _HELD:
        _HELD[name][1] += 1
        try:
            yield
        finally:
            _HELD[name][1] -= 1
        return
    handle = open(folder / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StudyError(f"{folder} is in use by {holder}: wait for it to finish, or choose another "
                         "folder with --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    _HELD[name] = [handle, 1]
    try:
        yield
    finally:
        del _HELD[name]
        handle.close()  # closing releases the lock


# --- executors ------------------------------------------------------------------------------

class _Inline(concurrent.futures.Executor):
    """Runs each task at submit: for one worker, and for debugging."""

    def submit(self, fn, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the caller as the run's failure
            future.set_exception(error)
        return future


def _watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)  # the study is gone (even by SIGKILL): nothing would read this worker's result


def _worker_start(parent):
    """In each worker: leave Ctrl-C to the study (it stops the workers), and die with the study."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


class _OneThreadPool(concurrent.futures.ProcessPoolExecutor):
    """Worker processes with one BLAS/OpenMP thread each, so that they do not fight over the cores.

    Children read the thread counts from the environment when they start
    (spawned on demand, any time before shutdown); the parent's own
    environment is restored at shutdown, so that a library it loads later
    (torch in the benchmark) still gets every core.
    """

    VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

    def __init__(self, workers):
        self._saved = {name: os.environ.get(name) for name in self.VARIABLES}
        for name in self.VARIABLES:
            os.environ.setdefault(name, "1")
        super().__init__(workers, mp_context=multiprocessing.get_context("spawn"),
                         initializer=_worker_start, initargs=(os.getpid(),))

    def submit(self, fn, /, *args, **kwargs):
        # Workers are spawned inside submit.  With SIGINT blocked meanwhile they start with it
        # blocked (the mask is inherited), so a Ctrl-C during their start-up cannot print a
        # traceback from them; here it is only delayed until the mask is restored.
        blocking = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
        if blocking:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            if blocking:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def stop_workers(self):
        """Cancel what has not started and end the runs in progress (Ctrl-C, a failed run)."""
        for process in list((self._processes or {}).values()):
            if process.is_alive():
                process.terminate()
        self.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, *args, **kwargs):
        super().shutdown(*args, **kwargs)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_executor(workers):
    return _Inline() if workers <= 1 else _OneThreadPool(workers)


def _stop(pending, executor):
    for future in pending:
        future.cancel()  # what has not started (a Dask executor cancels on the cluster)
    stop_workers = getattr(executor, "stop_workers", None)
    if stop_workers is not None:
        stop_workers()


def run_batch(configs, data_args, folder, executor, progress, data_id, stats=None):
    """Records of all configs: loaded if saved, else run on the executor and saved as each finishes.

    A failed run stops the batch at once (StudyError naming the run); so does
    Ctrl-C (KeyboardInterrupt, after the workers are stopped).
    """
    version = code_version()
    records, configs_to_run = {}, []
    for config in configs:
        key = run_key(config, data_id, version)
        if key not in records:
            records[key] = load_record(folder, config, data_id, version)
            if records[key] is None:
                configs_to_run.append(config)
    if len(records) > len(configs_to_run):
        progress(f"reusing {len(records) - len(configs_to_run)} finished runs")
    futures, done = {}, 0

    def finish(future):
        nonlocal done
        config = futures.pop(future)
        try:
            record, arrays = future.result()
        except Exception as error:
            raise StudyError(f"run {describe_config(config)} failed: {type(error).__name__}: {error}") from error
        if record["data"]["fingerprint"] != data_id:
            raise StudyError(f"run {describe_config(config)} was trained on data {record['data']['name']} "
                             f"(fingerprint {record['data']['fingerprint']}), not the study's {data_id}: "
                             "the workers do not see the same data files")
        save_record(folder, record, arrays)
        records[record["key"]] = record
        done += 1
        if stats is not None:
            stats["computed"] = stats.get("computed", 0) + 1
        loss = record["final_validation_loss"]
        progress(f"[{done}/{len(configs_to_run)}] {describe_config(config)}: validation "
                 f"{'-' if loss is None else f'{loss:.4g}'}"
                 f"{' DIVERGED' if record['diverged'] else ''} ({record['wall_seconds']:.1f} s)")

    try:
        for config in configs_to_run:
            future = executor.submit(run_one, config, data_args)
            futures[future] = config
            if future.done():  # an inline executor has run it already: save it now
                finish(future)
        for future in concurrent.futures.as_completed(list(futures)):
            finish(future)
    except BaseException:
        _stop(list(futures), executor)
        raise
    return [records[run_key(c, data_id, version)] for c in configs]


def fit_to_data(sizes, n_train):
    """The minibatch sizes of a grid that the training set can hold: larger ones become the whole
    set (once).  Returns (sizes, {asked: used} for each one changed)."""
    used = sorted({min(b, n_train) for b in sizes})
    return used, {b: n_train for b in sizes if b > n_train}


def run_study(folder, mode="quick", data_args=(None, None, 0), seed=0, executor=None, workers=2,
              progress=print):
    """Tune every optimizer on every architecture of ``mode``, rerun the tuned configs with more
    seeds, and write the summary; returns the summary dict.

    Holds ``folder`` for the whole study (``folder_lock``).  Ctrl-C stops the
    workers and raises KeyboardInterrupt; a failed run raises StudyError.
    Finished runs are saved as they come, so a rerun resumes.
    """
    spec = MODES[mode]
    dataset = _dataset(*data_args)
    data_id, n_train = dataset.fingerprint(), dataset.train.shape[1]
    minibatches, capped = fit_to_data(spec["minibatches"], n_train)
    hf_minibatches, hf_capped = fit_to_data(spec["hf_minibatches"], n_train)
    for asked, used in {**capped, **hf_capped}.items():
        progress(f"minibatch {asked} is more than the {n_train} training digits: using {used}")
    middle = minibatches[len(minibatches) // 2]
    pairs = [(arch, opt) for arch in spec["architectures"] for opt in OPTIMIZERS]
    tic = time.perf_counter()
    with folder_lock(folder):
        own = executor is None
        executor = make_executor(workers) if own else executor
        records, stats = {}, {"computed": 0, "workers": workers if own else None}  # key -> record

        def run(configs, stage):
            progress(f"{stage}: {len(configs)} runs")
            for record in run_batch(configs, data_args, folder, executor, progress, data_id, stats):
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
                grids[arch, opt] = [make_config(arch, opt, s, b, spec["epochs"], seed) for s, b in grid]
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
                            config = make_config(arch, opt, beyond(edge, direction), middle, spec["epochs"], seed)
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
                                                     spec["epochs"], seed, hf=change) for change in HF_GRID]
                else:
                    stage2[arch, opt] = [make_config(arch, opt, best["config"]["step_size"], b, spec["epochs"], seed)
                                         for b in minibatches if b != best["config"]["minibatch_size"]]
            run([c for cs in stage2.values() for c in cs],
                "stage 2 (minibatch sizes at the best step; HF's options at its best minibatch)")
            tuned, seeded = {}, {}
            for pair in pairs:
                grids[pair] += stage2[pair]
                tuned[pair] = best_of(grids[pair])["config"]
                seeded[pair] = [{**tuned[pair], "seed": seed + k} for k in range(1, spec["seeds"])]
            run([c for cs in seeded.values() for c in cs], f"stage 3 (the tuned configs with {spec['seeds']} seeds)")
        finally:
            if own:
                executor.shutdown(cancel_futures=True)
        sizes = {"minibatches": minibatches, "hf_minibatches": hf_minibatches,
                 "capped": {str(k): v for k, v in {**capped, **hf_capped}.items()},
                 # how long this invocation took, and how much of the study it computed (a resumed
                 # study reuses records): a benchmark figure, never a verdict
                 "timing": {**stats, "runs": len(records), "wall_seconds": time.perf_counter() - tic}}
        return summarise(folder, mode, spec, grids, extensions, tuned, seeded, records, dataset, sizes)


def _median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _ranking(tuned):
    """(ranked optimizers, tied set, winner or None, margin): a winner only when the runner-up's
    median test loss is further from the best's than either's seed spread (max - min)."""
    def key(opt):
        median = tuned[opt]["median_test_loss"]
        return math.inf if median is None else median

    ranked = sorted(tuned, key=key)
    best = tuned[ranked[0]]
    if best["median_test_loss"] is None:
        return ranked, ranked, None, None
    tied = [ranked[0]] + [opt for opt in ranked[1:] if tuned[opt]["median_test_loss"] is not None
                          and tuned[opt]["median_test_loss"] - best["median_test_loss"]
                          <= max(best["spread"], tuned[opt]["spread"])]
    runner_up = tuned[ranked[1]]["median_test_loss"]
    margin = None if runner_up is None else runner_up - best["median_test_loss"]
    return ranked, tied, (ranked[0] if len(tied) == 1 else None), margin


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
        ranked, tied, winner, margin = _ranking(tuned)
        finals = [t["median_validation_loss"] for t in tuned.values() if t["median_validation_loss"] is not None]
        target = TARGET_FACTOR * min(finals) if finals else None
        for opt in OPTIMIZERS:
            runs = [records[k] for k in tuned[opt]["seed_keys"]]
            tuned[opt]["time_to_target"] = (time_to_target(runs, target, data["train"]) if target is not None
                                            else None)
        hf_budget = hf_at_equal_budget({o: [records[k] for k in tuned[o]["seed_keys"]] for o in OPTIMIZERS},
                                       data["train"])
        architectures[arch] = {"tuned": tuned, "ranking": ranked, "tied": tied, "winner": winner,
                               "hf_at_equal_budget": hf_budget,
                               "best": ranked[0], "runner_up": ranked[1], "margin": margin, "target": target}
    grid_text = {o: STEP_GRID[o][spec["steps"]] for o in STEP_GRID}
    first_seed = next(iter(tuned_configs.values()))["seed"]
    summary = {
        "mode": mode, "epochs": spec["epochs"], "seeds": spec["seeds"], "code_version": version, "data": data,
        "pca2": {f"{split}_loss": loss for split, loss in pca_losses.items()},
        "mean_only_test_loss": float(((dataset.test - dataset.train.mean(1, keepdims=True)) ** 2).sum()
                                     / (2 * dataset.test.shape[1])),
        "tuning_rule": ("per architecture and optimizer, with seed 0: every step size of the log grid "
                        f"{grid_text} at minibatch {sizes['minibatches'][len(sizes['minibatches']) // 2]}, "
                        f"the grid extended past an edge that holds the best step (at most "
                        f"{spec['max_extensions']} points a side), then the best step at minibatch sizes "
                        f"{sizes['minibatches']}; HF over gradient minibatches {sizes['hf_minibatches']} with "
                        f"{HF_DEFAULT}, then at its best minibatch each of {HF_GRID}; "
                        f"best = lowest validation loss after {spec['epochs']} epochs, diverged runs excluded; "
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


def seed_list(spec, seed=0):
    return list(range(seed, seed + spec["seeds"]))
