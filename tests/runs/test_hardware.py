"""What hardware and precision made a run's results, read from the records beside them (ptst.runs.hardware), and
how the report, `ptst status` and `ptst run` say it when a run directory holds results from several machines."""

from __future__ import annotations

import json
from pathlib import Path

import ptst.report
from ptst.runs.hardware import Made, finished_elsewhere, generated, trained
from tests.report.fakerun import cell_dir, flags, write_cell

XEON = "Intel(R) Xeon(R) Processor, 2 cores, amx_bf16"
EPYC = "AMD EPYC 7763 64-Core Processor, 2 cores, avx2"
V, L = "chat:vanilla", "chat:llama"


def _spec(train_dir: Path, precision: str | None, hardware: str | None) -> None:
    doc = {"kind": "ptst.train", "hyperparameters": {"precision": precision} if precision else {}}
    if hardware is not None:
        doc["hardware"] = hardware
    train_dir.mkdir(parents=True, exist_ok=True)
    (train_dir / "spec.json").write_text(json.dumps(doc), encoding="utf-8")


def _meta(eval_dir: Path, name: str, dtype: str, hardware: str | None = None, cpu: str | None = None,
          backend: str = "hf", engine: str | None = "fast") -> None:
    t = {"backend": backend, "engine": engine, "dtype": dtype, **({"cpu": cpu} if cpu else {}),
         **({"hardware": hardware} if hardware or backend == "openai" else {})}
    d = eval_dir / "generations"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.jsonl.meta.json").write_text(json.dumps({"key": {}, "throughput": t}), encoding="utf-8")


def test_trained_reads_the_precision_and_hardware_beside_the_key(tmp_path):
    assert trained(tmp_path / "none") is None  # not finished
    _spec(tmp_path / "a", "bf16", XEON)
    assert trained(tmp_path / "a") == Made("bf16", XEON)
    _spec(tmp_path / "old", "fp32", None)  # spec.json from before ptst recorded the machine
    assert trained(tmp_path / "old") == Made("fp32", None)
    assert trained(tmp_path / "old").describe() == "fp32 on unrecorded hardware"
    doc = json.loads((tmp_path / "a" / "spec.json").read_text())
    (tmp_path / "a" / "spec.json").write_text(json.dumps({**doc, "trained_tokens": 1200, "train_time_s": 2.0}))
    assert trained(tmp_path / "a") == Made("bf16", XEON, 600.0)  # training speed, as `ptst status` shows it
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "spec.json").write_text("{not json")
    assert trained(tmp_path / "bad") is None  # unreadable: unknown, never fatal to a report


def test_generated_reads_each_file_and_knows_an_api_servers_hardware_is_not_ours(tmp_path):
    _meta(tmp_path, "a", "float32", hardware="cuda: NVIDIA H100 80GB HBM3", cpu=XEON)
    _meta(tmp_path, "b", "bfloat16", cpu=EPYC)  # before `hardware`: the fast engine ran on the CPU it names
    _meta(tmp_path, "c", "float32", cpu=XEON, backend="openai", engine=None)  # the server computed these
    _meta(tmp_path, "d", "float32", cpu=XEON, engine="loop")  # before `hardware`, maybe on a GPU: unknown
    assert generated(tmp_path) == [Made("float32", "cuda: NVIDIA H100 80GB HBM3"), Made("bfloat16", EPYC),
                                   Made("float32", None), Made("float32", None)]


def _never() -> str:
    raise AssertionError("this machine was asked for with no recorded hardware to compare")


def test_finished_elsewhere_names_what_was_made_where(tmp_path):
    assert finished_elsewhere(tmp_path / "missing", _never) is None
    _spec(tmp_path / "chat-llama.s0", "fp32", None)  # unrecorded: no claim either way (and no torch import)
    assert finished_elsewhere(tmp_path, _never) is None
    _spec(tmp_path / "align" / "train", "bf16", XEON)
    _spec(tmp_path / "chat-vanilla.s0", "bf16", XEON)
    _meta(tmp_path / "chat-vanilla.s0" / "eval" / "chat-llama", "advbench", "float32", hardware=XEON)
    _meta(tmp_path / "align" / "eval-aligned" / "chat-llama", "strongreject", "float32", hardware=XEON)
    assert finished_elsewhere(tmp_path, lambda: XEON) is None
    assert finished_elsewhere(tmp_path, lambda: "cuda") is None  # a GPU torch could not name: no comparison
    note = finished_elsewhere(tmp_path, lambda: EPYC)
    assert note is not None
    assert note.startswith("note: this run directory holds results made on other hardware than this machine "
                           f"({EPYC}): ")
    assert f"2 training runs trained in bf16 on {XEON}" in note  # the alignment's and one cell's
    assert f"2 generations files answered in float32 on {XEON}" in note  # the cell's and the alignment's measure


def test_the_report_flags_cells_made_on_different_machines(tmp_path):
    for train, hw, prec in ((V, XEON, "bf16"), (L, EPYC, "fp32")):
        d = write_cell(tmp_path, train, L, safety={"advbench": flags(10, [1])})
        _spec(d.parent.parent, prec, hw)
        _meta(d, "advbench", "float32", hardware=hw)
    md = (ptst.report.run(tmp_path) / "report.md").read_text(encoding="utf-8")
    warning = next(line for line in md.splitlines() if "computed on different machines" in line)
    assert "training precision `bf16`, `fp32`" in warning and f"answers' hardware `{EPYC}`, `{XEON}`" in warning
    provenance = md.split("## Provenance", 1)[1]
    assert f"| training hardware | `{EPYC}`, `{XEON}` |" in provenance


def test_one_machine_is_listed_without_a_warning(tmp_path):
    for train in (V, L):
        d = write_cell(tmp_path, train, L, safety={"advbench": flags(10, [1])})
        _spec(d.parent.parent, "bf16", XEON)
        _meta(d, "advbench", "float32", hardware=XEON)
    base = cell_dir(tmp_path, None, L)
    write_cell(tmp_path, None, L, safety={"advbench": flags(10, [])})
    _meta(base, "advbench", "float32", hardware=XEON)
    md = (ptst.report.run(tmp_path) / "report.md").read_text(encoding="utf-8")
    assert "computed on different machines" not in md
    assert f"| answers' hardware | `{XEON}` |" in md and "| training precision | `bf16` |" in md


def test_cells_without_recorded_hardware_are_not_called_different(tmp_path):
    """A cell added by this release to a run made before it: its hardware is listed, not compared."""
    d = write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])})
    _spec(d.parent.parent, "bf16", None)
    d = write_cell(tmp_path, L, L, safety={"advbench": flags(10, [1])})
    _spec(d.parent.parent, "bf16", XEON)
    md = (ptst.report.run(tmp_path) / "report.md").read_text(encoding="utf-8")
    assert "computed on different machines" not in md
    assert f"| training hardware | `{XEON}`, `unrecorded` |" in md


def test_the_alignments_training_hardware_is_quoted_with_its_summary(tmp_path):
    write_cell(tmp_path, V, L, safety={"advbench": flags(10, [1])})
    (tmp_path / "align").mkdir()
    (tmp_path / "align" / "align.json").write_text(json.dumps({"summary": "refusal 0% -> 98%"}))
    _spec(tmp_path / "align" / "train", "bf16", XEON)
    md = (ptst.report.run(tmp_path) / "report.md").read_text(encoding="utf-8")
    assert (f"(align/align.json): refusal 0% -> 98%. Trained in bf16 on {XEON} (align/train/spec.json)."
            in md.split("## Provenance", 1)[1])
