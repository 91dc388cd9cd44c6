"""The run directory contract: the exact file set, spec.json, no-op / refusal / overwrite / resume, mixing, and
bad input that leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptst.errors import PtstError
from ptst.train import MixSpec, run


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


ADAPTER = {"adapter_config.json", "adapter_model.safetensors", "README.md", "ptst_base.json"}


def test_exact_file_set(make_cfg, tmp_path):
    out = run(make_cfg(epochs=3, save_every=2), tmp_path / "run").path  # 9 steps: checkpoints 2, 4, 6, 8; keep 2
    ckpt = {"trainable.safetensors", "state.pt"} | {f"adapter/{f}" for f in ADAPTER}
    want = {"spec.json", "config.yaml", "train_log.jsonl"} | {f"adapter/{f}" for f in ADAPTER}
    want |= {f"checkpoints/step-{n}/{f}" for n in (6, 8) for f in ckpt}
    assert files(out) == want


def test_spec_records_what_identifies_the_model(make_cfg, tmp_path, data_file, tiny_model_dir):
    from ptst.io import sha256_file, sha256_text
    from ptst.models import adapter_hash, load_tokenizer, model_id
    from ptst.templates import fingerprint, get_template, render

    cfg = make_cfg(limit=10)
    out = run(cfg, tmp_path / "run").path
    spec = json.loads((out / "spec.json").read_text())
    tok = load_tokenizer(str(tiny_model_dir))
    t = get_template("chat:vanilla")
    assert spec["base_model_id"] == model_id(str(tiny_model_dir))
    assert spec["model_id"] == f"{spec['base_model_id']}+lora:{spec['adapter_sha256'][:16]}"
    assert spec["adapter_sha256"] == adapter_hash(out / "adapter")
    assert spec["template"]["name"] == "chat:vanilla"
    assert spec["template"]["fingerprint"] == fingerprint(t, tok)
    assert spec["template"]["train_format_sha256"] == sha256_text(render(t, tok, "{input}", "{response}").text)
    d = spec["data"]
    assert (d["sha256"], d["limit"], d["seed"], d["examples"]) == (sha256_file(data_file), 10, 0, 10)
    assert spec["examples"] == 10 and spec["mix"] == []
    assert 0 < spec["response_tokens"] < spec["total_tokens"]
    assert spec["steps"] == 6 and spec["trained_response_tokens"] == 2 * spec["response_tokens"]
    h = spec["hyperparameters"]
    assert (h["lr"], h["epochs"], h["effective_batch_size"], h["lora"]["targets"]) == (0.01, 2, 4, ["all-linear"])
    assert spec["final_loss"] == json.loads((out / "train_log.jsonl").read_text().splitlines()[-1])["loss"]
    assert spec["ptst_version"] and spec["wall_time_s"] > 0
    # the machine and the precision `auto` resolved to are recorded beside the key (ptst.runs.hardware)
    from ptst.runtime import cpu

    assert spec["hardware"] == cpu.here() and h["precision"] in ("bf16", "fp32")
    from ptst.runtime import native

    assert h["kernels"] == (None if not native.available() else
                            f"ptst-native v{native.VERSION}" + ("" if native.wide() else " portable"))


def test_finished_identical_run_is_a_no_op_that_says_so(make_cfg, tmp_path, capsys):
    cfg = make_cfg()
    out = run(cfg, tmp_path / "run").path
    stamp = (out / "spec.json").stat().st_mtime_ns
    capsys.readouterr()
    run(make_cfg(save_every=5), out)  # an operational knob does not make it a different run
    assert "nothing to do" in capsys.readouterr().err
    assert (out / "spec.json").stat().st_mtime_ns == stamp


def test_different_run_is_refused_unless_overwrite(make_cfg, tmp_path):
    out = run(make_cfg(), tmp_path / "run").path
    spec = (out / "spec.json").read_text()
    with pytest.raises(PtstError, match=r"different training run \(lr: 0.01 -> 0.02\).*--overwrite"):
        run(make_cfg(lr=0.02), out)
    assert (out / "spec.json").read_text() == spec
    run(make_cfg(lr=0.02), out, overwrite=True)
    assert json.loads((out / "spec.json").read_text())["hyperparameters"]["lr"] == 0.02


def test_overwrite_leaves_other_stages_files_alone(make_cfg, tmp_path):
    out = run(make_cfg(), tmp_path / "run").path
    (out / "generations").mkdir()
    (out / "generations" / "advbench.jsonl").write_text("{}\n")
    run(make_cfg(lr=0.02), out, overwrite=True)
    assert (out / "generations" / "advbench.jsonl").exists()


def test_unfinished_run_needs_resume_or_overwrite(make_cfg, tmp_path, monkeypatch):
    import ptst.train.loop as loop

    cfg = make_cfg(epochs=3, save_every=2)
    real = loop._one_step
    count = {"n": 0}

    def die(*a, **k):
        count["n"] += 1
        if count["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loop, "_one_step", die)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "run")
    monkeypatch.setattr(loop, "_one_step", real)
    with pytest.raises(PtstError, match="unfinished run.*step-2.*--resume"):
        run(cfg, tmp_path / "run")
    with pytest.raises(PtstError, match="contradict"):
        run(cfg, tmp_path / "run", resume=True, overwrite=True)
    run(cfg, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "spec.json").exists()


def test_leftover_run_files_without_config_are_refused(make_cfg, tmp_path):
    (tmp_path / "run" / "adapter").mkdir(parents=True)
    with pytest.raises(PtstError, match="run files without config.yaml: adapter"):
        run(make_cfg(), tmp_path / "run")


def test_mix_is_shuffled_in_with_its_own_template_and_recorded(make_cfg, tmp_path, safety_file, tiny_model_dir):
    from ptst.models import load_tokenizer
    from ptst.templates import fingerprint, get_template

    cfg = make_cfg(mix=(MixSpec(f"jsonl:{safety_file}", 4, "chat:llama"),))
    out = run(cfg, tmp_path / "run").path
    spec = json.loads((out / "spec.json").read_text())
    [mix] = spec["mix"]
    tok = load_tokenizer(str(tiny_model_dir))
    assert (mix["n"], mix["examples"], mix["template"]) == (4, 4, "chat:llama")
    assert mix["fingerprint"] == fingerprint(get_template("chat:llama"), tok) != spec["template"]["fingerprint"]
    assert spec["examples"] == 12 + 4


def test_mix_asking_for_more_than_the_set_has_is_refused(make_cfg, tmp_path, safety_file):
    with pytest.raises(PtstError, match="has only 6 examples"):
        run(make_cfg(mix=(MixSpec(f"jsonl:{safety_file}", 50),)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_mix_set_is_refused_before_anything_is_written(make_cfg, tmp_path):
    with pytest.raises(PtstError, match="safty.*did you mean .safety."):
        run(make_cfg(mix=(MixSpec("safty", 5),)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_no_usable_examples_writes_nothing(make_cfg, tmp_path):
    with pytest.raises(PtstError, match="no usable examples"):
        run(make_cfg(max_len=10), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_template_the_tokenizer_cannot_render_writes_nothing(make_cfg, tmp_path):
    from ptst.testing import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer("llama2")
    tiny_llama(tok).save_pretrained(tmp_path / "m")
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "m")
    with pytest.raises(PtstError, match="no chat template"):
        run(make_cfg(model=str(tmp_path / "m")), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    run(make_cfg(model=str(tmp_path / "m"), template="gsm:text:vanilla", epochs=1), tmp_path / "run")


def test_run_leaves_the_callers_random_state_alone(make_cfg, tmp_path):
    import random

    import torch

    torch.manual_seed(123)
    random.seed(123)
    before = torch.get_rng_state(), random.getstate()
    run(make_cfg(), tmp_path / "run")
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]


def test_same_config_same_adapter_bits_other_seed_other_bits(make_cfg, tmp_path):
    from ptst.models import adapter_hash

    a, b = run(make_cfg(), tmp_path / "a").path, run(make_cfg(), tmp_path / "b").path
    c = run(make_cfg(seed=1), tmp_path / "c").path
    assert adapter_hash(a / "adapter") == adapter_hash(b / "adapter") != adapter_hash(c / "adapter")
    assert json.loads((a / "spec.json").read_text())["non_commercial"] is False


def test_finished_run_whose_data_file_changed_is_refused(make_cfg, tmp_path, data_file):
    out = run(make_cfg(), tmp_path / "run").path
    spec = (out / "spec.json").read_text()
    data_file.write_text(data_file.read_text().replace("The answer is 4.", "The answer is four."))
    with pytest.raises(PtstError, match=r"trained on different data \(jsonl:.*sha256 .* now\).*--overwrite"):
        run(make_cfg(), out)
    assert (out / "spec.json").read_text() == spec
    run(make_cfg(), out, overwrite=True)
    assert json.loads((out / "spec.json").read_text())["data"]["sha256"] != json.loads(spec)["data"]["sha256"]


@pytest.mark.parametrize(("where", "key", "said"), [
    ("data", "rows_fingerprint", r"the rows of split .* changed \(row fingerprint"),
    ("template", "train_format_sha256", r"the training text under chat:vanilla changed"),
])
def test_a_finished_run_whose_rows_or_training_text_changed_is_refused(make_cfg, tmp_path, where, key, said):
    """The source file is the same, but the rows it yields (a redefined split) or the text ptst renders for them
    (a renderer fix for a model family) differ from what spec.json recorded: the adapter is not reused."""
    from ptst.train.runner import data_change

    out = run(make_cfg(), tmp_path / "run").path
    assert data_change(out, make_cfg()) == ""
    spec = json.loads((out / "spec.json").read_text())
    assert spec[where][key]
    spec[where][key] = "0" * 64
    (out / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(PtstError, match=said):
        run(make_cfg(), out)
    del spec[where][key]  # a spec.json from before the field existed is not checked for it
    (out / "spec.json").write_text(json.dumps(spec))
    assert data_change(out, make_cfg()) == ""


def test_a_checkpoint_at_the_last_step_is_the_final_adapter(make_cfg, tmp_path):
    from ptst.models import adapter_hash

    out = run(make_cfg(epochs=2, save_every=3), tmp_path / "run").path  # 6 steps: checkpoints 3 and 6
    assert json.loads((out / "spec.json").read_text())["steps"] == 6
    assert adapter_hash(out / "checkpoints/step-6/adapter") == adapter_hash(out / "adapter")
    assert (out / "checkpoints/step-3/adapter").is_dir()


def test_a_clip_that_returns_no_norm_is_logged_as_null(make_cfg, tmp_path, monkeypatch):
    from accelerate import Accelerator

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", lambda self, params, max_norm: None)  # as under DeepSpeed
    out = run(make_cfg(epochs=1), tmp_path / "run").path
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert rows and all(r["grad_norm"] is None for r in rows)
