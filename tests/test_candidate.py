"""python -m checks --engine on an independent float64 implementation of the course API
(tests/fixtures/course_engine, bias as an extra last column of W): the clean one passes, and
each classic bug planted in it fails with a message that names the layer and the pass."""

import json
import os
import pathlib
import re
import shutil
import types

import numpy as np
import pytest

from checks import __main__ as checks_cli
from checks import candidate, candidate_layers, diagnosis, findings, loader, remote

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course_engine"


def run(tmp_path, monkeypatch, bug=None, engine=FIXTURE):
    """The lab on ``engine`` with the bug switches ``bug`` (the worker is given COURSE_ENGINE_BUG, and
    COURSE_ENGINE_LOG when the test set it: no other variable of the lab's reaches it)."""
    monkeypatch.setenv("COURSE_ENGINE_BUG", bug or "")
    given = ["--candidate-env", "COURSE_ENGINE_BUG"]
    if "COURSE_ENGINE_LOG" in os.environ:  # a log outside its folder: bubblewrap would (rightly) refuse it
        given += ["--candidate-env", "COURSE_ENGINE_LOG", "--sandbox", "none"]
    code = checks_cli.main(["--engine", str(engine), "--out", str(tmp_path / "out"), *given])
    return code, json.loads((tmp_path / "out" / "records.json").read_text())


def test_the_clean_implementation_passes_and_its_layout_is_discovered(tmp_path, monkeypatch, capsys):
    code, saved = run(tmp_path, monkeypatch)
    assert code == 0, "\n".join(saved["findings"])
    verdicts = {r["verdict"] for r in saved["records"]}
    assert verdicts == {"pass", "cannot run"}
    passed = {(r.get("where", "").split(" (")[0], r["quantity"]) for r in saved["records"] if r["verdict"] == "pass"}
    for expected in [("layer 2 Rp_backward", "R{dW}"), ("layer 0 backward", "db"), ("model", "Hv after GNv"),
                     ("activation SigmoidActivationFunction second_deriv", "second_deriv"), ("model", "GNv")]:
        assert expected in passed, expected
    # float64 only: the complex step is tried and refused, with the candidate's own result; mpmath numbers
    # do not cross to its worker, which the 50-digit check says in one line
    reasons = [r["reason"] for r in saved["records"] if r["verdict"] == "cannot run"]
    assert any("not complex-analytic" in reason for reason in reasons)
    assert any(reason.startswith("fun computes in float64 only (given mpmath numbers it raised ChannelError: an "
                                 "array of dtype object is not carried") for reason in reasons)
    # the Hv reference from fun alone ran entry by entry through the worker, and passed
    assert any(r["where"].startswith("model (differences") and r["quantity"] == "Hv" and r["verdict"] == "pass"
               for r in saved["records"])
    # ... and said once, as what it rules out, never as a "cannot run" line per net and product
    said = [line for line in saved["findings"] if "complex" in line or "mpmath" in line]
    assert len(said) == 1 and said[0].startswith("note: checks.verify judged the model's loss, gradient and Hv "
                                                 "without its 50-digit checks (mpmath numbers are not carried"), said
    assert "and its complex-step checks (the implementation computes in real floats" in said[0]
    assert ("activation ReluActivationFunction deriv", "deriv") in passed
    assert "engine course_engine" in capsys.readouterr().out


def test_the_layout_probe_finds_the_bias_column():
    with remote.Session(FIXTURE) as session:
        # candidate rows [w00 w01 w02 b0 | w10 w11 w12 b1]
        layout, bias = candidate_layers.probe_layout(candidate.Lab(session.modules, "fixture"), 0, (3, 2))
    assert layout.tolist() == [0, 1, 2, 6, 3, 4, 5, 7] and bias


@pytest.mark.slow
def test_the_nets_examined_cover_the_api_and_say_so(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch)
    covered = {c["net"]: c["covers"] for c in saved["summary"]["configurations"]}
    assert list(covered) == ["6-4-2-4-6 tlts", "5-3-5 st", "4-4 k, no bias, batch 1", "3-5-5-3 rkt, batch 2"]
    assert covered["4-4 k, no bias, batch 1"] == [
        "depth 1", "LeakyReLU (alpha 0.3)", "use_bias=False", "square layer 0", "batch 1 (one object)",
        "layer passes on 1 column"]
    said = "; ".join("; ".join(c) for c in covered.values())
    for part in ("depth 2", "depth 3", "depth 4", "ReLU", "tanh", "sigmoid", "linear", "square layer 1",
                 "non-square layers", "batch 2", "more objects than the widest layer", "checks.verify", "optimizers"):
        assert part in said, part
    # every net's records carry its label, and the layer passes ran on each net's own batch
    nets = {r["net"] for r in saved["records"] if r["stage"] == "backward"}
    assert nets == set(covered)
    leaky = [r for r in saved["records"] if r["where"].startswith("activation LeakyRelu")]
    assert {r["verdict"] for r in leaky} == {"pass"} and len(leaky) == 3


@pytest.mark.slow
@pytest.mark.parametrize("bugs, own_root", [
    # a layer's own backward bug, not under a second derivative backward never calls
    ("sigmoid_second_deriv,transposed_weight_derivative", r"backward: dW is the reference transposed"),
    # a GNv bug, not under ReLU's wrong derivative, in the net with ReLU too: with ae's ReLU in its place the
    # GNv of the ReLU net still fails, and is then diagnosed as in the others
    ("relu_deriv_is_a_scalar,gauss_newton_ignores_its_direction",
     r"^\[nets 3-5-5-3 rkt, batch 2; 4-4 k, no bias, batch 1; 5-3-5 st; 6-4-2-4-6 tlts\] model: GNv with a "
     r"direction other than the last Hv's, GNv after compute_loss on other data equals the GNv of the direction of "
     r"an earlier call"),
])
def test_a_failure_follows_from_an_activation_only_where_its_computation_calls_it(tmp_path, monkeypatch, bugs,
                                                                                    own_root):
    _, saved = run(tmp_path, monkeypatch, bugs)
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    assert len(roots) == 2 and roots[0].startswith("activation ") and re.search(own_root, roots[1]), roots


@pytest.mark.slow
def test_what_follows_from_an_activation_is_what_passes_with_ae_s_activation_in_its_place(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch, "relu_deriv_is_a_scalar")
    root = next(r for r in saved["records"] if r["where"] == "activation ReluActivationFunction deriv")
    assert root["substituted"] and root["letter"] == "r"
    followers = [r for r in saved["records"] if r["verdict"] == "fail" and r is not root]
    # shown with ae's ReLU first; the model's failures pass on ae's layers too (which carry ae's ReLU)
    assert followers and all(r["follows"][0] == "r" and r["net"] == "3-5-5-3 rkt, batch 2" for r in followers)
    assert {r["stage"] for r in followers} >= {"backward", "model"}
    lines = saved["findings"]
    assert lines[0].startswith("activation ReluActivationFunction deriv") and all(
        line.startswith("    follows from it: [net 3-5-5-3 rkt, batch 2]") for line in lines[1:] if
        line.startswith("    ")), lines


@pytest.mark.slow
def test_what_follows_from_the_layers_is_what_passes_on_ae_s_layers(tmp_path, monkeypatch):
    """The candidate's Autoencoder and FFNet on ae's layers (stand_ins.ReferenceLayer, in the candidate's
    layout): the Hv failures pass there and follow from the layers' root; the fixture's GNv reads an
    attribute of its own layer (dOut) that ae's layer lacks, so for GNv nothing is shown and the line
    says it stands by the order of the passes."""
    _, saved = run(tmp_path, monkeypatch, "transposed_weight_derivative")
    layer_roots = [r for r in saved["records"] if r["stage"] == "backward" and r["verdict"] == "fail"]
    assert layer_roots and all(r["substituted_layers"] for r in layer_roots)
    model = [r for r in saved["records"] if r["stage"] in ("model", "verify", "optimizers") and r["verdict"] == "fail"]
    shown = [r for r in model if r["quantity"].startswith(("gradient", "train_grad"))]
    assert shown and all("layers" in r["follows"] for r in shown)
    gnv = [r for r in model if r["quantity"].startswith("GNv")]
    assert gnv and all("layers" not in r.get("follows", ()) and r["unshown"] for r in gnv)
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    assert len(roots) == 1 and "backward: dW is the reference transposed" in roots[0], saved["findings"]
    unshown = [line for line in saved["findings"] if "not shown on ae's layers" in line]
    assert unshown and all(" model: GNv" in line and line.endswith(
        "[by the order of the passes; not shown on ae's layers, where the model raised AttributeError: "
        "'ReferenceLayer' object has no attribute 'dOut']") for line in unshown), saved["findings"]


def test_a_constructor_that_fails_in_the_layer_checks_is_named_under_its_root_cause(tmp_path, monkeypatch):
    # the layout probe built layer 0 of the first net before any forward; its checks build it again
    _, saved = run(tmp_path, monkeypatch, "constructor_fails_once_a_layer_ran_forward")
    assert any(re.match(r"    follows from it: \[net 6-4-2-4-6 tlts\] layer 0: raised RuntimeError: a layer has "
                        r"already run forward", line) for line in saved["findings"]), "\n".join(saved["findings"])


def test_setters_that_return_their_arrays_are_a_convention_not_a_failure(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, "setters_return_their_arrays")
    assert code == 0, "\n".join(saved["findings"])


def test_findings_within_a_stage_are_listed_by_layer():  # different root causes, so never merged
    with remote.Session(FIXTURE) as session:
        lab = candidate.Lab(session.modules, "course_engine")
    lab.net = "6-4-2-4-6 tlts"
    lab.failure("backward", "layer 3 backward", "raised", "raised KeyError: 'W'", layer=3)
    lab.failure("backward", "layer 1 backward", "raised", "raised IndexError: list index out of range", layer=1)
    lab.failure("forward", "layer 2 forward", "raised", "raised ValueError: shapes differ", layer=2)
    assert lab.findings() == ["[net 6-4-2-4-6 tlts] layer 2 forward: raised ValueError: shapes differ",
                              "[net 6-4-2-4-6 tlts] layer 1 backward: raised IndexError: list index out of range",
                              "[net 6-4-2-4-6 tlts] layer 3 backward: raised KeyError: 'W'"]


@pytest.mark.slow
def test_a_gradient_of_the_wrong_length_is_named_where_it_is_made_and_where_it_shows(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, "backward_returns_the_gradient_one_entry_short")
    assert code == 1
    assert any(line.startswith("    follows from it: [net 6-4-2-4-6 tlts] model: gradient shape (76,), expected (80,)")
               for line in saved["findings"]), "\n".join(saved["findings"])
    short = next(r for r in saved["records"] if r["where"] == "model" and r["quantity"] == "gradient")
    assert (short["verdict"], short["reason"]) == ("fail", "shape (76,), expected (80,)")


@pytest.mark.slow
def test_a_state_overwritten_by_r_forward_is_named_even_when_r_backward_then_raises(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch, "Rp_forward_overwrites_its_input,Rp_backward_raises")
    assert any(re.search(r"layers? [\d, ]+ Rp_forward: state Rp_forward changes the stored Z that Rp_backward reads",
                         line) for line in saved["findings"]), "\n".join(saved["findings"])
    state = [r for r in saved["records"] if r["quantity"] == "state"]
    assert state and all(r["where"] == f"layer {r['layer']} Rp_forward" for r in state)


@pytest.mark.slow
def test_one_root_cause_is_one_line_whatever_layers_and_nets_show_it(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch, "transposed_weight_derivative")
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    assert roots == [line for line in roots if "dW is the reference transposed" in line] and len(roots) == 1


@pytest.mark.slow
def test_a_bug_in_the_backward_pass_is_named_there_not_only_in_the_model(tmp_path, monkeypatch):
    _, saved = run(tmp_path, monkeypatch, "bias_left_out_of_Rp_forward")
    failed = {r["where"] for r in saved["records"] if r["verdict"] == "fail" and r["where"].startswith("layer")}
    assert "layer 0 Rp_forward" in failed  # the finding it means, where the bug is
    assert not any(w.endswith(" forward") or w.endswith(" backward") for w in failed)  # only the R passes


def test_an_incomplete_api_is_listed_not_a_traceback(tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    layers = broken / "layers.py"
    layers.write_text(layers.read_text().replace("def Rp_backward", "def Rp_backward_unfinished"))
    (broken / "ffnet.py").unlink()
    assert checks_cli.main(["--engine", str(broken), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "layers.FCLayer.Rp_backward: missing" in err and "module ffnet: cannot import" in err
    assert "Traceback" not in err


def test_this_projects_engine_examined_as_a_package_passes_with_complex_step(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, engine="ae")
    assert code == 0, "\n".join(saved["findings"])
    # it takes complex numbers; mpmath numbers do not cross to the worker: the only checks that cannot run
    assert {r["verdict"] for r in saved["records"]} == {"pass", "cannot run", "note"}
    assert {r["check"] for r in saved["records"] if r["verdict"] == "cannot run"} == {"50 digits"}
    assert {r["stage"] for r in saved["records"] if r["verdict"] == "note"} == {"optimizers"}  # its loss lacks L2
    checks_run = {r["check"] for r in saved["records"] if r["verdict"] == "pass"}
    assert {"complex step", "engine"} <= checks_run


@pytest.mark.slow
def test_reports_engine_writes_a_pdf_of_the_findings(tmp_path, monkeypatch):
    pypdf = pytest.importorskip("pypdf")
    from reports import __main__ as reports_cli

    engine = submission(tmp_path, "transposed_weight_derivative", name="course_engine")  # the bug always on
    out = tmp_path / "engine.pdf"
    assert reports_cli.main(["--engine", str(engine), "--results", str(tmp_path), "--out", str(out)]) == 1
    text = " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(out).pages).split())
    assert "Examination of the engine course_engine" in text
    assert "layers 0, 1, 2, 3 backward: dW is the reference transposed" in text


def pdf_text(path):
    pypdf = pytest.importorskip("pypdf")
    # typst's quotes, made straight
    typographic = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
    return [" ".join(page.extract_text().translate(typographic).split()) for page in pypdf.PdfReader(path).pages]


@pytest.mark.slow
@pytest.mark.parametrize("bug", [None, "transposed_weight_derivative", "per_layer_1_over_N", "backward_raises",
                                 "adam_no_bias_correction"])
def test_the_terminal_the_records_and_the_pdf_say_the_same(tmp_path, monkeypatch, capsys, bug):
    from reports.build import build_engine_report

    code, saved = run(tmp_path, monkeypatch, bug)
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    out = capsys.readouterr().out.splitlines()
    printed = [line.removeprefix("FAILED ") for line in out if line.startswith("FAILED ")]
    assert printed == roots and (code == 1) == bool(roots)
    text = " ".join(pdf_text(build_engine_report(tmp_path / "out" / "records.json", tmp_path / "engine.pdf")))
    assert ("No check failed." in text) == (not roots), text
    for line in saved["findings"]:
        assert " ".join(line.split()) in text, line
    # the nets examined and what each covered: the same in the terminal, the records and the PDF
    examined = [line.removeprefix("examined net ") for line in out if line.startswith("examined net ")]
    configs = saved["summary"]["configurations"]
    assert examined == [f"{c['net']}: {'; '.join(c['covers'])}" for c in configs] and len(configs) == 4
    for c in configs:
        assert c["net"] in text and "; ".join(c["covers"]) in text, c


def test_a_missing_folder_is_named_as_such(capsys):
    assert checks_cli.main(["--engine", "/no/such/place"]) == 2
    assert "no such folder: /no/such/place" in capsys.readouterr().err
    assert checks_cli.main(["--engine", "no_such_package_here"]) == 2
    assert "no such folder or importable package: no_such_package_here" in capsys.readouterr().err


def test_reports_without_the_report_extra_says_which_extra_to_install(monkeypatch, capsys):
    import builtins

    from reports import __main__ as reports_cli

    real_import = builtins.__import__

    def without_typst(name, *args, **kwargs):
        if name == "typst":
            raise ModuleNotFoundError("No module named 'typst'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_typst)
    assert reports_cli.main(["--engine", str(FIXTURE)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == 'the PDF needs typst, the report extra: pip install "ae-lab[report]"'


@pytest.mark.slow
def test_per_layer_scaling_that_the_model_undoes_is_a_note_not_a_failure(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, "per_layer_1_over_N")
    assert code == 0, "\n".join(saved["findings"])
    notes = [line for line in saved["findings"] if line.startswith("note:")]
    assert any(line.startswith("note: 1/N times the reference inside each layer") and "layer 3 backward dW" in line
               for line in notes), notes


@pytest.mark.slow
def test_a_layer_that_ignores_use_bias_is_examined_without_one(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, "use_bias_ignored")
    assert code == 0, "\n".join(saved["findings"])
    assert any(line.startswith("note: the layer ignores use_bias=True") for line in saved["findings"])
    passed = {(r["where"], r["quantity"]) for r in saved["records"] if r["verdict"] == "pass"}
    assert {("layer 2 Rp_backward", "R{dW}"), ("model", "Hv after GNv")} <= passed  # every check still ran


@pytest.mark.slow
def test_a_scalar_derivative_is_compared_by_value(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, "linear_deriv_is_a_scalar")  # 1 is right for linear: a note
    assert code == 0
    assert any("returns shape () where (4, 6) is expected" in line for line in saved["findings"])


@pytest.mark.slow
def test_the_candidate_s_prints_are_kept_apart_from_the_lab_s_output(tmp_path, monkeypatch, capsys):
    # the fixture prints in its constructor, get_params_number, set_weights, forward, compute_loss and
    # compute_hessvec, to stdout and stderr in turn, and logs each line: every phase of the lab calls some
    monkeypatch.setenv("COURSE_ENGINE_LOG", str(tmp_path / "printed.txt"))
    code, saved = run(tmp_path, monkeypatch, "prints")
    assert code == 0
    shown = capsys.readouterr()
    assert "print 1:" not in shown.out + shown.err
    printed = (tmp_path / "printed.txt").read_text().splitlines()
    output = (tmp_path / "out" / "candidate-output.txt").read_text()
    kept = [line for line in output.splitlines() if re.match(r"print \d+: ", line)]
    # every print kept, in order, up to the cap on what a candidate prints; the rest counted in its last line
    assert len(kept) > 100 and kept[:-1] == printed[:len(kept) - 1] and printed[len(kept) - 1].startswith(kept[-1])
    if len(kept) < len(printed):
        rest = re.fullmatch(r"\[\.\.\. (\d+) more bytes not kept\]", output.splitlines()[-1])
        # the cap may fall inside a line: its kept start ("print 3") is not in kept but was not dropped
        cut = output.splitlines()[-2]
        started = len(cut) if printed[len(kept)].startswith(cut) and not re.match(r"print \d+: ", cut) else 0
        assert rest and int(rest[1]) >= sum(len(line) + 1 for line in printed[len(kept):]) - started


def submission(folder, bug, name=None):
    """A copy of the fixture with one bug always on (a student's folder), under ``folder`` (as ``name``)."""
    target = folder / (name or bug)
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("__pycache__"))
    source = (target / "activations.py").read_text()
    (target / "activations.py").write_text(source.replace(
        'return name in os.environ.get("COURSE_ENGINE_BUG", "").split(",")', f'return name == "{bug}"'))
    return target


@pytest.mark.slow
def test_a_whole_class_each_submission_in_its_own_process(tmp_path, capsys):
    from reports.build import build_class_report

    pypdf = pytest.importorskip("pypdf")
    room = tmp_path / "class"
    for bug in ("clean", "missing_1_over_N", "loops_forever", "prints", "exits_the_process"):
        submission(room, bug)
    out = tmp_path / "out"
    # the limit is the whole examination's: several times what a clean one takes on a slow, shared machine
    assert checks_cli.main(["--engine", str(room), "--out", str(out), "--time-limit", "60"]) == 1
    printed = capsys.readouterr()
    assert "forward called with" not in printed.out + printed.err  # a submission's prints stay in its folder
    summary = {s["submission"]: s for s in json.loads((out / "class-summary.json").read_text())["submissions"]}
    assert summary["clean"]["status"] == "pass" and summary["prints"]["status"] == "pass"
    assert summary["missing_1_over_N"]["status"] == "fail"
    assert [re.sub(r"\d\.\de-1\d, target", "#, target", line) for line in
            summary["missing_1_over_N"]["root_causes"]] == [
        "[nets 3-5-5-3 rkt, batch 2; 5-3-5 st; 6-4-2-4-6 tlts] model: gradient is N times the reference: the 1/N "
        "of formula (1) is missing (off by up to 6.0e+00; once that is accounted for, up to #, target 1e-12)"
    ]  # # is round-off; at a batch of one the 1/N is 1
    assert summary["loops_forever"]["status"] == "timed out after 60 s"
    # the process that exits is the candidate's worker, not the lab: a finding on the submission
    assert summary["exits_the_process"]["status"] == "fail"
    assert summary["exits_the_process"]["root_causes"] == [
        "[nets 5-3-5 st; 6-4-2-4-6 tlts] model compute_loss: crashed in compute_loss (exit code 3)"]
    assert "forward called with" in (out / "prints" / "candidate-output.txt").read_text()
    assert (out / "class-summary.csv").read_text().splitlines()[0].startswith("submission,status,activation")
    pdf = build_class_report(out / "class-summary.json", tmp_path / "class.pdf")
    pages = [page.extract_text() for page in pypdf.PdfReader(pdf).pages]
    assert "A class examined" in pages[0]
    for name in ("clean", "missing_1_over_N", "prints"):  # a page (or more) of its own each
        assert any(text.startswith(f"Examination of the engine {name}") for text in pages), name
    assert any(text.startswith("loops_forever") and "timed out after 60 s" in text for text in pages)
    for name, failed in (("clean", False), ("missing_1_over_N", True)):  # never "No check failed." under failures
        page = next(text for text in pages if text.startswith(f"Examination of the engine {name}"))
        assert ("No check failed." in page) != failed and ("Findings" in page) == failed, page


SECOND = pathlib.Path(__file__).resolve().parent / "fixtures" / "course_engine_b"


@pytest.mark.slow
@pytest.mark.parametrize("bug, expected", [
    (None, None),
    ("weights_derivative_transposed", r"^\[nets .*\] layers 0, 1, 2, 3 backward: dW is the reference transposed"),
    ("second_order_term_dropped", r"Rp_backward: R\{dL/dinputs\}, R\{dW\}, R\{db\} lacks the second-order term"),
    ("gauss_newton_doubled", r"model: GNv(, [^:]*)? is 2 times the reference"),
])
def test_a_second_implementation_with_another_layout_is_read_and_judged_the_same(tmp_path, monkeypatch, bug,
                                                                                  expected):
    """Written apart from ae and from the first fixture: bias first, then W column by column."""
    code = checks_cli.main(["--engine", str(SECOND), "--out", str(tmp_path / "out"),
                            "--candidate-env", f"COURSE_ENGINE_B_BUG={bug or ''}"])
    saved = json.loads((tmp_path / "out" / "records.json").read_text())
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    if bug is None:
        assert code == 0 and roots == [], "\n".join(saved["findings"])
        with remote.Session(SECOND) as session:
            layout, bias = candidate_layers.probe_layout(candidate.Lab(session.modules, "b"), 0, (3, 2))
        assert layout.tolist() == [6, 7, 0, 3, 1, 4, 2, 5] and bias  # [b0 b1 | W00 W10 | W01 W11 | W02 W12]
    else:
        assert code == 1 and len(roots) == 1 and re.search(expected, roots[0]), "\n".join(saved["findings"])


# --- the lab's own judges, on made-up values and records ----------------------------------------

@pytest.mark.parametrize("factor, sentence", [
    (7.0, "is N times the reference: the 1/N of formula (1) is missing"),
    (1 / 7, "is 1/N times the reference: it divides by N once more than formula (1)"),
    (-1.0, "is -1 times the reference"), (2.0, "is 2 times the reference"), (0.5, "is 1/2 times the reference"),
    (6.0, "is N-1 times the reference"), (3.25, "is 3.25 times the reference"),
])
def test_diagnose_names_each_classic_factor(factor, sentence):
    exact = np.array([1.0, -2.0, 0.5, 3.0])
    assert diagnosis.diagnose(factor * exact, exact, n=7) == (sentence, pytest.approx(factor, rel=1e-15))


def test_diagnose_names_a_transpose_a_hypothesis_and_nothing_else():
    exact = np.arange(1.0, 7.0)  # a 2 x 3 matrix raveled
    assert diagnosis.diagnose(exact.reshape(2, 3).T.ravel(), exact, n=5, matrix=(2, 3)) == (
        "is the reference transposed (raveled in W's place)", None)
    assert diagnosis.diagnose(exact + 1, exact, n=5, hypotheses=[("uses pre-activations", exact + 1)]) == (
        "uses pre-activations", None)
    assert diagnosis.diagnose(exact + np.array([0, 0, 0, 0, 0, 1e-3]), exact, n=5, matrix=(2, 3)) == (None, None)
    assert diagnosis.diagnose(exact * (1 + 1e-8), exact, n=5) == ("is 1 times the reference", pytest.approx(1 + 1e-8))
    assert diagnosis.diagnose(np.zeros(6), exact, n=5) == (None, None)  # a zero result is no factor of anything


def record(stage, quantity="gradient", net="a", layer=None):
    return {"stage": stage, "quantity": quantity, "net": net, "layer": layer}


@pytest.mark.parametrize("root, follower, explained", [
    (record("model", "loss"), record("model", "Hv"), True),  # the loss's state is every product's
    (record("model", "gradient"), record("model", "GNv"), True),
    (record("model", "Hv"), record("model", "GNv"), False),
    (record("model", "loss"), record("model", "gradient"), False),
    (record("activation"), record("forward", net="b"), True),  # an activation: everything after it
    # ... that calls the failed method of that activation
    (dict(record("activation"), where="activation SigmoidActivationFunction deriv"),
     dict(record("forward", layer=1), letters="tst"), False),
    (dict(record("activation"), where="activation SigmoidActivationFunction second_deriv"),
     dict(record("backward", layer=1), letters="tst"), False),
    (dict(record("activation"), where="activation SigmoidActivationFunction second_deriv"),
     dict(record("Rp_backward", layer=1), letters="tst"), True),
    (dict(record("activation"), where="activation SigmoidActivationFunction second_deriv"),
     dict(record("Rp_backward", layer=0), letters="tst"), False),  # layer 0 is tanh
    (dict(record("activation"), where="activation SigmoidActivationFunction second_deriv"),
     dict(record("model", "GNv"), letters="tst"), False),
    (dict(record("activation"), where="activation SigmoidActivationFunction second_deriv"),
     dict(record("model", "Hv after GNv"), letters="tst"), True),
    (dict(record("activation"), where="activation ReluActivationFunction deriv"),
     dict(record("model", "GNv"), letters="tst"), False),  # no ReLU in the net
    (dict(record("activation"), where="activation LeakyReluActivationFunction val"),
     dict(record("model", "loss"), letters="rkt"), True),
    (record("forward"), record("activation"), False),  # never backwards in the stages
    (record("backward", layer=1), record("backward", layer=1), False),  # the same stage: not after it
    (record("layout"), record("backward", layer=2), True),  # the layout: everything of its net
    (record("layout"), record("backward", net="b", layer=2), False),
    (record("forward", layer=1), record("model"), True),  # a layer's pass: the model after it
    (record("forward", layer=1), record("verify"), True),
    (record("forward", layer=1), record("backward", layer=1), True),  # the same layer's later passes
    (record("forward", layer=1), record("backward", layer=2), False),
    (record("forward", layer=1), record("model", net="b"), False),
])
def test_which_failure_explains_which(root, follower, explained):
    assert findings._explains(root, follower) is explained


def test_a_finding_line_names_the_net_the_place_and_what_is_wrong():
    wrong = {"net": "tanh tied", "where": "layer 1 backward", "quantity": "dW", "measured": 0.5, "threshold": 1e-12}
    assert findings._line(wrong) == "[net tanh tied] layer 1 backward: dW off by 5.0e-01 (target 1e-12)"
    assert findings._line({**wrong, "diagnosis": "is 2 times the reference"}, ["dW", "db"]) == (
        "[net tanh tied] layer 1 backward: dW, db is 2 times the reference (off by 5.0e-01, target 1e-12)")
    assert findings._line({**wrong, "net": None, "reason": "returned shape (3,)"}, ["dW"]) == (
        "layer 1 backward: dW returned shape (3,)")
    assert findings._line({**wrong, "quantity": "raised", "reason": "ValueError: no"}) == (
        "[net tanh tied] layer 1 backward: ValueError: no")


def test_a_package_is_loaded_by_its_name_or_its_folder():
    root = pathlib.Path(__file__).resolve().parent.parent
    for spec in ("ae", str(root / "ae")):
        modules = loader.load(spec)
        assert {m.__name__ for m in modules.values()} == {f"ae.{name}" for name in candidate.MODULES}, spec


@pytest.mark.slow
def test_the_lab_s_random_weights_and_data_come_from_its_seed(monkeypatch):
    monkeypatch.delenv("COURSE_ENGINE_BUG", raising=False)
    measured = [[r.get("measured") for r in candidate.examine(str(FIXTURE), seed=seed)[0]] for seed in (0, 0, 1)]
    assert measured[0] == measured[1] and measured[0] != measured[2]


def test_a_candidate_without_a_linear_activation_is_examined_where_it_can_be(tmp_path):
    with remote.Session(FIXTURE) as session:
        modules = dict(session.modules)
        kept = {name: getattr(modules["activations"], name) for name in dir(modules["activations"])
                if "Linear" not in name}
        modules["activations"] = types.SimpleNamespace(**kept)
        lab = candidate.Lab(modules, "course_engine")
        lab.run()
    skipped = [r for r in lab.records if r.get("reason") == "no linear activation to stand in"]
    assert skipped and all((r["verdict"], r["stage"]) == ("cannot run", "model") for r in skipped)
    assert "activation" in lab.summary()["stages"]  # the rest was examined


@pytest.mark.slow
def test_a_figure_is_the_distance_left_once_the_convention_is_removed(tmp_path, monkeypatch):
    # layers that divide by N (the model undoes it) and round their weight derivative in float32
    code, saved = run(tmp_path, monkeypatch, "per_layer_1_over_N,backward_in_float32")
    assert code == 1
    # one root: what remains of dW and db once the convention is taken out is float32 rounding, as in dL/dinputs
    roots = [line for line in saved["findings"] if not line.startswith(("    ", "cannot run", "note"))]
    assert len(roots) == 1 and re.fullmatch(
        r"\[nets [^]]*5-3-5 st; 6-4-2-4-6 tlts\] layers 0, 1, 2, 3 backward: dL/dinputs, dW, db agrees only to "
        r"single precision: a part is computed in float32 \(float64 is expected\) \(off by up to (\S+), target "
        r"1e-12\)", roots[0]), roots
    assert 1e-12 < float(re.search(r"up to (\S+),", roots[0]).group(1)) < 1e-5  # float32 rounding, not the 1/N
    dW = next(r for r in saved["records"] if r["where"] == "layer 0 backward" and r["quantity"] == "dW")
    assert dW["convention"] == "1/N times the reference inside each layer" and dW["residual"] < 1e-5
    assert any(line.startswith("note: 1/N times the reference inside each layer") for line in saved["findings"])


def test_a_classic_factor_is_named_through_float32_rounding_and_its_remainder_given():
    exact = np.random.default_rng(0).standard_normal(12)
    theirs = (exact / 5).astype(np.float32).astype(float)
    sentence, factor, residual = diagnosis.diagnose_with_residual(theirs, exact, n=5)
    assert sentence.startswith("is 1/N times the reference") and factor == 0.2 and 1e-10 < residual < 1e-6
    assert diagnosis.diagnose_with_residual(exact * (1 + 1e-10), exact, n=5) == (None, None, None)  # no "1 times"
    assert diagnosis.diagnose_with_residual(theirs + 1e-3, exact, n=5)[0] is None  # a real error: no factor


def test_an_entrywise_check_s_figure_is_relative_and_normwise():
    failed = {"net": "5-3-5 st", "where": "model (complex step)", "quantity": "Hv", "measured": 2e14,
              "threshold": 1.0, "relative": 0.31}
    assert findings._line(failed) == ("[net 5-3-5 st] model (complex step): Hv off by 3.1e-01 relative, normwise "
                                       "(its worst entry is 2.0e+14 times its rounding tolerance, target 1e+00)")


@pytest.mark.slow
def test_a_layer_without_get_activations_is_examined(tmp_path, monkeypatch):
    """The assignment asks get_activations of FFNet, not of a layer: a layer without one is no missing API."""
    engine = submission(tmp_path, "none", name="course_engine")
    for module, old, new in (("layers.py", "    def get_activations(self):", "    def outputs(self):"),
                             ("ffnet.py", "self.layers[layer_number].get_activations()",
                              "self.layers[layer_number].outputs()")):
        source = (engine / module).read_text()
        assert old in source
        (engine / module).write_text(source.replace(old, new))
    code, saved = run(tmp_path, monkeypatch, engine=engine)
    assert code == 0, "\n".join(saved["findings"])
    assert any(r["quantity"] == "get_activations(0)" and r["verdict"] == "pass" for r in saved["records"])
