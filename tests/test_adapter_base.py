"""An adapter is used only on the weights it was trained on: `ptst train` records the base's content identity
beside every adapter it saves (ptst_base.json), and generate, eval and serve refuse other weights in one line,
before any model loads; older adapters fall back to the run's spec.json, then to the base model's name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptst.cli import main
from ptst.errors import PtstError
from ptst.generate.runner import check_adapter_base, recorded_base
from ptst.models import BASE_RECORD, adapter_hash, base_identity, model_id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two tiny bases with the same architecture and different weights ("shipped" and "aligned"), and a ptst
    training run on "aligned" (final adapter and checkpoints), trained once for the module."""
    from ptst.testing import save_tiny, tiny_data
    from ptst.train import LoraConfig, TrainConfig
    from ptst.train import run as train

    root = tmp_path_factory.mktemp("adapter-base")
    with pytest.MonkeyPatch.context() as mp:  # the autouse cache fixture is per test: keep ~/.cache out of this
        mp.setenv("PTST_CACHE_DIR", str(root / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        shipped, aligned = save_tiny(root / "shipped", seed=0), save_tiny(root / "aligned", seed=1)
        data = tiny_data(root / "data")
        cfg = TrainConfig(model=str(aligned), data=f"jsonl:{data['train']}", template="chat:vanilla", epochs=1,
                          batch_size=4, lr=1e-2, save_every=1, keep_checkpoints=1, precision="fp32",
                          lora=LoraConfig(targets=("q_proj", "v_proj")))
        run = train(cfg, root / "run", progress=False).path
    yield {"root": root, "shipped": shipped, "aligned": aligned, "run": run, "adapter": run / "adapter",
           "harm": data["harm"], "gsm": data["gsm"]}


def _ckpt_adapter(run: Path) -> Path:
    (ckpt,) = (run / "checkpoints").iterdir()
    return ckpt / "adapter"


def _gen_args(model: Path | str, adapter: Path, data: Path, out: Path) -> list[str]:
    return ["generate", "--model", str(model), "--adapter", str(adapter), "--data", f"jsonl:{data}",
            "--template", "chat:llama", "--out", str(out), "--max-new-tokens", "2", "--limit", "2", "--no-progress"]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ptst: error: ") and "\n" not in err, err
    return err


def test_every_saved_adapter_records_its_base_and_keeps_its_hash(world):
    spec = json.loads((world["run"] / "spec.json").read_text())
    for adapter in (world["adapter"], _ckpt_adapter(world["run"])):
        record = json.loads((adapter / BASE_RECORD).read_text())
        assert record == {"base_model_id": base_identity(str(world["aligned"])), "base_model": str(world["aligned"])}
        assert record["base_model_id"] == spec["base_model_id"]  # a directory: the same dir_fingerprint
    assert adapter_hash(world["adapter"]) == spec["adapter_sha256"]  # the record is not part of the adapter hash
    assert base_identity(str(world["shipped"])) != base_identity(str(world["aligned"]))
    assert not list(world["adapter"].glob(".*.tmp"))


def test_generate_refuses_other_weights_in_one_line_before_loading(world, tmp_path, capsys, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def no_load(*a, **k):
        raise AssertionError("a model loaded before the adapter check")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", no_load)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_load)
    out = tmp_path / "o.jsonl"
    assert main(_gen_args(world["shipped"], world["adapter"], world["harm"], out)) == 2
    err = _one_error_line(capsys)
    want, have = base_identity(str(world["aligned"])), base_identity(str(world["shipped"]))
    assert f"adapter {world['adapter']} was trained on {want[:16]}... ({world['aligned']}), " \
           f"not on {world['shipped']} ({have[:16]}...); pass --model {world['aligned']}" in err
    assert not out.exists()


def test_generate_accepts_the_base_it_was_trained_on_even_moved(world, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(world["aligned"], moved)
    for model in (world["aligned"], moved):
        out = tmp_path / f"{model.name}.jsonl"
        assert main(_gen_args(model, world["adapter"], world["harm"], out)) == 0
        assert len(out.read_text().splitlines()) == 2


def test_eval_refuses_other_weights_and_accepts_its_base(world, tmp_path):
    """`ptst eval` takes jsonl sets only with a kind, which its flags cannot give: driven through evaluate.run,
    as the grid does (the CLI turns the same PtstError into exit 2)."""
    from ptst.evaluate import run as evaluate
    from ptst.specs.eval import EvalConfig, EvalSpec

    def cfg(model: Path) -> EvalConfig:
        return EvalConfig(model=str(model), adapter=str(world["adapter"]), template="chat:llama",
                          evals=[EvalSpec(f"jsonl:{world['gsm']}", kind="helpfulness", scorer="gsm8k", limit=2)],
                          decoding={"max_new_tokens": 2})

    with pytest.raises(PtstError, match=rf"was trained on dir:.*; pass --model {world['aligned']}$") as e:
        evaluate(cfg(world["shipped"]), tmp_path / "bad")
    assert "\n" not in str(e.value) and not (tmp_path / "bad" / "metrics.json").exists()
    assert not (tmp_path / "bad" / "generations").exists()
    assert evaluate(cfg(world["aligned"]), tmp_path / "good").exists()


def test_serve_refuses_other_weights_before_binding(world, capsys, monkeypatch):
    import httpx

    from ptst.serve import app as serve_app
    from tests.openai_stub import free_port

    def no_weights(*a, **k):
        raise AssertionError("weights loaded before the adapter check")

    monkeypatch.setattr(serve_app, "_load_backend", no_weights)
    port = free_port()
    assert main(["serve", "--model", str(world["shipped"]), "--adapter", str(world["adapter"]),
                 "--port", str(port)]) == 2
    err = _one_error_line(capsys)
    assert "was trained on dir:" in err and f"pass --model {world['aligned']}" in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_serve_checks_once_per_server_not_per_request(world, llama2_tok, monkeypatch):
    import httpx

    from ptst.generate import runner
    from ptst.serve import ServeConfig, create_app
    from tests.serve.conftest import EchoBackend, chat, running

    calls: list[tuple[str, str]] = []
    real = runner.check_adapter_base
    monkeypatch.setattr(runner, "check_adapter_base", lambda a, m: calls.append((a, m)) or real(a, m))
    cfg = ServeConfig(model=str(world["aligned"]), adapter=str(world["adapter"]), max_context=2048,
                      max_new_tokens_limit=8)
    with running(create_app(cfg, EchoBackend(), llama2_tok)) as url:
        for _ in range(3):
            assert httpx.post(url + "/v1/chat/completions", json=chat(model=str(world["aligned"]))).status_code == 200
    assert calls == [(str(world["adapter"]), str(world["aligned"]))]


def test_without_the_record_the_runs_spec_json_decides(world, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(world["run"], run)
    adapters = [run / "adapter", _ckpt_adapter(run)]
    for adapter in adapters:
        (adapter / BASE_RECORD).unlink()
        assert recorded_base(adapter) == (base_identity(str(world["aligned"])), str(world["aligned"]))
        check_adapter_base(str(adapter), str(world["aligned"]))
        with pytest.raises(PtstError, match=r"was trained on dir:.*not on .*shipped.*pass --model") as e:
            check_adapter_base(str(adapter), str(world["shipped"]))
        assert "\n" not in str(e.value)


def test_an_adapter_with_neither_falls_back_to_the_name_check(world, tmp_path, llama2_tok):
    from ptst.testing import tiny_llama

    old = tmp_path / "old-adapter"
    shutil.copytree(world["adapter"], old)
    (old / BASE_RECORD).unlink()
    assert recorded_base(old) is None
    check_adapter_base(str(old), str(world["shipped"]))  # same shapes, another name: only PEFT could tell
    wider = tmp_path / "wider"
    tiny_llama(llama2_tok, hidden=32).save_pretrained(wider)
    llama2_tok.save_pretrained(wider)
    with pytest.raises(PtstError, match="hidden_size 16 vs 32"):
        check_adapter_base(str(old), str(wider))


def _fake_adapter(d: Path, record: dict | None = None, spec: dict | None = None) -> Path:
    adapter = d / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": None}))
    if record is not None:
        (adapter / BASE_RECORD).write_text(json.dumps(record))
    if spec is not None:
        (d / "spec.json").write_text(json.dumps({"kind": "ptst.train", "method": "lora", **spec}))
    return adapter


@pytest.fixture
def gguf(smollm2) -> Path:
    from ptst.models import resolve

    ref = resolve(smollm2)
    return Path(ref.path) / str(ref.gguf_file)


def test_an_alias_and_its_gguf_file_are_one_base(smollm2, gguf, tmp_path, tiny_model_dir):
    assert base_identity(smollm2) == base_identity(str(gguf)) == model_id(str(gguf))
    assert base_identity(smollm2).startswith("gguf:") and model_id(smollm2) == smollm2  # cache keys unchanged
    # spec.json names an alias by its name: the check reads it as the GGUF's content
    adapter = _fake_adapter(tmp_path / "run", spec={"base_model_id": smollm2, "base_model": smollm2})
    check_adapter_base(str(adapter), str(gguf))
    with pytest.raises(PtstError) as e:
        check_adapter_base(str(adapter), str(tiny_model_dir))
    assert f"was trained on {base_identity(smollm2)[:17]}... ({smollm2}), not on {tiny_model_dir} (dir:" \
           in str(e.value) and str(e.value).endswith(f"; pass --model {smollm2}")


def test_the_issue_case_an_aligned_adapter_on_the_alias(smollm2, tmp_path, tiny_model_dir):
    adapter = _fake_adapter(tmp_path / "q", {"base_model_id": base_identity(str(tiny_model_dir)),
                                             "base_model": str(tiny_model_dir)})
    with pytest.raises(PtstError, match=rf"was trained on dir:\w{{12}}\.\.\. \(.*\), not on smollm2-135m "
                                        rf"\(gguf:\w{{12}}\.\.\.\); pass --model {tiny_model_dir}$"):
        check_adapter_base(str(adapter), smollm2)


def test_hub_ids_compare_by_name_and_a_changed_base_says_so(tmp_path, tiny_model_dir):
    adapter = _fake_adapter(tmp_path / "a", {"base_model_id": "Org/Model-A", "base_model": "Org/Model-A"})
    check_adapter_base(str(adapter), "org/model-a")
    with pytest.raises(PtstError, match=r"trained on Org/Model-A, not on org/model-b; pass --model Org/Model-A$"):
        check_adapter_base(str(adapter), "org/model-b")
    check_adapter_base(str(adapter), str(tiny_model_dir))  # hub id vs local weights: the name check decides
    gone = _fake_adapter(tmp_path / "b", {"base_model_id": "dir:" + "0" * 64, "base_model": str(tmp_path / "x")})
    with pytest.raises(PtstError, match=r"is not found from here\)$"):
        check_adapter_base(str(gone), str(tiny_model_dir))
    changed = _fake_adapter(tmp_path / "c", {"base_model_id": "dir:" + "0" * 64, "base_model": str(tiny_model_dir)})
    with pytest.raises(PtstError, match=r"holds others now\)$"):
        check_adapter_base(str(changed), str(tiny_model_dir))


def test_a_broken_record_is_one_line(tmp_path, tiny_model_dir):
    adapter = _fake_adapter(tmp_path, {"something": 1})
    with pytest.raises(PtstError, match="is not a ptst base record"):
        check_adapter_base(str(adapter), str(tiny_model_dir))
    (adapter / BASE_RECORD).write_text("{")
    with pytest.raises(PtstError, match="is not readable JSON"):
        check_adapter_base(str(adapter), str(tiny_model_dir))
    (adapter / BASE_RECORD).unlink()
    (tmp_path / "spec.json").write_text("{")  # a broken spec.json is only a fallback: the name check decides
    check_adapter_base(str(adapter), str(tiny_model_dir))
