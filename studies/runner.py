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
import functools
import hashlib
import json
import math
import multiprocessing
import os
import pathlib
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


def build(architecture):
    widths, acts, tied = ARCHITECTURES[architecture]
    return ae.build(widths, acts, tied=tied), widths.index(2) - 1


def code_version():
    """A hash of the engine and the study code: a record made by other code is stale."""
    return source_hash("ae", "studies")


def run_key(config, version):
    return hashlib.sha256(json.dumps([config, version], sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def _dataset(data_dir, train_subset, seed):
    return study_data.load(data_dir, train_subset=train_subset, seed=seed)


def encode(model, middle, inputs):
    model.compute_outputs(inputs)
    return model.get_activations(middle)


def run_one(config, data_args, folder):
    """Train one config and save its record; returns the record."""
    dataset = _dataset(*data_args)
    model, middle = build(config["architecture"])
    model.init_weights(config["seed"])
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
    record = {
        "config": config, "key": run_key(config, code_version()), "code_version": code_version(),
        "data": dataset.describe(), "history": history, "wall_seconds": wall,
        "diverged": history.get("diverged"),
        "final_test_loss": test_loss[-1] if test_loss else None,
        "best_test_loss": min(test_loss) if test_loss else None,
    }
    arrays = {"codes_initial": codes_initial, "codes_final": encode(model, middle, dataset.test),
              "reconstructions": model.compute_outputs(dataset.test[:, :RECONSTRUCTED])}
    save_record(folder, record, arrays)
    return record


def _atomic_write(path, write):
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_record(folder, record, arrays):
    runs = pathlib.Path(folder) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    # arrays first: a record on disk always has its arrays beside it
    def write_arrays(path):
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    _atomic_write(runs / f"{record['key']}.npz", write_arrays)
    _atomic_write(runs / f"{record['key']}.json", lambda p: p.write_text(json.dumps(record)))


def load_record(folder, config, version):
    """The saved record of this exact config and code version, or None."""
    path = pathlib.Path(folder) / "runs" / f"{run_key(config, version)}.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if record.get("config") != config or record.get("code_version") != version:
        return None
    return record


def load_arrays(folder, key):
    with np.load(pathlib.Path(folder) / "runs" / f"{key}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def make_config(architecture, optimizer, step_size, minibatch_size, epochs, seed):
    return {"architecture": architecture, "optimizer": optimizer,
            "step_size": None if optimizer == "hf" else step_size, "minibatch_size": minibatch_size,
            "epochs": epochs, "seed": seed, "l2_coef": L2_COEF}


def _score(record):
    loss = record["final_test_loss"]
    return math.inf if record.get("diverged") or loss is None or not math.isfinite(loss) else loss


class _Inline(concurrent.futures.Executor):
    """Runs each task at submit: for one worker, and for debugging."""

    def submit(self, fn, *args, **kwargs):
        future = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


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
        super().__init__(workers, mp_context=multiprocessing.get_context("spawn"))

    def shutdown(self, *args, **kwargs):
        super().shutdown(*args, **kwargs)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_executor(workers):
    return _Inline() if workers <= 1 else _OneThreadPool(workers)


def run_batch(configs, data_args, folder, executor, progress):
    """Records of all configs: loaded if saved, else run on the executor."""
    version = code_version()
    records, pending = {}, {}
    for config in configs:
        key = run_key(config, version)
        saved = load_record(folder, config, version)
        if saved is not None:
            records[key] = saved
        elif key not in pending:
            pending[key] = executor.submit(run_one, config, data_args, str(folder))
    if len(records):
        progress(f"reusing {len(records)} finished runs")
    for done, future in enumerate(concurrent.futures.as_completed(list(pending.values())), start=1):
        record = future.result()
        records[record["key"]] = record
        c = record["config"]
        progress(f"[{done}/{len(pending)}] {c['architecture']} {c['optimizer']} step {c['step_size']} "
                 f"batch {c['minibatch_size']}: val {record['final_test_loss']}"
                 f"{' DIVERGED' if record['diverged'] else ''} ({record['wall_seconds']:.1f} s)")
    return [records[run_key(c, version)] for c in configs]


def run_study(folder, mode="quick", data_args=(None, None, 0), seed=0, executor=None, workers=2,
              progress=print):
    """Tune every optimizer on every architecture of ``mode``; returns the summary dict."""
    spec = MODES[mode]
    own = executor is None
    executor = make_executor(workers) if own else executor
    try:
        stage1 = {}
        for arch in spec["architectures"]:
            for opt in OPTIMIZERS:
                if opt == "hf":
                    grid = [(None, b) for b in spec["hf_minibatches"]]
                else:
                    middle = spec["minibatches"][len(spec["minibatches"]) // 2]
                    grid = [(s, middle) for s in STEP_GRID[opt][spec["steps"]]]
                stage1[arch, opt] = [make_config(arch, opt, s, b, spec["epochs"], seed) for s, b in grid]
        progress(f"stage 1: {sum(map(len, stage1.values()))} runs (step sizes)")
        done1 = run_batch([c for cs in stage1.values() for c in cs], data_args, folder, executor, progress)
        by_key = {run_key(r["config"], r["code_version"]): r for r in done1}
        version = code_version()
        stage2 = {}
        for (arch, opt), configs in stage1.items():
            if opt == "hf":
                stage2[arch, opt] = []
                continue
            best = min((by_key[run_key(c, version)] for c in configs), key=_score)
            stage2[arch, opt] = [make_config(arch, opt, best["config"]["step_size"], b, spec["epochs"], seed)
                                 for b in spec["minibatches"] if b != best["config"]["minibatch_size"]]
        progress(f"stage 2: {sum(map(len, stage2.values()))} runs (minibatch sizes at the best step)")
        done2 = run_batch([c for cs in stage2.values() for c in cs], data_args, folder, executor, progress)
        by_key.update({run_key(r["config"], r["code_version"]): r for r in done2})
    finally:
        if own:
            executor.shutdown()
    return summarise(folder, mode, spec, stage1, stage2, by_key, data_args)


def summarise(folder, mode, spec, stage1, stage2, by_key, data_args):
    dataset = _dataset(*data_args)
    yardstick = pca.fit(dataset.train, k=2)
    pca_test, pca_train = pca.loss(yardstick, dataset.test), pca.loss(yardstick, dataset.train)
    version = code_version()
    grids = {o: STEP_GRID[o][spec["steps"]] for o in STEP_GRID}
    architectures = {}
    for arch in spec["architectures"]:
        tuned = {}
        for opt in OPTIMIZERS:
            runs = [by_key[run_key(c, version)] for c in stage1[arch, opt] + stage2[arch, opt]]
            best = min(runs, key=_score)
            tuned[opt] = {"key": best["key"], "config": best["config"], "final_test_loss": best["final_test_loss"],
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
        "mode": mode, "epochs": spec["epochs"], "code_version": version, "data": dataset.describe(),
        "pca2": {"test_loss": pca_test, "train_loss": pca_train},
        "mean_only_test_loss": float(((dataset.test - dataset.train.mean(1, keepdims=True)) ** 2).sum()
                                     / (2 * dataset.test.shape[1])),
        "tuning_rule": ("per architecture and optimizer: every step size of the log grid "
                        f"{grids} at minibatch "
                        f"{spec['minibatches'][len(spec['minibatches']) // 2]}, then the best step at minibatch "
                        f"sizes {spec['minibatches']}; HF over gradient minibatches {spec['hf_minibatches']}; "
                        f"best = lowest validation loss after {spec['epochs']} epochs, diverged runs excluded"),
        "architectures": architectures,
    }
    path = pathlib.Path(folder) / "summary.json"
    _atomic_write(path, lambda p: p.write_text(json.dumps(summary, indent=1)))
    return summary
