"""Every Python block of the README runs as written."""

import importlib.util
import json
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_blocks():
    assert BLOCKS


OPTIONAL = ("torch", "jax")  # blocks that import these run in the tox envs that install them


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_a_readme_python_block_runs_as_written(number, tmp_path):
    for name in OPTIONAL:
        imports = re.findall(r"^(?:import|from) (.*)$", BLOCKS[number], flags=re.M)
        if any(re.search(rf"\b{name}\b", line) for line in imports) and importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed here (the tox env {name} runs this block)")
    # a fresh interpreter in an empty folder: no name or file of the tests leaks in
    result = subprocess.run([sys.executable, "-W", "error", "-c", BLOCKS[number]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_readme_gives_two_commands_and_ci_runs_the_second_verbatim():
    section = README.read_text().split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```\n(.*?)\n```", section, flags=re.S)
    assert len(commands) == 2 and all("\n" not in c for c in commands), commands
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci  # a line of its own, word for word


@pytest.mark.parametrize("record", ["catalogue.json", "catalogue_c.json"])
def test_the_catalogue_tables_are_their_records(record, capsys):
    """tests/README.md's tables bug -> finding are what tools/catalogue.py makes of the records, verbatim;
    the README's figures of the fixture's examinations are the record's."""
    folder = README.parent / "tests"
    sys.path.insert(0, str(README.parent / "tools"))
    try:
        import catalogue
    finally:
        sys.path.pop(0)
    catalogue.main(["--table", str(folder / record)])
    table = capsys.readouterr().out.strip()
    assert table in (folder / "README.md").read_text()
    if record == "catalogue.json":
        rows = json.loads((folder / record).read_text())
        seconds = sorted(r["seconds"] for r in rows)
        clean = {r["round_trips"] for r in rows if not r["roots"] and not r["notes"]}  # no finding at all
        said = " ".join(README.read_text().split())
        assert len(clean) == 1 and (
            f"took {seconds[len(seconds) // 2]:.1f} s, the median over the {len(rows)} examinations in "
            f"`tests/catalogue.json` ({clean.pop():,} round trips where no check fails") in said
        assert f"the largest, {seconds[-1]:.1f} s," in said


def test_the_published_corpus_table_is_its_record(capsys):
    """tests/README.md's table of checks.verify on the published corpus, per decade of n, is what
    tools/verify_published.py makes of its record, verbatim."""
    folder = README.parent / "tests"
    sys.path.insert(0, str(README.parent / "tools"))
    try:
        import verify_published
    finally:
        sys.path.pop(0)
    verify_published.main(["--table", str(folder / "published" / "verify_published.json")])
    table = capsys.readouterr().out.strip()
    assert table in (folder / "README.md").read_text()
