"""run(): the output records, the sidecar key, resume after a kill, refusal of a foreign file, adapters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from ptst.errors import PtstError
from ptst.generate import Decoding, GenerateConfig, run
from ptst.generate.store import meta_path
from ptst.io import sha256_file
from ptst.records import Example
from tests.generate.conftest import PROMPTS, lively_llama, save_lora, write_data

FIELDS = {"id", "prompt", "answer", "template", "template_fingerprint", "model", "adapter_hash", "decoding",
          "reference", "meta", "finish_reason", "n_tokens"}


def cfg_for(model_dir: Path, data: str, **kw) -> GenerateConfig:
    base = dict(model=str(model_dir), data=data, template="chat:llama", batch_size=4,
                decoding=Decoding(max_new_tokens=10))
    return GenerateConfig(**{**base, **kw})


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Recording:
    """Wraps a backend and remembers which ids it was asked for (or refuses to be called at all)."""

    def __init__(self, inner=None) -> None:
        self.inner = inner
        self.asked: list[str] = []
        self.name = "recording"

    def generate(self, items, decoding, on_done=None):
        if self.inner is None:
            raise AssertionError("the backend must not be called")
        self.asked += [it.id for it in items]
        return self.inner.generate(items, decoding, on_done)


@pytest.fixture
def hf_backend(lively_dir):
    from ptst.generate.hf import HFBackend
    from ptst.models import load_model, load_tokenizer

    return HFBackend(load_model(str(lively_dir)), load_tokenizer(str(lively_dir)), batch_size=4, progress=False)


def test_records_have_the_judge_fields_and_the_key(lively_dir, data_spec, tmp_path):
    from ptst.data import load_dataset
    from ptst.models import load_tokenizer, model_id
    from ptst.templates import fingerprint, get_template

    out = run(cfg_for(lively_dir, data_spec), tmp_path / "gen" / "out.jsonl", progress=False).path
    recs = rows(out)
    ds = load_dataset(data_spec)
    assert [r["id"] for r in recs] == [ex.id for ex in ds.examples]
    fp = fingerprint(get_template("chat:llama"), load_tokenizer(str(lively_dir)))
    for r, ex in zip(recs, ds.examples, strict=True):
        assert set(r) == FIELDS
        assert r["prompt"] == ex.input and r["reference"] == ex.reference  # the raw query, not the template
        assert isinstance(r["answer"], str) and r["finish_reason"] in ("stop", "length")
        assert 1 <= r["n_tokens"] <= 10
        assert (r["template"], r["template_fingerprint"]) == ("chat:llama", fp)
        assert r["model"] == model_id(str(lively_dir)) and r["adapter_hash"] is None
        assert r["decoding"] == Decoding(max_new_tokens=10).to_dict()
        assert r["meta"]["dataset"] == ds.name and r["meta"]["dataset_sha256"] == ds.sha256
        assert r["meta"]["topic"] == "t"
    meta = json.loads(meta_path(out).read_text())
    assert meta["complete"] is True and meta["n_records"] == len(PROMPTS)
    assert meta["key"]["template_fingerprint"] == fp and meta["key"]["data"]["sha256"] == ds.sha256
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.jsonl", "out.jsonl.meta.json"]


def test_resume_after_a_kill_repairs_the_last_line_and_generates_only_the_rest(lively_dir, data_spec, tmp_path,
                                                                                hf_backend):
    cfg = cfg_for(lively_dir, data_spec)
    full = run(cfg, tmp_path / "full.jsonl", backend=hf_backend, progress=False).path
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    # a killed run: the sidecar, two whole records in completion order, and half of a third record
    meta_path(part).write_text(meta_path(full).read_text())
    part.write_text(lines[3] + lines[0] + lines[4][: len(lines[4]) // 2])
    rec = Recording(hf_backend)
    run(cfg, part, backend=rec, progress=False)
    assert sorted(rec.asked) == sorted({"q1", "q2", "q4", "q5"})
    assert part.read_bytes() == full.read_bytes()  # same answers, and put back in data-set order at the end


def test_a_complete_run_generates_nothing_and_says_so(lively_dir, data_spec, tmp_path, capsys):
    out = run(cfg_for(lively_dir, data_spec), tmp_path / "out.jsonl", progress=False).path
    before = out.read_bytes()
    run(cfg_for(lively_dir, data_spec), out, backend=Recording(None), progress=False)
    assert out.read_bytes() == before
    assert "nothing to generate" in capsys.readouterr().err


@pytest.mark.parametrize("change, field", [
    ({"template": "chat:vanilla"}, "template_fingerprint"),
    ({"decoding": Decoding(max_new_tokens=11)}, "decoding"),
    ({"dtype": "bf16"}, "dtype"),
])
def test_a_file_from_another_config_is_refused(lively_dir, data_spec, tmp_path, change, field):
    out = run(cfg_for(lively_dir, data_spec), tmp_path / "out.jsonl", progress=False).path
    before = out.read_bytes()
    with pytest.raises(PtstError, match=f"different config \\({field} ") as e:
        run(cfg_for(lively_dir, data_spec, **change), out, backend=Recording(None), progress=False)
    assert "\n" not in str(e.value)
    assert out.read_bytes() == before


def test_greedy_key_ignores_the_sampling_seed_but_not_other_data(lively_dir, data_spec, tmp_path):
    out = run(cfg_for(lively_dir, data_spec), tmp_path / "out.jsonl", progress=False).path
    run(cfg_for(lively_dir, data_spec, decoding=Decoding(max_new_tokens=10, seed=5)), out,
        backend=Recording(None), progress=False)
    other = write_data(tmp_path / "prompts.jsonl", PROMPTS[:3] + ["a changed prompt"])
    with pytest.raises(PtstError, match="data "):
        run(cfg_for(lively_dir, other), out, backend=Recording(None), progress=False)


def test_a_file_without_sidecar_is_refused(lively_dir, data_spec, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "q0", "prompt": "x", "answer": "y"}\n')
    with pytest.raises(PtstError, match="meta.json"):
        run(cfg_for(lively_dir, data_spec), out, backend=Recording(None), progress=False)


@dataclass(frozen=True)
class MemoryData:
    name: str
    split: str
    sha256: str
    examples: tuple[Example, ...]


def test_in_memory_examples_work_and_duplicate_ids_are_refused(lively_dir, tmp_path):
    exs = (Example("a", "first question"), Example("b", "second question", reference="r"))
    ds = MemoryData("mem", "test", "0" * 64, exs)
    out = run(cfg_for(lively_dir, "unused"), tmp_path / "out.jsonl", dataset=ds, progress=False).path
    assert [(r["id"], r["prompt"], r["meta"]["dataset"]) for r in rows(out)] == [
        ("a", "first question", "mem"), ("b", "second question", "mem")]
    dup = MemoryData("mem", "test", "0" * 64, (*exs, Example("a", "again")))
    with pytest.raises(PtstError, match="duplicate example id 'a'"):
        run(cfg_for(lively_dir, "unused"), tmp_path / "dup.jsonl", dataset=dup, progress=False)


def test_adapter_changes_answers_and_the_key(lively_dir, data_spec, tmp_path):
    adapter = save_lora(lively_dir, tmp_path / "adapter")
    base_out = run(cfg_for(lively_dir, data_spec), tmp_path / "base.jsonl", progress=False).path
    out = run(cfg_for(lively_dir, data_spec, adapter=str(adapter)), tmp_path / "lora.jsonl", progress=False).path
    recs = rows(out)
    assert {r["adapter_hash"] for r in recs} == {sha256_file(adapter / "adapter_model.safetensors")}
    assert [r["answer"] for r in recs] != [r["answer"] for r in rows(base_out)]
    with pytest.raises(PtstError, match="adapter_hash"):
        run(cfg_for(lively_dir, data_spec, adapter=str(adapter)), base_out, progress=False)


def test_adapter_for_another_base_model_is_one_clear_line(lively_dir, llama2_tok, data_spec, tmp_path):
    other = tmp_path / "wider"
    lively_llama(llama2_tok, hidden=32).save_pretrained(other)
    llama2_tok.save_pretrained(other)
    adapter = save_lora(other, tmp_path / "wide-adapter")
    with pytest.raises(PtstError, match=r"was trained on .*hidden_size 32 vs 16") as e:
        run(cfg_for(lively_dir, data_spec, adapter=str(adapter)), tmp_path / "o.jsonl", progress=False)
    assert "\n" not in str(e.value)
    # without a usable base name, PEFT's own shape check is what refuses it
    cfg_file = adapter / "adapter_config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "base_model_name_or_path": None}))
    with pytest.raises(PtstError, match="does not fit this base model"):
        run(cfg_for(lively_dir, data_spec, adapter=str(adapter)), tmp_path / "o2.jsonl", progress=False)


def test_config_validation_is_one_line():
    with pytest.raises(PtstError, match="did you mean 'openai'"):
        GenerateConfig(data="x", template="chat:llama", model="m", backend="opneai")
    with pytest.raises(PtstError, match="needs a model"):
        GenerateConfig(data="x", template="chat:llama")
    with pytest.raises(PtstError, match="--base-url"):
        GenerateConfig(data="x", template="chat:llama", backend="openai")
    with pytest.raises(PtstError, match="cannot load an adapter"):
        GenerateConfig(data="x", template="chat:llama", backend="openai", base_url="http://h/v1", api_model="m",
                       adapter="a")
