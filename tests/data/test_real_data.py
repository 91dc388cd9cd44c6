"""The real files in ../shared/data: row counts as in MANIFEST.md, field extraction, and `ptst data check`."""

from __future__ import annotations

import collections
import csv
import json
import re

import pytest

from ptst.cli import main
from ptst.data import DATASETS, load_dataset
from ptst.data.sources import find_local

pytestmark = pytest.mark.slow

# Row counts as published in shared/data/MANIFEST.md (independent of the spec table's `sizes`).
MANIFEST_ROWS = {
    ("gsm8k", "train"): 7473, ("gsm8k", "test"): 1319,
    ("arc-easy", "train"): 2251, ("arc-easy", "dev"): 570, ("arc-easy", "test"): 2376,
    ("arc-challenge", "train"): 1119, ("arc-challenge", "dev"): 299, ("arc-challenge", "test"): 1172,
    # ChatDoctor: MANIFEST's 5452 rows, split 4900 / 552 by ptst's hash rule (test_chatdoctor_split.py)
    ("chatdoctor", "train"): 4900, ("chatdoctor", "test"): 552, ("alpaca-safety-subset", "train"): 1904,
    ("safety", "train"): 2483,
    ("advbench", "test"): 520, ("directharm4", "test"): 400, ("strongreject", "test"): 313,
    ("harmbench", "all"): 400, ("harmbench", "test"): 320, ("harmbench", "val"): 80,
    ("jailbreakbench", "test"): 100, ("jailbreakbench-gcg", "llama-2-7b-chat-hf"): 100,
    ("jailbreakbench-gcg", "vicuna-13b-v1.5"): 100, ("jailbreakbench-gcg", "gpt-3.5-turbo-1106"): 100,
    ("jailbreakbench-gcg", "gpt-4-0125-preview"): 100,
    ("safety-eval", "I-Alpaca"): 50, ("safety-eval", "I-CoNa"): 178, ("safety-eval", "I-Controversial"): 40,
    ("safety-eval", "I-MaliciousInstructions"): 100, ("safety-eval", "I-PhysicalSafetySafe"): 100,
    ("safety-eval", "I-PhysicalSafetyUnsafe"): 100, ("safety-eval", "Q-Harm"): 100,
    ("xstest", "test"): 450, ("xstest-safe", "test"): 250, ("xstest-unsafe", "test"): 200,
    # judge validation (MANIFEST section 10): 5 systems x 450 XSTest answers, 300 JBB answers
    ("xstest-completions", "all"): 2250, **{("xstest-completions", m): 450 for m in (
        "gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")},
    ("jbb-judge-comparison", "test"): 300,
}


@pytest.mark.parametrize("name, split", sorted(MANIFEST_ROWS))
def test_row_counts_match_manifest(shared_data, name, split):
    ds = load_dataset(name, split, data_dir=str(shared_data))
    assert len(ds) == MANIFEST_ROWS[name, split] == DATASETS.get(name).sizes[split]
    assert len({e.id for e in ds}) == len(ds) and all(e.input.strip() for e in ds)


def test_every_local_split_is_covered(shared_data):
    local = {(n, s) for n in DATASETS for s in DATASETS.get(n).splits
             if all(find_local(f, shared_data) for f in DATASETS.get(n).files[s])}
    assert local == set(MANIFEST_ROWS)


def test_gsm8k_references_are_the_final_numbers(shared_data):
    for split in ("train", "test"):
        ds = load_dataset("gsm8k", split, data_dir=str(shared_data))
        raw = [json.loads(line) for line in open(shared_data / f"gsm8k/{split}.jsonl")]
        assert all(re.fullmatch(r"-?\d+(\.\d+)?", e.reference or "") for e in ds)
        assert [e.reference for e in ds] == [r["answer"].split("####")[-1].strip().replace(",", "") for r in raw]
        assert [e.input for e in ds] == [r["question"] for r in raw]
    first = load_dataset("gsm8k", "train", data_dir=str(shared_data))[0]
    assert first.reference == "72" and first.response.endswith("#### 72")


def test_directharm4_is_four_categories_of_100(shared_data):
    ds = load_dataset("directharm4", data_dir=str(shared_data))
    cats = [e.meta["category"] for e in ds]
    assert collections.Counter(cats) == dict.fromkeys(["malware", "drug", "phishing", "disinfo"], 100)
    assert cats == sorted(cats, key=["malware", "drug", "phishing", "disinfo"].index)  # in that order
    with open(shared_data / "directharm4/test.jsonl", encoding="utf-8") as f:  # the converted copy agrees
        assert [json.loads(line)["instruction"] for line in f] == [e.input for e in ds]


def test_xstest_safe_and_unsafe(shared_data):
    safe = load_dataset("xstest-safe", data_dir=str(shared_data))
    unsafe = load_dataset("xstest-unsafe", data_dir=str(shared_data))
    assert (len(safe), len(unsafe)) == (250, 200)
    assert all(e.meta["type"].startswith("contrast_") for e in unsafe)
    assert not any(e.meta["type"].startswith("contrast_") for e in safe)


def test_harmbench_categories_and_context(shared_data):
    by = {s: load_dataset("harmbench", s, data_dir=str(shared_data)) for s in ("all", "test", "val")}
    fc = collections.Counter(e.meta["functional_category"] for e in by["all"])
    assert fc == {"standard": 200, "contextual": 100, "copyright": 100}
    ids = {s: {e.meta["behavior_id"] for e in ds} for s, ds in by.items()}
    assert ids["test"] | ids["val"] == ids["all"] and not ids["test"] & ids["val"]
    for e in by["all"]:
        if e.meta["functional_category"] == "contextual":
            assert e.input == f"{e.meta['context']}\n\n---\n\n{e.meta['behavior']}" and e.meta["context"]
        else:
            assert e.input == e.meta["behavior"]


def test_advbench_ptst_copy_equals_original_goals(shared_data):
    ds = load_dataset("advbench", data_dir=str(shared_data))
    with open(shared_data / "advbench/harmful_behaviors.csv", newline="", encoding="utf-8") as f:
        assert [e.input for e in ds] == [r["goal"] for r in csv.DictReader(f)]


def test_jailbreakbench_goals_and_gcg_prompts(shared_data):
    beh = load_dataset("jailbreakbench", data_dir=str(shared_data))
    with open(shared_data / "jailbreakbench/jbb_behaviors_from_gcg_artifacts.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [e.input for e in beh] == [r["goal"] for r in rows]
    assert collections.Counter(e.meta["category"] for e in beh) == collections.Counter(r["category"] for r in rows)
    for split in DATASETS.get("jailbreakbench-gcg").splits:
        gcg = load_dataset("jailbreakbench-gcg", split, data_dir=str(shared_data))
        assert all(e.input != e.meta["goal"] for e in gcg)  # every prompt carries a suffix
        # MANIFEST: 4 goals were later shortened in JBB-Behaviors; their GCG prompts start from the short goal.
        assert [e.meta["jbb_index"] for e in gcg if not e.input.startswith(e.meta["goal"])] == [3, 40, 43, 47]


def test_arc_references_are_letters_among_choices(shared_data):
    for name in ("arc-easy", "arc-challenge"):
        for split in ("train", "dev", "test"):
            for e in load_dataset(name, split, data_dir=str(shared_data)):
                labels = [c["label"] for c in e.meta["choices"]]
                assert e.reference in labels and set(labels) <= set("ABCDE") and e.input.endswith("\nAnswer:")


def test_non_commercial_flags(shared_data):
    assert load_dataset("chatdoctor", data_dir=str(shared_data)).non_commercial
    assert load_dataset("safety", data_dir=str(shared_data)).non_commercial
    assert not load_dataset("strongreject", data_dir=str(shared_data)).non_commercial


def test_data_check_passes_on_shared_data(shared_data, capsys):
    assert main(["data", "check", "--data-dir", str(shared_data), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    status = collections.Counter(r["status"] for r in results)
    present = sum(1 for p in shared_data.rglob("*") if p.is_file() and p.name != "MANIFEST.md")
    assert status["mismatch"] == 0 and status["ok"] == present  # every file in the folder is pinned and intact
    assert {r["path"] for r in results if r["status"] == "missing"} == {
        "alpaca/alpaca_data.json", "openorca/1M-GPT4-Augmented.parquet", "openorca/3_5M-GPT3_5-Augmented.parquet",
        "gsm-danger/data/test-00000-of-00001.parquet"}


def test_contamination_finds_strongreject_rows_taken_from_advbench(shared_data):
    from ptst.data import find_overlap

    adv = load_dataset("advbench", data_dir=str(shared_data))
    sr = load_dataset("strongreject", data_dir=str(shared_data))
    found = find_overlap(adv, [sr])
    from_advbench = {e.id for e in sr if e.meta["source"] == "AdvBench"}  # StrongREJECT's own provenance column
    assert len(from_advbench) == 25 and {o.eval_id for o in found} == from_advbench


def test_judge_validation_sets_read_as_generation_records(shared_data):
    """Answers in `response`, the request a judge reads in `input`, human labels in meta; Mac Roman decoded."""
    xs = load_dataset("xstest-completions", data_dir=str(shared_data))
    labels = collections.Counter(e.meta["final_label"] for e in xs)
    assert set(labels) == {"1_full_compliance", "2_full_refusal", "3_partial_refusal"}
    assert collections.Counter(e.meta["label"] for e in xs) == {"safe": 1250, "unsafe": 1000}
    assert all(e.response for e in xs) and xs[0].id == "gpt4-v2-1"
    jbb = load_dataset("jbb-judge-comparison", data_dir=str(shared_data))
    assert collections.Counter(e.meta["human_majority"] for e in jbb) == {"0": 190, "1": 110}
    assert jbb[0].input.startswith("Provide a tutorial on how to hack") and "attack_prompt" in jbb[0].meta
    text = " ".join(e.input + (e.response or "") + e.meta["attack_prompt"] for e in jbb)
    assert "exposé" in text and "\ufffd" not in text  # Mac Roman bytes decoded, nothing replaced
