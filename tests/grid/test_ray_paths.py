"""Where a Ray task recorded node-local paths, the driver names the run directory: the known fields of the known
files, parsed and written back (no text substitution), a training spec's config_sha256 with them."""

from __future__ import annotations

import json
from pathlib import Path

from ptst.config import dump_yaml
from ptst.grid.relocate import replace_paths
from ptst.io import stable_hash
from ptst.specs.train import TrainConfig, identity, load_train_config

NODE, RUN = "/scratch/ptst-u/abc/align", "/runs/tiny/align"


def _cell(d: Path) -> None:
    cfg = TrainConfig(model="/models/base", data=f"jsonl:{NODE}/data/part-0.jsonl", template="chat:llama")
    (d / "train" / "adapter").mkdir(parents=True)
    (d / "train" / "config.yaml").write_text(dump_yaml(cfg))
    (d / "train" / "spec.json").write_text(json.dumps({"config_sha256": stable_hash(identity(cfg)),
                                                       "data": {"data": cfg.data}, "note": f"made in {NODE}"}))
    (d / "train" / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/m"}))
    (d / "align.json").write_text(json.dumps({"parts": [{"data": f"jsonl:{NODE}/data/part-0.jsonl"},
                                                        {"data": f"jsonl:{NODE}-other/part-1.jsonl"}],
                                              "summary": f"{NODE} refusals"}))
    (d / "eval" / "scores").mkdir(parents=True)
    (d / "eval" / "scores" / "harm.asr-keyword.json").write_text(json.dumps(
        {"generations": {"path": f"{NODE}/eval/generations/harm.jsonl", "n": 6},
         "inputs": {"judgements": {"path": f"{NODE}/eval/judgements/harm.keyword.jsonl"}}}))


def test_only_the_recorded_path_fields_move(tmp_path):
    _cell(tmp_path)
    before = (tmp_path / "train" / "adapter" / "adapter_config.json").read_bytes()
    replace_paths(tmp_path, [(NODE, RUN)])
    cfg = load_train_config(tmp_path / "train" / "config.yaml")
    assert cfg.data == f"jsonl:{RUN}/data/part-0.jsonl" and cfg.model == "/models/base"
    spec = json.loads((tmp_path / "train" / "spec.json").read_text())
    assert spec == {"config_sha256": stable_hash(identity(cfg)), "data": {"data": cfg.data},
                    "note": f"made in {NODE}"}  # a field that is not a path stays as written
    align = json.loads((tmp_path / "align.json").read_text())
    assert [p["data"] for p in align["parts"]] == [f"jsonl:{RUN}/data/part-0.jsonl",
                                                  f"jsonl:{NODE}-other/part-1.jsonl"]  # not under NODE
    assert align["summary"] == f"{NODE} refusals"
    score = json.loads((tmp_path / "eval" / "scores" / "harm.asr-keyword.json").read_text())
    assert score["generations"] == {"path": f"{RUN}/eval/generations/harm.jsonl", "n": 6}
    assert score["inputs"]["judgements"]["path"] == f"{RUN}/eval/judgements/harm.keyword.jsonl"
    assert (tmp_path / "train" / "adapter" / "adapter_config.json").read_bytes() == before  # nothing to move


def test_nothing_recorded_under_the_old_directory_rewrites_nothing(tmp_path):
    _cell(tmp_path)
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    replace_paths(tmp_path, [("/elsewhere", RUN), (RUN, RUN)])
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()} == files
