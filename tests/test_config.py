"""Typed config sections: every nested section of a grid config is checked and coerced the way `train:` is, and
a valid config's values reach the cache keys exactly as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ptst.config import from_dict, to_dict
from ptst.errors import PtstError
from ptst.grid.cells import load_grid
from ptst.grid.config import GridConfig
from ptst.specs.train import MixSpec, TrainConfig

REPO = Path(__file__).resolve().parents[1]
BASE = {"name": "g", "model": "m", "train_templates": ["chat:vanilla"], "test_templates": ["chat:llama"],
        "evals": [{"data": "advbench"}]}
SECTIONS = ["train", "decoding", "generate", "judge"]


def _grid(**extra: object) -> GridConfig:
    return from_dict(GridConfig, {**BASE, **extra}, "grid.yaml")


def _yaml(text: str) -> dict:
    return yaml.safe_load(text)


@pytest.mark.parametrize("section, key", [("train", "lr"), ("decoding", "temperature"), ("generate", "timeout_s"),
                                          ("judge", "temperature")])
def test_a_number_yaml_reads_as_a_string_is_a_number_in_every_section(section, key):
    raw = _yaml(f"{section}: {{{key}: 7e-1}}")
    assert raw[section][key] == "7e-1"  # PyYAML's YAML 1.1 float needs a dot: this is the trap
    assert getattr(_grid(**raw), section) == {key: 0.7}


def test_align_train_reads_numbers_too():
    raw = _yaml("align: {train: {lr: 7e-1, lora: {dropout: 1e-1}}}")
    assert _grid(**raw).align.train == {"lr": 0.7, "lora": {"dropout": 0.1}}


@pytest.mark.parametrize("section, typo, want", [("train", "lrr", "lr"), ("decoding", "temprature", "temperature"),
                                                 ("generate", "batch_sise", "batch_size"),
                                                 ("judge", "api_modle", "api_model")])
def test_an_unknown_key_in_a_section_says_did_you_mean(section, typo, want):
    with pytest.raises(PtstError) as e:
        _grid(**{section: {typo: 1}})
    assert str(e.value) == f"{section}: unknown key {typo!r} (did you mean {want!r}?)"


def test_align_train_typo_names_its_section():
    with pytest.raises(PtstError, match=r"^align\.train: unknown key 'epoch' \(did you mean 'epochs'\?\)$"):
        _grid(align={"train": {"epoch": 1}})


@pytest.mark.parametrize("section, value, needle", [
    ("decoding", {"temperature": "hot"}, "decoding.temperature: expected a number, got 'hot'"),
    ("decoding", {"max_new_tokens": "many"}, "decoding.max_new_tokens: expected an integer, got 'many'"),
    ("generate", {"batch_size": [1]}, "generate.batch_size: expected int, got [1]"),
    ("train", {"lora": {"r": "x"}}, "train.lora.r: expected an integer, got 'x'"),
    ("train", {"lora": 8}, "train.lora: expected a mapping, got 8"),
    ("decoding", 5, "decoding: expected a mapping of Decoding keys, got 5"),
    ("generate", {"decoding": {}}, "generate: 'decoding' cannot be set here"),
    ("generate", {"model": "x"}, "generate: 'model' cannot be set here"),
    ("judge", {"judge": "rubric"}, "judge: 'judge' cannot be set here"),
    ("report", 5, "grid.yaml.report: expected a mapping, got 5"),
])
def test_a_wrongly_typed_section_value_is_one_clear_error(section, value, needle):
    with pytest.raises(PtstError) as e:
        _grid(**{section: value})
    assert needle in str(e.value)


def test_an_empty_section_is_no_section():
    assert _grid(**_yaml("decoding:\ngenerate:\n")).decoding == {}


def test_valid_values_stay_exactly_as_written():
    """What reaches eval_key is the section dict itself: 0 must stay 0 (not 0.0), lists stay lists, a partial
    lora mapping stays partial, and a mix string stays a string."""
    raw = {"decoding": {"temperature": 0, "top_p": 1, "stop": ["END"], "max_new_tokens": 64},
           "generate": {"batch_size": 48, "timeout_s": 30}, "judge": {"api_model": "gpt-4-0613", "temperature": 0},
           "train": {"lr": 1, "lora": {"r": 4}, "mix": ["safety:8:chat:llama", {"data": "x", "n": 2}],
                     "epochs": 2}}
    cfg = _grid(**raw)
    for section, want in raw.items():
        got = getattr(cfg, section)
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True), section


@pytest.mark.parametrize("name", ["quickstart.yaml", "quickstart-gsm8k.yaml", "paper-llama2-gsm8k.yaml",
                                  "paper-mistral-gsm8k.yaml"])
def test_shipped_configs_sections_are_unchanged(name):
    raw = yaml.safe_load((REPO / "configs" / name).read_text(encoding="utf-8"))
    cfg = to_dict(load_grid(REPO / "configs" / name))
    for section in SECTIONS:
        assert json.dumps(cfg[section], sort_keys=True) == json.dumps(raw.get(section, {}), sort_keys=True)
    if raw.get("align"):
        assert json.dumps(cfg["align"]["train"], sort_keys=True) == json.dumps(raw["align"].get("train", {}),
                                                                               sort_keys=True)


def test_mix_entries_are_read_from_their_text_form():
    cfg = from_dict(TrainConfig, {"model": "m", "data": "gsm8k", "template": "t",
                                  "mix": ["jsonl:/p/x.jsonl:20", "safety:5:chat:llama"]})
    assert cfg.mix == (MixSpec("jsonl:/p/x.jsonl", 20), MixSpec("safety", 5, "chat:llama"))
    assert from_dict(TrainConfig, {"model": "m", "data": "gsm8k", "template": "t", "mix": "safety:5"}).mix == \
        (MixSpec("safety", 5),)
    with pytest.raises(PtstError, match="expected DATA:N"):
        from_dict(TrainConfig, {"model": "m", "data": "gsm8k", "template": "t", "mix": ["safety"]})
