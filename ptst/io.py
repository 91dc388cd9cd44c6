"""Files as the contract between stages: atomic writes, safe JSONL appends, hashes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ptst.errors import PtstError

OFFLINE_ENV = ("PTST_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


def offline_reason() -> str | None:
    """Why downloads are off (the env var that says so), or None when they are allowed."""
    for var in OFFLINE_ENV:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"downloads are off ({var} is set)"
    return None


@contextmanager
def no_downloads() -> Iterator[None]:
    """Downloads off inside (data sets and tokenizers): `ptst status` and `--dry-run` only look."""
    old = os.environ.get("PTST_OFFLINE")
    os.environ["PTST_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PTST_OFFLINE", None)
        else:
            os.environ["PTST_OFFLINE"] = old


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """sha256 of a canonical JSON dump: the cache key of anything JSON-serialisable."""
    return sha256_text(json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes 0600 files


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write to a temp file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what write_bytes_atomic's mkstemp names look like


def staging_path(final: Path, unique: bool = False) -> Path:
    """Where atomic_dir stages `final`: `.NAME.tmp` beside it (`.NAME.tmpHOST-PID` with `unique`)."""
    return final.with_name(f".{final.name}.tmp{_writer() if unique else ''}")


def _writer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _clear_dead_staging(final: Path) -> None:
    """Remove the unique staging directories of `final` that writers on this host left when they were killed:
    their process is gone, and nothing else would remove them (a model's export or dequantised copy: hundreds of
    MB each). Another host's staging (a shared file system) and a live process's are left alone."""
    import shutil

    host = f".{final.name}.tmp{socket.gethostname()}-"
    for tmp in final.parent.glob(f".{final.name}.tmp*") if final.parent.is_dir() else ():
        pid = tmp.name[len(host):] if tmp.name.startswith(host) else ""
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


@contextmanager
def atomic_dir(final: str | Path, *, keep_existing: bool = False, unique: bool = False) -> Iterator[Path]:
    """A directory written whole or not at all: yields an empty staging directory beside `final`
    (`.NAME.tmp`, or `.NAME.tmpHOST-PID` with `unique`, where several processes may write the same `final`); when
    the block ends, it is renamed into place (replacing `final`, or, with `keep_existing`, discarded where `final`
    already exists: another process's equal result). An error removes the staging; a killed writer's is removed
    by the next writer (with `unique`: the staging of this host's writers that are gone)."""
    import shutil

    final = Path(final)
    tmp = staging_path(final, unique)
    shutil.rmtree(tmp, ignore_errors=True)  # a killed writer's leftovers
    if unique:
        _clear_dead_staging(final)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        if keep_existing:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(final)
    try:
        os.replace(tmp, final)
    except OSError:
        if not (keep_existing and final.exists()):  # lost a race to an equal writer: theirs stands
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def clear_stale_tmp(root: Path, recursive: bool = True) -> int:
    """Remove the temporary files of atomic writes a killed process left under `root` (SIGKILL between writing a
    temporary file and renaming it). Only for a directory this process owns (a stage's own cell): another live
    writer's temporary file would go too. Returns how many were removed."""
    n = 0
    for p in (root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")) if root.is_dir() else ():
        if p.is_file() and _TMP.match(p.name):
            p.unlink(missing_ok=True)
            n += 1
    return n


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def not_utf8(path: Path) -> PtstError:
    """The error for a file that is not UTF-8 text, naming the first bad byte's offset and line (a decoder reading
    in chunks reports an offset within its chunk, so the bytes are decoded again here, whole)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        return PtstError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}, line {line}); save it as UTF-8")
    return PtstError(f"{path}: not UTF-8 text")


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PtstError(f"file not found: {path}") from None
    except UnicodeDecodeError:
        raise not_utf8(Path(path)) from None
    except json.JSONDecodeError as e:
        raise PtstError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield one dict per line; a malformed line is an error naming the file and line number."""
    path = Path(path)
    if not path.exists():
        raise PtstError(f"file not found: {path}")
    for _, row in iter_jsonl_numbered(path):
        yield row


def iter_jsonl_numbered(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a malformed line, a line that is not an object, or a file that
    is not `encoding` text is one PtstError naming the file and line (`utf-8-sig` also takes a BOM)."""
    with open(path, encoding=encoding) as f:
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise PtstError(f"{path}:{lineno}: malformed JSON line ({e.msg} at column {e.colno})") from None
                if not isinstance(row, dict):
                    raise PtstError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield lineno, row
        except UnicodeDecodeError:
            raise not_utf8(path) from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


class JsonlAppender:
    """Append-only JSONL writer for resumable stages.

    On open, a trailing partial line (left by a kill mid-write) is cut off, so the file only ever
    holds whole records. Each record is written, flushed and fsynced before `write` returns.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(self.path)
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair_jsonl(path: Path) -> None:
    """Drop a truncated last line (no trailing newline or unparsable) left by an interrupted write."""
    if not path.exists():
        return
    data = path.read_bytes()
    if not data:
        return
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    lines = keep.splitlines(keepends=True)
    while lines:
        try:
            json.loads(lines[-1])
            break
        except json.JSONDecodeError:
            lines.pop()
    fixed = b"".join(lines)
    if fixed != data:
        write_bytes_atomic(path, fixed)
