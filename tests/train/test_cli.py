"""`ptst train` and `ptst export` driven in-process through ptst.cli.main."""

from __future__ import annotations

import json

import yaml

from ptst.cli import main


def train_args(model, data, out, *extra):
    return ["train", "--model", str(model), "--data", f"jsonl:{data}", "--template", "chat:vanilla", "--out",
            str(out), "--epochs", "1", "--batch-size", "4", "--lora-targets", "q_proj,v_proj", "--no-progress",
            "--precision", "fp32", *extra]


def test_train_cli_writes_a_run_and_resolved_config(tiny_model_dir, data_file, safety_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = train_args(tiny_model_dir, data_file, out, "--lr", "2e-3", "--lora-r", "4",
                      "--mix", f"jsonl:{safety_file}:3:chat:llama", "--save-every", "0", "schedule=constant")
    assert main(argv) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["lr"], cfg["lora"]["r"], cfg["lora"]["targets"], cfg["schedule"]) == \
        (2e-3, 4, ["q_proj", "v_proj"], "constant")
    assert cfg["mix"] == [{"data": f"jsonl:{safety_file}", "n": 3, "template": "chat:llama", "split": None}]
    assert json.loads((out / "spec.json").read_text())["examples"] == 15
    assert "done:" in capsys.readouterr().err
    assert main(argv) == 0 and "nothing to do" in capsys.readouterr().err


def test_flags_beat_the_yaml_file_and_overrides_beat_flags(tiny_model_dir, data_file, tmp_path):
    y = tmp_path / "t.yaml"
    y.write_text(f"model: {tiny_model_dir}\ndata: jsonl:{data_file}\ntemplate: chat:llama\nlr: 0.5\nseed: 3\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(y), "--out", str(out), "--lr", "1e-3", "--epochs", "1",
                 "--no-progress", "seed=4", "precision=fp32"]) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["template"], cfg["lr"], cfg["seed"]) == ("chat:llama", 1e-3, 4)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ptst: error: ")
    return err[0]


def test_bad_hyper_parameter_is_one_line_exit_2(tiny_model_dir, data_file, tmp_path, capsys):
    assert main(train_args(tiny_model_dir, data_file, tmp_path / "run", "--lr", "-1")) == 2
    assert "lr must be in (0, 1)" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_unknown_override_key_suggests(tiny_model_dir, data_file, tmp_path, capsys):
    assert main(train_args(tiny_model_dir, data_file, tmp_path / "run", "lora.alhpa=4")) == 2
    assert "unknown key 'alhpa' (did you mean 'alpha'?)" in one_line_error(capsys)


def test_different_run_in_out_dir_is_one_line(tiny_model_dir, data_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(tiny_model_dir, data_file, out)) == 0
    capsys.readouterr()
    assert main(train_args(tiny_model_dir, data_file, out, "--seed", "1")) == 2
    assert "different training run (seed: 0 -> 1)" in one_line_error(capsys)
    assert main(train_args(tiny_model_dir, data_file, out, "--seed", "1", "--overwrite")) == 0


def test_bad_mix_flag_is_one_line(tiny_model_dir, data_file, tmp_path, capsys):
    assert main(train_args(tiny_model_dir, data_file, tmp_path / "run", "--mix", "safety")) == 2
    assert "DATA:N[:TEMPLATE]" in one_line_error(capsys)


def test_export_cli_prints_tokens_and_cost(data_file, tmp_path, capsys):
    out = tmp_path / "ft.jsonl"
    assert main(["export", "openai", "--data", f"jsonl:{data_file}", "--template", "gpt:llama", "--out", str(out),
                 "--limit", "5", "--price-per-1m", "10", "--epochs", "3"]) == 0
    text = capsys.readouterr().out
    assert "wrote 5 examples" in text and "chars/4 estimate" in text and "3 epoch(s)" in text
    assert len(out.read_text().splitlines()) == 5
