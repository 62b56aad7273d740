"""The candidate's code runs in checks.worker, never in the lab: a submission that patches the lab or numpy
at import forges nothing, and one that answers too much, answers objects, exits or never answers is a
finding on it, not a crash or a hang of the lab (hostile submissions: tests/fixtures/hostile)."""

import json
import pathlib
import re
import shutil
import time

import numpy as np
import pytest

from checks import __main__ as checks_cli
from checks import remote, sandbox

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"
CLEAN = FIXTURES / "course_engine"


def hostile(tmp_path, name):
    """The clean fixture with tests/fixtures/hostile/_appended/NAME.py appended to its autoencoder.py."""
    target = tmp_path / name
    shutil.copytree(CLEAN, target, ignore=shutil.ignore_patterns("__pycache__"))
    with open(target / "autoencoder.py", "a") as f:
        f.write("\n\n" + (FIXTURES / "hostile" / "_appended" / f"{name}.py").read_text())
    return target


def examine(tmp_path, engine, *options):
    code = checks_cli.main(["--engine", str(engine), "--out", str(tmp_path / "out"), *options])
    saved = json.loads((tmp_path / "out" / "records.json").read_text())
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    return code, saved, roots


@pytest.mark.slow
def test_a_submission_that_patches_the_lab_and_numpy_at_import_still_fails_its_wrong_hv(tmp_path):
    code, saved, roots = examine(tmp_path, hostile(tmp_path, "forges_the_judge"))
    assert code == 1
    assert any(re.search(r"model: Hv(, [^:]*)? is 3 times the reference", line) for line in roots), roots
    passed = {(r["where"], r["quantity"]) for r in saved["records"] if r["verdict"] == "pass"}
    assert ("model", "gradient") in passed and ("model", "GNv") in passed  # the rest of it is right


def test_answers_that_cannot_cross_are_findings_not_a_crash_of_the_lab(tmp_path, capsys):
    code, saved, roots = examine(tmp_path, hostile(tmp_path, "answers_that_cannot_cross"))
    assert code == 1
    assert any(re.search(r"model compute_hessvec: compute_hessvec: malformed answer: an array of 100000000 "
                         r"entries \(763 MiB\) exceeds the 64 MiB frame limit", line) for line in roots), roots
    assert any(re.search(r"model compute_gaussnewtonvec: compute_gaussnewtonvec: malformed answer: an array of "
                         r"dtype object is not carried", line) for line in roots), roots
    assert "Traceback" not in capsys.readouterr().out


ALL_NETS = "[nets 3-5-5-3 rkt, batch 2; 4-4 k, no bias, batch 1; 5-3-5 st; 6-4-2-4-6 tlts] "


def test_a_call_that_ends_the_process_is_a_crash_named_where_and_the_lab_goes_on(tmp_path):
    code, saved, roots = examine(tmp_path, hostile(tmp_path, "exits_in_hessvec"))
    assert code == 1
    assert ALL_NETS + "model compute_hessvec: crashed in compute_hessvec (exit code 0)" in roots
    lost = [r for r in saved["records"] if r["verdict"] == "cannot run" and "its object was lost" in r["reason"]]
    assert lost, "the calls on the model after its worker died"
    # a fresh worker for the next net: the second net's layers were examined after the first net's crash
    assert {(r["net"], r["stage"]) for r in saved["records"] if r["verdict"] == "pass"} >= {("5-3-5 st", "backward")}


def test_a_call_that_never_answers_times_out_and_the_lab_goes_on(tmp_path):
    tic = time.perf_counter()
    code, saved, roots = examine(tmp_path, hostile(tmp_path, "sleeps_in_hessvec"), "--call-time-limit", "1")
    assert code == 1
    assert ALL_NETS + "model compute_hessvec: timed out in compute_hessvec after 1 s" in roots
    assert time.perf_counter() - tic < 60  # one time-out per net, never the sleep


def test_after_too_many_failures_the_rest_cannot_run_saying_why(tmp_path):
    with remote.Session(hostile(tmp_path, "exits_in_hessvec")) as session:
        for _ in range(remote.MAX_FAILURES):
            model = session.modules["autoencoder"].Autoencoder([])
            with pytest.raises(remote.WorkerFailure, match=r"^crashed in compute_hessvec \(exit code 0\)$"):
                model.compute_hessvec(np.zeros(1))
        with pytest.raises(remote.WorkerFailure) as failure:
            session.modules["autoencoder"].Autoencoder([])
        assert failure.value.verdict == "cannot run"
        assert str(failure.value) == (f"not run: the candidate's worker failed {remote.MAX_FAILURES} times (the last "
                                      "crashed in compute_hessvec (exit code 0))")


def test_a_submission_that_exits_at_import_cannot_be_examined_and_says_why(tmp_path, capsys):
    engine = tmp_path / "exits_at_import"
    shutil.copytree(CLEAN, engine, ignore=shutil.ignore_patterns("__pycache__"))
    with open(engine / "layers.py", "a") as f:
        f.write("\nimport os\nos._exit(5)\n")
    assert checks_cli.main(["--engine", str(engine), "--out", str(tmp_path / "out")]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("sandbox: ")]  # mode
    assert said == [f"{engine}: the candidate's modules cannot be imported: crashed in its import (exit code 5)"]


def test_the_worker_reports_changes_in_place_shared_memory_prints_and_the_candidate_s_frame():
    limits = sandbox.Limits(env=(("COURSE_ENGINE_BUG", "backward_scales_its_argument,prints"),))
    with remote.Session(CLEAN, limits) as session:
        tanh = session.modules["activations"].TanhActivationFunction()
        layer = session.modules["layers"].FCLayer((3, 2), tanh, use_bias=True)
        layer.set_weights(np.arange(8.0) / 10)
        out, facts = remote.call(layer.forward, np.ones((3, 4)))
        assert np.allclose(out, np.tanh(np.array([[0.6], [2.2]]) * np.ones((2, 4))))  # rows (w, b): 0.3+0.3, ...
        assert [0, "attribute out"] in facts["shares"] and facts["printed"] == "print 3: forward called with (3, 4)\n"
        derivs = np.ones((2, 4))
        _, facts = remote.call(layer.backward, derivs)
        assert facts["changed"] == [0] and (derivs == 1).all()  # the lab's own array is never touched
        assert set(remote.held_arrays(layer)) >= {"W", "b", "Z", "U", "out", "dOut"}
        with pytest.raises(ValueError) as error:  # the candidate's exception, by its type's name
            layer.forward(np.ones((5, 4)))
        assert isinstance(error.value, remote.CandidateError) and type(error.value).__name__ == "ValueError"
        assert error.value.frame[0].startswith("layers.py:") and error.value.frame[1] == "forward"
        # what the worker imported: numpy and the worker's own modules, never the judge's
        imported = session.modules["activations"].sys.modules
        assert {"numpy", "checks.worker", "checks.channel", "checks.loader"} <= set(imported)
        assert not {"checks.candidate", "checks.verify", "checks.remote", "ae"} & set(imported)
    assert "print 1: FCLayer((3, 2))" in session.close()


def test_the_stand_ins_keep_complex_numbers_and_the_candidate_s_layout():
    """ae's layer standing in for a candidate's: its flat blocks in the candidate's order (perm), its weight
    derivatives scaled by N**batch_power, and complex numbers carried through (the complex step of a net on
    stand-ins gives its derivative)."""
    from checks.worker import ReferenceActivation, ReferenceLayer

    rng = np.random.default_rng(3)
    perm = rng.permutation(3 * 2 + 2)  # candidate entry i sits at perm[i] of ae's block
    w, p = rng.standard_normal((2, len(perm)))
    X, D = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    layer = ReferenceLayer((3, 2), "t", (), True, list(perm), -1)
    layer.set_weights(w)
    assert np.array_equal(layer.get_weights(), w)
    layer.forward(X)
    _, grad = layer.backward(D)
    # the directional derivative of sum(D * outputs) along p, by the complex step, in the candidate's layout
    h = 1e-30
    layer.set_weights(w + 1j * h * p)
    step = np.sum(D * layer.forward(X.astype(complex))).imag / h
    assert np.isclose(grad @ p * 4, step, rtol=1e-13, atol=0)  # batch_power -1: grad is 1/N of the sum's
    assert ReferenceActivation("s").second_deriv(np.array([1 + 1e-30j])).dtype == complex
    assert ReferenceActivation("k", 0.3).deriv(np.array([-1.0])).dtype == float
