"""The report builds from records made in the test, shows their numbers, and refuses holes."""

import json
import shutil

import pypdf
import pytest
from test_studies import TINY, write_idx_folder

from checks import __main__ as checks_cli
from checks.records import group_records
from reports.build import ReportError, build, num
from studies import __main__ as studies_cli
from studies import long_budget, protocol, synthetic


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Records of a quick checks run, a tiny study and a short synthetic run."""
    root = tmp_path_factory.mktemp("results")
    data_dir = root / "mnist"
    data_dir.mkdir()
    write_idx_folder(data_dir)
    assert checks_cli.main(["--quick", "--out", str(root / "checks-quick")]) == 0
    original = protocol.MODES["quick"]
    protocol.MODES["quick"] = TINY
    try:
        assert studies_cli.main(["--quick", "--data-dir", str(data_dir), "--validation-size", "20", "--workers", "1",
                                 "--out", str(root / "study-quick")]) == 0
    finally:
        protocol.MODES["quick"] = original
    synthetic.main(["--out", str(root / "synthetic.json"), "--epochs", "2", "--hf-iterations", "2"])
    return root


def pdf_text(path):
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(path).pages)


@pytest.mark.slow
def test_report_has_every_section_and_the_records_numbers(results, tmp_path):
    path = build(results, tmp_path / "report.pdf")
    text = " ".join(pdf_text(path).split())
    for section in ("The model and its derivatives", "backward pass, derived", "Tied weights",
                    "Gauss-Newton product", "Verification", "Error against the step", "Taylor test",
                    "Certified: bounds proven by ball arithmetic",
                    "Dense matrices", "Detection power", "MNIST", "Tuning rule",
                    "Hessian-free against Adam", "How to reproduce every number"):
        assert section in text, section
    records = json.loads((results / "checks-quick" / "records.json").read_text())["records"]
    complex_row = next(r for r in group_records(records) if r["check"] == "complex step"
                       and r["quantity"] == "gradient")
    assert num(complex_row["worst"]) in text
    summary = json.loads((results / "study-quick" / "summary.json").read_text())
    assert f"{summary['pca2']['test_loss']:.3f}" in text  # the PCA-2 yardstick, as the record has it
    data = summary["data"]  # the study section opens with its data: name, source, split and fingerprint
    assert f"IDX data {data['fingerprint']}: which optimizer trains" in text
    assert (f"Data: {data['name']}, from {data['source']}; fingerprint {data['fingerprint']}"
            in text.replace("\u2019", "'"))  # typst sets apostrophes typographically
    for arch, result in summary["architectures"].items():  # each verdict as the record has it
        if result["winner"] is not None:
            assert f"{arch}: {result['winner']} wins" in text
        else:
            assert f"{arch}: a tie between {', '.join(result['tied'])}" in text
        tuned = result["tuned"][result["best"]]
        assert f"{tuned['median_test_loss']:.3f}" in text
        assert f"{tuned['min_test_loss']:.3f} - {tuned['max_test_loss']:.3f}" in text
    for section in ("Seeds.", "Budgets.", "seeds reaching", "test median", "validation set chooses",
                    "Hessian-free at equal budgets."):
        assert section in text, section
    assert len(pypdf.PdfReader(path).pages) >= 8


def test_a_missing_record_stops_the_build_and_says_how_to_make_it(results, tmp_path):
    moved = results / "synthetic.json.away"
    (results / "synthetic.json").rename(moved)
    try:
        with pytest.raises(ReportError, match=r"synthetic: .* is missing; make it with `python -m studies.synthetic`"):
            build(results, tmp_path / "report.pdf")
    finally:
        moved.rename(results / "synthetic.json")
    assert not (tmp_path / "report.pdf").exists()


def test_a_stale_record_stops_the_build(results, tmp_path):
    path = results / "study-quick" / "summary.json"
    original = path.read_text()
    path.write_text(original.replace(json.loads(original)["code_version"], "0123456789ab"))
    try:
        with pytest.raises(ReportError, match="study: .* code version 0123456789ab.*stale.*python -m studies --quick"):
            build(results, tmp_path / "report.pdf")
    finally:
        path.write_text(original)


@pytest.mark.parametrize("tamper, says", [
    (lambda r: r.update(measured=float("nan")), "measured is not a finite number"),
    (lambda r: r.update(absolute=float("inf")), "absolute is not a finite number"),
    (lambda r: r.update(measured=r["threshold"] * 10), "verdict pass does not follow from measured"),
], ids=["nan", "inf bound", "verdict"])
def test_a_records_file_whose_verdict_rests_on_no_number_or_does_not_follow_is_refused(results, tmp_path, tamper,
                                                                                     says):
    path = results / "checks-quick" / "records.json"
    original = path.read_text()
    saved = json.loads(original)
    k = next(k for k, r in enumerate(saved["records"]) if r["check"] == "certified: total" and r["verdict"] == "pass")
    tamper(saved["records"][k])
    path.write_text(json.dumps(saved))  # json writes NaN and Infinity unless told not to
    try:
        with pytest.raises(ReportError, match=rf"checks: .*record {k} \(certified: total, .*\): {says}"):
            build(results, tmp_path / "report.pdf")
    finally:
        path.write_text(original)
    assert not (tmp_path / "report.pdf").exists()


def test_the_certified_section_says_what_each_record_proves(results, tmp_path):
    from checks.certified import sentence

    text = " ".join(pdf_text(build(results, tmp_path / "report.pdf")).split())
    records = json.loads((results / "checks-quick" / "records.json").read_text())["records"]
    found = [r for r in records if r["check"].startswith("certified")]
    for net in {r["net"] for r in found}:
        said = sentence([r for r in found if r["net"] == net])
        assert "every entry of the gradient" in said
        assert said.split("float64 ")[1].split(";")[0] in text  # the float64 bounds as the records have them


@pytest.mark.slow
def test_a_current_benchmark_record_is_shown_and_a_stale_one_is_not(results, tmp_path):
    from studies import bench

    record = bench.run(rounds=1, frameworks=(), batches=(20,))
    path = results / "bench.json"
    path.write_text(json.dumps(record))
    try:
        text = " ".join(pdf_text(build(results, tmp_path / "report.pdf")).split())
        assert "Timings" in text and "No current benchmark record" not in text
        assert num(1000 * record["rows"][0]["seconds"], 2) in text
        # numbers only: the width of timed numbers moves line breaks, and typst hyphenates words
        assert num(record["memory"]["ratio"], 3) in text and num(record["memory"]["parameter_bytes"] / 1e6, 3) in text
        path.write_text(json.dumps({**record, "code_version": "0123456789ab"}))
        text = " ".join(pdf_text(build(results, tmp_path / "stale.pdf")).split())
        assert "No current benchmark record" in text
    finally:
        path.unlink()


def test_the_report_shows_each_tuned_hf_run_step_by_step(results, tmp_path):
    text = " ".join(pdf_text(build(results, tmp_path / "report.pdf")).split())
    assert "the tuned Hessian-free run step by step" in text
    for arch in TINY["architectures"]:
        slug = arch.replace(" ", "_").replace("-", "_")
        assert (results / "study-quick" / "figures" / f"hf_{slug}.pdf").exists()


def test_the_long_budget_comparison_is_shown_when_current_and_left_out_when_stale(results, tmp_path):
    text = " ".join(pdf_text(build(results, tmp_path / "none.pdf")).split())
    assert "HF on its home ground. Not in this report" in text
    tied = TINY["architectures"][1]
    out = results / "study-quick" / "long-budget"
    assert studies_cli.main(["long", "--study", str(results / "study-quick"), "--data-dir", str(results / "mnist"),
                             "--validation-size", "20", "--architecture", tied, "--minutes", "0.0001"]) == 0
    long = json.loads((out / "long_budget.json").read_text())
    try:
        text = " ".join(pdf_text(build(results, tmp_path / "report.pdf")).split())
        assert "Not in this report" not in text and "the long HF run step by step" in text
        assert f"{long['hf_steps']['steps']} steps: damping from" in text  # typst curls the apostrophe
        assert long_budget.findings(long)[1] in text  # the equal-seconds sentence, the command's own words
        (out / "long_budget.json").write_text(json.dumps({**long, "code_version": "0123456789ab"}))
        text = " ".join(pdf_text(build(results, tmp_path / "stale.pdf")).split())
        assert "Not in this report" in text
        (out / "long_budget.json").write_text(json.dumps({**long, "data": {"fingerprint": "0000000000000000"}}))
        assert "Not in this report" in " ".join(pdf_text(build(results, tmp_path / "other.pdf")).split())
    finally:
        shutil.rmtree(out)


def test_a_summary_over_runs_of_other_data_stops_the_build(results, tmp_path):
    summary = json.loads((results / "study-quick" / "summary.json").read_text())
    key = summary["architectures"][TINY["architectures"][1]]["tuned"]["sgd"]["key"]
    path = results / "study-quick" / "runs" / f"{key}.json"
    original = path.read_text()
    run = json.loads(original)
    path.write_text(json.dumps({**run, "data": {**run["data"], "fingerprint": "0000000000000000"}}))
    try:
        with pytest.raises(ReportError, match=f"{TINY['architectures'][1]} sgd: the run {key}.json was trained on"):
            build(results, tmp_path / "report.pdf")
    finally:
        path.write_text(original)


def test_the_full_mode_hf_target_is_stated_from_the_record():
    from reports.build import hf_budget_line

    def budget(ratio):
        part = {"budget": 212.5, "first_order_validation": 16.451, "hf_over_first_order": ratio}
        return {"first_order": "adam", "hf_validation": 16.451 * (1 + ratio), "seconds": part, "examples": part}

    relu = "relu 784-512-128-2-128-512-784"
    assert "HF +13.8%) and" in hf_budget_line(relu, budget(0.138), "full")
    assert "target within 5% at equal seconds: not met" in hf_budget_line(relu, budget(0.138), "full")
    assert "target within 5% at equal seconds: met" in hf_budget_line(relu, budget(0.04), "full")
    assert "target" not in hf_budget_line(relu, budget(0.04), "quick")


def test_the_main_job_runs_the_study_on_the_data_dir_it_is_given(tmp_path, monkeypatch):
    from reports import __main__ as reports_cli

    calls = {}
    for name, module in (("checks", reports_cli.checks_cli), ("study", reports_cli.studies_cli),
                         ("synthetic", reports_cli.synthetic), ("bench", reports_cli.bench)):
        monkeypatch.setattr(module, "main", lambda argv, name=name: calls.setdefault(name, argv) and 0)
    monkeypatch.setattr(reports_cli, "build", lambda *args, **kwargs: tmp_path / "report.pdf")
    data_dir = tmp_path / "idx"
    data_dir.mkdir()
    write_idx_folder(data_dir)
    out = str(tmp_path / "results")
    assert reports_cli.main(["--data-dir", str(data_dir), "--results", out]) == 0
    assert calls["study"] == ["--quick", "--data-dir", str(data_dir), "--out", f"{out}/study-quick", "--workers", "2"]
    calls.clear()
    assert reports_cli.main(["--results", out]) == 0
    assert "--data-dir" not in calls["study"]  # the embedded digits
    (data_dir / "t10k-labels-idx1-ubyte.gz").unlink()  # a partial set: one line before any work
    calls.clear()
    assert reports_cli.main(["--data-dir", str(data_dir), "--results", out]) == 2
    assert calls == {}


@pytest.mark.parametrize("code", [130, 1])
def test_the_main_job_stops_where_the_study_did_not_finish(tmp_path, monkeypatch, capsys, code):
    from reports import __main__ as reports_cli

    calls = []
    for name, module, result in (("checks", reports_cli.checks_cli, 1), ("study", reports_cli.studies_cli, code),
                                 ("synthetic", reports_cli.synthetic, 0), ("bench", reports_cli.bench, 0)):
        monkeypatch.setattr(module, "main", lambda argv, name=name, result=result: calls.append(name) or result)
    monkeypatch.setattr(reports_cli, "build", lambda *args, **kwargs: calls.append("build"))
    assert reports_cli.main(["--results", str(tmp_path / "results")]) == code
    assert calls == ["checks", "study"]  # a failed check went on; the unfinished study stopped it
    assert "the study did not finish" in capsys.readouterr().err


def test_ctrl_c_in_the_lab_stops_the_main_job_in_one_line(tmp_path, monkeypatch, capsys):
    from reports import __main__ as reports_cli

    def interrupted(argv):
        raise KeyboardInterrupt

    calls = []
    monkeypatch.setattr(reports_cli.checks_cli, "main", interrupted)
    monkeypatch.setattr(reports_cli.studies_cli, "main", lambda argv: calls.append("study") or 0)
    assert reports_cli.main(["--results", str(tmp_path / "results")]) == 130 and calls == []
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
