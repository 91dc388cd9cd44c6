"""TrainConfig: defaults, validation, --mix parsing, precedence of YAML / flags / overrides, YAML round trip."""

from __future__ import annotations

import pytest

from ptst.config import dump_yaml, from_dict, read_yaml
from ptst.errors import PtstError
from ptst.specs.train import LoraConfig, MixSpec, TrainConfig, identity, load_train_config, parse_mix

REQ = dict(model="m", data="gsm8k", template="chat:vanilla")


def test_defaults_follow_llama_recipes():
    cfg = TrainConfig(**REQ)
    assert (cfg.lr, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (1e-4, 8, 32, 0.05)
    assert cfg.lora.targets == ("q_proj", "v_proj")
    assert (cfg.weight_decay, cfg.max_grad_norm, cfg.full, cfg.schedule) == (0.0, 1.0, False, "cosine")


@pytest.mark.parametrize("kw, needle", [
    (dict(lr=0), "lr"), (dict(lr=2.0), "lr"), (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
    (dict(grad_accum=0), "grad_accum"), (dict(max_len=4), "max_len"), (dict(schedule="step"), "schedule"),
    (dict(warmup_ratio=1.0), "warmup_ratio"), (dict(precision="fp8"), "precision"), (dict(limit=0), "limit"),
    (dict(save_every=-1), "save_every"), (dict(seed=-1), "seed"), (dict(template=""), "template"),
    (dict(mix=(MixSpec("a", 1), MixSpec("a", 2))), "twice"),
])
def test_bad_values_fail_with_one_clear_line(kw, needle):
    with pytest.raises(PtstError) as e:
        TrainConfig(**{**REQ, **kw})
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kw", [dict(r=0), dict(alpha=0), dict(dropout=1.0), dict(targets=()),
                                dict(targets=("all-linear", "q_proj"))])
def test_bad_lora_values(kw):
    with pytest.raises(PtstError, match="lora"):
        LoraConfig(**kw)


def test_lora_targets_accept_comma_strings():
    assert LoraConfig(targets="q_proj, v_proj").targets == ("q_proj", "v_proj")
    assert LoraConfig(targets=("q_proj,k_proj",)).targets == ("q_proj", "k_proj")


@pytest.mark.parametrize("text, want", [
    ("safety:500", MixSpec("safety", 500)),
    ("safety:500:chat:llama", MixSpec("safety", 500, "chat:llama")),
    ("jsonl:/tmp/x.jsonl:20", MixSpec("jsonl:/tmp/x.jsonl", 20)),
    ("gsm8k:train:7:gsm:chat:llama", MixSpec("gsm8k:train", 7, "gsm:chat:llama")),
])
def test_parse_mix(text, want):
    assert parse_mix(text) == want


@pytest.mark.parametrize("text", ["safety", "safety:many", ":5", "safety:0"])
def test_parse_mix_rejects(text):
    with pytest.raises(PtstError):
        parse_mix(text)


def test_precedence_yaml_then_flags_then_overrides(tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text("model: m\ndata: gsm8k\ntemplate: chat:vanilla\nlr: 3.0e-4\nepochs: 5\n"
                 "lora: {r: 16, targets: all-linear}\nmix: [{data: safety, n: 50, template: chat:llama}]\n")
    cfg = load_train_config(y, {"lr": 2e-4, "lora": {"alpha": 64}}, ["epochs=2", "lora.dropout=0.1"])
    assert (cfg.lr, cfg.epochs) == (2e-4, 2)
    assert cfg.lora == LoraConfig(r=16, alpha=64, dropout=0.1, targets=("all-linear",))
    assert cfg.mix == (MixSpec("safety", 50, "chat:llama"),)
    assert cfg.template_for == {"safety": "chat:llama"}


def test_unknown_key_suggests(tmp_path):
    with pytest.raises(PtstError, match="did you mean 'epochs'"):
        load_train_config(None, REQ, ["epoch=3"])


def test_missing_required_names_the_flag():
    with pytest.raises(PtstError, match="missing template"):
        load_train_config(None, {"model": "m", "data": "d"})


def test_mix_strings_in_yaml_and_overrides(tmp_path):
    cfg = load_train_config(None, REQ, ["mix=[safety:5:chat:llama]"])
    assert cfg.mix == (MixSpec("safety", 5, "chat:llama"),)


def test_resolved_yaml_round_trips(tmp_path):
    cfg = TrainConfig(**REQ, mix=(MixSpec("safety", 5, "chat:llama"),), lora=LoraConfig(targets=("all-linear",)))
    (tmp_path / "c.yaml").write_text(dump_yaml(cfg))
    assert from_dict(TrainConfig, read_yaml(tmp_path / "c.yaml")) == cfg


def test_identity_ignores_operational_keys():
    a, b = TrainConfig(**REQ), TrainConfig(**REQ, save_every=7, keep_checkpoints=0, log_every=3)
    assert identity(a) == identity(b)
    assert identity(a) != identity(TrainConfig(**REQ, lr=2e-4))
