"""Mutation testing on a seeded sample of a module's mutants, for modules whose full run takes hours.

    python tools/mutation_sample.py checks.verify 300            # generate, sample, run, list survivors
    python tools/mutation_sample.py checks.verify 300 --names    # only print the sample's names

The sample depends only on the module's mutants and the seed, so every machine runs the same
mutants. Generating the mutants is mutmut's own first step (mutmut 3.8, pinned in the tox env
`mutation`); running them is `mutmut run NAME ...`.
"""
import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path


def generate_mutants():
    """mutmut's mutant generation alone (the first step of `mutmut run`), into ./mutants."""
    from mutmut import __main__ as mutmut_main

    mutmut_main.set_mutant_under_test("mutant_generation")
    Path("mutants").mkdir(exist_ok=True)
    mutmut_main.copy_src_dir()
    mutmut_main.copy_also_copy_files()
    mutmut_main.setup_source_paths()
    mutmut_main.store_lines_covered_by_tests()
    mutmut_main.create_mutants(os.cpu_count() or 2)


def mutant_names(module, mutants_folder="mutants"):
    meta = Path(mutants_folder, *module.split(".")).with_suffix(".py.meta")
    if not meta.is_file():
        raise SystemExit(f"no mutants of {module} in {mutants_folder}/ (is it in [tool.mutmut] source_paths?)")
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def sample(names, size, seed):
    return sorted(random.Random(seed).sample(names, min(size, len(names))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="dotted module name, e.g. checks.verify")
    parser.add_argument("size", type=int, help="how many mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", action="store_true", help="print the sample's names and stop")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):  # mutmut's own messages; stdout is the sample
        generate_mutants()
    chosen = sample(mutant_names(args.module), args.size, args.seed)
    if args.names:
        print("\n".join(chosen))
        return 0
    subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *chosen],
                   check=True)
    results = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], check=True,
                             capture_output=True, text=True).stdout
    chosen = set(chosen)
    status = [line.strip().split(": ") for line in results.splitlines() if ": " in line]
    status = {name: state for name, state in status if name in chosen}
    killed = sum(state in ("killed", "timeout") for state in status.values())
    for name, state in sorted(status.items()):
        if state not in ("killed", "timeout"):
            print(f"{state}: {name}")
    print(f"{args.module}: {killed} of {len(chosen)} sampled mutants killed (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
