"""python -m reports [--full] [--from-records] [--data-dir DIR] [--results DIR] [--out PDF]
python -m reports --engine PACKAGE_OR_FOLDER [--out PDF]

The main job: runs the checks, the MNIST study, the small optimizer problem
(quick mode unless --full) and the engine benchmark, then builds the PDF from
their records. The study runs on the embedded digits, or on the IDX files in
--data-dir (official MNIST, say).
With --from-records it only rebuilds the PDF from the records already there.
With --engine it examines another implementation of the course API (python -m
checks --engine) and writes a PDF of the findings.
"""

import argparse
import pathlib
import sys
import time

from checks import __main__ as checks_cli
from checks import classroom
from checks.candidate import engine_name
from checks.records import output_folder_problem
from reports.build import ReportError, build, build_class_report, build_engine_report, typst_module
from studies import __main__ as studies_cli
from studies import bench, synthetic
from studies.data import DataError, find_idx_files


def main(argv=None):
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C in the lab, the small problem or the benchmark
        print("interrupted: run the same command again (the study resumes where it stopped)", file=sys.stderr)
        return studies_cli.INTERRUPTED


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reports", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full checks and full study (hours)")
    parser.add_argument("--from-records", action="store_true", help="only rebuild the PDF from existing records")
    parser.add_argument("--data-dir", default=None,
                        help="the study's data: a folder of the four IDX files (default: the embedded digits)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="reports/report.pdf")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", default=None, nargs="+", metavar="PACKAGE_OR_FOLDER",
                        help="examine another implementation of the course API (several, or a folder of "
                             "submission folders: a whole class, one PDF with a page per submission)")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds per submission (a class)")
    args = parser.parse_args(argv)
    try:  # before any work: the PDF is the point of this command
        typst_module()
    except ReportError as error:
        print(error, file=sys.stderr)
        return 2
    for flag, folder in (("--results", args.results), ("--out", str(pathlib.Path(args.out).parent))):
        problem = output_folder_problem(folder)
        if problem:
            print(f"{flag}: cannot write to {folder}: {problem}", file=sys.stderr)
            return 2
    if args.data_dir:
        try:
            find_idx_files(args.data_dir)
        except DataError as error:
            print(f"--data-dir: {error}", file=sys.stderr)
            return 2
    if args.engine:
        whole_class = classroom.submissions(args.engine) is not None
        name = "class" if whole_class else engine_name(args.engine[0])
        records_dir = f"{args.results}/{name if whole_class else 'engine-' + name}"
        status = checks_cli.main(["--engine", *args.engine, "--out", records_dir,
                                  "--time-limit", str(args.time_limit)])
        if status == 2 and not whole_class:
            return 2
        default = f"reports/{name}.pdf" if whole_class else f"reports/engine-{name}.pdf"
        out = args.out if args.out != parser.get_default("out") else default
        try:
            path = (build_class_report(f"{records_dir}/class-summary.json", out) if whole_class
                    else build_engine_report(f"{records_dir}/records.json", out))
        except ReportError as error:
            print(error, file=sys.stderr)
            return 2
        print(f"report: {path}")
        return status
    start = time.perf_counter()

    def stage(message):
        print(f"\n=== [{time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True)

    status = 0
    if not args.from_records:
        suffix = "" if args.full else "-quick"
        stage("1/5 verification lab")
        status |= checks_cli.main((["--quick"] if not args.full else []) + ["--out", f"{args.results}/checks{suffix}"])
        stage("2/5 MNIST optimizer study")
        code = studies_cli.main((["--quick"] if not args.full else [])
                                + (["--data-dir", args.data_dir] if args.data_dir else [])
                                + ["--out", f"{args.results}/study{suffix}", "--workers", str(args.workers)])
        if code:  # interrupted (130), a failed run or a held folder (1): no report from an unfinished study
            print(f"the main job stops: the study did not finish (exit {code}); the same command resumes it",
                  file=sys.stderr)
            return code
        stage("3/5 optimizers on a small problem")
        status |= synthetic.main(["--out", f"{args.results}/synthetic.json"]) or 0
        stage("4/5 engine benchmark (timings, not checks; torch and JAX compared when installed)")
        bench.main(["--out", f"{args.results}/bench.json"])
    stage("5/5 report")
    try:
        path = build(args.results, args.out, full=args.full)
    except ReportError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"report: {path}" + ("" if status == 0 else "   (some checks FAILED: the report shows which)"))
    return status


if __name__ == "__main__":
    sys.exit(main())
