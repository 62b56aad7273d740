"""The MNIST optimizer study: runs, their records, tuning, and the summary.

A *run* is one config (architecture, optimizer, step size, minibatch size,
epochs, seed, L2) trained on the study's data.  Its record (JSON, plus the
2-D codes and a few reconstructions as an npz without pickle) is saved the
moment it finishes, under a key hashed from the config and the engine's
source code: an interrupted study resumes without redoing finished runs,
and a changed config or engine never picks up an old record.

Tuning rule, per architecture and optimizer, by validation loss at the end
of the fixed epoch budget (diverged runs are out):

1. every step size of the log grid at the middle minibatch size;
2. the best step size at every other minibatch size of the grid;
3. the tuned config is the best run of 1 and 2.

HF has no step size: its grid is the gradient minibatch size alone.

Runs are independent, so they go to an executor: by default a process pool
on this machine; pass any ``concurrent.futures.Executor`` (e.g. a Dask
``Client(...).get_executor()`` or ``mpi4py.futures.MPIPoolExecutor``) to
``run_study`` to spread them over a cluster.
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
from ae.provenance import source_hash
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
              "epochs": 10, "steps": slice(1, 4), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 4000]},
    "full": {"architectures": ["linear 784-2-784", "tanh 784-256-2-256-784", "relu 784-512-128-2-128-512-784",
                               "tanh 784-256-2-256-784 tied"],
             "epochs": 40, "steps": slice(0, 5), "minibatches": [20, 50, 200], "hf_minibatches": [1000, 4000]},
}
OPTIMIZERS = ["sgd", "momentum", "rmsprop", "adam", "hf"]
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
def _dataset(data_dir, train_subset, seed):
    return study_data.load(data_dir, train_subset=train_subset, seed=seed)


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
                   test_inputs=dataset.test, seed=config["seed"])
    if config["optimizer"] != "hf":
        options["step_size"] = config["step_size"]
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # divergence is in the history, and in the record
        history = getattr(model, f"run_{config['optimizer']}")(dataset.train, **options)
    wall = time.perf_counter() - tic
    test_loss = history["test_loss"]
    data = dataset.describe()
    version = code_version()
    record = {
        "config": config, "key": run_key(config, data["fingerprint"], version), "code_version": version,
        "data": data, "history": history, "wall_seconds": wall,
        "diverged": history.get("diverged"),
        "final_test_loss": test_loss[-1] if test_loss else None,
        "best_test_loss": min(test_loss) if test_loss else None,
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


def make_config(architecture, optimizer, step_size, minibatch_size, epochs, seed, dtype="float64"):
    return {"architecture": architecture, "optimizer": optimizer,
            "step_size": None if optimizer == "hf" else step_size, "minibatch_size": minibatch_size,
            "epochs": epochs, "seed": seed, "l2_coef": L2_COEF, "dtype": dtype}


def describe_config(config):
    step = "" if config["step_size"] is None else f" step {config['step_size']}"
    return (f"{config['architecture']} {config['optimizer']}{step} batch {config['minibatch_size']} "
            f"seed {config['seed']}")


def _score(record):
    loss = record["final_test_loss"]
    return math.inf if record.get("diverged") or loss is None or not math.isfinite(loss) else loss


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


def run_batch(configs, data_args, folder, executor, progress, data_id):
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
        progress(f"[{done}/{len(configs_to_run)}] {describe_config(config)}: val {record['final_test_loss']}"
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
    """Tune every optimizer on every architecture of ``mode``; returns the summary dict.

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
    with folder_lock(folder):
        own = executor is None
        executor = make_executor(workers) if own else executor
        try:
            stage1 = {}
            for arch in spec["architectures"]:
                for opt in OPTIMIZERS:
                    if opt == "hf":
                        grid = [(None, b) for b in hf_minibatches]
                    else:
                        middle = minibatches[len(minibatches) // 2]
                        grid = [(s, middle) for s in STEP_GRID[opt][spec["steps"]]]
                    stage1[arch, opt] = [make_config(arch, opt, s, b, spec["epochs"], seed) for s, b in grid]
            progress(f"stage 1: {sum(map(len, stage1.values()))} runs (step sizes)")
            done1 = run_batch([c for cs in stage1.values() for c in cs], data_args, folder, executor, progress,
                              data_id)
            by_key = {r["key"]: r for r in done1}
            version = code_version()
            stage2 = {}
            for (arch, opt), configs in stage1.items():
                if opt == "hf":
                    stage2[arch, opt] = []
                    continue
                best = min((by_key[run_key(c, data_id, version)] for c in configs), key=_score)
                stage2[arch, opt] = [make_config(arch, opt, best["config"]["step_size"], b, spec["epochs"], seed)
                                     for b in minibatches if b != best["config"]["minibatch_size"]]
            progress(f"stage 2: {sum(map(len, stage2.values()))} runs (minibatch sizes at the best step)")
            done2 = run_batch([c for cs in stage2.values() for c in cs], data_args, folder, executor, progress,
                              data_id)
            by_key.update({r["key"]: r for r in done2})
        finally:
            if own:
                executor.shutdown(cancel_futures=True)
        sizes = {"minibatches": minibatches, "hf_minibatches": hf_minibatches,
                 "capped": {str(k): v for k, v in {**capped, **hf_capped}.items()}}
        return summarise(folder, mode, spec, stage1, stage2, by_key, dataset, sizes)


def summarise(folder, mode, spec, stage1, stage2, by_key, dataset, sizes):
    data = dataset.describe()
    yardstick = pca.fit(dataset.train, k=2)
    pca_test, pca_train = pca.loss(yardstick, dataset.test), pca.loss(yardstick, dataset.train)
    version = code_version()
    grids = {o: STEP_GRID[o][spec["steps"]] for o in STEP_GRID}
    architectures = {}
    for arch in spec["architectures"]:
        tuned = {}
        for opt in OPTIMIZERS:
            configs = stage1[arch, opt] + stage2[arch, opt]
            runs = [by_key[run_key(c, data["fingerprint"], version)] for c in configs]
            if any(r["data"]["fingerprint"] != data["fingerprint"] for r in runs):
                raise StudyError(f"{arch} {opt}: a record of other data reached the summary")
            best = min(runs, key=_score)
            tuned[opt] = {"key": best["key"], "config": best["config"], "data_fingerprint": best["data"]["fingerprint"],
                          "final_test_loss": best["final_test_loss"],
                          "best_test_loss": best["best_test_loss"], "wall_seconds": best["wall_seconds"],
                          "ratio_to_pca": (best["final_test_loss"] / pca_test
                                           if best["final_test_loss"] is not None else None),
                          "grid": [{"step_size": r["config"]["step_size"],
                                    "minibatch_size": r["config"]["minibatch_size"],
                                    "final_test_loss": r["final_test_loss"], "diverged": bool(r["diverged"]),
                                    "key": r["key"]} for r in runs]}
        ranked = sorted(tuned, key=lambda o: _score(tuned[o]) if tuned[o]["final_test_loss"] is not None
                        else math.inf)
        margin = (tuned[ranked[1]]["final_test_loss"] - tuned[ranked[0]]["final_test_loss"]
                  if tuned[ranked[1]]["final_test_loss"] is not None else None)
        architectures[arch] = {"tuned": tuned, "winner": ranked[0], "runner_up": ranked[1], "margin": margin}
    summary = {
        "mode": mode, "epochs": spec["epochs"], "code_version": version, "data": data,
        "pca2": {"test_loss": pca_test, "train_loss": pca_train},
        "mean_only_test_loss": float(((dataset.test - dataset.train.mean(1, keepdims=True)) ** 2).sum()
                                     / (2 * dataset.test.shape[1])),
        "tuning_rule": ("per architecture and optimizer: every step size of the log grid "
                        f"{grids} at minibatch "
                        f"{sizes['minibatches'][len(sizes['minibatches']) // 2]}, then the best step at minibatch "
                        f"sizes {sizes['minibatches']}; HF over gradient minibatches {sizes['hf_minibatches']}; "
                        f"best = lowest validation loss after {spec['epochs']} epochs, diverged runs excluded"
                        + "".join(f"; minibatch {k} capped to the {v} training digits"
                                  for k, v in sizes["capped"].items())),
        "grid_capped": sizes["capped"],
        "architectures": architectures,
    }
    path = pathlib.Path(folder) / "summary.json"
    atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=1)))
    return summary
