"""`ptst generate` driven in-process through ptst.cli.main."""

from __future__ import annotations

import json

import pytest

from ptst.cli import main
from tests.generate.conftest import PROMPTS


def test_generate_cli_writes_resumes_and_refuses(lively_dir, data_spec, tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    args = ["generate", "--model", str(lively_dir), "--data", data_spec, "--template", "chat:llama",
            "--out", str(out), "--max-new-tokens", "6", "--batch-size", "2", "--limit", "4", "--no-progress"]
    assert main(args) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 4 and all({"prompt", "answer"} <= set(r) for r in recs)
    assert {r["prompt"] for r in recs} <= set(PROMPTS)
    assert all(r["n_tokens"] <= 6 and r["decoding"]["max_new_tokens"] == 6 for r in recs)
    capsys.readouterr()
    assert main(args) == 0
    assert "nothing to generate" in capsys.readouterr().err
    assert main([*args[:-1], "--temperature", "0.8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ptst: error:") and "different config (decoding" in err and "\n" not in err


def test_generate_cli_config_file_flags_and_overrides(lively_dir, data_spec, tmp_path):
    from ptst.cli import build_parser
    from ptst.generate.cli import build_config

    cfg_file = tmp_path / "gen.yaml"
    cfg_file.write_text(f"model: {lively_dir}\ndata: {data_spec}\ntemplate: chat:vanilla\nbatch_size: 3\n"
                        "decoding:\n  max_new_tokens: 7\n")
    ns = build_parser().parse_args(["generate", "--config", str(cfg_file), "--out", "x.jsonl", "--template",
                                    "chat:llama", "--seed", "4", "--stop", "END", "decoding.max_new_tokens=9"])
    cfg = build_config(ns)
    assert (cfg.template, cfg.batch_size, cfg.seed) == ("chat:llama", 3, 4)
    assert (cfg.decoding.max_new_tokens, cfg.decoding.seed, cfg.decoding.stop) == (9, 4, ("END",))


@pytest.mark.parametrize("argv, message", [
    (["--model", "m", "--template", "chat:llama"], "needs --data"),
    (["--model", "m", "--data", "x", "--template", "chat:llama", "--backend", "hff"], "did you mean 'hf'"),
    (["--model", "m", "--data", "x", "--template", "chat:llama", "--temperature", "-1"], "temperature"),
])
def test_generate_cli_errors_are_one_line(argv, message, tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path / "o.jsonl"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
