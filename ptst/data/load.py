"""`load_dataset`: a registered NAME[:SPLIT] or a custom FORMAT:PATH, resolved, verified and sampled."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from ptst.data.catalog import DATASETS
from ptst.data.custom import load_custom_rows, parse_custom
from ptst.data.sources import file_sha256, find_local, resolve_file, verify
from ptst.data.types import Dataset, DatasetSpec, FileSpec, Row
from ptst.errors import PtstError
from ptst.records import Example


def split_spec(spec: str, split: str | None = None) -> tuple[str, str | None]:
    """`gsm8k:test` -> ("gsm8k", "test"); a split given both ways must agree."""
    name, sep, in_spec = spec.partition(":")
    if not sep:
        return spec, split
    if split is not None and split != in_spec:
        raise PtstError(f"{spec!r} names split {in_spec!r} but split={split!r} was also given")
    return name, in_spec


def sample_positions(n: int, limit: int | None, seed: int) -> list[int]:
    """Positions of a seeded sample of `limit` rows, in original order. The sample for a smaller limit is a
    prefix of the same seeded permutation, so limit=10 is a subset of limit=100 with the same seed."""
    if limit is None or limit >= n:
        return list(range(n))
    perm = list(range(n))
    random.Random(seed).shuffle(perm)
    return sorted(perm[:limit])


def combine_sha256(files: list[tuple[str, str]]) -> str:
    """One file: its own sha256. Several: sha256 of their `sha256  path` lines (as sha256sum prints them)."""
    if len(files) == 1:
        return files[0][1]
    return hashlib.sha256("".join(f"{sha}  {path}\n" for path, sha in files).encode()).hexdigest()


def _check_limit(limit: int | None, seed: int) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise PtstError(f"limit must be a positive integer or None, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PtstError(f"seed must be an integer, got {seed!r}")


def build_examples(name: str, split: str, rows: list[Row], limit: int | None, seed: int) -> tuple[Example, ...]:
    out, seen = [], set()
    for pos in sample_positions(len(rows), limit, seed):
        r = rows[pos]
        ex_id = r.id if r.id is not None else f"{name}-{split}-{r.index}"
        if ex_id in seen:
            raise PtstError(f"data set {name}: duplicate id {ex_id!r} (ids must be unique)")
        seen.add(ex_id)
        out.append(Example(id=ex_id, input=r.input, response=r.response, reference=r.reference, meta=r.meta))
    return tuple(out)


def archive_siblings(f: FileSpec) -> list[FileSpec]:
    """Every registered file inside the same archive as `f`, so one download extracts them all."""
    if not f.member:
        return []
    return [g for name in DATASETS for g in DATASETS.get(name).all_files() if g.url == f.url and g.member]


def _load_registered(spec: DatasetSpec, split: str, data_dir: str | None, limit: int | None, seed: int) -> Dataset:
    paths: list[Path] = []
    for f in spec.files[split]:
        what = f"data set {spec.name} ({split})"
        paths.append(resolve_file(f, data_dir, what=what, siblings=archive_siblings(f)))
    shas = [(f.path, verify(p, f)) for f, p in zip(spec.files[split], paths, strict=True)]
    rows = spec.loader(paths, split)
    return Dataset(
        name=spec.name, split=split, examples=build_examples(spec.name, split, rows, limit, seed),
        sha256=combine_sha256(shas), licence=spec.licence, non_commercial=spec.non_commercial,
        source=" ".join(f.url or spec.source for f in spec.files[split]), kind=spec.kind_of(split),
        paths=tuple(str(p) for p in paths), limit=limit, seed=seed,
    )


@dataclass(frozen=True)
class DataIdentity:
    """What a loaded set's answers are keyed on: its name, split and content sha256 (as `Dataset` records them)."""

    name: str
    split: str
    sha256: str


def data_identity(spec: str, split: str | None = None, *, data_dir: str | None = None) -> DataIdentity:
    """The identity `load_dataset(spec, split)` would record, without loading or downloading anything: a custom
    file's sha256, or a registered split's pinned sha256s (a local copy's own hash where upstream is unpinned).
    A custom file that is missing, or an unpinned file not on this machine, is a PtstError."""
    custom = parse_custom(spec)
    if custom is not None:
        path = custom[1]
        if not path.is_file():
            raise PtstError(f"no such file {path}")
        return DataIdentity(path.stem, split or "all", file_sha256(path))
    name, sp = split_spec(spec, split)
    ds_spec = DATASETS.get(name)
    resolved = ds_spec.resolve_split(sp)
    shas = []
    for f in ds_spec.files[resolved]:
        sha = f.sha256
        if sha is None:
            local = find_local(f, data_dir)
            if local is None:
                raise PtstError(f"data set {name} ({resolved}): {f.path} is unpinned and not on this machine")
            sha = file_sha256(local)
        shas.append((f.path, sha))
    return DataIdentity(ds_spec.name, resolved, combine_sha256(shas))


def load_dataset(
    spec: str,
    split: str | None = None,
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    fields: dict[str, str] | None = None,
) -> Dataset:
    """Load a registered set (`gsm8k`, `gsm8k:test`) or a custom file (`jsonl:PATH`, `json:PATH`, `csv:PATH`).

    Files are looked up in `data_dir`, then $PTST_DATA_DIR, then the cache, and otherwise downloaded from
    their canonical URL into the cache (sha256-checked). `limit` keeps a seeded sample of N rows in their
    original order; ids are `NAME-SPLIT-ROW` by original row index, so samples line up across runs.
    `fields` maps Example fields to a custom file's columns (default: input/response/reference/id).
    """
    _check_limit(limit, seed)
    custom = parse_custom(spec)
    if custom is not None:
        fmt, path = custom
        rows = load_custom_rows(fmt, path, fields)
        name, split = path.stem, split or "all"
        return Dataset(
            name=name, split=split, examples=build_examples(name, split, rows, limit, seed),
            sha256=file_sha256(path), licence="unknown (custom file)", non_commercial=False,
            source=f"{fmt}:{path.resolve()}", kind="custom", paths=(str(path.resolve()),), limit=limit, seed=seed,
        )
    if fields:
        raise PtstError(f"fields= maps the columns of custom files (jsonl:/json:/csv:PATH), not of {spec!r}")
    name, split = split_spec(spec, split)
    ds_spec = DATASETS.get(name)
    return _load_registered(ds_spec, ds_spec.resolve_split(split), data_dir, limit, seed)
