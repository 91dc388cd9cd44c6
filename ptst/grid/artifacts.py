"""A cell directory as bytes (a tar) and back: how finished work travels from a worker to the driver's run
directory, which only the driver writes, each cell placed atomically under its usual path."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ptst.train.runner import clean

INCOMING = ".ptst-incoming"  # under the run directory: unpacked artifacts wait here, then are renamed into place


def pack_dir(path: Path, skip: tuple[str, ...] = ()) -> bytes:
    """The files under `path` (relative names, sorted; top-level entries named in `skip` left out)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path)
            if rel.parts[0] in skip or not (p.is_file() or p.is_dir()) or p.is_symlink():
                continue
            tar.add(p, arcname=str(rel), recursive=False)
    return buf.getvalue()


def unpack(data: bytes, dest: Path) -> Path:
    """Extract a pack_dir tar into `dest` (created); names that would land outside it are refused."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.10.12: check the names ourselves
            for m in tar.getmembers():
                if m.issym() or m.islnk() or not (dest / m.name).resolve().is_relative_to(dest.resolve()):
                    raise ValueError(f"unsafe name in a cell artifact: {m.name}")
            tar.extractall(dest)
    return dest


def _fsync_tree(d: Path) -> None:
    """Unpacked files reach the disk before they are renamed into the run directory (as write_bytes_atomic)."""
    for p in d.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _incoming(root: Path) -> Path:
    d = root / INCOMING
    d.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=d))


def clear_incoming(root: Path) -> None:
    """Leftovers of a driver killed while placing a cell: never a finished result, always safe to drop."""
    shutil.rmtree(root / INCOMING, ignore_errors=True)


def place_dir(root: Path, data: bytes, target: Path, fix: Callable[[Path], None] | None = None) -> None:
    """Replace directory `target` by the tar's contents: the old one (if any) is moved aside, then the new one is
    renamed into place, so a reader never sees half of a cell; between the two renames there is no cell at all,
    and a driver killed there leaves the cell to be recomputed. `fix` may edit the unpacked files first."""
    tmp = _incoming(root)
    new = unpack(data, tmp / "new")
    if fix is not None:
        fix(new)
    _fsync_tree(new)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        os.replace(target, tmp / "old")
    os.replace(new, target)
    shutil.rmtree(tmp, ignore_errors=True)


def place_train_cell(root: Path, data: bytes, target: Path, fix: Callable[[Path], None] | None = None) -> None:
    """A training cell shares its directory with its evaluation cells (`eval/`), so its own entries are
    replaced one rename each and spec.json, the done marker, goes in last. `fix` may edit the unpacked files
    first."""
    tmp = _incoming(root)
    new = unpack(data, tmp / "new")
    if fix is not None:
        fix(new)
    _fsync_tree(new)
    target.mkdir(parents=True, exist_ok=True)
    clean(target)
    for p in sorted(new.iterdir(), key=lambda p: p.name == "spec.json"):
        os.replace(p, target / p.name)
    shutil.rmtree(tmp, ignore_errors=True)
