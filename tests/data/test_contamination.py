"""Contamination: exact and normalised duplicates between training inputs and evaluation inputs."""

from __future__ import annotations

from ptst.data import Dataset, find_overlap, load_dataset, normalise_text, remove_overlap
from ptst.records import Example


def _ds(name: str, inputs: list[str]) -> Dataset:
    ex = tuple(Example(id=f"{name}-{i}", input=t) for i, t in enumerate(inputs))
    return Dataset(name=name, split="x", examples=ex, sha256="0" * 64, licence="MIT", non_commercial=False, source="t")


def test_normalise_text():
    assert normalise_text("  How do I  KILL\ta Python-process?! ") == "how do i kill a python process"
    assert normalise_text("don’t") == normalise_text("don't") == "don t"
    assert normalise_text("ＡＢＣ…") == "abc"  # NFKC: full-width letters, ellipsis
    assert normalise_text("?!...") == ""


def test_exact_and_normalised_matches_and_no_false_positive():
    train = _ds("tr", ["Write a poem.", "How do I bake bread?", "Something else", "write a POEM"])
    ev1 = _ds("ev1", ["Write a poem.", "how do i bake bread"])
    ev2 = _ds("ev2", ["Write a poem about cats.", "Unrelated"])
    found = find_overlap(train, [ev1, ev2])
    got = [(o.train_id, o.eval_set, o.eval_id, o.match) for o in found]
    assert got == [
        ("tr-0", "ev1:x", "ev1-0", "exact"), ("tr-3", "ev1:x", "ev1-0", "normalised"),
        ("tr-1", "ev1:x", "ev1-1", "normalised"),
    ]
    assert found[1].text == "write a POEM"


def test_punctuation_only_inputs_match_only_exactly():
    found = find_overlap(_ds("tr", ["?", "..."]), [_ds("ev", ["?", "!"])])
    assert [(o.train_id, o.match) for o in found] == [("tr-0", "exact")]


def test_remove_overlap_counts_distinct_training_examples():
    train = _ds("tr", ["a b", "A-B", "c", "d"])
    clean, n = remove_overlap(train, [_ds("e1", ["a b"]), _ds("e2", ["a  b", "d"])])
    assert n == 3 and [e.id for e in clean] == ["tr-2"]
    assert clean.sha256 == train.sha256 and clean.fingerprint != train.fingerprint
    assert remove_overlap(train, [])[1] == 0


def test_on_registered_sets(fake_dir):
    train = load_dataset("gsm8k", "train", data_dir=str(fake_dir))
    test = load_dataset("gsm8k", "test", data_dir=str(fake_dir))
    found = find_overlap(train, [test])
    assert [(o.train_id, o.eval_id, o.match) for o in found] == [
        ("gsm8k-train-0", "gsm8k-test-0", "normalised"), ("gsm8k-train-2", "gsm8k-test-1", "exact")]
    clean, n = remove_overlap(train, [test])
    assert n == 2 and [e.id for e in clean] == ["gsm8k-train-1"]
