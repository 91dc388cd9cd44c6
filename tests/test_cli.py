"""The CLI driven in-process: help, templates, error lines and exit codes."""

from __future__ import annotations

import subprocess
import sys
import time

from ptst.cli import main


def test_help_is_fast_and_lists_verbs(capsys):
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ptst", "--help"], capture_output=True, text=True, check=True)
    assert "templates" in out.stdout
    assert time.perf_counter() - t < 5  # generous: the real bar (<1 s) is checked by not importing torch below
    code = "import sys, ptst.cli; ptst.cli.build_parser(); print('torch' in sys.modules, 'transformers' in sys.modules)"
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert heavy.strip() == "False False"


def test_templates_list(capsys):
    assert main(["templates", "list"]) == 0
    out = capsys.readouterr().out
    for name in ["text:vanilla", "text:alpaca", "chat:vanilla", "chat:alpaca", "chat:llama", "chat:llama-short",
                 "chat:mpt", "chat:mistral", "gsm:chat:llama", "gpt:llama"]:
        assert f"\n{name} " in "\n" + out


def test_templates_show_with_model(capsys, tiny_model_dir):
    assert main(["templates", "show", "chat:llama-short", "--model", str(tiny_model_dir), "--input", "hi"]) == 0
    out = capsys.readouterr().out
    assert "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant." in out
    assert "hi [/INST]" in out and "tokens" in out and "fingerprint" in out


def test_templates_show_reveals_injected_default_system(capsys, tiny_chatml_dir):
    assert main(["templates", "show", "chat:vanilla", "--model", str(tiny_chatml_dir)]) == 0
    out = capsys.readouterr().out
    assert "injects default system prompt" in out and "policy drop" in out


def test_unknown_template_is_one_line_exit_2(capsys):
    assert main(["templates", "show", "chat:lama"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'chat:llama'" in err


def test_missing_model_path_is_one_line(capsys):
    assert main(["templates", "show", "chat:llama", "--model", "./no/such/model"]) == 2
    assert "model path does not exist" in capsys.readouterr().err
