"""Where data files come from: data_dir, $PTST_DATA_DIR, the cache, else a sha256-checked download."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from ptst import __version__
from ptst.data.types import FileSpec
from ptst.errors import PtstError
from ptst.io import offline_reason, sha256_file, write_bytes_atomic
from ptst.models import cache_dir

TIMEOUT_S = 60
_HASHES: dict[tuple[str, int, int], str] = {}


def cache_data_dir() -> Path:
    return cache_dir() / "data"


def data_roots(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The folders searched, in order, each with the label an error message shows."""
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        p = Path(data_dir).expanduser()
        if not p.is_dir():
            raise PtstError(f"data dir {data_dir} is not a directory")
        roots.append(("data dir", p))
    env = os.environ.get("PTST_DATA_DIR")
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise PtstError(f"PTST_DATA_DIR={env} is not a directory")
        roots.append(("PTST_DATA_DIR", p))
    roots.append(("cache", cache_data_dir()))
    return roots


def find_local(f: FileSpec, data_dir: str | Path | None = None) -> Path | None:
    for _, root in data_roots(data_dir):
        p = root / f.path
        if p.is_file():
            return p
    return None


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so reloading a set does not rehash it."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def verify(path: Path, f: FileSpec) -> str:
    """The file's sha256; a mismatch with the pinned value is an error (results would not be comparable)."""
    got = file_sha256(path)
    if f.sha256 is not None and got != f.sha256:
        raise PtstError(
            f"checksum mismatch: {path} has sha256 {got}, expected {f.sha256} (a different or modified file; "
            "delete it to re-download, see `ptst data check`, or load a modified copy as jsonl:/json:/csv:PATH)"
        )
    return got


def missing_error(f: FileSpec, data_dir: str | Path | None, what: str, reason: str) -> PtstError:
    places = "; ".join(f"{label} {root}" for label, root in data_roots(data_dir))
    url = f.url + (f" (member {f.member})" if f.member else "") if f.url else "none (no public download)"
    return PtstError(
        f"{what}: {f.path} not found (looked in: {places}); {reason}. Put the file at <data dir>/{f.path} and pass "
        f"--data-dir / data_dir=, or set PTST_DATA_DIR to that data dir. Canonical URL: {url}"
    )


def resolve_file(
    f: FileSpec, data_dir: str | Path | None, *, what: str, siblings: Iterable[FileSpec] = ()
) -> Path:
    """The local copy of `f`, downloading it into the cache when there is none and downloads are allowed."""
    local = find_local(f, data_dir)
    if local is not None:
        return local
    reason = "it has no public download URL" if not f.url else offline_reason()
    if reason:
        raise missing_error(f, data_dir, what, reason)
    assert f.url is not None
    dest = cache_data_dir() / f.path
    try:
        if f.member:
            extract_from_archive(f.url, [f, *(s for s in siblings if s.url == f.url and s.member)])
        else:
            print(f"ptst: downloading {f.url} -> {dest}", file=sys.stderr)
            download_file(f.url, dest, f.sha256)
    except (OSError, ValueError) as e:  # URLError/HTTPError/timeouts are OSErrors
        raise missing_error(f, data_dir, what, f"download failed ({type(e).__name__}: {e})") from None
    return dest


def _open_url(url: str):  # noqa: ANN202 - a urllib response
    import urllib.request

    headers = {"User-Agent": f"ptst/{__version__}"}
    token = os.environ.get("HF_TOKEN")
    if token and url.startswith("https://huggingface.co/"):
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def download_file(url: str, dest: Path, sha256: str | None) -> str:
    """Stream `url` to a temp file beside `dest`, hashing as it goes; rename into place only if the sha256
    matches. On a mismatch (or any error) the temp file is deleted and nothing is left at `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, _open_url(url) as resp:
            for block in iter(lambda: resp.read(1 << 20), b""):
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if sha256 is not None and got != sha256:
            raise PtstError(f"checksum mismatch downloading {url}: got sha256 {got}, expected {sha256}; nothing saved")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sha256 is None:
        print(f"ptst: warning: {url} has no pinned sha256; recorded {got}", file=sys.stderr)
    return got


def extract_from_archive(url: str, members: list[FileSpec]) -> None:
    """Download a zip once and extract every registered member of it, each checked against its sha256."""
    root = cache_data_dir()
    archive = root / ".archives" / Path(url).name
    print(f"ptst: downloading {url} -> {archive} (to extract {len(members)} file(s))", file=sys.stderr)
    download_file(url, archive, None)
    try:
        with zipfile.ZipFile(archive) as z:
            for f in {m.path: m for m in members}.values():
                try:
                    data = z.read(str(f.member))
                except KeyError:
                    raise PtstError(f"{url} has no member {f.member} (needed for {f.path})") from None
                got = hashlib.sha256(data).hexdigest()
                if f.sha256 is not None and got != f.sha256:
                    raise PtstError(f"checksum mismatch for {f.member} in {url}: got {got}, expected {f.sha256}")
                write_bytes_atomic(root / f.path, data)
    except zipfile.BadZipFile as e:
        raise PtstError(f"{url} is not a valid zip archive ({e})") from None
    finally:
        archive.unlink(missing_ok=True)
