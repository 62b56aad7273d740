"""python -m checks --engine on every bug switch of the course fixture (tests/fixtures/course_engine), one
examination each in its own worker, as a student would run it; writes a record (JSON) of each switch's root
causes, round trips and seconds, and prints the markdown table bug -> finding of tests/README.md.

    python tools/catalogue.py [--out record.json] [--only SWITCH,SWITCH]
    python tools/catalogue.py --fixture tests/fixtures/course_engine_c --variable ENGINE_C_BUG --out FILE
    python tools/catalogue.py --table record.json      # the table of a record written before

Another fixture (``--fixture``, its switches read from ``--variable``) is examined clean and with each
``bug("name")`` its modules test.

The switches and what each must give are the tests' (tests/test_candidate_catalogue.py CATALOGUE, the optimizer
switches of tests/test_candidate_optim.py); this tool only measures and tabulates them.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "course_engine"
OPTIMIZER_SWITCHES = ("adam_no_bias_correction", "momentum_state_carried", "step_size_ignored", "l2_sign_wrong",
                      "l2_on_loss_missing", "train_loss_before_step", "history_without_test_lists",
                      "epochs_off_by_one")
CONVENTIONS = ("per_layer_1_over_N", "use_bias_ignored", "setters_return_their_arrays", "linear_deriv_is_a_scalar",
               "rmsprop_eps_inside", "rmsprop_rho_0.99", "l2_not_on_biases", "loss_without_l2", "momentum_lr_inside")


def switches():
    sys.path.insert(0, str(ROOT / "tests"))
    from test_candidate_catalogue import CATALOGUE
    return [*CATALOGUE, *OPTIMIZER_SWITCHES, *CONVENTIONS]


def switches_of(fixture):
    """The clean fixture ("") and every bug("name") its modules test."""
    found = {name for path in Path(fixture).glob("*.py") for name in re.findall(r'bug\("([^"]+)"\)', path.read_text())}
    return ["", *sorted(found)]


def examine(switch, fixture=FIXTURE, variable="COURSE_ENGINE_BUG"):
    """(root lines, notes, round trips, seconds) of the lab on the fixture with one switch set."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, variable: switch}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "checks", "--engine", str(fixture), "--out", out,
                               "--candidate-env", variable], env=env, cwd=ROOT, capture_output=True,
                              text=True, check=False)
        seconds = time.perf_counter() - start
        if not Path(out, "records.json").exists():
            raise SystemExit(f"{switch}: the lab wrote no records (exit {done.returncode}): {done.stderr[-2000:]}")
        saved = json.loads(Path(out, "records.json").read_text())
    findings = saved["findings"]
    roots = [line for line in findings if not line.startswith(("    ", "cannot run", "note"))]
    notes = [line for line in findings if line.startswith("note") and "checks.verify judged" not in line]
    return roots, notes, saved["meta"]["round_trips"], seconds


def shorten(line):
    """A root line without its figures, for the table."""
    return re.sub(r" \((off by|the figures of)[^()]*(\([^()]*\)[^()]*)*\)", "", line)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="write the record here (JSON)")
    parser.add_argument("--only", default=None, help="comma-separated switches (default: all)")
    parser.add_argument("--table", default=None, help="print the table of this record; examine nothing")
    parser.add_argument("--fixture", default=None, help="another course implementation with bug switches")
    parser.add_argument("--variable", default="COURSE_ENGINE_BUG", help="the variable its switches are read from")
    args = parser.parse_args(argv)
    fixture = Path(args.fixture) if args.fixture else FIXTURE
    chosen = ([] if args.table else args.only.split(",") if args.only else
              switches_of(fixture) if args.fixture else switches())
    record = json.loads(Path(args.table).read_text()) if args.table else []
    for switch in chosen:
        roots, notes, trips, seconds = examine(switch, fixture, args.variable)
        record.append({"switch": switch, "roots": roots, "notes": notes, "round_trips": trips, "seconds": seconds})
        print(f"{switch}: {len(roots)} roots, {trips} round trips, {seconds:.1f} s", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print("| switch | what the lab says (root causes, figures left out) | s |")
    print("|---|---|---|")
    for r in record:
        said = "<br>".join(shorten(line).replace("|", "\\|") for line in r["roots"] or r["notes"]) or "no finding"
        name = f"`{r['switch']}`" if r["switch"] else "(clean)"
        print(f"| {name} | {said} | {r['seconds']:.1f} |")
    seconds = sorted(r["seconds"] for r in record)
    print(f"\n{len(record)} switches; seconds per examination: median {seconds[len(seconds) // 2]:.1f}, "
          f"largest {seconds[-1]:.1f}")


if __name__ == "__main__":
    main()
