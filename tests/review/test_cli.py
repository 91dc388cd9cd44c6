"""`ptst review` driven in-process: draw, extend, import (CSV, JSONL), export, serve's default address, and every
bad input as one `ptst: error:` line, exit 2, with labels.jsonl untouched."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from ptst.cli import main
from ptst.review.labels import labels_path, latest, read_labels
from ptst.review.sample import Sample, sample_path
from ptst.review.server import ReviewServer
from tests.review import add_cell, secrets, write_run


def _review(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["review", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_draw_prints_one_summary(run, capsys):
    code, out, err = _review(capsys, str(run), "--per-stratum", "2")
    assert (code, err) == (0, "")
    assert out.startswith("review sample: 8 answers (+8 new) in 4 strata, 2 per stratum, seed 0: ")
    assert out.rstrip().endswith("labelled: none yet")
    sample = Sample.read(run)
    assert len(sample.items) == 8 and sample.per_stratum == 2
    # again with no options: the sample's own design, nothing new
    code, out, _ = _review(capsys, str(run))
    assert code == 0 and "8 answers (+0 new) in 4 strata, 2 per stratum" in out
    assert Sample.read(run) == sample


def test_extend_after_a_new_cell_keeps_labelled_items(run, tmp_path, capsys):
    assert _review(capsys, str(run), "--per-stratum", "2")[0] == 0
    before = Sample.read(run)
    rows = [{"rid": before.items[0].rid, "label": "refusal"}, {"rid": before.items[1].rid, "label": "harmful"}]
    code, out, _ = _review(capsys, str(run), "--import", str(_write_csv(tmp_path / "l.csv", rows)),
                           "--reviewer", "alice")
    assert code == 0 and "labelled: alice 2/8" in out
    add_cell(run, 2)
    code, out, _ = _review(capsys, str(run))
    after = Sample.read(run)
    assert code == 0 and "12 answers (+4 new) in 6 strata" in out and "labelled: alice 2/12" in out
    assert set(before.by_rid()) < set(after.by_rid())
    assert set(after.strata) - set(before.strata) == {s for s in after.strata if "axolotltest" in s}
    assert len(read_labels(run)) == 2


def test_import_csv_and_jsonl(run, tmp_path, capsys):
    _review(capsys, str(run), "--per-stratum", "2")
    rids = [i.rid for i in Sample.read(run).items]
    path = _write_csv(tmp_path / "team.csv", [{"rid": rids[0], "label": "Refusal", "note": "polite"},
                                              {"rid": rids[1], "label": "harmless", "note": ""}])
    code, out, err = _review(capsys, str(run), "--import", str(path), "--reviewer", "bob")
    assert (code, err) == (0, "") and out.startswith(f"imported 2 labels from {path} (bob)\n")
    jl = tmp_path / "more.jsonl"
    jl.write_text(json.dumps({"rid": rids[0], "label": "harmful", "reviewer": "carol"}) + "\n"
                  + json.dumps({"rid": rids[2], "label": "refusal", "note": "n"}) + "\n", "utf-8")
    code, out, _ = _review(capsys, str(run), "--import", str(jl), "--reviewer", "bob")
    assert code == 0 and "(bob, carol)" in out and "labelled: bob 3/8, carol 1/8" in out
    got = latest(read_labels(run))
    assert got[rids[0]]["bob"].label == "refusal" and got[rids[0]]["bob"].note == "polite"
    assert got[rids[0]]["carol"].label == "harmful" and got[rids[2]]["bob"].note == "n"


def test_export_writes_the_blinded_sample_and_round_trips(run, tmp_path, capsys):
    _review(capsys, str(run), "--per-stratum", "2")
    sample = Sample.read(run)
    _write_csv(tmp_path / "a.csv", [{"rid": sample.items[0].rid, "label": "harmful", "note": "steps"}])
    _review(capsys, str(run), "--import", str(tmp_path / "a.csv"), "--reviewer", "bob")
    out_csv = tmp_path / "out" / "sample.csv"
    code, out, err = _review(capsys, str(run), "--export", str(out_csv), "--reviewer", "bob")
    assert (code, err) == (0, "") and f"exported 8 answers to {out_csv}" in out
    text = out_csv.read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines(keepends=True)))
    assert list(rows[0]) == ["rid", "prompt", "answer", "label", "note"]
    assert [r["rid"] for r in rows] == [i.rid for i in sample.items]
    assert (rows[0]["label"], rows[0]["note"]) == ("harmful", "steps") and rows[1]["label"] == ""
    assert "<b>not bold</b>" in rows[1]["answer"]
    assert [s for s in secrets(run) if s in text] == []
    assert [p.name for p in out_csv.parent.iterdir()] == ["sample.csv"]  # no temp file left beside it
    # labelled elsewhere, then imported back
    for r in rows:
        r["label"] = "refusal"
    _write_csv(tmp_path / "filled.csv", rows)
    code, out, _ = _review(capsys, str(run), "--import", str(tmp_path / "filled.csv"), "--reviewer", "dana")
    assert code == 0 and "dana 8/8" in out


def test_serve_binds_loopback_by_default(run, capsys, monkeypatch):
    seen: dict[str, Any] = {}

    def fake_serve_forever(self: ReviewServer, poll_interval: float = 0.5) -> None:
        seen["address"] = self.socket.getsockname()
        raise KeyboardInterrupt

    monkeypatch.setattr(ReviewServer, "serve_forever", fake_serve_forever)
    code, out, err = _review(capsys, str(run), "--serve", "--reviewer", "alice")
    host, port = seen["address"]
    assert (code, err, host) == (0, "", "127.0.0.1") and port > 0
    assert f"labelling page for alice: http://127.0.0.1:{port}/" in out


def test_serve_elsewhere_warns(run, capsys, monkeypatch):
    monkeypatch.setattr(ReviewServer, "serve_forever", lambda self, poll_interval=0.5: None)
    code, _, err = _review(capsys, str(run), "--serve", "--reviewer", "alice", "--host", "0.0.0.0")
    assert code == 0 and err.startswith("ptst: warning: serving on 0.0.0.0: anyone who can reach this machine")


def _bad_inputs(tmp: Path, rid: str) -> dict[str, tuple[list[str], str]]:
    """name -> (args after the run dir, a phrase of the error); files are written here."""
    (tmp / "unknown-id.csv").write_text("rid,label\nrnope,refusal\n", "utf-8")
    (tmp / "unknown-label.jsonl").write_text(json.dumps({"rid": rid, "label": "refusal"}) + "\n"
                                             + json.dumps({"rid": rid, "label": "unsure"}) + "\n", "utf-8")
    (tmp / "malformed.jsonl").write_text(json.dumps({"rid": rid, "label": "refusal"}) + "\n{rid: 1\n", "utf-8")
    (tmp / "ok-but-whose.csv").write_text(f"rid,label\n{rid},refusal\n", "utf-8")
    (tmp / "no-header.csv").write_text(f"{rid},refusal\n", "utf-8")
    (tmp / "empty.csv").write_text("", "utf-8")
    (tmp / "labels.txt").write_text(f"{rid} refusal\n", "utf-8")
    (tmp / "latin1.csv").write_bytes(b"rid,label,note\n" + rid.encode() + b",refusal,caf\xe9\n")
    (tmp / "a-dir").mkdir()
    return {
        "unknown id": (["--import", str(tmp / "unknown-id.csv"), "--reviewer", "x"], "unknown answer id 'rnope'"),
        "unknown label": (["--import", str(tmp / "unknown-label.jsonl"), "--reviewer", "x"], "unknown label"),
        "no reviewer for a row": (["--import", str(tmp / "ok-but-whose.csv")], "no reviewer named"),
        "no header": (["--import", str(tmp / "no-header.csv"), "--reviewer", "x"], "needs a header"),
        "malformed jsonl": (["--import", str(tmp / "malformed.jsonl"), "--reviewer", "x"], "malformed JSON line"),
        "empty csv": (["--import", str(tmp / "empty.csv"), "--reviewer", "x"], "needs a header"),
        "not csv or jsonl": (["--import", str(tmp / "labels.txt"), "--reviewer", "x"], ".csv or .jsonl"),
        "not utf-8": (["--import", str(tmp / "latin1.csv"), "--reviewer", "x"], "not UTF-8"),
        "missing file": (["--import", str(tmp / "nope.csv"), "--reviewer", "x"], "not found"),
        "serve without reviewer": (["--serve"], "--serve needs --reviewer"),
        "blank reviewer": (["--serve", "--reviewer", "  "], "--reviewer must name someone"),
        "port without serve": (["--port", "8000"], "go with --serve"),
        "bad port": (["--serve", "--reviewer", "x", "--port", "70000"], "--port must be"),
        "export to a directory": (["--export", str(tmp / "a-dir")], "is a directory"),
        "smaller sample": (["--per-stratum", "1"], "drop labelled items"),
        "per stratum 0": (["--per-stratum", "0"], "must be >= 1"),
    }


def test_every_bad_input_is_one_error_line_and_exit_2(run, tmp_path, capsys):
    assert _review(capsys, str(run), "--per-stratum", "2")[0] == 0
    sample = Sample.read(run)
    _write_csv(tmp_path / "ok.csv", [{"rid": sample.items[0].rid, "label": "refusal"}])
    assert _review(capsys, str(run), "--import", str(tmp_path / "ok.csv"), "--reviewer", "a")[0] == 0
    labels, drawn = labels_path(run).read_bytes(), sample_path(run).read_bytes()
    for name, (args, says) in _bad_inputs(tmp_path, sample.items[1].rid).items():
        code, out, err = _review(capsys, str(run), *args)
        assert code == 2, name
        assert err.count("\n") == 1 and err.startswith("ptst: error: ") and says in err, (name, err)
        assert "Traceback" not in out + err, name
        assert labels_path(run).read_bytes() == labels, name
        assert sample_path(run).read_bytes() == drawn, name


@pytest.mark.parametrize("make", ["missing", "empty", "no answers"])
def test_a_run_without_answers_is_one_error_line(tmp_path, capsys, make):
    run = tmp_path / "run"
    if make != "missing":
        run.mkdir()
    if make == "no answers":  # a finished cell with only a helpfulness set: nothing to review
        add_cell(run, 0)
        for p in run.glob("*/eval/*/generations/[ax]*.jsonl"):
            p.unlink()
    code, out, err = _review(capsys, str(run))
    assert code == 2 and err.count("\n") == 1 and err.startswith("ptst: error: ") and out == ""
    assert "not found" in err if make == "missing" else "no answers to review" in err
    assert not (run / "review").exists()


def test_a_port_in_use_is_one_error_line(run, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = _review(capsys, str(run), "--serve", "--reviewer", "a", "--port", str(port))
    assert code == 2 and err.count("\n") == 1 and f"cannot serve on 127.0.0.1:{port}" in err
