"""The study's protocol: three sets with one job each, grids that grow past an edge, seeds,
honest ties, time to target, and the same records from a Dask cluster as from the local pool."""

import importlib.util

import numpy as np
import pytest
from test_studies import TINY, without_timing, write_idx_folder

from studies import __main__ as studies_cli
from studies import data as study_data
from studies import protocol, runner, store, summary


def run_tiny(out, data_dir, monkeypatch, **spec):
    monkeypatch.setitem(protocol.MODES, "tiny", {**TINY, **spec})
    return runner.run_study(out, mode="tiny", data=study_data.DataSpec(str(data_dir), None, 0, 20), workers=1,
                            progress=lambda m: None)


def test_the_test_set_chooses_nothing(tmp_path, monkeypatch):
    """Two studies whose data differ only in the test digits tune identically; only the scores move."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
    write_idx_folder(a, seed=0)
    other_test = write_idx_folder(tmp_path / "b", seed=1)  # noqa: F841 - then put back a's training files
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (b / name).write_bytes((a / name).read_bytes())
    first, second = run_tiny(tmp_path / "s1", a, monkeypatch), run_tiny(tmp_path / "s2", b, monkeypatch)
    for arch in TINY["architectures"]:
        for opt in protocol.OPTIMIZERS:
            one, two = first["architectures"][arch]["tuned"][opt], second["architectures"][arch]["tuned"][opt]
            assert one["config"] == two["config"]
            assert one["grid"] == [{**g, "key": h["key"]} for g, h in zip(two["grid"], one["grid"])]
            assert one["test_losses"] != two["test_losses"]
    assert first["pca2"]["validation_loss"] == second["pca2"]["validation_loss"]
    assert first["pca2"]["test_loss"] != second["pca2"]["test_loss"]


def test_the_next_step_of_the_log_grid():
    assert [protocol.beyond(x, 1) for x in (0.001, 0.003, 0.01, 0.03, 0.3)] == [0.003, 0.01, 0.03, 0.1, 1.0]
    assert [protocol.beyond(x, -1) for x in (0.001, 0.003, 0.01, 0.03)] == [0.0003, 0.001, 0.003, 0.01]


def test_a_grid_grows_past_an_edge_that_holds_the_best_step(tmp_path, monkeypatch):
    data = tmp_path / "mnist"
    data.mkdir()
    write_idx_folder(data)
    # one step per grid: its best is on both edges, so every grid must grow
    summary = run_tiny(tmp_path / "s", data, monkeypatch, steps=slice(2, 3), max_extensions=2)
    grew = 0
    for result in summary["architectures"].values():
        for opt, tuned in result["tuned"].items():
            if opt == "hf":
                continue
            middle = tuned["grid"][0]["minibatch_size"]
            steps = sorted(g["step_size"] for g in tuned["grid"] if g["minibatch_size"] == middle)
            scores = {g["step_size"]: (np.inf if g["diverged"] else g["final_validation_loss"])
                      for g in tuned["grid"] if g["minibatch_size"] == middle}
            best = min(steps, key=lambda step: (scores[step], step))
            assert len(steps) == 1 + tuned["extensions"]["low"] + tuned["extensions"]["high"] >= 2
            grew += len(steps) - 1
            if best == steps[0]:  # still on an edge only when that side has used up its extensions
                assert tuned["extensions"]["low"] == 2
            if best == steps[-1]:
                assert tuned["extensions"]["high"] == 2
            assert tuned["config"]["step_size"] in steps
    assert grew >= 8


def test_the_tuned_configs_are_rerun_with_more_seeds(tmp_path, monkeypatch):
    data = tmp_path / "mnist"
    data.mkdir()
    write_idx_folder(data)
    summary = run_tiny(tmp_path / "s", data, monkeypatch, seeds=3)
    for result in summary["architectures"].values():
        for tuned in result["tuned"].values():
            assert tuned["seeds"] == [0, 1, 2] and len(set(tuned["seed_keys"])) == 3
            runs = [store.read_record(tmp_path / "s" / "runs" / f"{k}.json") for k in tuned["seed_keys"]]
            assert [{**r["config"], "seed": 0} for r in runs] == [tuned["config"]] * 3
            assert len({r["history"]["initial"]["train_loss"] for r in runs}) == 3  # other initial weights
            finished = sorted(r["final_test_loss"] for r in runs if not r["diverged"])
            if len(finished) == 3:
                assert tuned["median_test_loss"] == finished[1]
                assert (tuned["min_test_loss"], tuned["max_test_loss"]) == (finished[0], finished[2])


def tuned(median, low, high):
    return {"median_test_loss": median, "min_test_loss": low, "max_test_loss": high, "spread": high - low}


def test_a_winner_only_beyond_the_seed_spreads_otherwise_a_named_tie():
    clear = {"adam": tuned(10.0, 9.9, 10.1), "sgd": tuned(11.0, 10.8, 11.3), "hf": tuned(12, 11.5, 12.5)}
    ranked, tied, winner, margin = summary._ranking(clear)
    assert (ranked[0], tied, winner) == ("adam", ["adam"], "adam") and margin == pytest.approx(1.0)
    close = {"adam": tuned(10.0, 9.0, 11.0), "sgd": tuned(10.5, 10.4, 10.6), "hf": tuned(12.5, 12.4, 12.6)}
    ranked, tied, winner, _ = summary._ranking(close)
    assert winner is None and tied == ["adam", "sgd"]  # hf: 2.5 exceeds both spreads, not in the tie
    wide_runner_up = {"adam": tuned(10.0, 9.95, 10.05), "sgd": tuned(10.5, 9.0, 12.0)}
    assert summary._ranking(wide_runner_up)[2] is None  # the runner-up's own spread covers the margin
    diverged = {"adam": tuned(10.0, 9.9, 10.1), "sgd": {"median_test_loss": None, "spread": None}}
    assert summary._ranking(diverged)[1:3] == (["adam"], "adam")


def test_time_to_target_counts_epochs_seconds_and_examples():
    def run(losses):
        n = len(losses)
        return {"history": {"validation_loss": losses, "epoch": list(range(1, n + 1)),
                            "seconds": [0.5 * e for e in range(1, n + 1)],
                            "passes": [3.0 * e for e in range(1, n + 1)]}}
    result = summary.time_to_target([run([5, 3, 1]), run([5, 4, 2, 1]), run([9, 9, 9])], target=2.5, n_train=100)
    assert result == {"reached": 2, "runs": 3, "epochs": 3.0, "seconds": 1.5, "examples": 900.0}
    assert summary.time_to_target([run([9, 9])], 2.5, 100)["reached"] == 0


def test_an_unknown_scheduler_fails_fast_naming_the_address(tmp_path, monkeypatch, capsys):
    pytest.importorskip("distributed")
    monkeypatch.setattr(studies_cli, "SCHEDULER_TIMEOUT", 2)
    data = tmp_path / "mnist"
    data.mkdir()
    write_idx_folder(data)
    code = studies_cli.main(["--quick", "--data-dir", str(data), "--validation-size", "20",
                             "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach a Dask scheduler at tcp://127.0.0.1:9" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask[distributed] not installed")
def test_a_dask_cluster_gives_the_records_of_the_local_pool_bit_for_bit(tmp_path, monkeypatch):
    import distributed

    data = tmp_path / "mnist"
    data.mkdir()
    write_idx_folder(data)
    monkeypatch.setitem(protocol.MODES, "tiny", TINY)
    args = dict(mode="tiny", data=study_data.DataSpec(str(data), None, 0, 20), progress=lambda m: None)
    local = runner.run_study(tmp_path / "local", workers=2, **args)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as \
            cluster, distributed.Client(cluster) as client:
        dask = runner.run_study(tmp_path / "dask", executor=client.get_executor(), **args)
    local_runs = sorted((tmp_path / "local" / "runs").glob("*.json"))
    assert [p.name for p in local_runs] == sorted(p.name for p in (tmp_path / "dask" / "runs").glob("*.json"))
    for path in local_runs:
        assert without_timing(store.read_record(path)) == without_timing(
            store.read_record(tmp_path / "dask" / "runs" / path.name))
        for name, array in store.load_arrays(tmp_path / "local", path.stem).items():
            assert np.array_equal(array, store.load_arrays(tmp_path / "dask", path.stem)[name])
    assert [r["tuned"][o]["test_losses"] for r in local["architectures"].values() for o in protocol.OPTIMIZERS] == \
        [r["tuned"][o]["test_losses"] for r in dask["architectures"].values() for o in protocol.OPTIMIZERS]


def test_every_method_must_be_beaten_beyond_both_spreads():
    # the runner-up is clearly beaten, but a third method's own spread reaches the best median's margin
    results = {"adam": tuned(10.0, 9.9, 10.1), "sgd": tuned(11.0, 10.9, 11.1), "hf": tuned(12.0, 9.5, 14.5)}
    assert summary._ranking(results)[1:3] == (["adam", "hf"], None)


def test_hf_is_compared_with_the_best_first_order_method_at_equal_seconds_and_examples():
    def run(losses, seconds, passes, final=None):
        n = len(losses)
        return {"diverged": None, "final_validation_loss": losses[-1] if final is None else final,
                "history": {"validation_loss": losses, "seconds": seconds, "passes": passes,
                            "epoch": list(range(1, n + 1)), "initial": {"validation_loss": 50.0}}}
    runs = {"hf": [run([30, 20], [10, 20], [5, 10])] * 3,
            "adam": [run([25, 18, 15], [8, 16, 24], [1, 2, 3])] * 3,   # best first-order by its final loss
            "sgd": [run([40, 35, 30], [1, 2, 3], [1, 2, 3])] * 3}
    result = summary.hf_at_equal_budget(runs, n_train=100)
    assert result["first_order"] == "adam" and result["hf_validation"] == 20
    assert result["seconds"] == {"budget": 20, "first_order_validation": 18, "hf_over_first_order": 20 / 18 - 1}
    # HF spent 10 passes = 1000 examples; adam's whole run (300 examples) fits
    assert result["examples"]["first_order_validation"] == 15
    assert summary.hf_at_equal_budget({"hf": [], "adam": runs["adam"]}, 100) is None
