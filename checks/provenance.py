"""Which code made a record: a hash of the sources of the packages involved."""

import functools
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


@functools.cache  # the sources do not change while a process runs; records ask often
def source_hash(*packages, exclude=("plots.py", "__main__.py", "bench.py")):
    """A short sha256 of the .py files of the named top-level packages.

    Files that only draw, parse the command line or time the engine are left
    out by default: changing them does not change a number in a record.
    """
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((ROOT / package).glob("*.py")):
            if path.name not in exclude:
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
