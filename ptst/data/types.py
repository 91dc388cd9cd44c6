"""The data stage's types: a registered set's spec and files, the rows a loader yields, a loaded Dataset."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from ptst.errors import PtstError
from ptst.io import stable_hash, write_jsonl_atomic
from ptst.records import Example
from ptst.registry import did_you_mean

KINDS = ("train", "safety-eval", "helpfulness-eval", "over-refusal", "judge-validation")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileSpec:
    """One file of a registered set: where it lies under a data dir, its pinned sha256 and where to get it.

    `sha256=None` means upstream could not be pinned here (the file is then hashed and recorded, not verified).
    `url=None` means there is no public download (a derived file); `member` is a path inside a zip at `url`.
    """

    path: str
    sha256: str | None
    url: str | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        p = PurePosixPath(self.path)
        if p.is_absolute() or ".." in p.parts or not self.path:
            raise ValueError(f"FileSpec.path must be relative inside a data dir, got {self.path!r}")
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ValueError(f"FileSpec {self.path}: sha256 must be 64 lowercase hex digits")
        if self.member and not self.url:
            raise ValueError(f"FileSpec {self.path}: an archive member needs the archive's url")


@dataclass(frozen=True)
class Row:
    """What a loader yields: an Example before it gets its id. `index` is the row's position in the source file."""

    index: int
    input: str
    response: str | None = None
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # only custom files with an id column set this


# A loader turns the local files of one split (in FileSpec order) into rows.
Loader = Callable[[list[Path], str], list[Row]]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its splits (the first is the default), files, licence and loader. A set with a
    helpfulness-eval split names the registered scorer (`ptst score`) that scores answers to it; `ptst eval`
    then needs no kind, scorer or split for it."""

    name: str
    kind: str
    splits: tuple[str, ...]
    files: dict[str, tuple[FileSpec, ...]]
    licence: str
    non_commercial: bool
    loader: Loader
    source: str  # upstream home (repository or hub page)
    description: str = ""
    sizes: dict[str, int] = field(default_factory=dict)
    split_kinds: dict[str, str] = field(default_factory=dict)  # splits whose role differs from `kind`
    scorer: str | None = None  # the scorer of its helpfulness-eval split

    def __post_init__(self) -> None:
        if not self.splits:
            raise ValueError(f"data set {self.name}: needs at least one split")
        for k in (self.kind, *self.split_kinds.values()):
            if k not in KINDS:
                raise ValueError(f"data set {self.name}: kind {k!r} is not one of {KINDS}")
        if set(self.files) != set(self.splits):
            raise ValueError(f"data set {self.name}: files must be given for exactly the splits {self.splits}")
        extra = (set(self.sizes) | set(self.split_kinds)) - set(self.splits)
        if extra:
            raise ValueError(f"data set {self.name}: sizes/split_kinds name unknown splits {sorted(extra)}")
        if self.scorer and self.helpfulness_split is None:
            raise ValueError(f"data set {self.name}: a scorer is for a set with a helpfulness-eval split")

    @property
    def default_split(self) -> str:
        return self.splits[0]

    def resolve_split(self, split: str | None) -> str:
        if split is None:
            return self.default_split
        if split not in self.splits:
            hint = did_you_mean(split, list(self.splits))
            raise PtstError(f"data set {self.name!r} has no split {split!r}{hint}; splits: {', '.join(self.splits)}")
        return split

    def kind_of(self, split: str) -> str:
        return self.split_kinds.get(split, self.kind)

    @property
    def helpfulness_split(self) -> str | None:
        """The first split that measures helpfulness (a training set's test split), or None."""
        return next((s for s in self.splits if self.kind_of(s) == "helpfulness-eval"), None)

    def all_files(self) -> list[FileSpec]:
        seen: dict[str, FileSpec] = {}
        for s in self.splits:
            for f in self.files[s]:
                seen.setdefault(f.path, f)
        return list(seen.values())


@dataclass(frozen=True)
class Dataset:
    """A loaded split. `sha256` identifies the source file(s) read; `fingerprint` identifies the exact rows
    (it changes with `limit`/`seed`, a field mapping, or contamination removal)."""

    name: str
    split: str
    examples: tuple[Example, ...]
    sha256: str
    licence: str
    non_commercial: bool
    source: str
    kind: str = "custom"
    paths: tuple[str, ...] = ()  # local files actually read
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.examples, tuple):
            object.__setattr__(self, "examples", tuple(self.examples))

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    @cached_property
    def fingerprint(self) -> str:
        return stable_hash({"sha256": self.sha256, "examples": [e.to_dict() for e in self.examples]})

    def describe(self) -> dict[str, Any]:
        """What a run records about its data: enough to tell two data sets apart and to cite them."""
        return {
            "name": self.name, "split": self.split, "kind": self.kind, "rows": len(self), "sha256": self.sha256,
            "fingerprint": self.fingerprint, "limit": self.limit, "seed": self.seed, "licence": self.licence,
            "non_commercial": self.non_commercial, "source": self.source,
        }

    def to_jsonl(self, path: str | Path) -> Path:
        """Write the examples as JSONL (one `Example.to_dict()` a line), atomically."""
        return write_jsonl_atomic(path, (e.to_dict() for e in self.examples))
