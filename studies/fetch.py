"""Download the four MNIST IDX files with sha256 verification.

Resume-safe and atomic: bytes go to ``NAME.part`` (an interrupted download
resumes from there with an HTTP Range request), and only a file whose
sha256 matches is renamed to its final name (``os.replace`` is atomic), so
a half-written or corrupt file never sits under the name the loader reads.
A completed file with a wrong checksum is deleted and reported (and so is
an HTML page that a wrong mirror or a captive portal sends instead of it).
The built-in address is not reachable from every network: pass another
``base_url`` (``python -m studies fetch --mirror URL`` or $AE_MNIST_MIRROR).
"""

import hashlib
import os
import pathlib
import urllib.error
import urllib.request

MIRROR = "https://storage.googleapis.com/cvdf-datasets/mnist/"
SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
CHUNK = 1 << 16


class FetchError(RuntimeError):
    """A download failed or produced a file with the wrong checksum."""


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url, part, timeout):
    """Append the rest of ``url`` to ``part``; raises FetchError if the body is cut short."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # the range starts at the end: nothing left to fetch
            return
        raise FetchError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise FetchError(f"{url}: {error}") from None
    with response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"  # a server that ignores Range sends it all again
        expected = response.headers.get("Content-Length")
        written = 0
        with open(part, mode) as f:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    f.write(block)
                    written += len(block)
            except (OSError, ValueError) as error:
                raise FetchError(f"{url}: connection lost after {written} bytes ({error}); "
                                 f"run again to resume from {part}") from None
        if expected is not None and written != int(expected):
            raise FetchError(f"{url}: got {written} of {expected} bytes; run again to resume from {part}")


def looks_like_html(path):
    """True if the file starts like an HTML page (after whitespace), not like gzip or IDX bytes."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml"))


def fetch(folder, base_url=MIRROR, checksums=None, timeout=60, progress=print):
    """Make sure ``folder`` holds every file of ``checksums`` with the right sha256."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    checksums = SHA256 if checksums is None else checksums
    for name, expected in checksums.items():
        final = folder / name
        if final.exists():
            if sha256_of(final) == expected:
                progress(f"{name}: present, checksum ok")
                continue
            final.unlink()  # never leave a corrupt file under the name the loader reads
            progress(f"{name}: present with a wrong checksum, deleted")
        part = folder / f"{name}.part"
        progress(f"{name}: downloading" + (f" (resuming at {part.stat().st_size} bytes)" if part.exists() else ""))
        _download(base_url.rstrip("/") + "/" + name, part, timeout)
        actual = sha256_of(part)
        if actual != expected:
            html = looks_like_html(part)
            part.unlink()
            raise FetchError(f"{name}: " + (f"the server at {base_url} returned an HTML page, not the file; "
                                            if html else "")
                             + f"sha256 {actual} does not match the expected {expected}; the download was deleted")
        os.replace(part, final)
        progress(f"{name}: ok")
    return folder
