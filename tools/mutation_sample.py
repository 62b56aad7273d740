"""A seeded sample of mutmut's mutants of one module, for modules whose full run takes hours.

mutmut must have generated the mutants first (any `mutmut run` does; `mutmut run "none"` stops
right after generating). Then

    mutmut run $(python tools/mutation_sample.py checks.verify 300)

runs the same 300 mutants on every machine: the sample depends only on the module's mutants and
the seed.
"""
import argparse
import json
import random
from pathlib import Path


def mutant_names(module, mutants_folder="mutants"):
    meta = Path(mutants_folder, *module.split(".")).with_suffix(".py.meta")
    if not meta.is_file():
        raise SystemExit(f"no mutants of {module} in {mutants_folder}/: run `mutmut run \"none\"` first")
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def sample(names, size, seed):
    return sorted(random.Random(seed).sample(names, min(size, len(names))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="dotted module name, e.g. checks.verify")
    parser.add_argument("size", type=int, help="how many mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mutants", default="mutants", help="mutmut's folder (default: mutants)")
    args = parser.parse_args(argv)
    print("\n".join(sample(mutant_names(args.module, args.mutants), args.size, args.seed)))


if __name__ == "__main__":
    main()
