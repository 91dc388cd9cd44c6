"""Node-local paths a Ray task recorded in the files it sends back, moved field by field to the run directory's
(never by text substitution): the driver places each cell under its usual path, and its files name that path."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import yaml

from ptst.grid.tasks import Result
from ptst.io import read_json, stable_hash, write_json_atomic, write_text_atomic
from ptst.specs.train import identity, load_train_config
from ptst.train.runner import base_ref

# Where the stages record a path that may be node-local, in the files a task sends back: file (a glob under the
# placed directory) -> fields ("*": each item of a list). Other fields hold ids, hashes, paths relative to their
# cell, or paths every node shares (a data file, the grid's model).
PATH_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "**/config.yaml": (("model",), ("data",), ("mix", "*", "data")),  # a TrainConfig (ptst.train.runner)
    "**/spec.json": (("base_model",), ("data", "data"), ("mix", "*", "data")),  # its training spec
    "**/ptst_base.json": (("base_model",),),  # beside an adapter (ptst.train.model)
    "**/adapter_config.json": (("base_model_name_or_path",),),  # PEFT's
    "**/scores/*.json": (("generations", "path"), ("inputs", "judgements", "path")),  # ptst.score.stage
    "align.json": (("base_model",), ("parts", "*", "data")),  # ptst.align
}


DATA_FILES = ("jsonl:", "json:", "csv:")  # a custom data set's spec: the file's path after one of these


def _moved(value: Any, pairs: list[tuple[str, str]]) -> Any:
    """`value` (a path, or a data spec `jsonl:PATH`) with its leading directory `old` replaced by `new`."""
    if not isinstance(value, str):
        return value
    scheme = next((s for s in DATA_FILES if value.startswith(s)), "")
    path = value[len(scheme):]
    for old, new in pairs:
        if path == old or path.startswith(old + "/"):
            return scheme + new + path[len(old):]
    return value


def _set(doc: Any, field: tuple[str, ...], pairs: list[tuple[str, str]]) -> None:
    """Move the path at `field` of `doc` in place (a missing field is left alone)."""
    key, rest = field[0], field[1:]
    if key == "*":
        keys: list[Any] = list(range(len(doc))) if isinstance(doc, list) else []
    else:
        keys = [key] if isinstance(doc, dict) and key in doc else []
    for k in keys:
        if rest:
            _set(doc[k], rest, pairs)
        else:
            doc[k] = _moved(doc[k], pairs)


def replace_paths(d: Path, pairs: list[tuple[str, str]]) -> None:
    """Name the run directory where a task recorded node-local paths (`pairs`: old directory, new): each file of
    PATH_FIELDS parsed, its known fields moved, written back atomically; a training spec's config_sha256 then
    hashes the moved config, and PEFT's model card names the moved base."""
    pairs = [(a.rstrip("/"), b.rstrip("/")) for a, b in pairs if a and a != b]
    pairs += [(os.path.realpath(a), b) for a, b in pairs if os.path.realpath(a) != a]  # as Path.resolve() wrote it
    if not pairs:
        return
    for pattern, fields in PATH_FIELDS.items():
        for p in sorted(d.glob(pattern)):
            yml = p.suffix == ".yaml"
            doc = yaml.safe_load(p.read_text(encoding="utf-8")) if yml else json.loads(p.read_text(encoding="utf-8"))
            was = copy.deepcopy(doc)
            for f in fields:
                _set(doc, f, pairs)
            if doc == was:
                continue
            if yml:  # as ptst.config.dump_yaml writes it
                write_text_atomic(p, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
            else:
                write_json_atomic(p, doc)
            if p.name == "config.yaml":
                _rehash(p.parent)
    for card in d.glob("**/adapter/README.md"):
        _move_card(card, pairs)


def _rehash(train_dir: Path) -> None:
    """spec.json's config_sha256 of its moved config.yaml (the key `ptst run` compares with the plan's)."""
    spec = train_dir / "spec.json"
    doc = read_json(spec) if spec.exists() else {}
    if "config_sha256" in doc:
        doc["config_sha256"] = stable_hash(identity(load_train_config(train_dir / "config.yaml")))
        write_json_atomic(spec, doc)


def _move_card(path: Path, pairs: list[tuple[str, str]]) -> None:
    """PEFT's model card names the base model in its metadata (`base_model`, a `base_model:adapter:` tag)."""
    from huggingface_hub import ModelCard  # a third-party import only a Ray run pays for

    card = ModelCard.load(path)
    tag = "base_model:adapter:"
    was = (card.data.base_model, card.data.tags)
    card.data.base_model = _moved(card.data.base_model, pairs)
    if card.data.tags:
        card.data.tags = [tag + _moved(t[len(tag):], pairs) if t.startswith(tag) else t for t in card.data.tags]
    if (card.data.base_model, card.data.tags) != was:
        write_text_atomic(path, str(card))


def rebase(d: Path, tcfg: Any, res: Result) -> None:
    """A training cell made on a shipped (node-local) copy of the aligned model: the run directory's copy named
    where the task named its own."""
    if res.model and res.model != tcfg.model:
        replace_paths(d, [(base_ref(res.model), base_ref(tcfg.model)), (res.model, tcfg.model)])
