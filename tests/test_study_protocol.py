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


@pytest.mark.slow
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


def tuned(*losses):
    """A tuned config's seed results (None: a diverged seed)."""
    finished = sorted(v for v in losses if v is not None)
    return {"test_losses": list(losses), "median_test_loss": float(np.median(finished)) if finished else None}


def test_a_winner_only_when_a_rank_test_over_seeds_says_so_otherwise_a_named_tie():
    clear = {"adam": tuned(9.9, 10.0, 10.1), "sgd": tuned(10.8, 11.0, 11.3), "hf": tuned(11.5, 12, 12.5)}
    ranked, tied, winner, margin, rule = summary._ranking(clear)
    assert (ranked[0], tied, winner) == ("adam", ["adam"], "adam") and margin == pytest.approx(1.0)
    assert rule.startswith("rank test over seeds: adam is below every other method") and "p = 0.05" in rule
    close = {"adam": tuned(9.0, 10.0, 11.0), "sgd": tuned(10.4, 10.5, 10.6), "hf": tuned(12.4, 12.5, 12.6)}
    ranked, tied, winner, _, rule = summary._ranking(close)
    assert winner is None and tied == ["adam", "sgd"]  # hf: every seed above every seed of adam
    assert "sgd cannot be told from adam" in rule
    diverged = {"adam": tuned(10.0, 9.9, 10.1), "sgd": tuned(None, None, None)}
    assert summary._ranking(diverged)[1:3] == (["adam"], "adam")


def test_one_wild_seed_cannot_turn_a_clear_result_into_a_tie():
    # official MNIST, quick mode, the tanh net: every RMSprop seed beats every momentum seed; the
    # spread rule called it a tie because momentum's third seed made its spread 8.6 wide
    measured = {"rmsprop": tuned(16.199, 16.326, 16.350), "momentum": tuned(17.858, 18.430, 26.498)}
    ranked, tied, winner, _, _ = summary._ranking(measured)
    assert winner == "rmsprop" and tied == ["rmsprop"]
    assert summary.rank_test([16.199, 16.326, 16.350], [17.858, 18.430, 26.498]) == pytest.approx(0.05)
    # nor make a tie a win: one wild seed of the best does not hide its overlap
    assert summary._ranking({"adam": tuned(10.0, 10.1, 30.0), "sgd": tuned(10.05, 10.2, 10.3)})[2] is None


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


@pytest.mark.bitexact
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


def test_every_method_must_be_beaten_in_the_rank_test():
    # the runner-up is clearly beaten, but a third method's seeds straddle the best's
    results = {"adam": tuned(9.9, 10.0, 10.1), "sgd": tuned(10.9, 11.0, 11.1), "hf": tuned(9.5, 12.0, 14.5)}
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


def test_an_undecided_tie_gets_more_seeds_decided_on_validation_never_on_test():
    spec = {"architectures": ["a"], "seeds": 3, "max_seeds": 5}
    version = store.code_version()

    def config(opt, seed):
        return {"architecture": "a", "optimizer": opt, "seed": seed}

    def records_of(validation):
        out = {}
        for opt, losses in validation.items():
            for seed, loss in enumerate(losses):
                # the test loss says the opposite of validation: it must not matter here
                out[store.run_key(config(opt, seed), "data", version)] = {
                    "final_validation_loss": loss, "final_test_loss": -loss, "diverged": None}
        return out

    def plan(validation):
        tuned = {("a", opt): config(opt, 0) for opt in protocol.OPTIMIZERS}
        seeded = {("a", opt): [config(opt, s) for s in range(1, 3)] for opt in protocol.OPTIMIZERS}
        return runner.more_seeds(spec, tuned, seeded, records_of(validation), "data", 0), seeded

    clear = {"sgd": [1, 2, 3], "momentum": [10, 11, 12], "rmsprop": [10, 11, 12], "adam": [10, 11, 12],
             "hf": [10, 11, 12]}
    assert plan(clear)[0] == []  # sgd's every seed below every other: decided, nothing more to run
    tied = {**clear, "momentum": [1.5, 2.5, 3.5]}
    new, seeded = plan(tied)
    assert sorted(c["optimizer"] for c in new) == ["momentum", "sgd"] and {c["seed"] for c in new} == {3}
    assert len(seeded["a", "sgd"]) + 1 == 4  # and the cap of 5 seeds leaves room for one more, then stops


def test_full_mode_runs_40_epochs_of_the_embedded_digits_and_as_many_examples_of_mnist():
    full = protocol.MODES["full"]
    assert protocol.epochs_for(full, 3000) == 40  # the embedded digits: the exhaustive protocol, unchanged
    assert protocol.epochs_for(full, 55000) == 2  # official MNIST: 110,000 examples
    assert protocol.epochs_for(full, 80000) == 2 and protocol.epochs_for(full, 1_000_000) == 1  # never zero
    assert protocol.epochs_for(protocol.MODES["quick"], 55000) == 10  # quick mode counts epochs
    # and the summary (so the report) says which: the exhaustive protocol itself, or a shorter question
    assert "the exhaustive protocol's 40 epochs, run for run" in protocol.budget_rule(full, 3000)
    mnist = protocol.budget_rule(full, 55000)
    assert mnist.startswith("2 epochs of the 55000") and "best after 110000 examples" in mnist
    assert "run for run" not in mnist
    assert protocol.budget_rule(protocol.MODES["quick"], 3000) == "10 epochs of the 3000 training digits a run"
