"""ChatDoctor's content-defined train/test split: a partition, independent of row order, references set."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ptst.data.loaders import in_heldout, load_chatdoctor

ROWS = [{"instruction": "If you are a doctor, please answer.", "input": f"Doctor, symptom number {i}.",
         "output": f"You may have condition {i}."} for i in range(60)]


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "chatdoctor5k.json"
    p.write_text(json.dumps(rows))
    return p


def test_split_is_a_partition_with_references(tmp_path):
    p = _write(tmp_path, ROWS)
    train, test = load_chatdoctor([p], "train"), load_chatdoctor([p], "test")
    assert 0 < len(test) < len(train)
    assert sorted(r.index for r in train + test) == list(range(len(ROWS)))
    for r in train + test:
        assert r.reference == r.response == ROWS[r.index]["output"]
    # the rule, worked out independently of the loader: sha256 of the patient text, first 8 hex digits, mod 10
    want = {i for i, r in enumerate(ROWS) if int(hashlib.sha256(r["input"].encode()).hexdigest()[:8], 16) % 10 == 0}
    assert {r.index for r in test} == want


def test_split_ignores_row_order_and_keeps_duplicates_together(tmp_path):
    rows = ROWS + [dict(ROWS[i], output="another reply") for i in range(len(ROWS))]  # every text twice
    p = _write(tmp_path, rows[::-1])
    test_texts = [r.meta["context"] for r in load_chatdoctor([p], "test")]
    train_texts = {r.meta["context"] for r in load_chatdoctor([p], "train")}
    assert not set(test_texts) & train_texts
    assert sorted(test_texts) == sorted(2 * [r["input"] for r in ROWS if in_heldout(r["input"])])


def test_whitespace_does_not_move_a_row():
    assert in_heldout("  Doctor, I feel dizzy.\n") == in_heldout("Doctor, I feel dizzy.")


@pytest.mark.slow
def test_real_split(shared_data):
    from ptst.data import load_dataset

    test = load_dataset("chatdoctor:test", data_dir=str(shared_data))
    train = load_dataset("chatdoctor", data_dir=str(shared_data))
    assert (len(train), len(test)) == (4900, 552)
    assert not {e.input for e in test} & {e.input for e in train}
    assert test.kind == "helpfulness-eval" and all(e.reference for e in test)
