"""The class grader on hostile submissions (tests/fixtures/hostile, written apart; its README says what
each does and what a correct grader reports), under bubblewrap and with process isolation only; and
the sandbox's parts (cgroups on a fake tree, the capped reader)."""

import fcntl
import hashlib
import io
import json
import os
import pathlib
import shutil
import site
import tempfile
import threading

import pytest

from checks import __main__ as checks_cli
from checks import cgroups, sandbox

HOSTILE = pathlib.Path(__file__).resolve().parent / "fixtures" / "hostile"
SECRET = "s3cr3t-value-42"
KNOBS = ["--candidate-env", "HOSTILE_MB=300", "--candidate-env", "HOSTILE_FLOOD_MB=8",
         "--candidate-env", "HOSTILE_POISON_OFF=1"]
MEMORY = ["--memory-limit", "0.75", "--process-limit", "32", "--time-limit", "60", "--jobs", "2"]
BWRAP_PROBLEM = sandbox.bwrap_problem()
CGROUP_PROBLEM = cgroups.problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap not available: {BWRAP_PROBLEM}")
needs_cgroup = pytest.mark.skipif(CGROUP_PROBLEM is not None, reason=f"no writable cgroup: {CGROUP_PROBLEM}")


@pytest.fixture
def alone():
    """The test holds a lock of the machine's while it runs: what is left alive is looked for in the whole
    of /proc, so another test's hostile class (another pytest worker, another run) must not run meanwhile."""
    with open(pathlib.Path(tempfile.gettempdir()) / "ae-lab-hostile-classes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def make_class(room, kinds):
    """Copies of the hostile folders (and clean classmates before and after them) under ``room``."""
    for kind in kinds:
        source = HOSTILE / kind if (HOSTILE / kind).is_dir() else HOSTILE / "_dangerous" / kind
        shutil.copytree(source, room / kind, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("a_clean", "z_clean"):
        shutil.copytree(HOSTILE / "_clean", room / name, ignore=shutil.ignore_patterns("__pycache__"))
    return room


def digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def marked_processes():
    """Command lines of live processes the hostile submissions started (they carry these markers)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in line for m in ("HOSTILE_LINGERING", "HOSTILE_MEMORY_TEAM", "sleep 300", "sleep 60")):
            found.append(line)
    return found


def grade(tmp_path, monkeypatch, capsys, kinds, mode):
    room = make_class(tmp_path / "class", kinds)
    before = digest(room)
    out = tmp_path / "out"
    stale = out / "dies_at_import"  # a pass left from an earlier run of another folder of the same name
    stale.mkdir(parents=True)
    (stale / "records.json").write_text(json.dumps({"summary": {"stages": {}, "root_causes": []}}))
    monkeypatch.setenv("HOSTILE_TEST_SECRET", SECRET)  # the grader's environment, never the submission's
    monkeypatch.chdir(tmp_path)
    code = checks_cli.main(["--engine", str(room), "--out", str(out), "--sandbox", mode, *MEMORY, *KNOBS])
    printed = capsys.readouterr()
    summary = {s["submission"]: s for s in json.loads((out / "class-summary.json").read_text())["submissions"]}
    return code, summary, printed, room, before, out


def common_containment(summary, printed, room, before, out):
    assert summary["a_clean"]["status"] == summary["z_clean"]["status"] == "pass"
    assert summary["sleepers"]["status"] == "pass"  # not "timed out": its sleeps hold no pipe of the grader's
    if CGROUP_PROBLEM is None:  # limits on all its processes together
        assert summary["memory_team"]["status"] == "memory limit (0.75 GiB) exceeded"  # 4 x 300 MB together
        forks = summary["fork_many"]["status"]
        assert forks.startswith("incomplete API") and "of 300" in forks
    exits = summary["exit_in_method"]  # the exit ends its worker, not its judge: the call is named
    assert exits["status"] == "fail" and any("crashed in compute_hessvec" in c for c in exits["root_causes"])
    assert summary["dies_at_import"]["status"].startswith("incomplete API")  # never the stale pass
    assert not (out / "dies_at_import" / "records.json").exists()
    assert summary["print_flood"]["status"] == "pass"
    kept = (out / "print_flood" / "candidate-output.txt").read_bytes()
    assert len(kept) < 2**20 + 200 and b"more bytes not kept" in kept  # 8 MB printed, 1 MiB kept and a count
    assert marked_processes() == []  # nothing of theirs alive once the grader returns
    for path in out.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed.out + printed.err
    assert "lingering" in summary and summary["lingering"]["status"] == "pass"


@pytest.mark.slow
@needs_bwrap
def test_under_bubblewrap_hostile_submissions_touch_nothing_but_their_own_verdict(alone, tmp_path, monkeypatch, capsys):
    kinds = ["dies_at_import", "exit_in_method", "fork_many", "lingering", "memory_team", "print_flood",
             "read_secrets", "sleepers", "tamper_classmates", "kill_grader", "poison_venv"]
    purelib = [pathlib.Path(p) for p in site.getsitepackages()]
    code, summary, printed, room, before, out = grade(tmp_path, monkeypatch, capsys, kinds, "bwrap")
    assert code == 1
    common_containment(summary, printed, room, before, out)
    assert digest(room) == before  # no classmate's file (nor any other) changed
    assert not list(tmp_path.rglob("ESCAPED")) and not (tmp_path / "results").exists()
    assert summary["tamper_classmates"]["status"] == "pass"
    assert all((out / n / "records.json").exists() for n in ("a_clean", "z_clean", "read_secrets"))
    shown = (out / "read_secrets" / "candidate-output.txt").read_text()
    assert "ENV PATH=" in shown and "--- CLASSMATE" not in shown  # it ran, and saw no classmate
    assert summary["kill_grader"]["status"] == "pass"  # and this process, its grader, is still here
    assert not [p for d in purelib for p in d.glob("zzz_hostile*")]
    assert summary["poison_venv"]["status"] == "pass"
    assert all(s["sandbox"] == "bubblewrap" for s in summary.values())


@pytest.mark.slow
@pytest.mark.parametrize("mode", [pytest.param("bwrap", marks=needs_bwrap), "none"])
def test_a_submission_that_forges_its_judge_s_records_does_not_pass(alone, tmp_path, monkeypatch, capsys, mode):
    code, summary, *_ = grade(tmp_path, monkeypatch, capsys, ["forge_records", "forge_patch_lab"], mode)
    assert summary["forge_records"]["status"] == "fail" and summary["forge_patch_lab"]["status"] == "fail"


@pytest.mark.slow
@needs_cgroup
def test_process_isolation_with_a_cgroup_contains_floods_and_lingering_processes(alone, tmp_path, monkeypatch, capsys):
    kinds = ["dies_at_import", "exit_in_method", "fork_many", "lingering", "memory_team", "print_flood",
             "read_secrets", "sleepers"]
    code, summary, printed, room, before, out = grade(tmp_path, monkeypatch, capsys, kinds, "none")
    assert code == 1
    common_containment(summary, printed, room, before, out)
    shown = (out / "read_secrets" / "candidate-output.txt").read_text()
    assert "--- CLASSMATE" in shown  # what process isolation does not hide: the files the grader's user reads
    assert all(s["sandbox"] == "process isolation" for s in summary.values())


@pytest.mark.slow
def test_without_bwrap_or_cgroups_the_grader_says_so_and_still_grades(alone, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "no bwrap on PATH")
    monkeypatch.setattr(cgroups, "problem", lambda: "no cgroup hierarchy under /nowhere")

    def no_group(*args, **kwargs):
        raise OSError("no cgroup hierarchy under /nowhere")
    monkeypatch.setattr(cgroups, "create", no_group)
    room = make_class(tmp_path / "class", ["exit_in_method"])
    out = tmp_path / "out"
    assert checks_cli.main(["--engine", str(room), "--out", str(out), "--jobs", "2"]) == 1
    err = capsys.readouterr().err
    assert "sandbox: bubblewrap not available (no bwrap on PATH); process isolation only" in err
    assert "limits: per process only (no cgroup hierarchy under /nowhere)" in err
    summary = {s["submission"]: s for s in json.loads((out / "class-summary.json").read_text())["submissions"]}
    assert summary["a_clean"]["status"] == "pass" and summary["exit_in_method"]["status"] != "pass"
    assert checks_cli.main(["--engine", str(room), "--out", str(out), "--sandbox", "bwrap"]) == 2
    assert "--sandbox bwrap: bubblewrap not available (no bwrap on PATH)" in capsys.readouterr().err


@needs_cgroup
def test_a_submission_past_its_cpu_time_is_stopped_and_said_so(tmp_path):
    room = tmp_path / "class"
    shutil.copytree(HOSTILE / "_clean", room / "spins")
    with open(room / "spins" / "autoencoder.py", "a") as f:
        f.write("\nwhile True:\n    pass\n")
    out = tmp_path / "out"
    assert checks_cli.main(["--engine", str(room), "--out", str(out), "--cpu-limit", "3", "--time-limit", "60"]) == 1
    summary = json.loads((out / "class-summary.json").read_text())["submissions"]
    assert summary[0]["status"] == "CPU time limit (3 s) exceeded" and summary[0]["seconds"] < 30


def test_a_malformed_candidate_env_is_named(tmp_path, capsys, monkeypatch):
    room = make_class(tmp_path / "class", [])
    monkeypatch.delenv("AE_LAB_UNSET_NAME", raising=False)
    assert checks_cli.main(["--engine", str(room), "--candidate-env", "AE_LAB_UNSET_NAME"]) == 2
    assert "--candidate-env: AE_LAB_UNSET_NAME is not set in the lab's environment" in capsys.readouterr().err
    assert checks_cli.main(["--engine", str(room), "--candidate-env", "NOT A NAME=1"]) == 2
    assert "--candidate-env: 'NOT A NAME=1' is not NAME or NAME=VALUE" in capsys.readouterr().err
    assert checks_cli.main(["--engine", str(room), "--jobs", "0"]) == 2
    assert "--jobs: expected a positive number, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("version", [1, 2])
def test_a_cgroup_is_made_with_the_limits_under_this_process_s_own(tmp_path, version):
    root, proc = tmp_path / "cg", tmp_path / "proc-self-cgroup"
    if version == 2:
        (root / "user" / "me").mkdir(parents=True)
        (root / "cgroup.controllers").write_text("memory pids\n")
        (root / "user" / "me" / "cgroup.subtree_control").write_text("memory pids\n")
        proc.write_text("0::/user/me\n")
    else:
        for controller in cgroups.V1_CONTROLLERS:
            (root / controller / "grp").mkdir(parents=True)
        proc.write_text("".join(f"{k}:{c}:/grp\n" for k, c in enumerate(cgroups.V1_CONTROLLERS)))
    group = cgroups.create("alice", 2**30, 16, root=root, proc_cgroup=proc)
    memory, pids = ("memory.max", "pids.max") if version == 2 else ("memory.limit_in_bytes", "pids.max")
    memory_dir = group.main
    pids_dir = group.main if version == 2 else group.dirs["pids"]
    assert "alice" in memory_dir.name and memory_dir.parent.name in ("me", "grp")
    assert (memory_dir / memory).read_text() == str(2**30) and (pids_dir / pids).read_text() == "16"


def test_no_writable_cgroup_is_an_error_saying_why(tmp_path):
    with pytest.raises(OSError, match="no cgroup hierarchy under"):
        cgroups.create("alice", 2**30, 16, root=tmp_path)


def test_the_output_reader_keeps_the_limit_and_counts_the_rest():
    reader = sandbox.CappedReader(io.BufferedReader(io.BytesIO(b"x" * 1000)), 100)
    assert reader.text() == "x" * 100 + "\n[... 900 more bytes not kept]\n"
    assert isinstance(reader.thread, threading.Thread)


def test_the_submission_s_environment_is_rebuilt_not_inherited(monkeypatch):
    monkeypatch.setenv("HOSTILE_TEST_SECRET", SECRET)
    env = sandbox.environment(sandbox.Limits(env=(("SEED", "1"),)))
    assert "HOSTILE_TEST_SECRET" not in env and env["SEED"] == "1" and os.environ["HOSTILE_TEST_SECRET"] == SECRET


PROBE = """
import os, socket, sys
from checks import sandbox
print("uid", os.getuid(), "caps", open("/proc/self/status").read().split("CapEff:")[1].split()[0])
print("root", " ".join(sorted(os.listdir("/"))), "| private", os.listdir("/tmp"))
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
except OSError as error:
    print("network", type(error).__name__)
if len(sys.argv) < 2:  # the judge's view: start a worker the way it will, in a sandbox of its own
    inner = sandbox.start([sys.executable, "-I", "-c", PROBE_SOURCE, "inner"],
                          os.getcwd(), channel=False)
    inner.wait(30)
    inner.stop()
    print("inner:", inner.mode, inner.printed.text().replace(chr(10), " | "), inner.output()[-300:])
"""


@needs_bwrap
def test_under_bwrap_a_process_has_no_network_nor_capabilities_and_its_worker_nests_a_sandbox(tmp_path):
    source = f"PROBE_SOURCE = {PROBE!r}\n" + PROBE
    worker = sandbox.start([os.sys.executable, "-I", "-c", source], tmp_path, channel=False, mode="bwrap")
    assert worker.wait(60) == 0, worker.output()
    worker.stop()
    shown = worker.printed.text()
    outer = shown.split("inner:")[0]
    assert f"uid {sandbox.UID} caps 0000000000000000" in outer and "network OSError" in outer
    visible = set(outer.split("root ")[1].split(" | private ")[0].split())
    assert visible <= {"ae-lab", "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr",
                       *(pathlib.Path(p).parts[1] for p in (os.sys.prefix, os.sys.base_prefix, tmp_path))}, visible
    shown_tmp = outer.split(" | private ")[1].splitlines()[0]
    # a private /tmp: empty, but for the way to the submission's folder when that lies in /tmp
    assert shown_tmp == ("[]" if tmp_path.parts[1] != "tmp" else f"['{tmp_path.parts[2]}']"), shown_tmp
    inner = shown.split("inner:")[1]
    assert inner.startswith(" bubblewrap") and "network OSError" in inner and "caps 0000000000000000" in inner


def test_a_submission_the_grader_cannot_start_is_a_row_saying_why_and_the_class_goes_on(tmp_path, monkeypatch):
    def cannot_start(*args, **kwargs):
        raise OSError("planted: cannot start")
    monkeypatch.setattr(sandbox, "start", cannot_start)
    room = make_class(tmp_path / "class", [])
    assert checks_cli.main(["--engine", str(room), "--out", str(tmp_path / "out")]) == 1
    summary = json.loads((tmp_path / "out" / "class-summary.json").read_text())["submissions"]
    assert [s["status"] for s in summary] == ["not examined (planted: cannot start)"] * 2
