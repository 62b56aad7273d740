"""The study's record store: a run's key, its record and arrays on disk (written atomically), and the
lock that gives a results folder to one study at a time.

A run's key is a hash of everything that determines its result (config with seed and number type,
the data's fingerprint, the code version): other data, config or code never pick up an old record.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import socket
import time

import numpy as np

from checks.provenance import source_hash
from checks.records import atomic_write


def code_version():
    """A hash of the engine and the study code: a record made by other code is stale."""
    return source_hash("ae", "studies")


def run_key(config, data_id, version):
    """A record's identity: everything that determines its result (config with seed and number
    type, the data's fingerprint, the code version)."""
    return hashlib.sha256(json.dumps([config, data_id, version], sort_keys=True).encode()).hexdigest()[:16]


class StudyError(RuntimeError):
    """The study cannot go on: a run failed, the folder is taken, or workers saw other data."""


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


# --- one study per folder ------------------------------------------------------------------

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
