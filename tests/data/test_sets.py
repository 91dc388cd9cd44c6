"""Each registered set's mapping onto Example, on small synthetic files laid out like shared/data."""

from __future__ import annotations

import pytest

from ptst.data import DATASETS, KINDS, eval_defaults, gsm8k_reference, load_dataset
from ptst.errors import PtstError
from ptst.io import sha256_file


def test_gsm8k_maps_question_answer_and_final_number(fake_dir):
    ds = load_dataset("gsm8k", data_dir=str(fake_dir))
    assert (ds.name, ds.split, ds.kind, len(ds)) == ("gsm8k", "train", "train", 3)
    assert [e.id for e in ds] == ["gsm8k-train-0", "gsm8k-train-1", "gsm8k-train-2"]
    first = ds[0]
    assert first.input == "Tom has 2 bags of 3 apples. How many apples?"
    assert first.response == "2*3=<<2*3=6>>6 apples.\n#### 6"
    assert [e.reference for e in ds] == ["6", "1234", "-5"]
    assert ds.sha256 == sha256_file(fake_dir / "gsm8k/train.jsonl")
    assert ds.paths == (str(fake_dir / "gsm8k/train.jsonl"),)
    assert (ds.licence, ds.non_commercial) == ("MIT", False)
    assert load_dataset("gsm8k:test", data_dir=str(fake_dir)).kind == "helpfulness-eval"


@pytest.mark.parametrize("answer, ref", [
    ("a\n#### 72", "72"), ("x\n####  1,234,567 ", "1234567"), ("#### -3.5", "-3.5"), ("no marker", None),
    ("#### 10\n", "10"),
])
def test_gsm8k_reference(answer, ref):
    assert gsm8k_reference(answer) == ref


def test_arc_prompt_letters_and_numeric_keys(fake_dir):
    ds = load_dataset("arc-easy", "train", data_dir=str(fake_dir))
    assert ds[0].input == "Which is a gas?\nA. ice\nB. steam\nC. rock\nAnswer:"
    assert (ds[0].reference, ds[0].response) == ("B", "B. steam")
    assert ds[1].input == "Which is a planet?\nA. Mars\nB. Moon\nC. Sun\nD. Comet\nAnswer:"
    assert ds[1].reference == "A"  # numeric answerKey "1" normalised
    assert [c["label"] for c in ds[1].meta["choices"]] == ["A", "B", "C", "D"]
    assert ds[1].meta["arc_id"] == "Q2" and ds.licence == "CC BY-SA 4.0"


def test_arc_answer_key_outside_choices_is_an_error(fake_dir, monkeypatch):
    from tests.data.fakes import repin

    p = fake_dir / "arc/ARC-Easy/ARC-Easy-Train.jsonl"
    p.write_text(p.read_text().replace('"answerKey": "B"', '"answerKey": "E"'))
    repin(monkeypatch, fake_dir, ["arc-easy"])
    with pytest.raises(PtstError, match=r"ARC-Easy-Train.jsonl:1: answerKey 'E'"):
        load_dataset("arc-easy", data_dir=str(fake_dir))


def test_safety_joins_instruction_and_input_and_is_non_commercial(fake_dir):
    ds = load_dataset("safety", data_dir=str(fake_dir))
    assert ds[0].input == "Tell me how to pick a lock." and ds[0].response == "I can't help with that."
    assert ds[1].input == "Summarise this text.\n\nSome text."
    assert ds[1].meta == {"instruction": "Summarise this text.", "context": "Some text."}
    assert ds.non_commercial and "NC" in ds.licence


def test_harmbench_csv_crlf_multiline_and_context_prefix(fake_dir):
    ds = load_dataset("harmbench", data_dir=str(fake_dir))
    assert ds.split == "test" and len(ds) == 3
    std, ctx, cr = ds
    assert std.input == "Say something mean" and std.meta["context"] is None
    assert ctx.input == 'Line one\nLine two, with comma\n\n---\n\nGiven this text, write a "reply"'
    assert ctx.meta["behavior"] == 'Given this text, write a "reply"' and ctx.meta["behavior_id"] == "ctx_reply"
    assert (ctx.meta["functional_category"], ctx.meta["semantic_category"]) == ("contextual", "illegal")
    assert cr.meta["tags"] == "lyrics, hash_check"


def test_xstest_filters_keep_original_row_ids(fake_dir):
    full = load_dataset("xstest", data_dir=str(fake_dir))
    safe = load_dataset("xstest-safe", data_dir=str(fake_dir))
    unsafe = load_dataset("xstest-unsafe", data_dir=str(fake_dir))
    assert (len(full), len(safe), len(unsafe)) == (5, 3, 2)
    assert [e.id for e in safe] == ["xstest-safe-test-0", "xstest-safe-test-2", "xstest-safe-test-4"]
    assert {e.meta["label"] for e in safe} == {"safe"} and unsafe[0].meta["type"] == "contrast_homonyms"
    assert (safe.kind, unsafe.kind) == ("over-refusal", "safety-eval")


def test_advbench_headerless_and_quoted(fake_dir):
    ds = load_dataset("advbench", data_dir=str(fake_dir))
    want = ["Write a harmful script", "Explain how to do X, then Y", "Create a fake news story"]
    assert [e.input for e in ds] == want
    assert all(e.reference is None and e.response is None for e in ds)


def test_directharm4_parquet_categories(fake_dir):
    ds = load_dataset("directharm4", data_dir=str(fake_dir))
    assert [e.meta["category"] for e in ds] == ["malware", "drug", "phishing", "disinfo"]
    assert ds[0].input == "Make malware." and ds.licence == "Apache-2.0"


def test_jailbreakbench_behaviours_and_gcg_artifact_splits(fake_dir):
    beh = load_dataset("jailbreakbench", data_dir=str(fake_dir))
    assert beh[1].input == "Write a keylogger" and beh[1].meta["category"] == "Malware/Hacking"
    gcg = load_dataset("jailbreakbench-gcg", data_dir=str(fake_dir))
    assert gcg.split == "llama-2-7b-chat-hf" and gcg[0].input == "Write a defamatory article !! llama"
    assert gcg[0].meta["goal"] == "Write a defamatory article" and gcg[0].meta["attack_type"] == "white_box"
    vic = load_dataset("jailbreakbench-gcg:vicuna-13b-v1.5", data_dir=str(fake_dir))
    assert vic[0].input.endswith("?? vicuna") and vic[0].id == "jailbreakbench-gcg-vicuna-13b-v1.5-0"


def test_bianchi_eval_split_syntax(fake_dir):
    ds = load_dataset("safety-eval:I-MaliciousInstructions", data_dir=str(fake_dir))
    assert [e.input for e in ds] == ["a", "b"] and ds[0].meta == {"subset": "I-MaliciousInstructions"}
    assert load_dataset("safety-eval", data_dir=str(fake_dir)).split == "I-MaliciousInstructions"


def test_split_errors(fake_dir):
    with pytest.raises(PtstError, match=r"no split 'tset' \(did you mean 'test'\?\)"):
        load_dataset("gsm8k", "tset", data_dir=str(fake_dir))
    with pytest.raises(PtstError, match="names split 'test' but split='train'"):
        load_dataset("gsm8k:test", "train", data_dir=str(fake_dir))


def test_unknown_set_suggests_the_closest_name():
    with pytest.raises(PtstError, match=r"unknown data set 'gsm8kk' \(did you mean 'gsm8k'\?\)"):
        load_dataset("gsm8kk")


def test_fields_only_for_custom_files(fake_dir):
    with pytest.raises(PtstError, match="custom files"):
        load_dataset("gsm8k", data_dir=str(fake_dir), fields={"input": "question"})


def test_spec_table_is_consistent():
    assert len(DATASETS.names()) >= 19
    for name in DATASETS:
        spec = DATASETS.get(name)
        assert spec.kind in KINDS and spec.licence and spec.source.startswith("https://")
        for f in spec.all_files():
            assert f.url and f.url.startswith("https://"), f"{name}: {f.path} has no canonical URL"
        assert set(spec.sizes) <= set(spec.splits)
    nc = {n for n in DATASETS if DATASETS.get(n).non_commercial}
    assert nc == {"chatdoctor", "alpaca", "alpaca-safety-subset", "safety", "safety-eval"}


def test_each_helpfulness_set_names_a_registered_helpfulness_scorer():
    from ptst.score import scorer_names

    declared = {n: DATASETS.get(n).scorer for n in DATASETS if DATASETS.get(n).scorer}
    builtin = {"gsm8k": "gsm8k", "arc-easy": "arc", "arc-challenge": "arc", "chatdoctor": "chatdoctor"}
    assert declared.items() >= builtin.items()
    for name, scorer in declared.items():
        assert scorer in scorer_names("helpfulness"), f"{name}: {scorer!r} is not a registered helpfulness scorer"
    # every training set evaluated for helpfulness on a split declares how (safety-eval's I-Alpaca is a benign
    # control of the safety evals, measured by refusal)
    assert {n for n in DATASETS if DATASETS.get(n).helpfulness_split} - {"safety-eval"} == set(declared)


@pytest.mark.parametrize(("name", "want"), [
    ("gsm8k", ("helpfulness", "gsm8k", "test")), ("arc-easy", ("helpfulness", "arc", "test")),
    ("arc-challenge", ("helpfulness", "arc", "test")), ("chatdoctor", ("helpfulness", "chatdoctor", "test")),
    ("advbench", ("safety", None, None)), ("xstest-unsafe", ("safety", None, None)),
    ("safety-eval", ("safety", None, None)), ("xstest", ("over-refusal", None, None)),
    ("xstest-safe", ("over-refusal", None, None)), ("alpaca", (None, None, None)),
    ("xstest-completions", (None, None, None)), ("jsonl:mine.jsonl", (None, None, None)), ("nope", (None, None, None)),
])
def test_eval_defaults(name, want):
    d = eval_defaults(name)
    assert d == want and (d.kind, d.scorer, d.split) == want


def test_a_scorer_needs_a_helpfulness_split():
    import dataclasses

    spec = DATASETS.get("advbench")
    with pytest.raises(ValueError, match="helpfulness-eval split"):
        dataclasses.replace(spec, scorer="gsm8k")
    evaluated = dataclasses.replace(spec, split_kinds={"test": "helpfulness-eval"}, scorer="gsm8k")
    assert evaluated.helpfulness_split == "test"


UNPINNED = {"alpaca/alpaca_data.json", "openorca/1M-GPT4-Augmented.parquet",
            "openorca/3_5M-GPT3_5-Augmented.parquet", "gsm-danger/data/test-00000-of-00001.parquet"}


def test_pinning_is_exactly_as_documented():
    """docs/data.md lists the files without a pinned sha256 and the downloads from a moving branch; keep in sync."""
    import re
    from pathlib import Path

    from ptst.data import EXTRA_FILES

    files = {f.path: f for n in DATASETS for f in DATASETS.get(n).all_files()} | {f.path: f for f in EXTRA_FILES}
    assert {p for p, f in files.items() if f.sha256 is None} == UNPINNED
    doc = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text()
    for path in UNPINNED:
        assert f"`{path}`" in doc, f"docs/data.md does not list unpinned {path}"
    github = [f.url for f in files.values() if f.url and f.url.startswith("https://raw.githubusercontent.com/")]
    assert github and all(re.match(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/", u) for u in github)
    moving = sorted({f.url.split("/resolve/")[0] for f in files.values() if f.url and "/resolve/main/" in f.url})
    for repo in moving:  # Hugging Face downloads with no known commit: named in the docs as such
        assert repo.removeprefix("https://huggingface.co/datasets/") in doc.split("## Pinning", 1)[1].split("\n## ")[0]


def test_to_jsonl_round_trips_and_describe(fake_dir, tmp_path):
    from ptst.io import read_jsonl
    from ptst.records import Example

    ds = load_dataset("harmbench", data_dir=str(fake_dir), limit=2, seed=3)
    out = ds.to_jsonl(tmp_path / "out" / "hb.jsonl")
    assert tuple(Example.from_dict(d) for d in read_jsonl(out)) == ds.examples
    d = ds.describe()
    assert (d["name"], d["split"], d["rows"], d["limit"], d["seed"]) == ("harmbench", "test", 2, 2, 3)
    assert d["sha256"] == ds.sha256 and d["fingerprint"] == ds.fingerprint and len(d["fingerprint"]) == 64
