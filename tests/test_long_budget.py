"""HF on its home ground (studies.long_budget): the plan, the equal-seconds comparison, HF's step
diagnostics and the command, on a tiny study of made-up digits."""

import json
import shutil

import pytest
from test_studies import TINY, write_idx_folder

from studies import __main__ as studies_cli
from studies import data as study_data
from studies import long_budget, plots, protocol, runner

TIED = "tanh 784-64-2-64-784 tied"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A finished study of the TINY mode on 60 made-up digits: (its folder, the data flags, its summary)."""
    root = tmp_path_factory.mktemp("long")
    (root / "mnist").mkdir()
    write_idx_folder(root / "mnist")
    saved = dict(protocol.MODES)
    protocol.MODES["tiny"] = TINY
    try:
        data = study_data.DataSpec(str(root / "mnist"), None, 0, 20)
        summary = runner.run_study(root / "study", mode="tiny", data=data, workers=1, progress=lambda m: None)
    finally:
        protocol.MODES.clear()
        protocol.MODES.update(saved)
    return root / "study", data, summary


def made_up_run(seconds, losses, initial=9.0):
    return {"diverged": False,
            "history": {"seconds": seconds, "validation_loss": losses, "passes": list(range(1, len(seconds) + 1)),
                        "initial": {"validation_loss": initial}}}


def test_the_runs_are_compared_at_the_last_epoch_end_within_the_shorter_run():
    hf = made_up_run([10.0, 20.0, 30.0], [5.0, 4.0, 3.0])
    first_order = made_up_run([5.0, 10.0, 15.0, 20.0, 25.0], [6.0, 5.0, 4.5, 4.2, 4.1])
    result = long_budget.compare(hf, first_order, n_train=100)
    assert result["seconds"] == 25.0
    assert (result["hf_validation"], result["first_order_validation"]) == (4.0, 4.1)  # HF's 30-s epoch is out
    assert result["hf_over_first_order"] == pytest.approx(4.0 / 4.1 - 1)
    assert (result["hf_epochs"], result["first_order_epochs"]) == (2, 5)  # HF's last epoch is cut
    # the other way round: HF the shorter run, the first-order method cut at HF's seconds
    result = long_budget.compare(made_up_run([10.0, 20.0], [5.0, 3.0]), first_order, n_train=100)
    assert (result["seconds"], result["first_order_validation"]) == (20.0, 4.2)
    assert (result["hf_epochs"], result["first_order_epochs"]) == (2, 4)  # HF's last epoch end is in
    # a run with no epoch end within the budget is scored at its initial weights, and says so: 0 epochs
    result = long_budget.compare(made_up_run([30.0], [3.0], initial=9.0), first_order, n_train=100)
    assert (result["seconds"], result["hf_validation"], result["hf_epochs"]) == (25.0, 9.0, 0)
    # a diverged run has no loss to compare at any seconds
    assert long_budget.compare({**hf, "diverged": True}, first_order, n_train=100) is None
    assert long_budget.compare(hf, {**first_order, "diverged": True}, n_train=100) is None


def test_hf_s_steps_are_described_by_the_engine_s_per_step_diagnostics():
    history = {"damping": [1.0, 1.5, 1.0, 0.667, 0.667], "reduction_ratio": [0.2, None, 0.9, 0.8, 0.25],
               "cg_iterations": [3, 10, 7, 5, 6],
               "cg_stopped_by": ["max_iterations", "progress", "progress", "progress", "curvature"]}
    steps = long_budget.step_diagnostics(history)
    assert steps["steps"] == 5
    assert steps["damping"] == {"first": 1.0, "last": 0.667, "min": 0.667, "max": 1.5}
    assert steps["cg_iterations"] == {"median": 6, "max": 10}
    assert steps["cg_stopped_by"] == {"max_iterations": 1, "progress": 3, "curvature": 1}
    assert steps["reduction_ratio"] == {"median": (0.25 + 0.8) / 2, "below_quarter": 1, "none": 1}  # 1/4 is not below
    assert long_budget.step_diagnostics({"validation_loss": [1.0]}) is None  # a first-order run has no HF steps


def test_the_findings_state_each_figure_of_the_comparison():
    def run(optimizer, epochs, seconds, loss, diverged=False):
        return {"config": {"optimizer": optimizer}, "epochs_done": epochs, "seconds": seconds,
                "final_validation_loss": loss, "diverged": diverged}
    result = {"hf": run("hf", 14, 3795.9, 15.0475), "first_order": run("adam", 79, 3093.2, 14.5716),
              "equal_seconds": {"seconds": 3093.2, "hf_validation": 15.1158, "first_order_validation": 14.5716,
                                "hf_over_first_order": 15.1158 / 14.5716 - 1, "hf_epochs": 11,
                                "first_order_epochs": 79},
              "hf_steps": {"steps": 770, "damping": {"first": 1.0, "last": 2.25, "min": 0.1975, "max": 3.375},
                           "cg_iterations": {"median": 72.0, "max": 100},
                           "cg_stopped_by": {"progress": 767, "max_iterations": 3},
                           "reduction_ratio": {"median": None, "below_quarter": 18, "none": 770}}}
    runs, equal, steps = long_budget.findings(result)
    assert runs == ("hf ran 14 epochs in 3796 s of training, final validation loss 15.047; "
                    "adam ran 79 epochs in 3093 s of training, final validation loss 14.572.")
    assert equal == ("At equal seconds (3093 s of training, the shorter run): HF 15.116 after 11 of its 14 epochs, "
                     "adam 14.572 after 79 of 79 (HF +3.7%).")
    assert steps == ("HF's 770 steps: damping from 1 to 2.25 (between 0.198 and 3.38); CG iterations median 72, "
                     "at most 100; CG stopped by progress 767, max_iterations 3; reduction ratio median -, "
                     "below 1/4 at 18 steps.")  # no step had a reduction ratio: a dash, not a number
    result["hf_steps"]["reduction_ratio"]["median"] = 0.5231
    assert "reduction ratio median 0.52, below 1/4 at 18 steps." in long_budget.findings(result)[2]
    result["first_order"]["diverged"], result["equal_seconds"] = True, None
    assert long_budget.findings(result)[0].endswith("final validation loss 14.572 (diverged).")
    assert len(long_budget.findings(result)) == 2  # no equal-seconds sentence without the figure


def test_the_plan_gives_each_method_the_epochs_its_study_runs_fit_in_the_minutes(tiny_study, monkeypatch):
    folder, _, summary = tiny_study
    monkeypatch.setattr(long_budget, "seconds_per_epoch",
                        lambda runs: 35.0 if runs[0]["config"]["optimizer"] == "hf" else 4.5)
    configs = long_budget.plan(summary, folder, TIED, minutes=2)
    result = summary["architectures"][TIED]
    assert configs["hf"] == {**result["tuned"]["hf"]["config"], "epochs": 3}  # whole epochs that fit: 120 / 35
    best = result["hf_at_equal_budget"]["first_order"]
    assert configs["first_order"] == {**result["tuned"][best]["config"], "epochs": 26}
    assert long_budget.plan(summary, folder, TIED, minutes=0.01)["hf"]["epochs"] == 1  # at least one epoch


def test_the_plan_times_only_the_study_s_finished_runs_and_says_what_it_lacks(tiny_study, tmp_path, monkeypatch):
    folder, _, summary = tiny_study
    study = tmp_path / "study"
    shutil.copytree(folder, study)
    tuned = summary["architectures"][TIED]["tuned"]["hf"]
    first, *others = tuned["seed_keys"]
    record = json.loads((study / "runs" / f"{first}.json").read_text())
    (study / "runs" / f"{first}.json").write_text(json.dumps({**record, "diverged": True}))
    timed = []
    monkeypatch.setattr(long_budget, "seconds_per_epoch", lambda runs: timed.append(runs) or 1.0)
    long_budget.plan(summary, study, TIED, minutes=1)
    assert sorted(r["key"] for r in timed[0]) == sorted(others)  # the diverged seed run is not timed
    no_hf = json.loads(json.dumps(summary))
    no_hf["architectures"][TIED]["hf_at_equal_budget"] = None
    with pytest.raises(long_budget.PlanError, match="diverged in the study: nothing to compare"):
        long_budget.plan(no_hf, study, TIED, minutes=1)
    monkeypatch.undo()  # the study's own timing, with nothing to time
    shutil.rmtree(study / "runs")
    with pytest.raises(long_budget.PlanError, match="the study's run records are missing"):
        long_budget.plan(summary, study, TIED, minutes=1)


def test_the_study_s_seconds_per_epoch_are_the_median_over_its_runs():
    runs = [made_up_run([2.0, 4.0], [1, 1]), made_up_run([3.0, 6.0, 9.0], [1, 1, 1]), made_up_run([10.0], [1])]
    assert long_budget.seconds_per_epoch(runs) == 3.0


def test_the_command_runs_both_compares_them_and_resumes(tiny_study, tmp_path, capsys):
    folder, data, _ = tiny_study
    argv = ["long", "--study", str(folder), "--data-dir", data.data_dir, "--validation-size", "20",
            "--architecture", TIED, "--minutes", "0.0001", "--out", str(tmp_path / "long")]
    assert studies_cli.main(argv) == 0
    out = capsys.readouterr()
    result = json.loads((tmp_path / "long" / "long_budget.json").read_text())
    assert result["hf"]["config"]["optimizer"] == "hf" and result["first_order"]["config"]["optimizer"] != "hf"
    assert result["hf"]["epochs_done"] == result["hf"]["config"]["epochs"] == 1
    assert result["equal_seconds"]["seconds"] == min(result["hf"]["seconds"], result["first_order"]["seconds"])
    assert result["hf_steps"]["steps"] == len(json.loads(
        (tmp_path / "long" / "runs" / f"{result['hf']['key']}.json").read_text())["history"]["damping"])
    assert result["data"]["fingerprint"] == json.loads((folder / "summary.json").read_text())["data"]["fingerprint"]
    assert (f"long budget: {TIED}, HF for 1 epochs and {result['first_order']['config']['optimizer']} for "
            f"{result['first_order']['config']['epochs']} (about 0.0001 min each, by the study's timing)"
            ) in out.err.splitlines()  # the plan, before the runs start
    assert out.out.splitlines()[1:4] == long_budget.findings(result)  # the runs, equal seconds, HF's steps
    figures = sorted(p.name for p in (tmp_path / "long" / "figures").iterdir())
    slug = TIED.replace(" ", "_").replace("-", "_")
    assert figures == sorted(f"long_budget{part}_{slug}.{ext}" for part in ("", "_hf") for ext in ("pdf", "png"))
    assert studies_cli.main(argv) == 0
    assert "reusing 2 finished runs" in capsys.readouterr().err


def test_the_figure_is_scaled_to_the_trained_losses_with_the_initial_one_off_the_top(tiny_study, tmp_path,
                                                                                    monkeypatch):
    folder, data, _ = tiny_study
    argv = ["long", "--study", str(folder), "--data-dir", data.data_dir, "--validation-size", "20",
            "--architecture", TIED, "--minutes", "0.0001", "--out", str(tmp_path / "long")]
    assert studies_cli.main(argv) == 0
    result = json.loads((tmp_path / "long" / "long_budget.json").read_text())
    trained = []
    for role in ("hf", "first_order"):  # an initial loss far above the trained ones, as on real digits
        path = tmp_path / "long" / "runs" / f"{result[role]['key']}.json"
        record = json.loads(path.read_text())
        record["history"]["initial"]["validation_loss"] = 1e3
        trained += record["history"]["validation_loss"]
        path.write_text(json.dumps(record))
    limits = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out, name: limits.append(fig.axes[0].get_ylim()) or [])
    plots.long_budget(result, tmp_path / "long", tmp_path / "figures")
    low, high = limits[0]
    assert low <= min(trained) and max(trained) <= high < 1e3  # every trained loss shown, the initial one not
    assert high < 2 * max(trained)  # and the axis is the trained losses' range, not the initial one's


@pytest.mark.parametrize("change, message", [
    (["--validation-size", "10"], "are not the study's"),
    (["--architecture", "relu 784-512-128-2-128-512-784"], "the study has no architecture"),
    (["--study", "nowhere"], "summary.json is missing"),
    (["--minutes", "-1"], "must be a positive number"),
    (["--study", "EMPTY"], "is not a study's summary"),
    (["--study", "NO-DATA"], "is not a study's summary"),
])
def test_what_cannot_be_compared_is_one_line_and_exit_2(tiny_study, tmp_path, capsys, change, message):
    folder, data, _ = tiny_study
    flags = {"--study": str(folder), "--data-dir": data.data_dir, "--validation-size": "20",
             "--architecture": TIED, "--minutes": "0.0001", "--out": str(tmp_path / "long")}
    flags.update(dict(zip(change[::2], change[1::2])))
    if flags["--study"] in ("EMPTY", "NO-DATA"):  # a summary.json that is JSON but no study's
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "summary.json").write_text("{}" if flags["--study"] == "EMPTY"
                                                         else json.dumps({"architectures": {}}))
        flags["--study"] = str(tmp_path / "empty")
    argv = ["long"] + [part for item in flags.items() for part in item]
    code = exit_code(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and message in lines[-1] and (len(lines) == 1 or lines[0].startswith("usage:"))
    assert "Traceback" not in err and not (tmp_path / "long" / "long_budget.json").exists()


def exit_code(argv):
    try:
        return studies_cli.main(argv)
    except SystemExit as stop:  # argparse's own errors
        return stop.code
