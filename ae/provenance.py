"""Which code made a record: a hash of the sources of the packages involved."""

import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def source_hash(*packages, exclude=("plots.py", "__main__.py")):
    """A short sha256 of the .py files of the named top-level packages.

    Files that only draw or parse the command line are left out by default:
    changing them does not change a single number in a record.
    """
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((ROOT / package).glob("*.py")):
            if path.name not in exclude:
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
