"""A class of submissions for the class grader: ``python tools/make_class.py FOLDER [--size N]``.

Copies of tests/fixtures/course_engine, one classic bug each baked into its activations.py (the switch
reads the bug's name, not the COURSE_ENGINE_BUG variable, as in a student's folder), cycling through the
fixture's bugs (all but loops_forever) after one clean copy.
"""
import argparse
import pathlib
import re
import shutil

FIXTURE = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "course_engine"
SWITCH = 'return name in os.environ.get("COURSE_ENGINE_BUG", "").split(",")'
LEFT_OUT = {"loops_forever"}  # it would measure the time limit, not the grader


def bugs():
    found = {m for f in FIXTURE.glob("*.py") for m in re.findall(r'bug\("(\w+)"\)', f.read_text())}
    return sorted(found - LEFT_OUT)


def make_class(folder, size):
    """``size`` submission folders under ``folder`` (made anew); returns their paths."""
    folder = pathlib.Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    names = ["clean", *bugs()]
    made = []
    for k in range(size):
        bug = names[k % len(names)]
        target = folder / f"{k:03d}-{bug}"
        shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("__pycache__"))
        source = (target / "activations.py").read_text()
        if SWITCH not in source:
            raise SystemExit(f"{FIXTURE}/activations.py: its bug switch changed; expected {SWITCH!r}")
        (target / "activations.py").write_text(source.replace(SWITCH, f"return name == {bug!r}"))
        made.append(target)
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--size", type=int, default=30)
    args = parser.parse_args(argv)
    print(f"{len(make_class(args.folder, args.size))} submissions in {args.folder}")


if __name__ == "__main__":
    main()
