"""Where the runs of a study go: a process pool on this machine (one BLAS thread per worker, workers
that ignore Ctrl-C and die with the study), or any ``concurrent.futures.Executor`` (a Dask cluster's
``Client.get_executor()``); ``run_batch`` loads or runs a batch of configs and saves each record as
it finishes.
"""

import concurrent.futures
import math
import multiprocessing
import os
import random
import signal
import threading
import time

import tqdm

from studies.protocol import describe_config
from studies.store import StudyError, code_version, load_record, run_key, save_record


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
    # tqdm's default lock is a named multiprocessing semaphore (every bar makes one, shown or not): a
    # worker ended by the study's stop never releases it, and the resource tracker then warns of a
    # "leaked semaphore" after Ctrl-C.  A worker's bars are never shown beside another's: a thread lock
    tqdm.tqdm.set_lock(threading.RLock())
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
        """Cancel what has not started and end the runs in progress (Ctrl-C, a failed run).

        The pool's manager thread cancels the waiting runs itself (shutdown with cancel_futures) before
        the running ones are ended: a future cancelled from outside stays in its list, and when the
        ended workers break the pool it sets an exception on that cancelled future and dies with a
        traceback (InvalidStateError, Python 3.10 and 3.11)."""
        processes = list((self._processes or {}).values())
        manager = self._executor_manager_thread
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        if manager is not None:
            manager.join()
        for process in processes:
            process.join()

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
    stop_workers = getattr(executor, "stop_workers", None)
    if stop_workers is not None:  # the local pool cancels what has not started itself
        stop_workers()
        return
    for future in pending:
        future.cancel()  # what has not started (a Dask executor cancels on the cluster)


def time_left(seconds):
    """'about 3 min' for a progress line."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds < 5400 else f"about {seconds / 3600:.1f} h"


def run_batch(configs, task, data, folder, executor, progress, data_id, stats=None, verbose=True):
    """Records of all configs: loaded if saved, else ``task(config, data)`` on the executor (it returns
    (record, arrays)) and saved as each finishes.

    A failed run stops the batch at once (StudyError naming the run); so does
    Ctrl-C (KeyboardInterrupt, after the workers are stopped).  Progress: runs done of runs planned
    and the time left in this batch (from its pace so far), every run when ``verbose``, else about
    every tenth of the batch and the last.  The runs go to the executor in a seeded shuffled order:
    a stage lists its cheap architectures first, and a pace measured on those alone said "4 min
    left" of 50 (the order changes no record; the returned list is in ``configs``' order).
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
    futures, done, tic = {}, 0, time.perf_counter()
    every = 1 if verbose else max(1, math.ceil(len(configs_to_run) / 10))

    def finish(future):
        nonlocal done
        config = futures.pop(future)
        try:
            record, arrays = future.result()
        except Exception as error:
            raise StudyError(f"run {describe_config(config)} failed: {type(error).__name__}: {error}") from error
        if record["key"] != run_key(config, data_id, version):  # not the run asked for: other code made it
            raise StudyError(f"run {describe_config(config)} was made by code version {record.get('code_version')}, "
                             f"not this study's {version}: the code changed while the study ran; the same "
                             "command resumes with the new code")
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
        planned = len(configs_to_run)
        if done % every and done != planned:
            return
        left = (time.perf_counter() - tic) / done * (planned - done)
        progress(f"[{done}/{planned}] {describe_config(config)}: validation "
                 f"{'-' if loss is None else f'{loss:.4g}'}"
                 f"{' DIVERGED' if record['diverged'] else ''} ({record['wall_seconds']:.1f} s)"
                 + (f"; {time_left(left)} left in this stage" if done < planned else ""))

    try:
        for config in random.Random(0).sample(configs_to_run, len(configs_to_run)):
            future = executor.submit(task, config, data)
            futures[future] = config
            if future.done():  # an inline executor has run it already: save it now
                finish(future)
        for future in concurrent.futures.as_completed(list(futures)):
            finish(future)
    except BaseException:
        _stop(list(futures), executor)
        raise
    return [records[run_key(c, data_id, version)] for c in configs]
