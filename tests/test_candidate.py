"""python -m checks --engine on an independent float64 implementation of the course API
(tests/fixtures/course_engine, bias as an extra last column of W): the clean one passes, and
each classic bug planted in it fails with a message that names the layer and the pass."""

import json
import pathlib
import shutil

import pytest

from checks import __main__ as checks_cli
from checks import candidate

FIXTURE = pathlib.Path(__file__).resolve().parent / "fixtures" / "course_engine"


def run(tmp_path, monkeypatch, bug=None, engine=FIXTURE):
    if bug:
        monkeypatch.setenv("COURSE_ENGINE_BUG", bug)
    else:
        monkeypatch.delenv("COURSE_ENGINE_BUG", raising=False)
    code = checks_cli.main(["--engine", str(engine), "--out", str(tmp_path / "out")])
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
    # float64 only: complex step and mpmath are tried and refused, with the candidate's own error
    reasons = [r["reason"] for r in saved["records"] if r["verdict"] == "cannot run"]
    assert any("not complex-analytic" in reason for reason in reasons)
    assert any("does not compute in mpmath" in reason for reason in reasons)
    assert any("no Relu activation class" in reason for reason in reasons)
    assert "engine course_engine" in capsys.readouterr().out


def test_the_layout_probe_finds_the_bias_column():
    modules = candidate.load(FIXTURE)
    lab = candidate.Lab(modules, "fixture")
    layout = lab.layout(0, (3, 2))  # candidate rows [w00 w01 w02 b0 | w10 w11 w12 b1]
    assert layout.tolist() == [0, 1, 2, 6, 3, 4, 5, 7]


@pytest.mark.parametrize("bug, expected", [
    ("missing_1_over_N", "[net 6-4-2-4-6 tlts] model: gradient off by"),
    ("transposed_weight_derivative", "[net 6-4-2-4-6 tlts] layer 1 backward: dW off by"),
    ("bias_left_out_of_Rp_forward", "[net 6-4-2-4-6 tlts] layer 0 Rp_forward: R{outputs} off by"),
    ("gauss_newton_overwrites_hessian_state", "[net 6-4-2-4-6 tlts] model: Hv after GNv off by"),
    ("sigmoid_second_deriv", "activation SigmoidActivationFunction second_deriv: second_deriv off by 1.0e-02"),
    ("sigmoid_second_deriv", "[net 6-4-2-4-6 tlts] layer 3 Rp_backward: R{dW} off by"),
    ("Rp_backward_drops_a_term_of_its_input_derivative",
     "[net 6-4-2-4-6 tlts] layer 0 Rp_backward: R{dL/dinputs} off by"),
    ("gauss_newton_ignores_its_direction",
     "[net 6-4-2-4-6 tlts] model: GNv with a direction other than the last Hv's off by"),
    ("get_activations_returns_preactivations", "[net 6-4-2-4-6 tlts] model: get_activations(0) off by"),
    ("backward_raises", "layer 0 backward: raised NotImplementedError: backward is left for later"),
    ("backward_scales_its_argument", "layer 0 backward: argument 1 changed in place"),
])
def test_each_classic_bug_fails_naming_where(tmp_path, monkeypatch, capsys, bug, expected):
    code, saved = run(tmp_path, monkeypatch, bug)
    assert code == 1
    assert any(expected in line for line in saved["findings"]), "\n".join(saved["findings"])
    out = capsys.readouterr().out
    assert "FAILED" in out and "Traceback" not in out


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


def test_this_projects_engine_examined_as_a_package_passes_with_complex_step_and_50_digits(tmp_path, monkeypatch):
    code, saved = run(tmp_path, monkeypatch, engine="ae")
    assert code == 0, "\n".join(saved["findings"])
    assert {r["verdict"] for r in saved["records"]} == {"pass"}  # it takes complex and mpmath numbers
    checks_run = {r["check"] for r in saved["records"]}
    assert {"complex step", "50 digits", "engine"} <= checks_run


def test_reports_engine_writes_a_pdf_of_the_findings(tmp_path, monkeypatch):
    pypdf = pytest.importorskip("pypdf")
    from reports import __main__ as reports_cli

    monkeypatch.setenv("COURSE_ENGINE_BUG", "transposed_weight_derivative")
    out = tmp_path / "engine.pdf"
    assert reports_cli.main(["--engine", str(FIXTURE), "--results", str(tmp_path), "--out", str(out)]) == 1
    text = " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(out).pages).split())
    assert "Examination of the engine course_engine" in text
    assert "layer 1 backward: dW off by" in text


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
