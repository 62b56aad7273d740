"""Every optimizer on one small problem, and HF vs Adam at an equal budget of data passes.

    python -m studies.synthetic [--out results/synthetic.json]

Problem: 1000 points near a curved 2-D manifold in 10 dimensions (800 train,
200 test).  Part 1 trains a 10-6-2-6-10 tanh autoencoder with each method for
30 epochs.  Part 2 trains a deep narrow 10-8-6-4-2-4-6-8-10 tanh net: HF for
a fixed number of iterations, then Adam (step size picked from a small grid by
final train loss) for the same number of passes over the data, as counted by
``Autoencoder.examples_processed``.  Writes one JSON record; prints tables.
"""

import argparse
import json
import math
import pathlib
import platform
import time

import numpy as np

import ae
from studies.store import code_version


def manifold_data(n=1000, dim=10, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, (2, n))
    X = np.tanh(rng.standard_normal((dim, 2)) @ t) + 0.01 * rng.standard_normal((dim, n))
    return X[:, : int(0.8 * n)], X[:, int(0.8 * n):]


def tanh_autoencoder(widths, seed=1):
    linear = (len(widths) // 2 - 1, len(widths) - 2)  # the code layer and the output
    model = ae.build(widths, "".join("l" if k in linear else "t" for k in range(len(widths) - 1)))
    model.init_weights(seed)
    return model


SETTINGS = {
    "sgd": dict(step_size=0.1, minibatch_size=20),
    "momentum": dict(step_size=0.02, minibatch_size=20),
    "rmsprop": dict(step_size=0.003, minibatch_size=20),
    "adam": dict(step_size=0.003, minibatch_size=20),
    "hf": dict(),
}


def summary(history, wall):
    epochs = len(history["train_loss"])
    return {"final_train_loss": history["train_loss"][-1], "final_test_loss": history["test_loss"][-1],
            "initial_train_loss": history["initial"]["train_loss"], "epochs": epochs,
            "passes": history["passes"][-1], "seconds_per_epoch": history["seconds"][-1] / epochs,
            "wall_seconds": wall, "diverged": history.get("diverged")}


def every_method(train, test, epochs=30):
    rows = {}
    for method, options in SETTINGS.items():
        model = tanh_autoencoder([10, 6, 2, 6, 10])
        tic = time.perf_counter()
        history = getattr(model, f"run_{method}")(train, num_epoch=epochs, test_inputs=test,
                                                 l2_coef=1e-5, **options)
        rows[method] = {**summary(history, time.perf_counter() - tic), "settings": options}
    return rows


def hf_vs_adam(train, test, hf_iterations=30, widths=(10, 8, 6, 4, 2, 4, 6, 8, 10)):
    hf_model = tanh_autoencoder(list(widths))
    hf = hf_model.run_hf(train, num_epoch=hf_iterations, test_inputs=test, l2_coef=1e-5)
    budget = hf["passes"][-1]
    epochs = math.ceil(budget)
    adam_runs = {}
    for step_size in (1e-3, 3e-3, 1e-2):
        model = tanh_autoencoder(list(widths))
        history = model.run_adam(train, step_size=step_size, num_epoch=epochs, minibatch_size=20,
                                 test_inputs=test, l2_coef=1e-5)
        adam_runs[step_size] = history
    best = min(adam_runs, key=lambda s: adam_runs[s]["train_loss"][-1])
    adam = adam_runs[best]
    return {
        "architecture": list(widths), "pass_budget": budget,
        "hf": {**summary(hf, 0.0), "curve_passes": hf["passes"], "curve_train": hf["train_loss"],
               "cg_iterations": hf["cg_iterations"]},
        "adam": {**summary(adam, 0.0), "step_size": best, "curve_passes": adam["passes"],
                 "curve_train": adam["train_loss"],
                 "grid_final_train": {str(s): h["train_loss"][-1] for s, h in adam_runs.items()}},
        "winner": "hf" if hf["train_loss"][-1] < adam["train_loss"][-1] else "adam",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/synthetic.json")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per method in part 1")
    parser.add_argument("--hf-iterations", type=int, default=30, help="HF iterations in part 2")
    args = parser.parse_args(argv)
    train, test = manifold_data()
    record = {"what": "optimizers on a 10-D manifold problem", "python": platform.python_version(),
              "command": "python -m studies.synthetic", "code_version": code_version(),
              "epochs": args.epochs, "hf_iterations": args.hf_iterations,
              "numpy": np.__version__, "every_method": every_method(train, test, args.epochs),
              "hf_vs_adam": hf_vs_adam(train, test, args.hf_iterations)}
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"{'method':10} {'train loss':>11} {'test loss':>11} {'ms/epoch':>9}")
    for method, row in record["every_method"].items():
        print(f"{method:10} {row['final_train_loss']:11.5f} {row['final_test_loss']:11.5f} "
              f"{1000 * row['seconds_per_epoch']:9.2f}")
    duel = record["hf_vs_adam"]
    print(f"\nHF vs Adam on {duel['architecture']} at {duel['pass_budget']:.1f} passes:")
    for name in ("hf", "adam"):
        row = duel[name]
        print(f"  {name:5} train {row['final_train_loss']:.5f}  test {row['final_test_loss']:.5f}")
    print(f"  winner: {duel['winner']}    (record: {out})")


if __name__ == "__main__":
    main()
