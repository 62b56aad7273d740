"""MNIST data loaders, fetch against a local HTTP server, and the study runner on tiny data."""

import gzip
import hashlib
import http.server
import json
import os
import struct
import threading

import numpy as np
import pytest

from studies import data as study_data
from studies import executors, protocol, runner, store
from studies.__main__ import summary_table
from studies.fetch import FetchError, fetch


def idx_bytes(array):
    ndim = array.ndim
    return struct.pack(f">{1 + ndim}I", 0x800 + ndim, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_folder(folder, n_train=60, n_test=20, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test),
    }
    for role, stem in study_data.IDX_FILES.items():
        raw = idx_bytes(arrays[role])
        path = folder / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


# --- the embedded default -----------------------------------------------------------

def columns(images):
    return {images[:, k].tobytes() for k in range(images.shape[1])}


def test_default_data_is_the_5000_real_digits_shuffled_in_three_disjoint_sets():
    data = study_data.load_default()
    assert data.train.shape == (784, 3000) and data.validation.shape == (784, 1000)
    assert data.test.shape == (784, 1000)
    assert 0 <= data.train.min() and data.train.max() <= 1
    counts = np.bincount(np.concatenate([data.train_labels, data.validation_labels, data.test_labels]))
    assert list(counts) == [500] * 10  # every digit of the file, each in exactly one set
    sets = [columns(data.train), columns(data.validation), columns(data.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(set(data.test_labels[:50])) > 5  # shuffled, not sorted by label
    again = study_data.load_default()
    assert np.array_equal(data.test, again.test) and np.array_equal(data.validation, again.validation)


# --- IDX files ------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip_with_the_official_test_set_and_a_seeded_validation_set(tmp_path, gz):
    arrays = write_idx_folder(tmp_path, gz=gz)
    data = study_data.load_idx_folder(tmp_path, n_validation=20)
    assert data.train.shape == (784, 40) and data.validation.shape == (784, 20) and data.test.shape == (784, 20)
    official_train = arrays["train_images"].reshape(60, -1).T / 255
    assert np.array_equal(data.test, arrays["test_images"].reshape(20, -1).T / 255)  # the official test set
    assert np.array_equal(data.test_labels, arrays["test_labels"])
    # train and validation split the official training digits, seeded, without overlap
    assert columns(data.train) | columns(data.validation) == columns(official_train)
    assert not columns(data.train) & columns(data.validation)
    other_seed = study_data.load_idx_folder(tmp_path, n_validation=20, seed=1)
    assert not np.array_equal(other_seed.validation, data.validation)
    subset = study_data.load_idx_folder(tmp_path, train_subset=25, n_validation=20)
    assert subset.train.shape == (784, 25) and np.array_equal(subset.validation, data.validation)
    with pytest.raises(study_data.DataError, match="training subset must be 1 to 40 digits"):
        study_data.load_idx_folder(tmp_path, train_subset=41, n_validation=20)
    with pytest.raises(study_data.DataError, match="leave none to train on"):
        study_data.load_idx_folder(tmp_path)  # 60 digits cannot give a validation set of 5000


def test_idx_data_is_named_mnist_only_when_every_file_is_the_official_one(tmp_path, monkeypatch):
    fashion, other = tmp_path / "fashion", tmp_path / "other"
    for folder, seed in ((fashion, 0), (other, 1)):
        folder.mkdir()
        write_idx_folder(folder, seed=seed)
    a = study_data.load_idx_folder(fashion, n_validation=20)
    b = study_data.load_idx_folder(other, n_validation=20)
    for data in (a, b):  # made-up files: named by their fingerprint, never "MNIST"
        assert data.name.startswith(f"IDX data {data.fingerprint()} (") and "MNIST" not in data.name
        assert "not the official MNIST files" in data.source and str(tmp_path) in data.source
    assert a.fingerprint() != b.fingerprint()
    assert "40 train / 20 validation of the training file's digits, seed 0 / 20 test" in a.name
    # the same files with their MD5 made the official ones: now (and only now) they are MNIST
    official = {stem: hashlib.md5(gzip.decompress((fashion / f"{stem}.gz").read_bytes())).hexdigest()
                for stem in study_data.IDX_FILES.values()}
    monkeypatch.setattr(study_data, "OFFICIAL_MNIST_MD5", official)
    assert study_data.load_idx_folder(fashion, n_validation=20).name.startswith("MNIST (40 train")
    assert study_data.load_idx_folder(fashion, n_validation=20).source.startswith("the official MNIST IDX files")
    assert study_data.load_idx_folder(other, n_validation=20).name.startswith("IDX data")
    described = a.describe()
    assert (described["source"], described["fingerprint"]) == (a.source, a.fingerprint())


def test_environment_variable_names_the_folder(tmp_path, monkeypatch):
    write_idx_folder(tmp_path)
    monkeypatch.setenv("AE_MNIST_DIR", str(tmp_path))
    assert study_data.load(n_validation=10).train.shape == (784, 50)


@pytest.mark.parametrize("damage, match", [
    (lambda raw: struct.pack(">I", 0x00000804) + raw[4:], "wrong magic number"),
    (lambda raw: raw[:-10], "need .* bytes, the file has"),
    (lambda raw: raw + b"\0" * 5, "need .* bytes, the file has"),
    (lambda raw: raw[:6], "too short for an IDX header"),
])
def test_bad_idx_files(tmp_path, damage, match):
    write_idx_folder(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(study_data.DataError, match=match):
        study_data.load_idx_folder(tmp_path)


def test_truncated_gzip(tmp_path):
    write_idx_folder(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(study_data.DataError, match="truncated or corrupt gzip"):
        study_data.load_idx_folder(tmp_path)


def test_images_and_labels_of_different_lengths(tmp_path):
    write_idx_folder(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(59)))
    with pytest.raises(study_data.DataError, match="60 images but .* 59 labels"):
        study_data.load_idx_folder(tmp_path)


def test_missing_file_says_how_to_fetch(tmp_path):
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(study_data.DataError, match="python -m studies fetch"):
        study_data.load_idx_folder(tmp_path)


# --- fetch, against a server on 127.0.0.1 -------------------------------------------------

class Server:
    """Serves bytes by name, honours Range, and can cut a response short."""

    def __init__(self, files):
        self.files, self.cut_after, self.requests = files, None, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                outer.requests.append((name, self.headers.get("Range")))
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if outer.cut_after is not None:  # promise everything, send part, hang up
                    payload, outer.cut_after = payload[: outer.cut_after], None
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served():
    files = {"a.gz": bytes(range(256)) * 300, "b.gz": b"labels" * 100}
    server = Server(files)
    yield server, {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    server.close()


def test_fetch_downloads_and_verifies(tmp_path, served):
    server, sums = served
    fetch(tmp_path, server.url, sums, progress=lambda m: None)
    assert (tmp_path / "a.gz").read_bytes() == server.files["a.gz"]
    assert not list(tmp_path.glob("*.part"))
    server.requests.clear()
    fetch(tmp_path, server.url, sums, progress=lambda m: None)  # present and verified: no request
    assert server.requests == []


def test_fetch_rejects_a_corrupt_file_and_leaves_nothing_under_its_name(tmp_path, served):
    server, sums = served
    server.files["a.gz"] = b"not the real file"
    with pytest.raises(FetchError, match="does not match"):
        fetch(tmp_path, server.url, sums, progress=lambda m: None)
    assert not (tmp_path / "a.gz").exists() and not (tmp_path / "a.gz.part").exists()


def test_fetch_resumes_a_truncated_download(tmp_path, served):
    server, sums = served
    server.cut_after = 1000
    with pytest.raises(FetchError, match="resume"):
        fetch(tmp_path, server.url, sums, progress=lambda m: None)
    assert not (tmp_path / "a.gz").exists()
    assert (tmp_path / "a.gz.part").stat().st_size == 1000
    fetch(tmp_path, server.url, sums, progress=lambda m: None)
    assert (tmp_path / "a.gz").read_bytes() == server.files["a.gz"]
    assert ("a.gz", "bytes=1000-") in server.requests


def test_fetch_replaces_a_corrupt_final_file(tmp_path, served):
    server, sums = served
    (tmp_path / "a.gz").write_bytes(b"garbage")
    fetch(tmp_path, server.url, sums, progress=lambda m: None)
    assert (tmp_path / "a.gz").read_bytes() == server.files["a.gz"]


def test_fetch_reports_http_errors(tmp_path, served):
    server, sums = served
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(tmp_path, server.url, {"missing.gz": "0" * 64}, progress=lambda m: None)


def without_timing(record):
    """A record less what the clock measures (wall seconds, training seconds per epoch)."""
    history = {k: v for k, v in record["history"].items() if k != "seconds"}
    return {**{k: v for k, v in record.items() if k != "wall_seconds"}, "history": history}


# --- the runner, on tiny data ---------------------------------------------------------------

TINY = {"architectures": ["linear 784-2-784", "tanh 784-64-2-64-784 tied"], "epochs": 2,
        "steps": slice(1, 3), "minibatches": [10, 20], "hf_minibatches": [60], "seeds": 2, "max_extensions": 0}


@pytest.mark.slow
def test_study_runs_tunes_resumes_and_never_confuses_configs(tmp_path, monkeypatch):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    write_idx_folder(data_dir)
    monkeypatch.setitem(protocol.MODES, "tiny", TINY)
    messages = []
    out = tmp_path / "study"
    summary = runner.run_study(out, mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20), workers=1,
                               progress=messages.append)
    n_runs = len(list((out / "runs").glob("*.json")))
    # per architecture: stage 1, 2 steps x 4 optimizers + HF; stage 2, one more minibatch each and
    # HF's three options; stage 3, one more seed for each of the 5 tuned configs
    assert n_runs == 2 * (2 * 4 + 1 + 4 + len(protocol.HF_GRID) + 5)
    for arch in TINY["architectures"]:
        result = summary["architectures"][arch]
        assert result["best"] in protocol.OPTIMIZERS
        assert result["tuned"][result["best"]]["median_test_loss"] is not None
    assert summary["pca2"]["test_loss"] > 0 and "tuning_rule" in summary
    assert summary["timing"]["computed"] == summary["timing"]["runs"] == n_runs
    assert summary["timing"]["wall_seconds"] > 0
    assert "winner" in summary_table(summary) or "tie between" in summary_table(summary)

    messages.clear()
    again = runner.run_study(out, mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20), workers=1,
                             progress=messages.append)
    assert again["timing"]["computed"] == 0  # a resumed study says it computed nothing
    assert any("reusing 18 finished runs" in m for m in messages)
    assert not any(m.startswith("[") for m in messages)  # nothing was run again

    monkeypatch.setitem(protocol.MODES, "tiny", {**TINY, "epochs": 3})
    runner.run_study(out, mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20), workers=1,
                     progress=messages.append)
    assert len(list((out / "runs").glob("*.json"))) == 2 * n_runs  # new records, old ones untouched

    # a budget in examples is the same runs as the whole epochs nearest to it: nothing computed again
    n_train = summary["data"]["train"]
    by_examples = {k: v for k, v in TINY.items() if k != "epochs"} | {"examples": round(3.4 * n_train),
                                                                          "exhaustive_epochs": 5}
    monkeypatch.setitem(protocol.MODES, "tiny", by_examples)
    again = runner.run_study(out, mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20), workers=1,
                             progress=messages.append)
    assert again["timing"]["computed"] == 0
    assert (again["epochs"], again["examples_per_run"]) == (3, 3 * n_train)
    assert f"3 epochs of the {n_train} training digits" in again["budget_rule"]
    assert f"budget of {round(3.4 * n_train)} examples" in again["budget_rule"]
    assert f"best after {3 * n_train} examples" in again["budget_rule"]  # fewer than the exhaustive 5 epochs


def test_a_record_of_another_config_or_other_data_is_not_loaded(tmp_path):
    config = protocol.make_config("linear 784-2-784", "adam", 0.01, 10, 2, 0)
    version, data_id = store.code_version(), "0123456789abcdef"
    runs = tmp_path / "runs"
    runs.mkdir()
    path = runs / f"{store.run_key(config, data_id, version)}.json"
    good = {"config": config, "code_version": version, "data": {"fingerprint": data_id}}
    path.write_text(json.dumps(good))
    assert store.load_record(tmp_path, config, data_id, version) == good
    path.write_text(json.dumps({**good, "config": {**config, "epochs": 99}}))
    assert store.load_record(tmp_path, config, data_id, version) is None
    path.write_text(json.dumps({**good, "data": {"fingerprint": "another dataset"}}))
    assert store.load_record(tmp_path, config, data_id, version) is None
    path.write_text("{half a record")
    assert store.load_record(tmp_path, config, data_id, version) is None
    path.write_bytes(b"\xff\xfe not utf-8")
    assert store.load_record(tmp_path, config, data_id, version) is None
    assert store.run_key(config, data_id, version) != store.run_key(config, "other", version)


def test_the_time_left_holds_when_a_stage_lists_its_cheap_runs_first(tmp_path, monkeypatch):
    # a stage of 20 one-second runs, then 20 of ten seconds (a linear net's grid before a tanh net's),
    # on one worker under a fake clock: the first line must not say a tenth of the truth
    clock = [0.0]
    monkeypatch.setattr(executors.time, "perf_counter", lambda: clock[0])
    configs = [protocol.make_config("linear 784-2-784", "sgd", step, 20, 1, 0) for step in range(1, 21)]
    configs += [protocol.make_config("tanh 784-64-2-64-784", "sgd", step, 20, 1, 0) for step in range(1, 21)]

    def task(config, data):
        clock[0] += 1.0 if config["architecture"].startswith("linear") else 10.0
        record = {"config": config, "key": store.run_key(config, "d", store.code_version()),
                  "data": {"fingerprint": "d"}, "final_validation_loss": 1.0, "diverged": None, "wall_seconds": 0}
        return record, {}

    messages = []  # (line, the clock when it was said)
    records = executors.run_batch(configs, task, None, tmp_path, executors._Inline(),
                                  lambda line: messages.append((line, clock[0])), "d", verbose=False)
    assert [r["config"] for r in records] == configs  # the order submitted changes nothing returned
    first, said_at = messages[0]
    estimate = float(first.split("about ")[1].split()[0]) * (60 if " min left" in first else 1)
    left = clock[0] - said_at
    assert left / 2 <= estimate <= left * 2, (first, left)


def test_a_run_made_by_code_changed_during_the_study_stops_it_by_name(tmp_path):
    config = protocol.make_config("linear 784-2-784", "sgd", 0.1, 20, 1, 0)

    def task(config, data):  # a worker that imported the code after it was edited
        record = {"config": config, "key": store.run_key(config, "d", "edited"), "code_version": "edited",
                  "data": {"fingerprint": "d"}, "final_validation_loss": 1.0, "diverged": None, "wall_seconds": 0}
        return record, {}

    with pytest.raises(store.StudyError, match="made by code version edited, not this study's .*code changed"):
        executors.run_batch([config], task, None, tmp_path, executors._Inline(), lambda line: None, "d")
    assert not (tmp_path / "runs").exists()  # nothing saved under a key the study never asks for


@pytest.mark.bitexact
def test_runs_are_reproducible_and_a_process_pool_gives_the_same_records(tmp_path):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    write_idx_folder(data_dir)
    config = protocol.make_config("linear 784-2-784", "adam", 0.01, 10, 2, 0)
    args = study_data.DataSpec(str(data_dir), None, 0, 20)
    inline, _ = runner.run_one(config, args)
    before = {name: os.environ.get(name) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    pool = executors.make_executor(2)
    try:
        pooled, _ = pool.submit(runner.run_one, config, args).result()
    finally:
        pool.shutdown()
    assert without_timing(inline) == without_timing(pooled)  # bit for bit, but for the clock
    # the workers' one-thread setting does not stay behind in this process
    assert {name: os.environ.get(name) for name in before} == before


@pytest.mark.slow
def test_long_stages_say_how_far_they_are_and_the_time_left(tmp_path, monkeypatch):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    write_idx_folder(data_dir)
    monkeypatch.setitem(protocol.MODES, "tiny", TINY)
    messages = []
    runner.run_study(tmp_path / "study", mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20),
                     workers=1, progress=messages.append, verbose=False)
    stages = [m for m in messages if m.startswith("stage")]
    lines = [m for m in messages if m.startswith("[")]
    # about every tenth of a stage, and its last run: fewer lines than runs, each with done of planned
    assert len(lines) < len(list((tmp_path / "study" / "runs").glob("*.json")))
    for line in lines:
        done, planned = map(int, line[1:line.index("]")].split("/"))
        assert ("left in this stage" in line) == (done < planned)
    assert len(stages) == 3 and stages[0] == "stage 1 (step sizes): 18 runs"


def test_the_summary_table_names_hf_s_tuned_option_in_full():
    def tuned(optimizer, step, hf=None):
        config = protocol.make_config("linear 784-2-784", optimizer, step, 1000, 1, 0, hf=hf)
        return {"config": config, "median_test_loss": 2.0, "min_test_loss": 1.9, "max_test_loss": 2.1}

    result = {"tuned": {"adam": tuned("adam", 0.001), "hf": tuned("hf", None, {"max_cg_iterations": 250})},
              "winner": None, "tied": ["adam", "hf"], "margin": 0.0, "runner_up": "hf", "rule": "a rule"}
    summary = {"data": {"name": "made up"}, "pca2": {"test_loss": 2.0}, "mean_only_test_loss": 3.0, "seeds": 3,
               "architectures": {"linear 784-2-784": result}}
    rows = summary_table(summary).splitlines()
    assert any(row.split()[2:5] == ["hf", "CG", "250"] for row in rows), rows  # not "max_c 250"
    assert any(row.split()[2:4] == ["adam", "0.001"] for row in rows), rows
